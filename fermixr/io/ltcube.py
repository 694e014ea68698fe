"""Science Tools livetime cubes (gtltcube FITS files) <-> ``xarray.Dataset``.

File layout (as gtltcube writes it, checked against a ScienceTools-10-01-01 file):

- primary HDU: header only (TSTART, TSTOP, MJDREFI/F, DATE-OBS, CREATOR ...);
- ``EXPOSURE``: one row per HEALPix pixel (FIRSTPIX..LASTPIX, whole sky), columns
  ``COSBINS`` (float32 vector of NBRBINS x (1 + PHIBINS) livetimes in s), ``RA``, ``DEC``
  (pixel centre, float32 deg); keywords PIXTYPE, ORDERING, COORDSYS (EQU/GAL), NSIDE,
  THETABIN, NBRBINS, COSMIN, PHIBINS (newer gtltcube versions add ZENMIN/ZENMAX);
- ``WEIGHTED_EXPOSURE``: the same table of livetime x livetime fraction;
- ``CTHETABOUNDS``: CTHETA_MIN, CTHETA_MAX of each cos(theta) bin, bin 0 next to 1;
- ``GTI``: START, STOP (MET s) of the good time intervals the cube was made for.

With PHIBINS > 0 the vector holds first the NBRBINS livetimes summed over azimuth and then
one block of NBRBINS per azimuth bin (folded azimuth 0..45 deg, see
:func:`fermixr.exposure.ltcube.compute_ltcube`).

Dataset contract (``schemas/products/ltcube.schema.json``): variables ``exposure`` and
``weighted_exposure`` with dims ``(pix, costheta)``, or ``(pix, costheta, phi)`` when the
cube has azimuth bins (then the azimuth-summed table is ``exposure.sum("phi")``; the summed
block of the file is rebuilt from the azimuth blocks on writing).

Precision decision: values are float64 in memory; gtltcube stores float32, and so does
:func:`write_ltcube`.  Hence ``read_ltcube(write_ltcube(ds))`` equals ``ds`` cast to float32
(and back to float64) exactly, and a file read and written again is unchanged bit for bit in
COSBINS (without azimuth bins).  Bin edges and pixel centres are rebuilt in float64 from
NBRBINS/COSMIN and NSIDE/ORDERING (gtexpcube2 does the same) and checked against the
float32 columns of the file.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import DIM_COSTHETA, DIM_GTI, DIM_PHI, DIM_PIX, FERMI_MJDREF
from ..errors import FileFormatError, GeometryError, InputFileError
from .filelist import resolve_files
from .gti import mjdref_from_header
from .headers import header_float, header_int

__all__ = [
    "read_ltcube",
    "write_ltcube",
    "costheta_edges",
    "costheta_centers",
    "nbins_from_dcostheta",
    "nside_from_binsz",
    "healpix_pixel_coords",
    "make_ltcube_dataset",
    "check_ltcube_against_gti",
]

THETABIN_SQRT = "SQRT(1-COSTHETA)"
THETABIN_LIN = "COSTHETA"
_MJDREFI = 51910.0
_MJDREFF = 7.428703703703703e-4


# --------------------------------------------------------------------------------------
# binning helpers (the Science Tools' rules)
# --------------------------------------------------------------------------------------

def nbins_from_dcostheta(dcostheta: float) -> int:
    """Number of cos(theta) bins gtltcube makes for its ``dcostheta`` parameter:
    ``int(1 / dcostheta)`` (map_tools ``Exposure``), bins in sqrt(1 - cos theta) from
    cos theta = 0 to 1.  ``dcostheta=0.025`` (the default) gives 40 bins, ``0.05`` gives 20."""
    dcostheta = float(dcostheta)
    if not (0.0 < dcostheta <= 1.0):
        raise GeometryError(f"dcostheta must be in (0, 1], got {dcostheta!r}")
    return int(1.0 / dcostheta)


def nside_from_binsz(binsz: float) -> int:
    """HEALPix nside gtltcube uses for a pixel size ``binsz`` (deg): the smallest power of
    two with 12 nside^2 >= 41252 / binsz^2 (whole sky in deg^2), at most 512.
    1 deg -> 64, 4 deg -> 16."""
    binsz = float(binsz)
    if not binsz > 0:
        raise GeometryError(f"binsz must be > 0 deg, got {binsz!r}")
    n = 1
    while 12 * n * n < 41252.0 / (binsz * binsz) and n < 512:
        n *= 2
    return n


def costheta_edges(nbins: int, cosmin: float = 0.0, thetabin: str = THETABIN_SQRT) -> np.ndarray:
    """``nbins + 1`` bin edges in cos(theta), descending from 1 (edge i of bin i is its
    upper bound): ``1 - (i/nbins)^2 (1 - cosmin)`` for SQRT(1-COSTHETA) binning."""
    f = np.arange(nbins + 1, dtype=np.float64) / nbins
    if thetabin.upper() == THETABIN_SQRT:
        f = f * f
    elif thetabin.upper() != THETABIN_LIN:
        raise GeometryError(f"unknown THETABIN {thetabin!r}; expected {THETABIN_SQRT!r} or "
                            f"{THETABIN_LIN!r}")
    return 1.0 - f * (1.0 - cosmin)


def costheta_centers(nbins: int, cosmin: float = 0.0, thetabin: str = THETABIN_SQRT) -> np.ndarray:
    """The cos(theta) the Science Tools assign to each bin (centre in the binned variable:
    ``1 - ((i + 0.5)/nbins)^2 (1 - cosmin)``), as gtexpcube2 uses it."""
    f = (np.arange(nbins, dtype=np.float64) + 0.5) / nbins
    if thetabin.upper() == THETABIN_SQRT:
        f = f * f
    return 1.0 - f * (1.0 - cosmin)


def healpix_pixel_coords(nside: int, ordering: str = "NESTED", frame: str = "CEL"):
    """Longitude and latitude (deg, float64) of every HEALPix pixel centre."""
    import healpy as hp

    npix = 12 * nside * nside
    theta, phi = hp.pix2ang(nside, np.arange(npix), nest=(ordering.upper() == "NESTED"))
    lon = np.degrees(phi)
    lat = 90.0 - np.degrees(theta)
    return lon, lat


def _lonlat_names(frame: str):
    return ("ra", "dec") if frame == "CEL" else ("glon", "glat")


# --------------------------------------------------------------------------------------
# dataset construction
# --------------------------------------------------------------------------------------

def make_ltcube_dataset(
    exposure: np.ndarray,
    weighted_exposure: np.ndarray,
    *,
    nside: int,
    ordering: str = "NESTED",
    frame: str = "CEL",
    cosmin: float = 0.0,
    thetabin: str = THETABIN_SQRT,
    gti_start=(),
    gti_stop=(),
    tstart: float | None = None,
    tstop: float | None = None,
    zmax: float | None = 180.0,
    zmin: float | None = None,
    mjdref: float = FERMI_MJDREF,
    extra_attrs: dict | None = None,
) -> xr.Dataset:
    """Wrap livetime arrays ``(npix, nbins)`` or ``(npix, nbins, nphi)`` into the ltcube
    contract.  Used by the reader and by :func:`fermixr.exposure.ltcube.compute_ltcube`."""
    ordering = ordering.upper()
    frame = frame.upper()
    if ordering not in ("NESTED", "RING"):
        raise GeometryError(f"ordering must be 'NESTED' or 'RING', got {ordering!r}")
    if frame not in ("CEL", "GAL"):
        raise GeometryError(f"frame must be 'CEL' or 'GAL', got {frame!r}")
    exposure = np.asarray(exposure, dtype=np.float64)
    weighted_exposure = np.asarray(weighted_exposure, dtype=np.float64)
    npix = 12 * nside * nside
    if exposure.shape[0] != npix or exposure.ndim not in (2, 3):
        raise GeometryError(
            f"exposure must have shape (12*nside^2={npix}, nbins[, nphi]); got {exposure.shape}"
        )
    if weighted_exposure.shape != exposure.shape:
        raise GeometryError(
            f"weighted_exposure shape {weighted_exposure.shape} differs from exposure "
            f"shape {exposure.shape}"
        )
    nbins = exposure.shape[1]
    phibins = exposure.shape[2] if exposure.ndim == 3 else 0
    edges = costheta_edges(nbins, cosmin, thetabin)
    lon, lat = healpix_pixel_coords(nside, ordering, frame)
    lon_name, lat_name = _lonlat_names(frame)
    dims = (DIM_PIX, DIM_COSTHETA) + ((DIM_PHI,) if phibins else ())
    gti_start = np.asarray(gti_start, dtype=np.float64).ravel()
    gti_stop = np.asarray(gti_stop, dtype=np.float64).ravel()
    if gti_start.shape != gti_stop.shape:
        raise GeometryError("gti_start and gti_stop differ in length")
    if tstart is None:
        tstart = float(gti_start.min()) if gti_start.size else 0.0
    if tstop is None:
        tstop = float(gti_stop.max()) if gti_stop.size else 0.0
    coords = {
        DIM_PIX: (DIM_PIX, np.arange(npix, dtype=np.int64)),
        lon_name: (DIM_PIX, lon, {"units": "deg"}),
        lat_name: (DIM_PIX, lat, {"units": "deg"}),
        "costheta_min": (DIM_COSTHETA, edges[1:].copy()),
        "costheta_max": (DIM_COSTHETA, edges[:-1].copy()),
        DIM_COSTHETA: (DIM_COSTHETA, costheta_centers(nbins, cosmin, thetabin)),
        "gti_start": (DIM_GTI, gti_start, {"units": "s"}),
        "gti_stop": (DIM_GTI, gti_stop, {"units": "s"}),
    }
    if phibins:
        pe = np.linspace(0.0, 45.0, phibins + 1)
        coords["phi_min"] = (DIM_PHI, pe[:-1], {"units": "deg"})
        coords["phi_max"] = (DIM_PHI, pe[1:], {"units": "deg"})
    attrs = {
        "fermixr_product": "ltcube",
        "nside": int(nside),
        "ordering": ordering,
        "frame": frame,
        "TSTART": float(tstart),
        "TSTOP": float(tstop),
        "MJDREF": float(mjdref),
        "zmax": None if zmax is None else float(zmax),
        "dcostheta": 1.0 / nbins,
        "cosmin": float(cosmin),
        "thetabin": thetabin.upper(),
        "phibins": int(phibins),
        "nbins": int(nbins),
    }
    if zmin is not None:
        attrs["zmin"] = float(zmin)
    if extra_attrs:
        attrs.update(extra_attrs)
    desc = ("livetime per sky pixel and inclination bin; costheta is the cosine of the "
            "angle to the LAT boresight")
    ds = xr.Dataset(
        {
            "exposure": (dims, exposure, {"units": "s", "description": desc}),
            "weighted_exposure": (dims, weighted_exposure, {
                "units": "s",
                "description": "livetime x livetime fraction (LIVETIME/(STOP-START)) per "
                               "FT2 interval, for the livetime-dependent Aeff correction"}),
        },
        coords=coords,
        attrs=attrs,
    )
    return ds


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------

def read_ltcube(path_or_paths) -> xr.Dataset:
    """Read one gtltcube file, or several (one path, a list, ``@list.txt``, a glob) summed.

    Summed files must share nside, ordering, frame and cos(theta)/azimuth binning, and
    their GTIs must not overlap (livetime would be counted twice); otherwise a
    :class:`FileFormatError` names both files.  Returns the ltcube contract (float64)."""
    files = resolve_files(path_or_paths, what="ltcube")
    out = None
    first = None
    for f in files:
        ds = _read_one(f)
        if out is None:
            out, first = ds, f
            continue
        _check_compatible(out, ds, first, f)
        out = _sum_two(out, ds, first, f)
    if len(files) > 1:
        out.attrs["files"] = [str(f) for f in files]
    return out


def _fail(path, msg):
    raise FileFormatError(f"{path}: not a gtltcube livetime cube: {msg}")


def _read_one(path: Path) -> xr.Dataset:
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=False)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read as FITS ({exc}); expected a gtltcube "
                              "livetime cube") from None
    with hdul:
        names = [h.name for h in hdul]
        for need in ("EXPOSURE", "CTHETABOUNDS"):
            if need not in names:
                _fail(path, f"HDU {need!r} missing (HDUs: {names}); expected EXPOSURE, "
                            "WEIGHTED_EXPOSURE, CTHETABOUNDS, GTI")
        hexp = hdul["EXPOSURE"]
        h = hexp.header
        if not isinstance(hexp, fits.BinTableHDU):
            _fail(path, "HDU EXPOSURE is not a binary table")
        cols = [c.upper() for c in hexp.columns.names]
        if "COSBINS" not in cols:
            _fail(path, f"HDU EXPOSURE has no COSBINS column (columns: {cols})")
        for key in ("NSIDE", "NBRBINS"):
            if key not in h:
                _fail(path, f"HDU EXPOSURE lacks the {key} keyword")
        nside = header_int(h, "NSIDE", path, hdu="EXPOSURE")
        nbins = header_int(h, "NBRBINS", path, hdu="EXPOSURE")
        phibins = header_int(h, "PHIBINS", path, 0, hdu="EXPOSURE")
        cosmin = header_float(h, "COSMIN", path, 0.0, hdu="EXPOSURE")
        thetabin = str(h.get("THETABIN", THETABIN_SQRT)).strip().upper()
        ordering = str(h.get("ORDERING", "NESTED")).strip().upper()
        if ordering not in ("NESTED", "RING"):
            _fail(path, f"ORDERING={ordering!r}; expected NESTED or RING")
        frame = _frame_from_coordsys(h.get("COORDSYS", "EQU"), path)
        npix = 12 * nside * nside
        exp = _cosbins(hexp, path, npix, nbins, phibins)
        if "WEIGHTED_EXPOSURE" in names:
            wexp = _cosbins(hdul["WEIGHTED_EXPOSURE"], path, npix, nbins, phibins)
        else:
            # gtltcube before ScienceTools 9 wrote no weighted table
            wexp = np.zeros_like(exp)
        # binning table against the keywords
        tb = hdul["CTHETABOUNDS"].data
        if thetabin not in (THETABIN_SQRT, THETABIN_LIN):
            _fail(path, f"THETABIN={thetabin!r}; expected {THETABIN_SQRT!r} or {THETABIN_LIN!r}")
        edges = costheta_edges(nbins, cosmin, thetabin)
        try:
            cmin = np.asarray(tb["CTHETA_MIN"], dtype=np.float64)
            cmax = np.asarray(tb["CTHETA_MAX"], dtype=np.float64)
        except KeyError:
            _fail(path, "HDU CTHETABOUNDS lacks CTHETA_MIN/CTHETA_MAX")
        if (cmin.size != nbins or np.max(np.abs(cmin - edges[1:])) > 1e-6
                or np.max(np.abs(cmax - edges[:-1])) > 1e-6):
            raise FileFormatError(
                f"{path}: CTHETABOUNDS ({cmin.size} rows) does not match NBRBINS={nbins}, "
                f"COSMIN={cosmin}, THETABIN={thetabin!r}"
            )
        # pixel centres against ORDERING/NSIDE (catches a mislabelled ordering)
        if "RA" in cols and "DEC" in cols:
            lon, lat = healpix_pixel_coords(nside, ordering, frame)
            fra = np.asarray(hexp.data["RA"], dtype=np.float64)
            fdec = np.asarray(hexp.data["DEC"], dtype=np.float64)
            dlon = np.abs((fra - lon + 180.0) % 360.0 - 180.0) * np.cos(np.radians(lat))
            if np.max(np.abs(fdec - lat)) > 1e-3 or np.max(dlon) > 1e-3:
                raise FileFormatError(
                    f"{path}: RA/DEC columns do not match HEALPix {ordering} nside {nside} "
                    "pixel centres"
                )
        gstart = gstop = np.zeros(0)
        if "GTI" in names:
            g = hdul["GTI"].data
            if g is not None and len(g):
                gstart = np.asarray(g["START"], dtype=np.float64)
                gstop = np.asarray(g["STOP"], dtype=np.float64)
        ph = hdul[0].header
        tstart = _first_number("TSTART", path, (h, "EXPOSURE"), (ph, "PRIMARY"))
        tstop = _first_number("TSTOP", path, (h, "EXPOSURE"), (ph, "PRIMARY"))
        mjdref = FERMI_MJDREF
        for hdr, name in ((h, "EXPOSURE"), (ph, "PRIMARY")):
            if "MJDREFI" in hdr or "MJDREF" in hdr:
                mjdref = mjdref_from_header(hdr, path, hdu=name)
                break
        zmax = header_float(h, "ZENMAX", path, None, hdu="EXPOSURE")
        zmin = header_float(h, "ZENMIN", path, None, hdu="EXPOSURE")
        creator = ph.get("CREATOR")
    extra = {"source_file": str(path)}
    if creator:
        extra["creator"] = str(creator)
    return make_ltcube_dataset(
        exp, wexp, nside=nside, ordering=ordering, frame=frame, cosmin=cosmin,
        thetabin=thetabin, gti_start=gstart, gti_stop=gstop,
        tstart=None if tstart is None else float(tstart),
        tstop=None if tstop is None else float(tstop),
        zmax=None if zmax is None else float(zmax),
        zmin=None if zmin is None else float(zmin),
        mjdref=mjdref, extra_attrs=extra,
    )


def _first_number(key, path, *headers):
    """The number ``key`` holds in the first of ``(header, hdu name)`` that has it, else None."""
    for h, name in headers:
        if key in h:
            return header_float(h, key, path, hdu=name)
    return None


def _frame_from_coordsys(value, path):
    v = str(value).strip().upper()
    if v in ("EQU", "C", "CEL", "CELESTIAL", "EQUATORIAL", "FK5", "ICRS"):
        return "CEL"
    if v in ("GAL", "G", "GALACTIC"):
        return "GAL"
    _fail(path, f"COORDSYS={value!r}; expected EQU or GAL")


def _cosbins(hdu, path, npix, nbins, phibins):
    data = hdu.data
    if data is None or len(data) != npix:
        n = 0 if data is None else len(data)
        raise FileFormatError(
            f"{path}: HDU {hdu.name} has {n} rows; expected one per HEALPix pixel "
            f"(12*NSIDE^2 = {npix}); partial-sky livetime cubes are not supported"
        )
    v = np.asarray(data["COSBINS"], dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    width = nbins * (1 + phibins) if phibins else nbins
    if v.shape[1] != width:
        raise FileFormatError(
            f"{path}: HDU {hdu.name} COSBINS has {v.shape[1]} values per pixel; expected "
            f"NBRBINS x (1 + PHIBINS) = {width}"
        )
    if phibins:
        # blocks: [summed over phi | phi bin 0 | phi bin 1 | ...]
        v = v[:, nbins:].reshape(npix, phibins, nbins).transpose(0, 2, 1)
    return np.ascontiguousarray(v)


def _check_compatible(a: xr.Dataset, b: xr.Dataset, fa, fb):
    for key in ("nside", "ordering", "frame", "nbins", "cosmin", "thetabin", "phibins"):
        if a.attrs.get(key) != b.attrs.get(key):
            raise FileFormatError(
                f"livetime cubes cannot be summed: {fa} has {key}={a.attrs.get(key)!r} but "
                f"{fb} has {key}={b.attrs.get(key)!r}"
            )
    za, zb = a.attrs.get("zmax"), b.attrs.get("zmax")
    if za is not None and zb is not None and za != zb:
        raise FileFormatError(
            f"livetime cubes cannot be summed: {fa} has zenith cut zmax={za} but {fb} has "
            f"zmax={zb}"
        )


def _sum_two(a: xr.Dataset, b: xr.Dataset, fa, fb) -> xr.Dataset:
    gs = np.concatenate([a.gti_start.values, b.gti_start.values])
    ge = np.concatenate([a.gti_stop.values, b.gti_stop.values])
    order = np.argsort(gs, kind="stable")
    gs, ge = gs[order], ge[order]
    if gs.size > 1 and np.any(gs[1:] < np.maximum.accumulate(ge)[:-1]):
        raise FileFormatError(
            f"livetime cubes cannot be summed: the GTIs of {fb} overlap those of {fa} "
            "(their livetime would be counted twice)"
        )
    za, zb = a.attrs.get("zmax"), b.attrs.get("zmax")
    attrs = dict(a.attrs)
    ds = make_ltcube_dataset(
        a.exposure.values + b.exposure.values,
        a.weighted_exposure.values + b.weighted_exposure.values,
        nside=a.attrs["nside"], ordering=a.attrs["ordering"], frame=a.attrs["frame"],
        cosmin=a.attrs["cosmin"], thetabin=a.attrs["thetabin"], gti_start=gs, gti_stop=ge,
        tstart=min(a.attrs["TSTART"], b.attrs["TSTART"]),
        tstop=max(a.attrs["TSTOP"], b.attrs["TSTOP"]),
        zmax=za if (za is not None and zb is not None) else None,
        mjdref=a.attrs["MJDREF"],
    )
    attrs.pop("source_file", None)
    for k in ("TSTART", "TSTOP", "zmax"):
        attrs[k] = ds.attrs[k]
    ds.attrs.update(attrs)
    return ds


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------

def _met_to_isot(met: float, mjdref: float) -> str:
    import warnings

    from astropy.time import Time

    with warnings.catch_warnings():
        # far-future test times: no leap-second table ("dubious year")
        warnings.simplefilter("ignore")
        t = Time(_MJDREFI, met / 86400.0 + (mjdref - _MJDREFI), format="mjd", scale="tt")
        t.precision = 4
        return t.utc.isot


def _common_cards(ds, tstart, tstop, with_time=True):
    mjdref = float(ds.attrs.get("MJDREF", FERMI_MJDREF))
    cards = [
        ("TELESCOP", "GLAST", "name of telescope generating data"),
        ("INSTRUME", "LAT", "name of instrument generating data"),
        ("EQUINOX", 2000.0, "equinox for ra and dec"),
        ("RADECSYS", "FK5", "world coord. system for this file (FK5 or FK4)"),
        ("DATE", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000"),
         "file creation date (UTC)"),
        ("DATE-OBS", _met_to_isot(tstart, mjdref), "start date/time of the obs. (UTC)"),
        ("DATE-END", _met_to_isot(tstop, mjdref), "end date/time of the obs. (UTC)"),
    ]
    if with_time:
        if abs(mjdref - FERMI_MJDREF) < 1e-9:
            mjdi, mjdf = _MJDREFI, 0.00074287037037037  # as the Science Tools write it
        else:
            mjdi = float(np.floor(mjdref))
            mjdf = float(mjdref - mjdi)
        cards += [
            ("TSTART", float(tstart), "mission time of the obs. start"),
            ("TSTOP", float(tstop), "mission time of the obs. end"),
            ("MJDREFI", mjdi, "Int. part of MJD of SC clock start"),
            ("MJDREFF", mjdf, "Frac. part of MJD of SC clock start"),
            ("TIMEUNIT", "s", "units for the time related keywords"),
            ("TIMEZERO", 0.0, "clock correction"),
            ("TIMESYS", "TT", "type of time system that is used"),
            ("TIMEREF", "LOCAL", "reference frame used for times"),
            ("CLOCKAPP", False, "clock drift correction applied?"),
            ("GPS_OUT", False, "whether GPS time was unavailable at any time"),
        ]
    return cards


def _exposure_hdu(ds, values, extname, tstart, tstop, lon, lat):
    from astropy.io import fits

    nside = int(ds.attrs["nside"])
    npix = 12 * nside * nside
    v = np.asarray(values, dtype=np.float64)
    nbins = v.shape[1]
    phibins = v.shape[2] if v.ndim == 3 else 0
    if phibins:
        total = v.sum(axis=2)
        blocks = v.transpose(0, 2, 1).reshape(npix, phibins * nbins)
        v = np.concatenate([total, blocks], axis=1)
    width = v.shape[1]
    cols = [
        fits.Column(name="COSBINS", format=f"{width}E", unit="s", array=v.astype(np.float32)),
        fits.Column(name="RA", format="E", unit="deg", array=lon.astype(np.float32)),
        fits.Column(name="DEC", format="E", unit="deg", array=lat.astype(np.float32)),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    h = hdu.header
    h.comments["TTYPE1"] = "label for field"
    h.comments["TTYPE2"] = "RA of HEALPixel center"
    h.comments["TTYPE3"] = "DEC of HEALPixel center"
    for k, val, com in _common_cards(ds, tstart, tstop):
        h[k] = (val, com)
    h["OBSERVER"] = ("Peter Michelson", "LAT PI")
    h["ORIGIN"] = ("fermixr", "name of organization making file")
    h["PIXTYPE"] = ("HEALPIX", "Indicates this is a HEALPix representation")
    h["ORDERING"] = (ds.attrs["ordering"], "Can be NESTED or RING")
    h["COORDSYS"] = ("EQU" if ds.attrs["frame"] == "CEL" else "GAL", "")
    h["NSIDE"] = (nside, "Number of pixels per side per dodecahedron face")
    h["FIRSTPIX"] = (0, "First pixel index")
    h["LASTPIX"] = (npix - 1, "Last pixel index")
    h["THETABIN"] = (ds.attrs.get("thetabin", THETABIN_SQRT), "Costheta binning scheme")
    h["NBRBINS"] = (nbins, "Number of costheta bins")
    h["COSMIN"] = (float(ds.attrs.get("cosmin", 0.0)), "Minimum costheta value")
    h["PHIBINS"] = (phibins, "Number of phi bins")
    zmax = ds.attrs.get("zmax")
    if zmax is not None:
        h["ZENMIN"] = (float(ds.attrs.get("zmin", 0.0) or 0.0), "Minimum zenith angle")
        h["ZENMAX"] = (float(zmax), "Maximum zenith angle")
    h["TLMIN2"] = (0.0, "minimum value")
    h["TLMAX2"] = (360.0, "maximum value")
    h["TLMIN3"] = (-90.0, "minimum value")
    h["TLMAX3"] = (90.0, "maximum value")
    h["NDSKEYS"] = 1
    h["DSTYP1"] = "TIME"
    h["DSUNI1"] = "s"
    h["DSVAL1"] = "TABLE"
    h["DSREF1"] = ":GTI"
    return hdu


def write_ltcube(ds: xr.Dataset, path, *, overwrite: bool = True) -> Path:
    """Write ``ds`` (ltcube contract) as a gtltcube FITS file that gtexpcube2, gtlike,
    gtpsf and Fermipy read: the same HDUs, columns and keywords as gtltcube (plus
    ZENMIN/ZENMAX, which newer gtltcube versions write and Fermipy reads).  Values are
    stored as float32 like gtltcube; returns the path.  A ``.gz`` suffix compresses."""
    from astropy.io import fits

    if ds.attrs.get("fermixr_product") != "ltcube":
        raise FileFormatError(
            f"write_ltcube: dataset has fermixr_product={ds.attrs.get('fermixr_product')!r}; "
            "expected 'ltcube'"
        )
    path = Path(os.fspath(path))
    nside = int(ds.attrs["nside"])
    npix = 12 * nside * nside
    if ds.sizes.get(DIM_PIX) != npix:
        raise FileFormatError(
            f"write_ltcube: dataset has {ds.sizes.get(DIM_PIX)} pixels; a gtltcube file needs "
            f"the whole sky (12*nside^2 = {npix})"
        )
    tstart = float(ds.attrs["TSTART"])
    tstop = float(ds.attrs["TSTOP"])
    lon, lat = healpix_pixel_coords(nside, ds.attrs["ordering"], ds.attrs["frame"])
    dims = (DIM_PIX, DIM_COSTHETA) + ((DIM_PHI,) if DIM_PHI in ds.exposure.dims else ())

    prim = fits.PrimaryHDU()
    ph = prim.header
    for k, val, com in _common_cards(ds, tstart, tstop):
        if k in ("TIMEZERO", "TIMEREF", "CLOCKAPP"):
            continue
        ph[k] = (val, com)
    ph["OBSERVER"] = ("Peter Michelson", "LAT PI")
    ph["FILENAME"] = (path.name[:-3] if path.name.endswith(".gz") else path.name,
                      "name of this file")
    ph["ORIGIN"] = ("fermixr", "name of organization making file")
    ph["CREATOR"] = ("fermixr ltcube", "software and version creating file")
    ph["VERSION"] = ("1", "release version of the file")

    hexp = _exposure_hdu(ds, ds.exposure.transpose(*dims).values, "EXPOSURE",
                         tstart, tstop, lon, lat)
    hwexp = _exposure_hdu(ds, ds.weighted_exposure.transpose(*dims).values,
                          "WEIGHTED_EXPOSURE", tstart, tstop, lon, lat)

    edges = costheta_edges(int(ds.sizes[DIM_COSTHETA]), float(ds.attrs.get("cosmin", 0.0)),
                           ds.attrs.get("thetabin", THETABIN_SQRT))
    hb = fits.BinTableHDU.from_columns([
        fits.Column(name="CTHETA_MIN", format="E", array=edges[1:].astype(np.float32)),
        fits.Column(name="CTHETA_MAX", format="E", array=edges[:-1].astype(np.float32)),
    ], name="CTHETABOUNDS")
    hb.header.comments["TTYPE1"] = "Lower boundary of the COSTHETA bin"
    hb.header.comments["TTYPE2"] = "Upper boundary of the COSTHETA bin"
    for k, val, com in _common_cards(ds, tstart, tstop, with_time=False):
        hb.header[k] = (val, com)
    hb.header["TSTART"] = (tstart, "mission time of the obs. start")
    hb.header["TSTOP"] = (tstop, "mission time of the obs. end")
    for k in ("TLMIN1", "TLMIN2"):
        hb.header[k] = (-1.0, "minimum value")
    for k in ("TLMAX1", "TLMAX2"):
        hb.header[k] = (1.0, "maximum value")
    hb.header["OBSERVER"] = ("Peter Michelson", "LAT PI")
    hb.header["ORIGIN"] = ("fermixr", "name of organization making file")
    hb.header["HDUCLASS"] = ("OGIP", "Format confirms to OGIP standard")
    hb.header["HDUVERS"] = ("0.0.0", "Version number of the format")

    gs = np.asarray(ds.gti_start.values, dtype=np.float64)
    ge = np.asarray(ds.gti_stop.values, dtype=np.float64)
    hg = fits.BinTableHDU.from_columns([
        fits.Column(name="START", format="D", unit="s", array=gs),
        fits.Column(name="STOP", format="D", unit="s", array=ge),
    ], name="GTI")
    hg.header.comments["TTYPE1"] = "start time of good time intervals"
    hg.header.comments["TTYPE2"] = "stop time of good time intervals"
    for k, val, com in _common_cards(ds, tstart, tstop):
        hg.header[k] = (val, com)
    hg.header["OBSERVER"] = ("Peter Michelson", "LAT PI")
    hg.header["ORIGIN"] = ("fermixr", "name of organization making file")
    hg.header["HDUCLASS"] = ("OGIP", "format conforms to OGIP standard")
    hg.header["HDUCLAS1"] = ("GTI", "ext. contains good time intervals")
    hg.header["HDUCLAS2"] = ("ALL", "ext. contains all science time")
    hg.header["ONTIME"] = (float(np.sum(ge - gs)), "sum of GTI lengths")
    hg.header["TELAPSE"] = (float(ge.max() - gs.min()) if gs.size else 0.0,
                            "time between first GTI START and last GTI STOP")
    for i in (1, 2):
        hg.header[f"TLMIN{i}"] = (0.0, "minimum value")
        hg.header[f"TLMAX{i}"] = (1e10, "maximum value")

    hdul = fits.HDUList([prim, hexp, hwexp, hb, hg])
    if path.exists() and not overwrite:
        raise InputFileError(f"write_ltcube: {path} exists and overwrite=False")
    hdul.writeto(path, overwrite=True, checksum=True)
    return path


# --------------------------------------------------------------------------------------
# consistency with an analysis' GTIs
# --------------------------------------------------------------------------------------

def _merged(start, stop):
    start = np.asarray(start, dtype=np.float64).ravel()
    stop = np.asarray(stop, dtype=np.float64).ravel()
    if start.size == 0:
        return start, stop
    o = np.argsort(start, kind="stable")
    start, stop = start[o], stop[o]
    out_s, out_e = [start[0]], [stop[0]]
    for s, e in zip(start[1:], stop[1:]):
        if s <= out_e[-1]:
            out_e[-1] = max(out_e[-1], e)
        else:
            out_s.append(s)
            out_e.append(e)
    return np.array(out_s), np.array(out_e)


def _overlap_total(a_s, a_e, b_s, b_e) -> float:
    """Total time in the intersection of two sets of merged intervals."""
    i = j = 0
    tot = 0.0
    while i < len(a_s) and j < len(b_s):
        lo = max(a_s[i], b_s[j])
        hi = min(a_e[i], b_e[j])
        if hi > lo:
            tot += hi - lo
        if a_e[i] < b_e[j]:
            i += 1
        else:
            j += 1
    return tot


def check_ltcube_against_gti(ds: xr.Dataset, gti_start, gti_stop, *, tol: float = 1.0) -> list[str]:
    """Messages (empty when consistent) about a precomputed livetime cube that does not
    cover the analysis GTIs, or covers time outside them (exposure then too low / too
    high).  ``tol`` seconds of difference are tolerated."""
    msgs = []
    cs, ce = _merged(ds.gti_start.values, ds.gti_stop.values)
    as_, ae = _merged(gti_start, gti_stop)
    if cs.size == 0:
        return [f"livetime cube {ds.attrs.get('source_file', '')} has no GTI table: cannot "
                "check that it matches the analysis time selection"]
    t_cube = float(np.sum(ce - cs))
    t_ana = float(np.sum(ae - as_))
    both = _overlap_total(cs, ce, as_, ae)
    if t_ana - both > tol:
        msgs.append(
            f"livetime cube misses {t_ana - both:.1f} s of the {t_ana:.1f} s of analysis GTIs "
            "(exposure will be too low there)"
        )
    if t_cube - both > tol:
        msgs.append(
            f"livetime cube includes {t_cube - both:.1f} s outside the analysis GTIs "
            f"(of {t_cube:.1f} s; exposure will be too high)"
        )
    return msgs
