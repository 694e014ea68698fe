"""Gammapy's MapDataset FITS layout and models YAML, written with astropy alone (Gammapy
is an optional dependency: nothing here imports it).

The layout is the one ``gammapy.datasets.MapDataset.write`` produces (Gammapy 1.x-2.x, the
"gadf" map format): one image HDU per map (WCS in the first two axes, the non-spatial axes
after them in FITS order) and, beside it, a ``<NAME>_BANDS`` table that describes those axes
(``AXCOLSi`` / ``INTERPi`` cards, one row per combination of non-spatial bins, the first
non-spatial axis varying fastest).  Maps written: COUNTS and BACKGROUND (reconstructed
energy), EXPOSURE (true energy), PSF and PSF_EXPOSURE (a PSFMap: offset x true energy on a
coarse sky grid), EDISP and EDISP_EXPOSURE (an EDispKernelMap: reconstructed x true energy
on the coarse grid), MASK_SAFE, MASK_FIT and GTI.

:func:`sky_model_dict` maps one source (plain values: the Science Tools' spectrum tag and
its physical parameters, the spatial type and ICRS position) to Gammapy's model dict as
``Models.write`` spells it; a spectrum or spatial model without a Gammapy counterpart raises
:class:`~fermixr.errors.ModelError` naming it (:data:`SPECTRA`, :data:`SPATIAL`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ..errors import GeometryError, ModelError

__all__ = ["MapAxisSpec", "mapdataset_hdulist", "sky_model_dict", "background_model_dict",
           "models_yaml", "datasets_yaml", "SPECTRA", "SPATIAL"]


@dataclass(frozen=True)
class MapAxisSpec:
    """A non-spatial map axis: ``kind`` "energy" (reconstructed, MeV), "energy_true" (MeV)
    or "rad" (deg); ``edges`` (n+1 bin edges) or ``nodes`` (n values)."""

    kind: str
    edges: np.ndarray | None = None
    nodes: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.nodes) if self.edges is None else len(self.edges) - 1

    @property
    def interp(self) -> str:
        return "lin" if self.kind == "rad" else "log"

    @property
    def columns(self) -> tuple[str, str, str]:
        """(node column, min column, max column) as Gammapy names them."""
        return {"energy": ("ENERGY", "E_MIN", "E_MAX"),
                "energy_true": ("ENERGY_TRUE", "ENERGY_TRUE_MIN", "ENERGY_TRUE_MAX"),
                "rad": ("RAD", "RAD_MIN", "RAD_MAX")}[self.kind]

    @property
    def unit(self) -> str:
        return "deg" if self.kind == "rad" else "MeV"

    def center_min_max(self):
        if self.edges is not None:
            e = np.asarray(self.edges, dtype=np.float64)
            c = np.sqrt(e[:-1] * e[1:]) if self.interp == "log" else 0.5 * (e[:-1] + e[1:])
            return c, e[:-1], e[1:]
        n = np.asarray(self.nodes, dtype=np.float64)
        mid = 0.5 * (n[1:] + n[:-1])
        lo = np.concatenate([[n[0] - (mid[0] - n[0]) if n.size > 1 else n[0]], mid])
        hi = np.concatenate([mid, [n[-1] + (n[-1] - mid[-1]) if n.size > 1 else n[-1]]])
        return n, lo, hi

    @property
    def axcols(self) -> str:
        c, lo, hi = self.columns
        return c if self.edges is None else f"{lo},{hi}"


def _bands_hdu(name: str, axes: list[MapAxisSpec]):
    """The ``<name>_BANDS`` table: one row per combination of bins, axes[0] fastest."""
    from astropy.io import fits

    sizes = [a.size for a in axes]
    idx = np.indices(sizes[::-1]).reshape(len(sizes), -1)[::-1]     # axes[0] fastest
    cols = [fits.Column("CHANNEL", "K", array=np.arange(idx.shape[1]))]
    for a, k in zip(axes, idx):
        c, lo, hi = a.center_min_max()
        for col, arr in zip(a.columns, (c, lo, hi)):
            cols.append(fits.Column(col, "D", unit=a.unit, array=np.asarray(arr)[k]))
    hdu = fits.BinTableHDU.from_columns(cols, name=f"{name}_BANDS")
    for i, a in enumerate(axes, start=1):
        hdu.header[f"AXCOLS{i}"] = a.axcols
        hdu.header[f"INTERP{i}"] = a.interp
    return hdu


_WCS_KEYS = ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2",
             "CUNIT1", "CUNIT2", "CROTA2", "EQUINOX", "RADESYS", "LONPOLE", "LATPOLE",
             "PV2_1", "PV2_2")


def _map_hdus(name: str, data, wcs: dict, axes: list[MapAxisSpec], unit: str = "",
              dtype=np.float32):
    """(image HDU, bands HDU) of one map; ``data`` in numpy order (axes[-1], ...,
    axes[0], ny, nx)."""
    from astropy.io import fits

    data = np.asarray(data)
    want = tuple(a.size for a in axes[::-1]) + (int(wcs["NAXIS2"]), int(wcs["NAXIS1"]))
    if data.shape != want:
        raise GeometryError(f"Gammapy map {name}: data of shape {data.shape}, expected {want}")
    hdu = fits.ImageHDU(np.ascontiguousarray(data.astype(dtype)), name=name)
    h = hdu.header
    h["WCSAXES"] = 2
    for k in _WCS_KEYS:
        if k in wcs and wcs[k] is not None:
            h[k] = wcs[k]
    for i, a in enumerate(axes, start=1):
        h[f"AXCOLS{i}"] = a.axcols
        h[f"INTERP{i}"] = a.interp
    h["WCSSHAPE"] = "(" + ",".join(str(s) for s in data.shape[::-1]) + ")"
    h["BANDSHDU"] = f"{name}_BANDS"
    h["META"] = "{}"
    h["BUNIT"] = unit
    return [hdu, _bands_hdu(name, axes)]


def _gti_hdu(start, stop, mjdref: float):
    from astropy.io import fits

    hdu = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", unit="s", array=np.asarray(start, dtype=np.float64)),
         fits.Column("STOP", "D", unit="s", array=np.asarray(stop, dtype=np.float64))],
        name="GTI")
    mjdi = math.floor(mjdref)
    hdu.header["MJDREFI"] = int(mjdi)
    hdu.header["MJDREFF"] = float(mjdref - mjdi)
    hdu.header["TIMESYS"] = "tt"
    hdu.header["TIMEUNIT"] = "s"
    return hdu


def mapdataset_hdulist(*, name: str, wcs: dict, coarse_wcs: dict, energy_edges,
                       energy_true_edges, counts, exposure, background, psf, psf_rad,
                       psf_exposure, edisp, edisp_exposure, mask_safe, mask_fit=None,
                       gti=None, meta: dict | None = None):
    """The HDU list of one MapDataset.

    wcs / coarse_wcs : FITS cards of the dataset's sky grid and of the coarse IRF grid.
    counts, background, mask_safe, mask_fit : (n_energy, ny, nx).
    exposure : (n_true, ny, nx) in cm2 s.
    psf : (n_true, n_rad, cy, cx) in sr^-1 at the offsets ``psf_rad`` (deg, nodes);
    psf_exposure, edisp_exposure : (n_true, cy, cx) in cm2 s.
    edisp : (n_true, n_energy, cy, cx): the probability that an event of true-energy bin k
        is reconstructed in bin i (Gammapy's EDispKernel data).
    gti : (start, stop, mjdref) in MET seconds, or None.
    """
    from astropy.io import fits

    e = MapAxisSpec("energy", edges=np.asarray(energy_edges, dtype=np.float64))
    et = MapAxisSpec("energy_true", edges=np.asarray(energy_true_edges, dtype=np.float64))
    rad = MapAxisSpec("rad", nodes=np.asarray(psf_rad, dtype=np.float64))
    cy, cx = int(coarse_wcs["NAXIS2"]), int(coarse_wcs["NAXIS1"])
    one_e = MapAxisSpec("energy", edges=np.array([e.edges[0], e.edges[-1]]))
    one_rad = MapAxisSpec("rad", edges=np.array([0.0, float(rad.nodes[-1])]))
    prim = fits.PrimaryHDU()
    prim.header["NAME"] = name
    prim.header["CREATOR"] = "fermixr"
    if meta:
        prim.header["FXRMETA"] = json.dumps(meta, sort_keys=True)[:68]
    hdus = [prim]
    hdus += _map_hdus("COUNTS", counts, wcs, [e])
    hdus += _map_hdus("EXPOSURE", exposure, wcs, [et], "cm2 s")
    hdus += _map_hdus("BACKGROUND", background, wcs, [e])
    hdus += _map_hdus("PSF", psf, coarse_wcs, [rad, et], "sr-1")
    hdus += _map_hdus("PSF_EXPOSURE", np.asarray(psf_exposure).reshape(-1, 1, cy, cx),
                      coarse_wcs, [one_rad, et], "cm2 s")
    hdus += _map_hdus("EDISP", edisp, coarse_wcs, [e, et])
    hdus += _map_hdus("EDISP_EXPOSURE", np.asarray(edisp_exposure).reshape(-1, 1, cy, cx),
                      coarse_wcs, [one_e, et], "cm2 s")
    hdus += _map_hdus("MASK_SAFE", mask_safe, wcs, [e], dtype=np.uint8)
    if mask_fit is not None:
        hdus += _map_hdus("MASK_FIT", mask_fit, wcs, [e], dtype=np.uint8)
    if gti is not None:
        hdus.append(_gti_hdu(*gti))
    return fits.HDUList(hdus)


# ------------------------------------------------------------------------- models YAML --
def _par(name, value, unit="", free=False, error=None, lo=None, hi=None, is_norm=False):
    d = {"name": name, "value": float(value), "unit": unit}
    if error is not None and np.isfinite(error):
        d["error"] = float(error)
    d["min"] = float(lo) if lo is not None and np.isfinite(lo) else float("nan")
    d["max"] = float(hi) if hi is not None and np.isfinite(hi) else float("nan")
    d["frozen"] = not bool(free)
    if is_norm:
        d["is_norm"] = True
    return d


def _neg(p):
    """A Science Tools index (dN/dE ~ E^Index, negative) as Gammapy's (positive)."""
    lo, hi = p["bounds"]
    return dict(value=-p["value"], free=p["free"], error=p.get("error"),
                lo=-hi if hi is not None else None, hi=-lo if lo is not None else None)


def _same(p):
    lo, hi = p["bounds"]
    return dict(value=p["value"], free=p["free"], error=p.get("error"), lo=lo, hi=hi)


def _fixed(v):
    return dict(value=v, free=False)


def _spectral(tag: str, p: dict, name: str) -> dict:
    """Gammapy's spectral model dict of the Science Tools spectrum ``tag`` with physical
    parameters ``p`` (name -> {value, free, error, bounds})."""
    flux = "cm-2 s-1 MeV-1"
    if tag == "PowerLaw":
        pars = [_par("index", **_neg(p["Index"])),
                _par("amplitude", unit=flux, is_norm=True, **_same(p["Prefactor"])),
                _par("reference", unit="MeV", **_fixed(p["Scale"]["value"]))]
        return {"type": "PowerLawSpectralModel", "parameters": pars}
    if tag == "PowerLaw2":
        pars = [_par("amplitude", unit="cm-2 s-1", is_norm=True, **_same(p["Integral"])),
                _par("index", **_neg(p["Index"])),
                _par("emin", unit="MeV", **_fixed(p["LowerLimit"]["value"])),
                _par("emax", unit="MeV", **_fixed(p["UpperLimit"]["value"]))]
        return {"type": "PowerLaw2SpectralModel", "parameters": pars}
    if tag == "LogParabola":
        pars = [_par("amplitude", unit=flux, is_norm=True, **_same(p["norm"])),
                _par("reference", unit="MeV", **_fixed(p["Eb"]["value"])),
                _par("alpha", **_same(p["alpha"])), _par("beta", **_same(p["beta"]))]
        return {"type": "LogParabolaSpectralModel", "parameters": pars}
    if tag == "BrokenPowerLaw":
        pars = [_par("index1", **_neg(p["Index1"])), _par("index2", **_neg(p["Index2"])),
                _par("amplitude", unit=flux, is_norm=True, **_same(p["Prefactor"])),
                _par("ebreak", unit="MeV", **_same(p["BreakValue"]))]
        return {"type": "BrokenPowerLawSpectralModel", "parameters": pars}
    if tag == "PLSuperExpCutoff":
        # Prefactor (E/Scale)^Index1 exp(-(E/Cutoff)^Index2)
        cut = p["Cutoff"]
        pars = [_par("index", **_neg(p["Index1"])),
                _par("amplitude", unit=flux, is_norm=True, **_same(p["Prefactor"])),
                _par("reference", unit="MeV", **_fixed(p["Scale"]["value"])),
                _par("lambda_", unit="MeV-1", value=1.0 / cut["value"], free=cut["free"],
                     error=(cut.get("error") / cut["value"] ** 2
                            if cut.get("error") is not None else None)),
                _par("alpha", **_same(p["Index2"]))]
        return {"type": "ExpCutoffPowerLawSpectralModel", "parameters": pars}
    if tag == "PLSuperExpCutoff2":
        # Prefactor (E/Scale)^Index1 exp(-Expfactor E^Index2): lambda = Expfactor^(1/Index2)
        a, b = p["Expfactor"]["value"], p["Index2"]["value"]
        if a < 0 or b <= 0:
            raise ModelError(f"source {name!r}: PLSuperExpCutoff2 with Expfactor {a:g} and "
                             f"Index2 {b:g} has no Gammapy counterpart (Gammapy's "
                             "ExpCutoffPowerLawSpectralModel needs Expfactor >= 0, Index2 > 0)")
        pars = [_par("index", **_neg(p["Index1"])),
                _par("amplitude", unit=flux, is_norm=True, **_same(p["Prefactor"])),
                _par("reference", unit="MeV", **_fixed(p["Scale"]["value"])),
                _par("lambda_", unit="MeV-1", value=a ** (1.0 / b), free=p["Expfactor"]["free"]),
                _par("alpha", **_same(p["Index2"]))]
        return {"type": "ExpCutoffPowerLawSpectralModel", "parameters": pars}
    if tag == "PLSuperExpCutoff4":
        # Science Tools (4FGL-DR3): Prefactor x^(IndexS + ExpfactorS/Index2)
        #   exp(ExpfactorS/Index2^2 (1 - x^Index2)), x = E/Scale; Gammapy's
        #   SuperExpCutoffPowerLaw4FGLDR3SpectralModel, amplitude x^(-index_1 +
        #   expfactor/index_2) exp(expfactor/index_2^2 (1 - x^index_2)), is the same
        #   function with index_1 = -IndexS, expfactor = ExpfactorS, index_2 = Index2
        pars = [_par("amplitude", unit=flux, is_norm=True, **_same(p["Prefactor"])),
                _par("reference", unit="MeV", **_fixed(p["Scale"]["value"])),
                _par("expfactor", **_same(p["ExpfactorS"])),
                _par("index_1", **_neg(p["IndexS"])), _par("index_2", **_same(p["Index2"]))]
        return {"type": "SuperExpCutoffPowerLaw4FGLDR3SpectralModel", "parameters": pars}
    raise ModelError(f"source {name!r}: spectrum {tag!r} has no Gammapy counterpart "
                     f"(mapped: {', '.join(SPECTRA)})")


SPECTRA = ("PowerLaw", "PowerLaw2", "LogParabola", "BrokenPowerLaw", "PLSuperExpCutoff",
           "PLSuperExpCutoff2", "PLSuperExpCutoff4")
"""Science Tools spectra that map to a Gammapy spectral model."""
SPATIAL = ("PointSource", "RadialGaussian", "RadialDisk")
"""Spatial models that map to a Gammapy spatial model."""
DISK_EDGE_WIDTH = 0.05
"""Edge width (fraction of the radius) of the exported disks: Gammapy's pixel integration
of a sharp-edged disk is off by several per cent on LAT pixels (0.93 to 1.01 of the flux
for a 0.6-degree disk on 0.25-degree pixels, Gammapy 2.1), with a 5% edge it is within
1e-3; the edge, 0.03 deg on such a disk, is far below the PSF."""


def _spatial(kind: str, ra: float, dec: float, size: float | None, name: str) -> dict:
    pars = [_par("lon_0", ra, "deg"), _par("lat_0", dec, "deg", lo=-90.0, hi=90.0)]
    if kind == "PointSource":
        return {"type": "PointSpatialModel", "frame": "icrs", "parameters": pars}
    if kind == "RadialGaussian":
        return {"type": "GaussianSpatialModel", "frame": "icrs",
                "parameters": pars + [_par("sigma", size, "deg", lo=0.0), _par("e", 0.0),
                                      _par("phi", 0.0, "deg")]}
    if kind == "RadialDisk":
        return {"type": "DiskSpatialModel", "frame": "icrs",
                "parameters": pars + [_par("r_0", size, "deg", lo=0.0), _par("e", 0.0),
                                      _par("phi", 0.0, "deg"),
                                      _par("edge_width", DISK_EDGE_WIDTH)]}
    raise ModelError(f"source {name!r}: spatial model {kind!r} has no Gammapy counterpart "
                     f"(mapped: {', '.join(SPATIAL)})")


def sky_model_dict(name: str, spectrum: str, params: dict, spatial: str, ra: float,
                   dec: float, size: float | None = None) -> dict:
    """Gammapy's SkyModel dict of one source: ``params`` maps each Science Tools spectral
    parameter name to {value (physical), free, error (physical or None), bounds (physical
    (lo, hi), None for unbounded)}; ``size`` the Gaussian sigma / disk radius (deg)."""
    spec = _spectral(spectrum, params, name)
    return {"name": name, "type": "SkyModel", "spectral": spec,
            "spatial": _spatial(spatial, ra, dec, size, name)}


def background_model_dict(dataset_name: str, free_norm: bool = False) -> dict:
    """Gammapy's FoVBackgroundModel of ``dataset_name`` (norm 1, tilt 0)."""
    return {"type": "FoVBackgroundModel", "datasets_names": [dataset_name],
            "name": f"{dataset_name}-bkg",
            "spectral": {"type": "PowerLawNormSpectralModel", "parameters": [
                _par("norm", 1.0, free=free_norm, lo=0.0, is_norm=True),
                _par("tilt", 0.0), _par("reference", 1000.0, "MeV")]}}


def _yaml_with_checksum(doc: dict) -> str:
    """``doc`` as Gammapy writes YAML, with its trailing ``checksum`` (the MD5 of the text
    before it, which ``Models.read`` / ``Datasets.read`` verify and warn about otherwise)."""
    import hashlib

    import yaml

    text = yaml.dump(doc, sort_keys=False, indent=4, width=80, default_flow_style=False)
    return text + f"checksum: {hashlib.md5(text.encode('utf-8')).hexdigest()}\n"


def models_yaml(models: list[dict]) -> str:
    """Gammapy's models YAML (``Models.read``) of ``models`` (dicts as
    :func:`sky_model_dict` and :func:`background_model_dict` give them)."""
    return _yaml_with_checksum({"components": models})


def datasets_yaml(entries: list[tuple[str, str]]) -> str:
    """Gammapy's datasets YAML (``Datasets.read``): (name, file name) per dataset."""
    return _yaml_with_checksum({"datasets": [{"name": n, "type": "MapDataset", "filename": f}
                                             for n, f in entries]})
