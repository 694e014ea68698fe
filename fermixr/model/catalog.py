"""Fermi-LAT source catalogs (4FGL DR1..DR4, 3FGL, and files in their format) as sky models.

The files are found and read by :mod:`fermixr.io.catalog` (plain columns); this module
selects rows and builds the sources.

Format facts used here (FSSC catalog descriptions; Fermipy's ``catalog.py`` and
``roi_model.py``; the LAT's ``make4FGLxml``):

* HDU ``LAT_Point_Source_Catalog`` holds one row per source: ``Source_Name``, ``RAJ2000``,
  ``DEJ2000``, ``GLON``, ``GLAT``, ``SpectrumType``, ``Pivot_Energy`` (MeV), associations
  (``ASSOC1``, ``ASSOC2``, ``ASSOC_FGL``, ``ASSOC_FHL``, ``ASSOC_GAM1..3``, ``ASSOC_TEV``) and
  ``Extended_Source_Name``.  HDU ``ExtendedSources`` describes the extended ones
  (``Source_Name`` = the main table's ``Extended_Source_Name``, ``Model_Form``,
  ``Model_SemiMajor``, ``Spatial_Function``, ``Spatial_Filename`` ...).
* 4FGL spectra: ``PL_Flux_Density``, ``PL_Index``; ``LP_Flux_Density``, ``LP_Index``,
  ``LP_beta``; ``PLEC_Flux_Density``, ``PLEC_Exp_Index`` and, in DR1/DR2, ``PLEC_Index`` and
  ``PLEC_Expfactor`` (model PLSuperExpCutoff2, dN/dE = K (E/E0)^-G exp(a (E0^b - E^b))), in
  DR3/DR4 ``PLEC_IndexS`` and ``PLEC_ExpfactorS`` (model PLSuperExpCutoff4).
* 3FGL spectra: ``Flux_Density``, ``Spectral_Index``, ``beta``, ``Cutoff``, ``Exp_Index``;
  types PowerLaw, LogParabola, PLExpCutoff, PLSuperExpCutoff (both cut-off types become the
  Science Tools' PLSuperExpCutoff, with Index2 = 1 for PLExpCutoff, as Fermipy does).

Parameters follow Fermipy's ``spectral_pars_from_catalog``: the normalisation is rescaled to a
power-of-ten scale (10**round(log10 K)), the pivot (``Scale``/``Eb``) is fixed with
min = max = value, photon indices are written with scale -1 (so ``value`` is the catalog's
positive index), and bounds are widened to contain the value.  Every parameter is fixed;
the catalog's ``Unc_*`` columns become parameter errors.

Extended sources: ``Spatial_Function`` RadialDisk / RadialGauss(ian) become the analytic
RadialDisk (Radius = Model_SemiMajor) / RadialGaussian (Sigma = Model_SemiMajor / 1.50959,
Model_SemiMajor being the 68% radius), as ``make4FGLxml`` does; every other extended source
is a SpatialMap whose template ``Spatial_Filename`` is looked up in ``extdir`` (and its
``Templates`` folder), then beside the catalog file and in the catalog's standard archive
folder (``Extended_14years``, ``Extended_12years``, ``Extended_8years``,
``Extended_archive_v15``) under the catalog's folder and ``$FERMIPY_DATA_DIR/catalogs``.
``radial_as_template=True`` uses the templates for every extended source (what Fermipy does).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError, ModelError
from ..geom.frames import ait_offsets
from ..io.catalog import (CATALOG_NAMES, COLS_4FGL, CatalogTable, catalog_search_dirs,
                          extended_template_dirs, find_extended_template, python_value,
                          read_catalog_table, resolve_catalog, strip_text)
from .parameters import Parameter
from .skymodel import SkyModel
from .source import Source
from .spatial import GAUSS_R68, SPATIAL_PARAMS
from .xml import spectral_defaults

__all__ = ["FermiCatalog", "open_catalog", "read_catalog", "resolve_catalog",
           "catalog_search_dirs", "sky_selection_mask", "angular_separation",
           "CATALOG_NAMES", "find_target", "TargetMatch"]

_ASSOC_NAME_COLS = ("1FHL_Name", "2FGL_Name", "3FGL_Name", "2FHL_Name", "3FHL_Name",
                    "Extended_Source_Name")



# --------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------
def angular_separation(lon0: float, lat0: float, lon, lat) -> np.ndarray:
    """Great-circle distance (deg) between (lon0, lat0) and arrays (lon, lat), all deg."""
    from ..geom.frames import angular_separation as sep

    return np.asarray(sep(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64),
                          float(lon0), float(lat0)))


def _to_gal(ra, dec) -> tuple[np.ndarray, np.ndarray]:
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    c = SkyCoord(np.asarray(ra, dtype=np.float64) * u.deg,
                 np.asarray(dec, dtype=np.float64) * u.deg, frame="icrs").galactic
    return np.asarray(c.l.deg), np.asarray(c.b.deg)


def sky_selection_mask(ra, dec, center: tuple[float, float], *,
                       src_radius: float | None = None, src_radius_roi: float | None = None,
                       coordsys: str = "CEL", glon=None, glat=None) -> np.ndarray:
    """Fermipy's catalog-source selection: within ``src_radius`` (deg) of the ROI centre
    AND, when ``src_radius_roi`` (half the ``src_roiwidth``) is given, within the square
    |x|, |y| < src_radius_roi of an AIT projection centred on the ROI in ``coordsys``
    (CEL or GAL).  None means no cut; both comparisons are strict, as in Fermipy."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ra0, dec0 = float(center[0]), float(center[1])
    mask = np.ones(ra.shape, dtype=bool)
    if src_radius is not None:
        mask &= angular_separation(ra0, dec0, ra, dec) < float(src_radius)
    if src_radius_roi is not None:
        cs = str(coordsys).upper()
        if cs == "CEL":
            x, y = ait_offsets(ra0, dec0, ra, dec, "CEL")
        elif cs == "GAL":
            l0, b0 = _to_gal([ra0], [dec0])
            if glon is None or glat is None:
                glon, glat = _to_gal(ra, dec)
            x, y = ait_offsets(float(l0[0]), float(b0[0]), glon, glat, "GAL")
        else:
            raise ModelError(f"coordsys {coordsys!r}: expected CEL or GAL")
        with np.errstate(invalid="ignore"):
            mask &= np.maximum(np.abs(x), np.abs(y)) < float(src_radius_roi)
    return mask


# --------------------------------------------------------------------------------------
# the catalog table
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class FermiCatalog(CatalogTable):
    """A catalog file's table (:class:`fermixr.io.catalog.CatalogTable`: path, family,
    columns, extended, header) with the selection and the sources of Fermipy."""

    def glonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """Galactic coordinates computed from RAJ2000/DEJ2000 (as Fermipy does; the
        catalog's GLON/GLAT columns stay in ``meta``)."""
        return _to_gal(self.ra, self.dec)

    def select(self, center: tuple[float, float], *, src_radius: float | None = None,
               src_roiwidth: float | None = None, src_radius_roi: float | None = None,
               coordsys: str = "CEL") -> np.ndarray:
        """Boolean mask of the rows Fermipy keeps for an ROI centred on ``center`` (ra, dec):
        see :func:`sky_selection_mask`; ``src_roiwidth`` is the full width of the square."""
        if src_roiwidth is not None:
            src_radius_roi = 0.5 * float(src_roiwidth)
        glon = glat = None
        if src_radius_roi is not None and str(coordsys).upper() == "GAL":
            glon, glat = self.glonlat()
        return sky_selection_mask(self.ra, self.dec, center, src_radius=src_radius,
                                  src_radius_roi=src_radius_roi, coordsys=coordsys,
                                  glon=glon, glat=glat)

    def to_sky_model(self, mask=None, *, extdir: str | os.PathLike | None = None,
                     center: tuple[float, float] | None = None,
                     radial_as_template: bool = False) -> SkyModel:
        """Sources of the rows in ``mask`` (all when None), in catalog order; with
        ``center`` each gets ``meta["offset"]`` (deg from the ROI centre)."""
        idx = np.arange(len(self)) if mask is None else np.flatnonzero(np.asarray(mask))
        glon, glat = self.glonlat()
        sources = []
        for i in idx:
            sources.append(self._source(int(i), extdir, center, float(glon[i]),
                                        float(glat[i]), radial_as_template))
        return SkyModel(tuple(sources))

    # -- one row ----------------------------------------------------------------------
    def _row(self, i: int) -> dict:
        row = {}
        for k, col in self.columns.items():
            v = col[i]
            if isinstance(v, np.ndarray) and v.ndim > 0:
                continue  # band fluxes, light curves: left in the file
            row[k] = python_value(v)
        return row

    def _where(self, i: int) -> str:
        return f"{self.path}: source {strip_text(self.columns['Source_Name'][i])!r} (row {i + 1})"

    def _source(self, i: int, extdir, center, glon: float, glat: float,
                radial_as_template: bool) -> Source:
        row = self._row(i)
        name = row["Source_Name"]
        ra, dec = float(row["RAJ2000"]), float(row["DEJ2000"])
        tag, spectral = self._spectrum(i, row)
        ext_name = strip_text(row.get("Extended_Source_Name", ""))
        meta = dict(row)
        meta.update(catalog=str(self.path), catalog_family=self.family, catalog_row=i,
                    ra=ra, dec=dec, glon=glon, glat=glat)
        if "Signif_Avg" in row and "TS" not in row and row["Signif_Avg"] is not None:
            try:
                meta["TS"] = float(row["Signif_Avg"]) ** 2
            except (TypeError, ValueError):
                pass
        if self.family == "3FGL" and "TS" not in row:
            # Fermipy: the sum of the squared band significances
            ts = 0.0
            for k, v in row.items():
                if k.startswith("Sqrt_TS") and isinstance(v, float) and math.isfinite(v):
                    ts += v * v
            meta["TS"] = ts
        if center is not None:
            meta["offset"] = float(angular_separation(center[0], center[1], [ra], [dec])[0])
        spatial_model, spatial, spatial_file = "PointSource", None, None
        if ext_name:
            ext = self.extended.get(ext_name.replace(" ", "").lower())
            if ext is None:
                raise FileFormatError(f"{self._where(i)}: Extended_Source_Name {ext_name!r} "
                                      f"has no row in the ExtendedSources HDU")
            for k, v in ext.items():
                if k not in meta or k in ("Spatial_Filename",):
                    meta[k] = v
            spatial_model, spatial, spatial_file = self._extended_model(
                i, ext, ra, dec, extdir, radial_as_template)
        if spatial is None:
            base = SPATIAL_PARAMS["PointSource"]
            spatial = (base[0].replace(value=ra), base[1].replace(value=dec))
        ellipse = _position_ellipse(row)
        if ellipse is not None:
            meta["pos_ellipse"] = ellipse
        assoc = self._associations(row)
        meta["assoc"] = assoc
        names = []
        for v in assoc.values():
            if v and v.replace(" ", "").lower() != name.replace(" ", "").lower() \
                    and v not in names:
                names.append(v)
        return Source(name=name, spectrum=tag, spectral=spectral, spatial_model=spatial_model,
                      spatial=spatial, spatial_file=spatial_file,
                      associations=tuple(names), meta=meta)

    def _associations(self, row: dict) -> dict:
        """Association columns with a value, ASSOC1 and ASSOC2 first, then the other
        ASSOC* and *_Name columns in file order."""
        out = {}
        for k in ("ASSOC1", "ASSOC2"):
            if isinstance(row.get(k), str) and row[k]:
                out[k] = row[k]
        for k, v in row.items():
            if (k.upper().startswith("ASSOC") or k in _ASSOC_NAME_COLS) and isinstance(v, str):
                if v:
                    out[k] = v
        # 4FGL keeps the 3FGL / 2FGL counterpart in ASSOC_FGL: expose it under Fermipy's
        # cross-match column names too
        fgl = out.get("ASSOC_FGL", "")
        for prefix in ("3FGL", "2FGL", "1FGL"):
            if fgl.upper().startswith(prefix) and f"{prefix}_Name" not in out:
                out[f"{prefix}_Name"] = fgl
        fhl = out.get("ASSOC_FHL", "")
        for prefix in ("3FHL", "2FHL", "1FHL"):
            if fhl.upper().startswith(prefix) and f"{prefix}_Name" not in out:
                out[f"{prefix}_Name"] = fhl
        return out

    def _extended_model(self, i, ext: dict, ra, dec, extdir, radial_as_template):
        func = strip_text(ext.get("Spatial_Function", ""))
        form = strip_text(ext.get("Model_Form", ""))
        major = ext.get("Model_SemiMajor")
        minor = ext.get("Model_SemiMinor", major)
        circular = major is not None and minor is not None and \
            math.isfinite(float(major)) and abs(float(major) - float(minor)) <= 1e-6 * float(major)
        kind = None
        if not radial_as_template:
            if func in ("RadialDisk",) or (not func and form == "Disk" and circular):
                kind = "RadialDisk"
            elif func in ("RadialGauss", "RadialGaussian") or \
                    (not func and form == "2D Gaussian" and circular):
                kind = "RadialGaussian"
        if kind is not None:
            if major is None or not math.isfinite(float(major)) or float(major) <= 0:
                raise FileFormatError(f"{self._where(i)}: extended model {func or form!r} "
                                      f"needs a positive Model_SemiMajor, got {major!r}")
            size = float(major) if kind == "RadialDisk" else float(major) / GAUSS_R68
            base = SPATIAL_PARAMS[kind]
            pname = "Radius" if kind == "RadialDisk" else "Sigma"
            pars = (base[0].replace(value=ra), base[1].replace(value=dec),
                    base[2].replace(value=size, max=max(base[2].max or size, size)))
            assert pars[2].name == pname
            return kind, pars, None
        fname = strip_text(ext.get("Spatial_Filename", ""))
        if not fname:
            raise FileFormatError(f"{self._where(i)}: extended source without a "
                                  "Spatial_Filename in the ExtendedSources HDU")
        path = self.find_template(fname, extdir)
        if path is None:
            dirs = self.template_dirs(extdir)
            raise InputFileError(
                f"{self._where(i)}: extended-source template {fname!r} not found in "
                f"{', '.join(str(d) for d in dirs)}; set model.extdir (or $LATEXTDIR) to "
                "the folder of the catalog's extended-source archive")
        return "SpatialMap", SPATIAL_PARAMS["SpatialMap"], str(path)

    def template_dirs(self, extdir=None) -> list[Path]:
        return extended_template_dirs(self.family, self.path, extdir)

    def find_template(self, fname: str, extdir=None) -> Path | None:
        return find_extended_template(fname, self.family, self.path, extdir)

    # -- spectra ----------------------------------------------------------------------
    def _value(self, i, row, col) -> float:
        v = row.get(col)
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = float("nan")
        if not math.isfinite(v):
            raise FileFormatError(f"{self._where(i)}: column {col} is {row.get(col)!r}; "
                                  f"the {row.get('SpectrumType')} spectrum needs a number")
        return v

    def _err(self, row, col):
        v = row.get("Unc_" + col)
        try:
            v = float(v)
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) and v > 0 else None

    def _spectrum(self, i: int, row: dict) -> tuple[str, tuple[Parameter, ...]]:
        stype = strip_text(row["SpectrumType"])
        e0 = self._value(i, row, "Pivot_Energy")
        val = lambda c: self._value(i, row, c)  # noqa: E731
        if self.family.startswith("4FGL"):
            if stype == "PowerLaw":
                return _pl(val("PL_Flux_Density"), val("PL_Index"), e0,
                           self._err(row, "PL_Flux_Density"), self._err(row, "PL_Index"))
            if stype == "LogParabola":
                return _lp(val("LP_Flux_Density"), val("LP_Index"), val("LP_beta"), e0,
                           [self._err(row, c) for c in COLS_4FGL["LogParabola"]])
            if stype.startswith("PLSuperExpCutoff") or stype.startswith("PLExpCutoff"):
                if "PLEC_IndexS" in self.columns:
                    return _plec4(val("PLEC_Flux_Density"), val("PLEC_IndexS"),
                                  val("PLEC_ExpfactorS"), val("PLEC_Exp_Index"), e0,
                                  [self._err(row, c) for c in COLS_4FGL["PLEC4"]])
                return _plec2(val("PLEC_Flux_Density"), val("PLEC_Index"),
                              val("PLEC_Expfactor"), val("PLEC_Exp_Index"), e0,
                              [self._err(row, c) for c in COLS_4FGL["PLEC2"]])
        else:
            if stype == "PowerLaw":
                return _pl(val("Flux_Density"), val("Spectral_Index"), e0,
                           self._err(row, "Flux_Density"), self._err(row, "Spectral_Index"))
            if stype == "LogParabola":
                return _lp(val("Flux_Density"), val("Spectral_Index"), val("beta"), e0,
                           [self._err(row, c) for c in ("Flux_Density", "Spectral_Index",
                                                        "beta")])
            if stype in ("PLExpCutoff", "PLSuperExpCutoff"):
                b = row.get("Exp_Index")
                try:
                    b = float(b)
                except (TypeError, ValueError):
                    b = float("nan")
                if not math.isfinite(b):
                    if stype == "PLSuperExpCutoff":
                        val("Exp_Index")  # raises naming the column
                    b = 1.0
                return _plec(val("Flux_Density"), val("Spectral_Index"), val("Cutoff"), b, e0,
                             [self._err(row, c) for c in ("Flux_Density", "Spectral_Index",
                                                          "Cutoff")])
        raise FileFormatError(f"{self._where(i)}: SpectrumType {stype!r} is not one this "
                              f"reader knows for a {self.family} catalog (PowerLaw, "
                              "LogParabola, PLSuperExpCutoff"
                              + (", PLExpCutoff" if self.family == "3FGL" else "") + ")")


# -- Fermipy's parameter conventions for catalog sources --------------------------------
# 68% / 95% containment radii of a 2-D Gaussian in units of its sigma: sqrt(chi2_2 quantiles)
R68_SIGMA = math.sqrt(2.30)
R95_SIGMA = math.sqrt(5.99)


def _position_ellipse(row: dict):
    """The catalog's positional-uncertainty ellipse as 1-sigma (semi-major, semi-minor,
    position angle): from the Conf_68 columns, else the Conf_95 ones; None without."""
    for level, factor in (("68", R68_SIGMA), ("95", R95_SIGMA)):
        try:
            a = float(row[f"Conf_{level}_SemiMajor"])
            b = float(row[f"Conf_{level}_SemiMinor"])
            ang = float(row.get(f"Conf_{level}_PosAng") or 0.0)
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0:
            return (a / factor, b / factor, ang if math.isfinite(ang) else 0.0)
    return None


def _pow10(x: float) -> float:
    """Fermipy's scale of a positive number: 10 ** round(log10 x)."""
    if x > 0 and math.isfinite(x):
        return 10.0 ** round(math.log10(x))
    return 1.0


def _set(p: Parameter, physical: float, *, scale: float | None = None, rescale: bool = False,
         fixed: bool = False, bounds: tuple[float, float] | None = None,
         error: float | None = None) -> Parameter:
    old_scale = p.scale
    if scale is None:
        scale = _pow10(abs(physical)) * (1 if old_scale > 0 else -1) if rescale else old_scale
    value = physical / scale
    if bounds is not None:
        lo, hi = bounds
    elif (scale > 0) != (old_scale > 0):
        # sign convention changed: carry the physical bounds over
        pb = [b * old_scale for b in (p.min, p.max) if b is not None]
        lo, hi = (min(x / scale for x in pb), max(x / scale for x in pb)) if len(pb) == 2 \
            else (None, None)
    else:
        lo, hi = p.min, p.max
    if fixed:
        lo = hi = value
    if lo is not None and lo > value:
        lo = value
    if hi is not None and hi < value:
        hi = value
    return p.replace(value=value, scale=scale, min=lo, max=hi, free=False,
                     error=None if error is None else error / abs(scale))


def _pars(tag: str, values: dict) -> tuple[str, tuple[Parameter, ...]]:
    canon, defaults = spectral_defaults(tag)
    out = []
    for p in defaults:
        if p.name in values:
            phys, kw = values[p.name]
            out.append(_set(p, phys, **kw))
        else:
            out.append(p.replace(free=False))
    return canon, tuple(out)


def _index_bounds(g: float) -> tuple[float, float]:
    return (min(0.0, g - 1.0), max(5.0, g + 1.0))


def _pl(k, g, e0, k_err=None, g_err=None):
    return _pars("PowerLaw", {
        "Prefactor": (k, dict(rescale=True, error=k_err)),
        "Index": (-g, dict(scale=-1.0, bounds=_index_bounds(g), error=g_err)),
        "Scale": (e0, dict(scale=1.0, fixed=True))})


def _lp(k, alpha, beta, e0, errs):
    return _pars("LogParabola", {
        "norm": (k, dict(rescale=True, error=errs[0])),
        "alpha": (alpha, dict(scale=1.0, error=errs[1])),
        "beta": (beta, dict(scale=1.0, error=errs[2])),
        "Eb": (e0, dict(scale=1.0, fixed=True))})


def _plec(k, g, ec, b, e0, errs):
    """3FGL PLExpCutoff / PLSuperExpCutoff -> Science Tools PLSuperExpCutoff
    (dN/dE = N0 (E/E0)^Index1 exp(-(E/Ec)^Index2)), N0 = K exp((E0/Ec)^b)."""
    n0 = k * math.exp((e0 / ec) ** b)
    return _pars("PLSuperExpCutoff", {
        "Prefactor": (n0, dict(rescale=True, error=None if errs[0] is None
                               else errs[0] * n0 / k)),
        "Index1": (-g, dict(scale=-1.0, bounds=_index_bounds(g), error=errs[1])),
        "Scale": (e0, dict(scale=1.0, fixed=True)),
        "Cutoff": (ec, dict(rescale=True, error=errs[2])),
        "Index2": (b, dict(scale=1.0))})


def _plec2(k, g, a, b, e0, errs):
    """4FGL DR1/DR2: K (E/E0)^-G exp(a (E0^b - E^b)) = PLSuperExpCutoff2 with
    Prefactor = K exp(a E0^b), Index1 = -G, Expfactor = a, Index2 = b."""
    n0 = k * math.exp(a * e0 ** b)
    return _pars("PLSuperExpCutoff2", {
        "Prefactor": (n0, dict(rescale=True, error=None if errs[0] is None
                               else errs[0] * n0 / k)),
        "Index1": (-g, dict(scale=-1.0, bounds=_index_bounds(g), error=errs[1])),
        "Scale": (e0, dict(scale=1.0, fixed=True)),
        "Expfactor": (a, dict(rescale=True, error=errs[2])),
        "Index2": (b, dict(scale=1.0, error=errs[3]))})


def _plec4(k, gs, d, b, e0, errs):
    """4FGL DR3/DR4: K (E/E0)^(d/b - Gs) exp(d/b^2 (1 - (E/E0)^b)) = PLSuperExpCutoff4 with
    Prefactor = K, IndexS = -Gs, ExpfactorS = d, Index2 = b."""
    return _pars("PLSuperExpCutoff4", {
        "Prefactor": (k, dict(rescale=True, error=errs[0])),
        "IndexS": (-gs, dict(scale=-1.0, bounds=_index_bounds(gs), error=errs[1])),
        "Scale": (e0, dict(scale=1.0, fixed=True)),
        "ExpfactorS": (d, dict(scale=1.0, error=errs[2])),
        "Index2": (b, dict(scale=1.0, error=errs[3]))})


# --------------------------------------------------------------------------------------
# opening a file
# --------------------------------------------------------------------------------------
def open_catalog(path: str | os.PathLike) -> FermiCatalog:
    """Open a 4FGL/3FGL-format FITS catalog (read by
    :func:`fermixr.io.catalog.read_catalog_table`).  FileFormatError names the file and the
    missing HDU or columns."""
    table = read_catalog_table(path)
    return FermiCatalog(**{f.name: getattr(table, f.name)
                           for f in dataclasses.fields(CatalogTable)})


def read_catalog(path: str | os.PathLike, *, extdir: str | os.PathLike | None = None,
                 center: tuple[float, float] | None = None, src_radius: float | None = None,
                 src_roiwidth: float | None = None, coordsys: str = "CEL",
                 radial_as_template: bool = False) -> SkyModel:
    """The sources of a catalog file as a :class:`SkyModel` (all parameters fixed), those
    within ``src_radius`` / the ``src_roiwidth`` square of ``center`` when given."""
    cat = open_catalog(path)
    mask = None
    if center is not None and (src_radius is not None or src_roiwidth is not None):
        mask = cat.select(center, src_radius=src_radius, src_roiwidth=src_roiwidth,
                          coordsys=coordsys)
    elif center is None and (src_radius is not None or src_roiwidth is not None):
        raise ModelError("read_catalog: src_radius/src_roiwidth need a center (ra, dec)")
    return cat.to_sky_model(mask, extdir=extdir, center=center,
                            radial_as_template=radial_as_template)


# --------------------------------------------------------------------------------------
# a source by name: selection.target
# --------------------------------------------------------------------------------------
_SAME_PLACE_DEG = 0.2      # matches closer than this to each other are one object


@dataclasses.dataclass(frozen=True)
class TargetMatch:
    """Where ``selection.target`` resolved to: the catalog source (its name, position and
    the column that matched) and the other rows that matched at the same place."""

    query: str
    name: str
    ra: float
    dec: float
    column: str
    catalog: Path
    others: tuple[str, ...] = ()


_TABLES: dict = {}


def _cached_table(path: Path) -> CatalogTable:
    """The catalog table of ``path``, read once per process while the file is unchanged
    (a recipe is resolved several times; the 4FGL table takes ~0.3 s to read)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _TABLES:
        if len(_TABLES) > 4:
            _TABLES.clear()
        _TABLES[key] = read_catalog_table(path)
    return _TABLES[key]


def _match_columns(table: CatalogTable) -> list[str]:
    cols = ["Source_Name", "Extended_Source_Name"]
    cols += [c for c in table.columns if c.upper().startswith("ASSOC")
             and c not in ("ASSOC_PROB_BAY", "ASSOC_PROB_LR")]
    cols += [c for c in _ASSOC_NAME_COLS if c in table.columns]
    return [c for c in dict.fromkeys(cols) if c in table.columns]


def find_target(query: str, catalogs, *, base=None) -> TargetMatch:
    """The catalog source named ``query`` (case and spaces ignored): by its name (with or
    without the catalog prefix, ``J0534.5+2200``) or by an association (``ASSOC1``,
    ``ASSOC2``, ``ASSOC_TEV``, ``ASSOC_FGL`` ...), searched in the ``catalogs`` (names or
    files, as ``model.catalogs``) in order; the first catalog with a match wins.

    Several rows matching at one place (the Crab nebula's synchrotron and inverse-Compton
    components are both associated with "Crab") resolve to the one of highest
    ``Signif_Avg`` (a NaN, as of a fixed template, ranks last); rows matching far apart are an error listing them.  A name matching no
    row is an error naming the catalogs searched and the closest names."""
    import difflib

    from .source import normalize_name

    key = normalize_name(query)
    if not key:
        raise ModelError(f"selection.target: got {query!r}; expected a source name")
    cats = [catalogs] if isinstance(catalogs, (str, os.PathLike)) else list(catalogs or [])
    if not cats:
        raise ModelError(f"selection.target {query!r}: resolving a name needs a catalog; "
                         "give model.catalogs (e.g. ['4FGL-DR4']) or selection.ra/dec")
    searched, vocabulary = [], {}
    for c in cats:
        path = resolve_catalog(c, base=base)
        if path.suffix.lower() == ".xml":
            continue
        table = _cached_table(path)
        searched.append(path.name)
        names = [strip_text(v) for v in table.columns["Source_Name"]]
        hits: dict[int, str] = {}
        for col in _match_columns(table):
            vals = table.columns[col]
            for i, v in enumerate(vals):
                s = strip_text(v)
                if not s:
                    continue
                n = normalize_name(s)
                vocabulary.setdefault(n, s)
                short = n.split("j", 1)[1] if col == "Source_Name" and "j" in n else None
                if n == key or (short is not None and "j" + short == key):
                    hits.setdefault(i, col)
        if not hits:
            continue
        rows = sorted(hits)
        ra, dec = table.ra, table.dec
        sep = max(float(angular_separation(ra[a], dec[a], ra[b], dec[b]))
                  for a in rows for b in rows)
        if sep > _SAME_PLACE_DEG:
            listed = ", ".join(f"{names[i]} ({hits[i]}; RA {ra[i]:.3f}, Dec {dec[i]:.3f})"
                               for i in rows)
            raise ModelError(f"selection.target {query!r} matches sources {sep:.2f} deg "
                             f"apart in {path.name}: {listed}; give one of their names")
        exact = [i for i in rows if hits[i] in ("Source_Name", "Extended_Source_Name")]
        if exact:
            best = exact[0]
        else:
            sig = table.columns.get("Signif_Avg")

            def significance(i):          # NaN (a fixed template) ranks last
                v = math.nan if sig is None else float(sig[i])
                return v if math.isfinite(v) else -math.inf

            best = max(rows, key=significance)
        return TargetMatch(query=str(query), name=names[best], ra=float(ra[best]),
                           dec=float(dec[best]), column=hits[best], catalog=path,
                           others=tuple(names[i] for i in rows if i != best))
    close = difflib.get_close_matches(key, list(vocabulary), n=3, cutoff=0.75)
    hint = (f"; closest names: {', '.join(repr(vocabulary[c]) for c in close)}"
            if close else "")
    where = ", ".join(searched) or "the catalogs"
    raise ModelError(f"selection.target {query!r}: no source of {where} is named or "
                     f"associated with it{hint}; check the spelling or give selection.ra/dec")
