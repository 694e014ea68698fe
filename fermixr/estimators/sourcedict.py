"""Fermipy's source dictionary: the entries that need no likelihood evaluation (position,
offsets from the ROI centre and edge, the positional-uncertainty ellipse, the flux / dN/dE
families of a spectral model with their errors, the catalog-style spectral columns) and
the ROI table and dataset that ``write_roi`` writes from a dict of source dictionaries.
"""

from __future__ import annotations

import math

import numpy as np

# containment radii of a 2-D Gaussian position error in units of its sigma (sqrt of the
# chi2(2 dof) quantiles Fermipy uses: 2.30, 5.99, 9.21)
R68, R95, R99 = math.sqrt(2.30), math.sqrt(5.99), math.sqrt(9.21)

# Fermipy's flux bands: '' = the analysis range, then 100 MeV, 1 GeV, 10 GeV to 316 GeV
BANDS = {"": None, "100": (100.0, 316227.76), "1000": (1000.0, 316227.76),
         "10000": (10000.0, 316227.76)}

_NAN22 = np.full((2, 2), np.nan)


# ------------------------------------------------------------------------ position -----
def position_dict(src, center, geom) -> dict:
    """ra/dec/glon/glat, the offsets from the ROI centre ``center`` = (ra, dec) (angular
    ``offset``; ``offset_ra/dec`` and ``offset_glon/glat`` in Fermipy's AIT frames),
    ``offset_roi_edge`` (deg; negative inside the counts geometry ``geom``) and the
    positional-uncertainty entries (NaN where nothing is known).  Diffuse sources: NaN."""
    from ..geom.frames import ait_offsets, angular_separation, fermipy_cel_to_gal

    out = {k: float("nan") for k in ("ra", "dec", "glon", "glat", "offset", "offset_ra",
                                     "offset_dec", "offset_glon", "offset_glat",
                                     "offset_roi_edge")}
    out.update(ellipse_dict(None, None, None))
    if src.position is None:
        return out
    ra, dec = src.position
    glon, glat = fermipy_cel_to_gal(ra, dec)
    out.update(ra=ra, dec=dec, glon=glon, glat=glat)
    ra0, dec0 = float(center[0]), float(center[1])
    out["offset"] = float(angular_separation(np.array([ra]), np.array([dec]), ra0, dec0)[0])
    x, y = ait_offsets(ra0, dec0, ra, dec, "CEL")
    out["offset_ra"], out["offset_dec"] = float(x[0]), float(y[0])
    l0, b0 = fermipy_cel_to_gal(ra0, dec0)
    x, y = ait_offsets(l0, b0, glon, glat, "GAL")
    out["offset_glon"], out["offset_glat"] = float(x[0]), float(y[0])
    out["offset_roi_edge"] = roi_edge_distance(geom, ra, dec)
    out.update(ellipse_dict(ra, dec, src.meta.get("pos_ellipse")))
    return out


def roi_edge_distance(geom, ra: float, dec: float) -> float:
    """Distance (deg) of (ra, dec) from the edge of the ROI, negative inside: for a WCS
    map the larger of the two pixel-axis distances beyond the half-widths (Fermipy's
    ``distance_to_edge``), for a HEALPix disk the offset minus the disk radius; NaN for an
    all-sky map."""
    from ..geom.frames import angular_separation, transform
    from ..geom.hpx import HpxGeom

    if isinstance(geom, HpxGeom):
        if geom.region is None:
            return float("nan")
        lon0, lat0, rad = geom.region
        lon, lat = transform(np.array([ra]), np.array([dec]), "CEL", geom.frame)
        return float(angular_separation(np.asarray(lon), np.asarray(lat), lon0, lat0)[0] - rad)
    x, y = geom.world_to_pix(np.array([ra]), np.array([dec]), frame="CEL")
    nx, ny = geom.npix
    cdx, cdy = geom.cdelt
    dx = abs(float(x[0]) - 0.5 * (nx - 1)) * abs(cdx) - 0.5 * nx * abs(cdx)
    dy = abs(float(y[0]) - 0.5 * (ny - 1)) * abs(cdy) - 0.5 * ny * abs(cdy)
    return float(max(dx, dy))


def _north_angle_gal(ra: float, dec: float) -> float:
    """Position angle (deg, east of celestial north) of the direction to galactic north at
    (ra, dec)."""
    from ..geom.frames import fermipy_cel_to_gal, fermipy_gal_to_cel

    glon, glat = fermipy_cel_to_gal(ra, dec)
    eps = 1e-3
    ra2, dec2 = fermipy_gal_to_cel(glon, min(glat + eps, 90.0))
    d1, d2, da = math.radians(dec), math.radians(dec2), math.radians(ra2 - ra)
    return math.degrees(math.atan2(math.sin(da) * math.cos(d2),
                                   math.cos(d1) * math.sin(d2)
                                   - math.sin(d1) * math.cos(d2) * math.cos(da)))


def _ellipse_cov(a: float, b: float, pa_deg: float) -> np.ndarray:
    """Covariance (deg^2) of a 1-sigma ellipse (semi-axes a, b; major axis at ``pa_deg``
    east of north) in Fermipy's offset frame: x towards smaller longitude, y north."""
    t = math.radians(pa_deg)
    u = np.array([-math.sin(t), math.cos(t)])       # major axis
    v = np.array([math.cos(t), math.sin(t)])        # minor axis
    return a * a * np.outer(u, u) + b * b * np.outer(v, v)


def _corr(cov):
    s = np.sqrt(np.diag(cov))
    return cov / np.outer(s, s)


def ellipse_dict(ra, dec, ellipse) -> dict:
    """Fermipy's positional-uncertainty entries from a 1-sigma ellipse (semi-major,
    semi-minor [deg], position angle [deg east of north]); NaN without one."""
    if ellipse is None:
        out = {k: float("nan") for k in ("ra_err", "dec_err", "glon_err", "glat_err",
                                         "pos_err", "pos_r68", "pos_r95", "pos_r99",
                                         "pos_err_semimajor", "pos_err_semiminor",
                                         "pos_angle")}
        for k in ("pos_gal_cov", "pos_gal_corr", "pos_cel_cov", "pos_cel_corr"):
            out[k] = _NAN22.copy()
        return out
    a, b, pa = (float(v) for v in ellipse)
    cel = _ellipse_cov(a, b, pa)
    gal = _ellipse_cov(a, b, pa - _north_angle_gal(ra, dec))
    sigma = math.sqrt(a * b)
    return {"ra_err": math.sqrt(cel[0, 0]), "dec_err": math.sqrt(cel[1, 1]),
            "glon_err": math.sqrt(gal[0, 0]), "glat_err": math.sqrt(gal[1, 1]),
            "pos_err": sigma, "pos_r68": R68 * sigma, "pos_r95": R95 * sigma,
            "pos_r99": R99 * sigma, "pos_err_semimajor": a, "pos_err_semiminor": b,
            "pos_angle": pa, "pos_gal_cov": gal, "pos_gal_corr": _corr(gal),
            "pos_cel_cov": cel, "pos_cel_corr": _corr(cel)}


# ------------------------------------------------------------------------ spectrum -----
def dnde_family(sm, p, cov_phys, free_idx, emin, emax) -> dict:
    """dN/dE with its error and local index at the pivot (decorrelation) energy and at
    100 MeV, 1 GeV and 10 GeV; the pivot is where dN/dE's relative error is smallest."""
    grid = np.geomspace(emin, emax, 101)
    f = np.asarray(sm.evaluate(grid, p), dtype=float)
    rel = np.full(grid.size, np.nan)
    if free_idx.size:
        g = np.asarray(sm.gradient(grid, p), dtype=float)[free_idx]
        var = np.einsum("ai,ab,bi->i", g, cov_phys, g)
        with np.errstate(divide="ignore", invalid="ignore"):    # a zeroed source: f = 0
            rel = np.sqrt(np.clip(var, 0, None)) / np.abs(f)
    pivot = float(grid[np.nanargmin(rel)]) if np.isfinite(rel).any() else float(np.sqrt(emin * emax))
    out = {"pivot_energy": pivot}
    for key, e in (("", pivot), ("100", 100.0), ("1000", 1000.0), ("10000", 10000.0)):
        es = np.array([e / 1.01, e, e * 1.01])
        v = np.asarray(sm.evaluate(es, p), dtype=float)
        err = float("nan")
        if free_idx.size:
            g = np.asarray(sm.gradient(es[1:2], p), dtype=float)[free_idx, 0]
            err = float(np.sqrt(max(g @ cov_phys @ g, 0.0)))
        out[f"dnde{key}"] = float(v[1])
        out[f"dnde{key}_err"] = err
        with np.errstate(divide="ignore", invalid="ignore"):   # NaN for a zeroed source
            out[f"dnde{key}_index"] = float(-np.log(v[2] / v[0]) / np.log(es[2] / es[0]))
    return out


def flux_family(sm, p, cov_phys, free_idx, emin, emax) -> dict:
    """flux / eflux with errors (from the covariance of the free parameters, physical
    units) over the analysis range and Fermipy's bands."""
    out = {}
    for band, rng in BANDS.items():
        lo, hi = rng if rng else (emin, emax)
        f = float(sm.flux(lo, hi, p))
        ef = float(sm.eflux(lo, hi, p))
        err_f = err_e = float("nan")
        if free_idx.size:
            gf = np.asarray(sm.flux_gradient(lo, hi, p), dtype=float)[free_idx]
            ge = np.asarray(sm.eflux_gradient(lo, hi, p), dtype=float)[free_idx]
            err_f = float(np.sqrt(max(gf @ cov_phys @ gf, 0.0)))
            err_e = float(np.sqrt(max(ge @ cov_phys @ ge, 0.0)))
        out[f"flux{band}"], out[f"flux{band}_err"] = f, err_f
        out[f"eflux{band}"], out[f"eflux{band}_err"] = ef, err_e
    return out


CATALOG_COLUMNS = ("Spectral_Index", "Flux_Density", "Pivot_Energy", "beta", "Exp_Index",
                   "Cutoff")

# spectral parameter -> catalog-style column, and the sign that makes the index positive
_CATALOG_PARS = {
    "PowerLaw": {"Prefactor": "Flux_Density", "Index": "-Spectral_Index", "Scale": "Pivot_Energy"},
    "LogParabola": {"norm": "Flux_Density", "alpha": "Spectral_Index", "beta": "beta",
                    "Eb": "Pivot_Energy"},
    "PLSuperExpCutoff": {"Prefactor": "Flux_Density", "Index1": "-Spectral_Index",
                         "Index2": "Exp_Index", "Cutoff": "Cutoff", "Scale": "Pivot_Energy"},
}


def catalog_columns(spectrum: str, names, values) -> dict:
    """The 3FGL-style spectral columns Fermipy writes in its ROI table (Spectral_Index
    positive, Flux_Density at Pivot_Energy ...); NaN where the spectral model has none."""
    out = {k: float("nan") for k in CATALOG_COLUMNS}
    for name, v in zip(names, values):
        col = _CATALOG_PARS.get(spectrum, {}).get(str(name))
        if col is not None:
            out[col.lstrip("-")] = -float(v) if col.startswith("-") else float(v)
    return out


# ------------------------------------------------------------------------- writers -----
# scalar entries of the source dictionary, as table columns and dataset variables
SCALARS = (
    "ra", "dec", "glon", "glat", "ra_err", "dec_err", "glon_err", "glat_err", "pos_err",
    "pos_r68", "pos_r95", "pos_r99", "pos_err_semimajor", "pos_err_semiminor", "pos_angle",
    "offset", "offset_ra", "offset_dec", "offset_glon", "offset_glat", "offset_roi_edge",
    "SpatialWidth", "ts", "npred", "npred_wt", "loglike", "pivot_energy",
    "flux", "flux_err", "flux100", "flux100_err", "flux1000", "flux1000_err",
    "flux10000", "flux10000_err", "eflux", "eflux_err", "eflux100", "eflux100_err",
    "eflux1000", "eflux1000_err", "eflux10000", "eflux10000_err",
    "dnde", "dnde_err", "dnde_index", "dnde100", "dnde100_err", "dnde100_index",
    "dnde1000", "dnde1000_err", "dnde1000_index", "dnde10000", "dnde10000_err",
    "dnde10000_index",
    "flux_ul95", "flux100_ul95", "flux1000_ul95", "flux10000_ul95", "eflux_ul95",
    "eflux100_ul95", "eflux1000_ul95", "eflux10000_ul95")
_TEXT = ("SpatialModel", "SpatialType", "SpectrumType", "SourceType")
_VECTORS = ("model_counts", "norm_scan", "dloglike_scan", "loglike_scan", "flux_scan",
            "eflux_scan")
_UNITS = {"deg": ("ra", "dec", "glon", "glat", "ra_err", "dec_err", "glon_err", "glat_err",
                  "pos_err", "pos_r68", "pos_r95", "pos_r99", "pos_err_semimajor",
                  "pos_err_semiminor", "pos_angle", "offset", "offset_ra", "offset_dec",
                  "offset_glon", "offset_glat", "offset_roi_edge", "SpatialWidth"),
          "count": ("npred", "npred_wt"), "MeV": ("pivot_energy",)}


def _padded(sources, names, key, fill, dtype, width=None):
    width = width or max([len(np.atleast_1d(sources[n].get(key, ()))) for n in names] + [1])
    arr = np.full((len(names), width), fill, dtype=dtype)
    for i, n in enumerate(names):
        v = sources[n].get(key)
        if v is not None:
            v = np.atleast_1d(v)
            arr[i, :len(v)] = v
    return arr


def sources_table(sources: dict):
    """astropy Table, one row per source, with the columns Fermipy writes: names and
    types, RAJ2000/DEJ2000/GLON/GLAT, the scalar entries of the source dictionary, the
    parameter arrays, the 3FGL-style spectral columns, the Conf_68/95 ellipse columns,
    the position covariance matrices, model counts and normalisation scans."""
    from astropy.table import Table

    names = list(sources)
    t = Table()
    t["name"] = names
    t["Source_Name"] = names
    for k in _TEXT:
        t[k] = [str(sources[n].get(k, "")) for n in names]
    for k, col in (("ra", "RAJ2000"), ("dec", "DEJ2000"), ("glon", "GLON"), ("glat", "GLAT")):
        t[col] = np.array([sources[n].get(k, np.nan) for n in names], dtype=float)
    for k in SCALARS:
        t[k] = np.array([sources[n].get(k, np.nan) for n in names], dtype=float)
    for k in CATALOG_COLUMNS:
        t[k] = np.array([sources[n].get(k, np.nan) for n in names], dtype=float)
    for level, r in (("68", R68), ("95", R95)):
        t[f"Conf_{level}_SemiMajor"] = np.asarray(t["pos_err_semimajor"]) * r
        t[f"Conf_{level}_SemiMinor"] = np.asarray(t["pos_err_semiminor"]) * r
        t[f"Conf_{level}_PosAng"] = np.asarray(t["pos_angle"])
    t["param_names"] = _padded(sources, names, "param_names", "", "U32")
    t["param_values"] = _padded(sources, names, "param_values", np.nan, float)
    t["param_errors"] = _padded(sources, names, "param_errors", np.nan, float)
    for k in ("pos_gal_cov", "pos_gal_corr", "pos_cel_cov", "pos_cel_corr"):
        t[k] = np.array([np.asarray(sources[n].get(k, _NAN22), dtype=float) for n in names])
    for k in _VECTORS:
        t[k] = _padded(sources, names, k, np.nan, float)
    for unit, keys in _UNITS.items():
        for k in keys:
            t[k].unit = unit
    return t


def sources_dataset(sources: dict):
    """xarray Dataset, one row per source (dim ``source``) of the scalar entries: pandas
    via ``.to_dataframe()``.  Arrays (scans, model counts, covariances) are in the .npy
    and .fits files."""
    import xarray as xr

    names = np.array(list(sources), dtype=object)
    data = {k: ("source", np.array([sources[n].get(k, np.nan) for n in sources], dtype=float))
            for k in SCALARS + CATALOG_COLUMNS}
    for k in _TEXT:
        data[k] = ("source", np.array([str(sources[n].get(k, "")) for n in sources],
                                      dtype=object))
    ds = xr.Dataset(data, coords={"source": names})
    for unit, keys in _UNITS.items():
        for k in keys:
            ds[k].attrs["units"] = unit
    ds.attrs["fermixr_product"] = "roi"
    return ds


# ------------------------------------------------------------------------------------
# the whole dictionary of one source, from an analysis state
# ------------------------------------------------------------------------------------
def norm_correlations(state, src) -> dict:
    """Correlation coefficient of the source's normalisation with every other free
    normalisation of the state's fit (Fermipy's ``correlation`` dict); empty when the norm
    was not free."""
    fc = state.fit_covariance()
    if fc is None:
        return {}
    names, cov = fc
    key = f"{src.name}:{state.spectral(src).norm_param}"
    if key not in names:
        return {}
    i = names.index(key)
    out = {}
    for j, n in enumerate(names):
        sname, par = n.rsplit(":", 1)
        if j == i or sname not in state.model:
            continue
        other = state.model.find(sname)
        if par == state.spectral(other).norm_param:
            out[sname] = float(cov[i, j] / np.sqrt(cov[i, i] * cov[j, j]))
    return out


def source_dict(state, name: str, *, covariance=None, scan: bool = True,
                llscan_npts: int = 20) -> dict:
    """Fermipy's source dictionary of one source: names and types, position, offsets and
    positional uncertainty, spectral parameters with errors, TS, npred (also per energy
    bin, ``model_counts``, and weighted), the flux / eflux / dN/dE families with errors,
    the correlation of its normalisation with the other sources' (the state's fit) and,
    with ``scan``, the normalisation likelihood scan and the 95% upper limits."""
    from ..likelihood.roi import loglike
    from ..model.spatial import XML_FUNCTION, param_to_width
    from .bowtie import physical_covariance
    from .profile import norm_scan
    from .ts import model_cubes, ts_value

    src = state.model.find(name)
    sm = state.spectral(src)
    p = src.spectral_values()
    width = {q.name: q.physical for q in src.spatial}
    d = {"name": src.name, "Source_Name": src.name, "SpectrumType": src.spectrum,
         "SpatialModel": src.spatial_model,
         "SpatialType": XML_FUNCTION.get(src.spatial_model, src.spatial_model),
         "SpatialWidth": (param_to_width(src.spatial_model,
                                         width.get("Sigma", width.get("Radius", 0.0)))
                          if src.spatial_model in ("RadialGaussian", "RadialDisk")
                          else float("nan")),
         "SourceType": "PointSource" if src.spatial_model == "PointSource"
         else "DiffuseSource",
         "Spatial_Filename": src.spatial_file, "Spectrum_Filename": src.spectrum_file,
         "associations": list(src.associations),
         "param_names": np.array([q.name for q in src.spectral]),
         "param_values": p,
         "param_errors": np.array([np.nan if q.error is None else q.error * abs(q.scale)
                                   for q in src.spectral])}
    d.update(position_dict(src, state.roi_center, state.components[0].geom))
    d.update(catalog_columns(src.spectrum, d["param_names"], p))
    cubes = model_cubes(state, src.name)
    d["model_counts"] = sum(m.sum(axis=1) for m in cubes)
    d["npred"] = float(d["model_counts"].sum())
    if any(c.wmap is not None for c in state.components):
        wcubes = model_cubes(state, src.name, weighted=True)
        d["model_counts_wt"] = sum(m.sum(axis=1) for m in wcubes)
        d["npred_wt"] = float(d["model_counts_wt"].sum())
    else:
        d["model_counts_wt"], d["npred_wt"] = d["model_counts"], d["npred"]
    d["ts"] = ts_value(state, src.name)
    idx = np.flatnonzero([q.free for q in src.spectral])
    cov = covariance if covariance is not None else physical_covariance(state, src, idx)
    emin, emax = state.energy_range
    d.update(flux_family(sm, p, cov, idx, emin, emax))
    d.update(dnde_family(sm, p, cov, idx, emin, emax))
    d["correlation"] = norm_correlations(state, src)
    d["loglike"] = loglike(state)
    if scan and src.position is not None:
        fluxes = {k: d[k] for k in ("flux", "flux100", "flux1000", "flux10000", "eflux",
                                    "eflux100", "eflux1000", "eflux10000")}
        d.update(norm_scan(state, src.name, fluxes, llscan_npts))
    return d


def _register():
    from . import EstimatorResult, register

    @register("sourcedict", version="1", product="roi", section="gtlike")
    def sourcedict(state, name: str, *, scan: bool = True, llscan_npts: int = 20):
        """Fermipy's source dictionary of one source, as a one-row ROI table."""
        src = state.model.find(name)
        d = source_dict(state, src.name, scan=scan, llscan_npts=llscan_npts)
        return EstimatorResult(sources_dataset({src.name: d}))

    return sourcedict


sourcedict = _register()
