"""Fermipy's ``model`` configuration section -> :class:`SkyModel`.

What Fermipy 0.16 / 1.x does, and so what this does (``fermipy/roi_model.py``):

1. Diffuse components first, in the order ``isodiff``, ``galdiff``, ``limbdiff``,
   ``diffuse``.  Each option is a path, a list of paths or ``{name, file}`` dicts.  A single
   component is named after its option (``galdiff``, ``isodiff``); several get a two-digit
   index (``galdiff00``, ``galdiff01`` ...).  The file's extension decides the model: ``.txt``
   is an isotropic FileFunction spectrum with a ConstantValue spatial model, ``.fits``/
   ``.fit`` (optionally ``.gz``) a MapCubeFunction with a PowerLaw spectrum (Prefactor 1,
   Index 0, Scale 1000 MeV).  Each component is also reachable by its file's base name
   without extension (``gll_iem_v07``, ``iso_P8R3_SOURCE_V3_v1``).  Files are searched for as
   given, then in ``base``, ``model.diffuse_dir``, ``$FERMI_DIFFUSE_DIR`` and
   ``$FERMI_DIR/refdata/fermi/galdiffuse``.
2. Catalogs, in order (FITS catalogs by path or bare name, or XML model files).  Sources are
   kept when within ``src_radius`` of the ROI centre AND inside the ``src_roiwidth`` square
   (|x|, |y| < src_roiwidth / 2 in an AIT projection centred on the ROI in the binning
   ``coordsys``); an option left out does not cut.  Fermipy combines the two cuts with AND
   (``m = m0 & m1`` in ``ROIModel.load_existing_catalog``); diffuse sources of XML files are
   always kept.
3. ``sources``: dictionaries (``name``; ``ra``/``dec``, ``glon``/``glat`` or ``radec``,
   default the ROI centre; ``SpectrumType`` default PowerLaw; ``SpatialModel`` default
   PointSource; ``SpatialWidth`` (68% radius) or ``Sigma``/``Radius``; ``Spatial_Filename``,
   ``Spectrum_Filename``; spectral and spatial parameters by name as numbers or
   ``{value, scale, min, max, free}`` dicts, or in ``spectral_pars``/``spatial_pars``).

Merging (``ROIModel.load_source``): an incoming source is matched against every name and
association of the sources already loaded, using its own name and, for catalog sources, its
values in the ``assoc_xmatch_columns`` columns (default ``3FGL_Name``; a 4FGL catalog's
``ASSOC_FGL`` counts as ``3FGL_Name``).  With one match and ``merge_sources: true`` the new
source replaces the old one in place and inherits its names as associations (the last
catalog wins); with ``merge_sources: false`` the old source stays and the new name becomes
one of its associations.  ``sources`` entries always merge.  Several matches are an error.

Afterwards every parameter is fixed ("After setup every parameter is fixed") except those a
``sources`` entry gives with ``free: true``.  Point and extended sources come first, sorted
by distance from the ROI centre (``meta["offset"]``), then the diffuse components in load
order, as Fermipy lists them.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import FermixrError, InputFileError, ModelError
from ..io.paths import find_file
from .catalog import angular_separation, open_catalog, resolve_catalog, sky_selection_mask
from .parameters import Parameter
from .skymodel import SkyModel
from .source import Source, normalize_name
from .spatial import SPATIAL_PARAMS, spatial_type, width_to_param
from .xml import expand_path, read_xml, spectral_defaults

__all__ = ["build_sky_model", "source_from_dict", "diffuse_source", "merge_source",
           "fix_all", "DIFFUSE_OPTIONS"]

DIFFUSE_OPTIONS = ("isodiff", "galdiff", "limbdiff", "diffuse")
_MAPCUBE_RE = re.compile(r"(\.fits|\.fit|\.fits\.gz|\.fit\.gz)$", re.IGNORECASE)
_TXT_RE = re.compile(r"\.txt$", re.IGNORECASE)

# keys of a source dictionary that are not parameters
_SOURCE_KEYS = {"name", "ra", "dec", "glon", "glat", "radec", "SpectrumType", "SpatialModel",
                "SpatialType", "SourceType", "SpatialWidth", "Spatial_Filename",
                "Spectrum_Filename", "spectral_pars", "spatial_pars", "file", "filefunction",
                "mapcube", "Source_Name", "assoc", "associations", "class", "catalog"}


def _listify(v) -> list:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def _coord(center) -> tuple[float, float]:
    try:
        ra, dec = (float(center[0]), float(center[1]))
    except (TypeError, ValueError, IndexError):
        raise ModelError(f"roi_center: got {center!r}; expected (ra, dec) in deg") from None
    if not (math.isfinite(ra) and math.isfinite(dec)) or abs(dec) > 90:
        raise ModelError(f"roi_center: ({ra}, {dec}) is not a valid (ra, dec) in deg")
    return ra, dec


def _gal_to_cel(glon: float, glat: float) -> tuple[float, float]:
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    c = SkyCoord(glon * u.deg, glat * u.deg, frame="galactic").icrs
    return float(c.ra.deg), float(c.dec.deg)


def _cel_to_gal(ra: float, dec: float) -> tuple[float, float]:
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    c = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").galactic
    return float(c.l.deg), float(c.b.deg)


# --------------------------------------------------------------------------------------
# diffuse components
# --------------------------------------------------------------------------------------
def _diffuse_dirs(base, diffuse_dir) -> list[Path]:
    dirs = []
    if base is not None:
        dirs.append(Path(base))
    for d in _listify(diffuse_dir):
        dirs.append(Path(expand_path(d, base)))
    if os.environ.get("FERMI_DIFFUSE_DIR"):
        dirs.append(Path(os.environ["FERMI_DIFFUSE_DIR"]))
    if os.environ.get("FERMI_DIR"):
        dirs.append(Path(os.environ["FERMI_DIR"]) / "refdata" / "fermi" / "galdiffuse")
    return dirs


def diffuse_source(name: str, file: str, *, pars: dict | None = None,
                   where: str = "diffuse") -> Source:
    """A Fermipy diffuse component from its template ``file`` (already resolved): ``.txt`` ->
    FileFunction x ConstantValue, ``.fits`` -> PowerLaw x MapCubeFunction, with Fermipy's
    default parameters (all fixed), reachable by the file's base name too.  ``pars``:
    optional spectral parameters (numbers or dicts) by name."""
    base = os.path.basename(file)
    if _TXT_RE.search(file):
        tag, defaults = spectral_defaults("FileFunction")
        spec = {p.name: p for p in defaults}
        if "Normalization" in spec:
            spec["Normalization"] = spec["Normalization"].replace(
                value=1.0, scale=1.0, min=0.001, max=1000.0, free=False)
        spatial = (Parameter("Value", 1.0, 1.0, 0.0, 10.0, False),)
        kind, spectrum_file, spatial_file = "ConstantValue", file, None
        alt = _TXT_RE.sub("", base)
    elif _MAPCUBE_RE.search(file):
        tag, defaults = spectral_defaults("PowerLaw")
        spec = {p.name: p for p in defaults}
        fermipy = {"Prefactor": Parameter("Prefactor", 1.0, 1.0, 0.1, 10.0, False),
                   "Index": Parameter("Index", 0.0, -1.0, -1.0, 1.0, False),
                   "Scale": Parameter("Scale", 1000.0, 1.0, 1000.0, 1000.0, False)}
        spec.update({k: v for k, v in fermipy.items() if k in spec})
        spatial = (Parameter("Normalization", 1.0, 1.0, 0.0, 10.0, False),)
        kind, spectrum_file, spatial_file = "MapCubeFunction", None, file
        alt = _MAPCUBE_RE.sub("", base)
    else:
        raise ModelError(f"{where}: template {file!r} is neither a .txt isotropic spectrum "
                         "nor a .fits/.fit(.gz) map cube")
    for k, v in (pars or {}).items():
        if k not in spec:
            raise ModelError(f"{where}: the {tag} spectrum of a diffuse component has no "
                             f"parameter {k!r}; it has {', '.join(spec)}")
        spec[k] = Parameter.from_any(k, v, spec[k], where=where)
    assoc = (alt,) if normalize_name(alt) != normalize_name(name) else ()
    return Source(name=name, spectrum=tag, spectral=tuple(spec.values()), spatial_model=kind,
                  spatial=spatial, spatial_file=spatial_file, spectrum_file=spectrum_file,
                  associations=assoc, meta={"diffuse_option": where, "template": file})


def _diffuse_sources(cfg: dict, base, dirs) -> list[Source]:
    out = []
    for opt in DIFFUSE_OPTIONS:
        items = _listify(cfg.get(opt))
        for i, t in enumerate(items):
            where = f"model.{opt}[{i}]" if len(items) > 1 else f"model.{opt}"
            if isinstance(t, (str, os.PathLike)):
                d = {"file": os.fspath(t)}
            elif isinstance(t, dict):
                d = dict(t)
            else:
                raise ModelError(f"{where}: got {t!r}; expected a file name or a "
                                 "{name, file} dictionary")
            if "file" not in d:
                if opt == "diffuse" and "name" in d:
                    out.append(("source", d, where))
                    continue
                raise ModelError(f"{where}: no 'file' in {sorted(d)}")
            name = d.pop("name", None) or (opt if len(items) == 1 else f"{opt}{i:02d}")
            f = find_file(str(d.pop("file")), dirs, where, "diffuse template")
            src = diffuse_source(str(name), f, pars=d, where=where)
            out.append(("diffuse", src.replace(meta={**src.meta, "free": explicitly_free(d)}),
                        where))
    return out


# --------------------------------------------------------------------------------------
# sources from dictionaries
# --------------------------------------------------------------------------------------
def _flip_index_default(p: Parameter) -> Parameter:
    """Fermipy's convention for photon indices: value positive, scale -1."""
    if p.scale > 0 and p.value * p.scale < 0:
        lo = None if p.max is None else -p.max * p.scale
        hi = None if p.min is None else -p.min * p.scale
        return p.replace(value=-p.value * p.scale, scale=-1.0, min=lo, max=hi)
    return p


def _index_names(tag: str) -> set[str]:
    try:
        from .spectral import get_spectral_model

        cls = get_spectral_model(tag)
        names = set(getattr(cls, "index_params", ()) or ())
    except (ImportError, FermixrError, KeyError, LookupError, ValueError):
        names = set()
    return names | {"Index", "Index1", "IndexS"}


def source_from_dict(d: dict, roi_center: tuple[float, float] | None = None, *,
                     base: str | os.PathLike | None = None, where: str = "source",
                     check_files: bool = True) -> Source:
    """A :class:`Source` from a Fermipy source dictionary (see the module notes).  Numbers
    and dicts follow :meth:`Parameter.from_any`; a photon index given as a number is the
    positive index (``Index: 2.0`` means dN/dE ~ E^-2)."""
    if not isinstance(d, dict):
        raise ModelError(f"{where}: got {d!r}; expected a source dictionary")
    d = dict(d)
    name = d.get("name", d.get("Source_Name"))
    if name is None or not str(name).strip():
        raise ModelError(f"{where}: no 'name' in {sorted(d)}")
    name = str(name).strip()
    where = f"{where} ({name})"
    smodel = d.get("SpatialModel", "PointSource")
    if smodel == "DiffuseSource":  # old Fermipy convention
        smodel = d.get("SpatialType", "ConstantValue")
    try:
        kind = spatial_type(str(smodel))
    except ModelError as e:
        raise ModelError(f"{where}.SpatialModel: {e}") from None
    stype = str(d.get("SpectrumType", "PowerLaw"))
    try:
        tag, defaults = spectral_defaults(stype)
    except ModelError as e:
        raise ModelError(f"{where}.SpectrumType: {e}") from None
    idx = _index_names(tag)
    spec = {p.name: (_flip_index_default(p) if p.name in idx else p) for p in defaults}
    spat_defaults = {p.name: p for p in SPATIAL_PARAMS[kind]}

    # position
    ra = dec = None
    if kind not in ("ConstantValue", "MapCubeFunction"):
        if d.get("radec") is not None:
            rd = d["radec"]
            if isinstance(rd, str):
                rd = rd.replace(",", " ").split()
            try:
                ra, dec = float(rd[0]), float(rd[1])
            except (TypeError, ValueError, IndexError):
                raise ModelError(f"{where}.radec: got {d['radec']!r}; expected "
                                 "[ra, dec]") from None
        elif d.get("ra") is not None and d.get("dec") is not None:
            ra, dec = _num(d["ra"], f"{where}.ra"), _num(d["dec"], f"{where}.dec")
        elif d.get("glon") is not None and d.get("glat") is not None:
            ra, dec = _gal_to_cel(_num(d["glon"], f"{where}.glon"),
                                  _num(d["glat"], f"{where}.glat"))
        elif isinstance(d.get("RA"), (int, float)) and isinstance(d.get("DEC"), (int, float)):
            ra, dec = float(d["RA"]), float(d["DEC"])
        elif roi_center is not None:
            ra, dec = _coord(roi_center)
        else:
            raise ModelError(f"{where}: no position (ra/dec, glon/glat or radec) and no ROI "
                             "centre to default to")
        if abs(dec) > 90:
            raise ModelError(f"{where}: dec {dec} is outside [-90, 90]")

    # parameters: spectral_pars / spatial_pars first, then top-level keys
    given_spec = dict(d.get("spectral_pars") or {})
    given_spat = dict(d.get("spatial_pars") or {})
    for k, v in d.items():
        if k in _SOURCE_KEYS:
            continue
        if k in spec:
            given_spec[k] = v
        elif k in spat_defaults:
            given_spat[k] = v
        else:
            warnings.warn(f"{where}: unknown key {k!r} ignored; the {tag} spectrum has "
                          f"parameters {', '.join(spec)}, the {kind} spatial model "
                          f"{', '.join(spat_defaults)}", UserWarning, stacklevel=2)
    for k, v in given_spec.items():
        if k not in spec:
            raise ModelError(f"{where}.spectral_pars: {tag} has no parameter {k!r}; it has "
                             f"{', '.join(spec)}")
        spec[k] = Parameter.from_any(k, v, spec[k], where=where)
    spat = dict(spat_defaults)
    for k, v in given_spat.items():
        if k not in spat:
            raise ModelError(f"{where}.spatial_pars: {kind} has no parameter {k!r}; it has "
                             f"{', '.join(spat)}")
        if isinstance(v, dict):
            v = {"scale": 1.0, **v}   # positions and widths are not rescaled (Fermipy)
            spat[k] = Parameter.from_any(k, v, spat[k], where=where)
        else:
            spat[k] = spat[k].replace(value=_num(v, f"{where}.{k}") / spat[k].scale)
    if ra is not None and "RA" in spat:
        if "RA" not in given_spat:
            spat["RA"] = spat["RA"].replace(value=ra, scale=1.0)
        if "DEC" not in given_spat:
            spat["DEC"] = spat["DEC"].replace(value=dec, scale=1.0)
        ra, dec = spat["RA"].physical, spat["DEC"].physical
    width = d.get("SpatialWidth")
    if width is not None and kind in ("RadialGaussian", "RadialDisk"):
        pname, size = width_to_param(kind, _num(width, f"{where}.SpatialWidth"))
        if size <= 0:
            raise ModelError(f"{where}.SpatialWidth: got {width!r}; expected a positive "
                             "68% containment radius in deg")
        p = spat[pname]
        spat[pname] = p.replace(value=size / p.scale,
                                max=None if p.max is None else max(p.max, size / p.scale))

    spectrum_file = spatial_file = None
    sfile = d.get("Spectrum_Filename", d.get("filefunction"))
    if tag == "FileFunction":
        if not sfile:
            raise ModelError(f"{where}: a FileFunction spectrum needs Spectrum_Filename")
    if sfile:
        spectrum_file = expand_path(str(sfile), base)
        if check_files and not os.path.isfile(spectrum_file):
            raise InputFileError(f"{where}.Spectrum_Filename: {sfile!r} not found "
                                 f"(looked for {spectrum_file})")
    tfile = d.get("Spatial_Filename", d.get("mapcube"))
    if kind in ("SpatialMap", "MapCubeFunction") and not tfile:
        raise ModelError(f"{where}: a {kind} spatial model needs Spatial_Filename")
    if tfile:
        spatial_file = expand_path(str(tfile), base)
        if check_files and not os.path.isfile(spatial_file):
            raise InputFileError(f"{where}.Spatial_Filename: {tfile!r} not found "
                                 f"(looked for {spatial_file})")
    for p in list(spec.values()) + list(spat.values()):
        p.check(where)
    meta = {"recipe": {k: v for k, v in d.items()}}
    if ra is not None:
        glon, glat = _cel_to_gal(ra, dec)
        meta.update(ra=ra, dec=dec, glon=glon, glat=glat)
        if kind == "SpatialMap" or kind in ("RadialGaussian", "RadialDisk"):
            meta["SpatialWidth"] = width
    assoc = tuple(str(a) for a in _listify(d.get("associations")))
    return Source(name=name, spectrum=tag, spectral=tuple(spec.values()), spatial_model=kind,
                  spatial=tuple(spat.values()), spatial_file=spatial_file,
                  spectrum_file=spectrum_file, associations=assoc, meta=meta)


def explicitly_free(d: dict) -> set[str]:
    """Names of the parameters a source dictionary gives with ``free: true``."""
    out = set()
    items = list((d.get("spectral_pars") or {}).items()) + \
        list((d.get("spatial_pars") or {}).items()) + \
        [(k, v) for k, v in d.items() if k not in _SOURCE_KEYS]
    for k, v in items:
        if isinstance(v, dict) and "free" in v:
            f = v["free"]
            if f is True or (isinstance(f, (int, float)) and f == 1) or \
                    (isinstance(f, str) and f.strip().lower() in ("1", "true", "yes")):
                out.add(k)
    return out


def _num(v, label: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ModelError(f"{label}: got {v!r}; expected a number") from None
    if not math.isfinite(x):
        raise ModelError(f"{label}: got {v!r}; expected a finite number")
    return x


# --------------------------------------------------------------------------------------
# merging
# --------------------------------------------------------------------------------------
def _all_names(s: Source) -> list[str]:
    return [s.name] + [a for a in s.associations if a]


def merge_source(sources: list[Source], new: Source, *, merge: bool = True,
                 xmatch_columns=("3FGL_Name",)) -> list[Source]:
    """Fermipy's ``load_source``: a new list with ``new`` added, merged into the one source
    it matches (by name, association or ``xmatch_columns`` value) or, with ``merge=False``,
    recorded as an extra name of that source.  ModelError when it matches several."""
    keys = [normalize_name(new.name)]
    assoc = new.meta.get("assoc", {}) if isinstance(new.meta.get("assoc"), dict) else {}
    for col in xmatch_columns or ():
        v = assoc.get(col)
        if v:
            keys.append(normalize_name(v))
    hits = [i for i, s in enumerate(sources)
            if any(normalize_name(n) in keys for n in _all_names(s))]
    out = list(sources)
    if not hits:
        out.append(new)
        return out
    if len(hits) > 1:
        raise ModelError(f"source {new.name!r} matches several sources already in the model "
                         f"({', '.join(sources[i].name for i in hits)}) by name or "
                         f"association; rename it or drop one of them")
    i = hits[0]
    old = sources[i]
    if merge:
        names = []
        for n in list(new.associations) + _all_names(old):
            if normalize_name(n) != normalize_name(new.name) and \
                    normalize_name(n) not in {normalize_name(x) for x in names}:
                names.append(n)
        meta = {**old.meta, **new.meta}
        out[i] = new.replace(associations=tuple(names), meta=meta)
    else:
        if normalize_name(new.name) not in {normalize_name(n) for n in _all_names(old)}:
            out[i] = old.replace(associations=old.associations + (new.name,))
    return out


def fix_all(model: SkyModel, keep_free: set[tuple[str, str]] = frozenset()) -> SkyModel:
    """Every parameter fixed except (source name, parameter name) pairs in ``keep_free``."""
    srcs = []
    for s in model.sources:
        spec = tuple(p.replace(free=(s.name, p.name) in keep_free) for p in s.spectral)
        spat = tuple(p.replace(free=(s.name, p.name) in keep_free) for p in s.spatial)
        srcs.append(s.replace(spectral=spec, spatial=spat))
    return SkyModel(tuple(srcs))


# --------------------------------------------------------------------------------------
# the model section
# --------------------------------------------------------------------------------------
def _position(s: Source):
    """(ra, dec) of a source: its RA/DEC parameters, the catalog position in ``meta``, or
    for a SpatialMap the reference pixel of its template (Fermipy reads CRVAL1/2)."""
    sd = s.skydir
    if sd is not None:
        return sd
    if "ra" in s.meta and "dec" in s.meta:
        return (float(s.meta["ra"]), float(s.meta["dec"]))
    if s.spatial_model == "SpatialMap" and s.spatial_file and os.path.isfile(s.spatial_file):
        from ..io.mapcube import template_reference

        ref = template_reference(s.spatial_file)
        if ref is None:
            return None
        lon, lat, ctype1 = ref
        if ctype1.upper().startswith("GLON"):
            return _gal_to_cel(lon, lat)
        return (lon, lat)
    return None


def _select_xml(model: SkyModel, center, src_radius, half, coordsys) -> list[Source]:
    keep = []
    pos = []
    for s in model.sources:
        if s.spatial_model in ("ConstantValue", "MapCubeFunction"):
            continue
        p = _position(s)
        if p is None:
            continue
        pos.append((s, p))
    mask = sky_selection_mask([p[0] for _, p in pos], [p[1] for _, p in pos], center,
                              src_radius=src_radius, src_radius_roi=half, coordsys=coordsys) \
        if pos else np.zeros(0, bool)
    chosen = {id(s) for (s, _), m in zip(pos, mask) if m}
    for s in model.sources:
        if s.spatial_model in ("ConstantValue", "MapCubeFunction") or id(s) in chosen:
            keep.append(s)
        elif _position(s) is None:
            keep.append(s)   # an extended template without a known position: keep it
    return keep


def build_sky_model(model_cfg: dict | None, roi_center=(0.0, 0.0), *,
                    base: str | os.PathLike | None = None, coordsys: str = "CEL",
                    radial_as_template: bool = False) -> SkyModel:
    """The sky model of a Fermipy ``model`` section for an ROI centred on ``roi_center``
    (ra, dec in deg).  ``base``: folder against which relative paths are taken (the
    recipe's folder); ``coordsys``: the binning frame of the ``src_roiwidth`` square.

    Returns a SkyModel with every parameter fixed except those the ``sources`` entries give
    with ``free: true``; see the module notes for the Fermipy rules followed."""
    cfg = dict(model_cfg or {})
    center = _coord(roi_center)
    base = Path(expand_path(base)) if base is not None else None
    src_radius = cfg.get("src_radius")
    half = cfg.get("src_radius_roi")
    if cfg.get("src_roiwidth") is not None:
        half = 0.5 * _num(cfg["src_roiwidth"], "model.src_roiwidth")
    if src_radius is not None:
        src_radius = _num(src_radius, "model.src_radius")
    if half is not None:
        half = _num(half, "model.src_radius_roi")
    merge = bool(cfg.get("merge_sources", True))
    xmatch = _listify(cfg.get("assoc_xmatch_columns", ["3FGL_Name"]))
    extdir = cfg.get("extdir")
    if extdir is not None:
        extdir = expand_path(extdir, base)

    sources: list[Source] = []
    keep_free: set[tuple[str, str]] = set()
    pending_dicts: list[tuple[dict, str]] = []

    dirs = _diffuse_dirs(base, cfg.get("diffuse_dir"))
    for kind, item, where in _diffuse_sources(cfg, base, dirs):
        if kind == "source":
            pending_dicts.append((item, where))
        else:
            keep_free.update((item.name, n) for n in item.meta.get("free", ()))
            sources = merge_source(sources, item, merge=merge, xmatch_columns=xmatch)

    for i, c in enumerate(_listify(cfg.get("catalogs"))):
        where = f"model.catalogs[{i}]"
        if not isinstance(c, (str, os.PathLike)):
            raise ModelError(f"{where}: got {c!r}; expected a catalog name or file")
        path = resolve_catalog(c, base=base)
        if path.suffix.lower() == ".xml":
            xm = read_xml(path)
            cat_sources = _select_xml(xm, center, src_radius, half, coordsys)
            cat_sources = [s.replace(meta={**s.meta, **_offset_meta(s, center)})
                           for s in cat_sources]
        else:
            cat = open_catalog(path)
            mask = cat.select(center, src_radius=src_radius, src_radius_roi=half,
                              coordsys=coordsys)
            cat_sources = list(cat.to_sky_model(mask, extdir=extdir, center=center,
                                                radial_as_template=radial_as_template))
        for s in cat_sources:
            sources = merge_source(sources, s, merge=merge, xmatch_columns=xmatch)

    entries = [(d, f"model.sources[{i}]") for i, d in enumerate(_listify(cfg.get("sources")))]
    for d, where in pending_dicts + entries:
        s = source_from_dict(d, center, base=base, where=where)
        s = s.replace(meta={**s.meta, **_offset_meta(s, center)})
        for pname in explicitly_free(d):
            keep_free.add((s.name, pname))
        sources = merge_source(sources, s, merge=True, xmatch_columns=xmatch)

    diffuse = [s for s in sources if s.spatial_model in ("ConstantValue", "MapCubeFunction")]
    others = [s for s in sources if s.spatial_model not in ("ConstantValue", "MapCubeFunction")]
    order = sorted(range(len(others)),
                   key=lambda k: (others[k].meta.get("offset", math.inf), k))
    model = SkyModel(tuple(others[k] for k in order) + tuple(diffuse))
    return fix_all(model, keep_free)


def _offset_meta(s: Source, center) -> dict:
    p = _position(s)
    if p is None:
        return {}
    return {"offset": float(angular_separation(center[0], center[1], [p[0]], [p[1]])[0])}
