"""Science Tools FITS layouts of binned products: counts cubes (gtbin), exposure cubes
(gtexpcube2) and source-map files (gtsrcmaps), written so gtlike and Fermipy read them.

WCS layouts follow the reference files: the cube in the primary HDU (axes x, y, energy),
``EBOUNDS`` (CHANNEL, E_MIN, E_MAX in keV) for counts, ``ENERGIES`` (Energy, MeV) for
exposure, and a ``GTI`` table.  HEALPix cubes are written as Fermipy writes them: a
``SKYMAP`` table with one column per energy plane (``CHANNEL1``... for counts,
``ENERGY1``... for exposure) and the HEALPix keywords.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError

_COMMON = {"TELESCOP": "GLAST", "INSTRUME": "LAT"}


def _time_cards(hdr, attrs) -> None:
    mjdref = attrs.get("MJDREF")
    if mjdref is not None:
        hdr["MJDREFI"] = float(math.floor(mjdref))
        hdr["MJDREFF"] = float(mjdref - math.floor(mjdref))
    for k in ("TSTART", "TSTOP"):
        if attrs.get(k) is not None:
            hdr[k] = float(attrs[k])
    hdr["TIMEUNIT"] = "s"
    hdr["TIMESYS"] = "TT"
    hdr["TIMEREF"] = "LOCAL"


def gti_hdu(start, stop, attrs=None):
    """A ``GTI`` table HDU (START, STOP in MET s)."""
    from astropy.io import fits

    start = np.asarray(start, dtype=np.float64)
    stop = np.asarray(stop, dtype=np.float64)
    hdu = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", unit="s", array=start),
         fits.Column("STOP", "D", unit="s", array=stop)],
        name="GTI",
    )
    hdu.header.update(_COMMON)
    _time_cards(hdu.header, dict(attrs or {}))
    hdu.header["ONTIME"] = float(np.sum(stop - start))
    return hdu


def _wcs_cards(attrs) -> dict:
    hdr = attrs.get("wcs_header")
    if not hdr:
        raise FileFormatError("product has no 'wcs_header' attribute: it is not on a WCS geometry")
    return {k: v for k, v in hdr.items() if not k.startswith(("NAXIS", "SIMPLE", "BITPIX", "EXTEND"))}


def _hpx_cards(geom: dict) -> dict:
    cards = {
        "PIXTYPE": "HEALPIX",
        "ORDERING": geom["ordering"],
        "COORDSYS": "EQU" if geom["frame"] == "CEL" else "GAL",
        "NSIDE": int(geom["nside"]),
        "FIRSTPIX": 0,
        "LASTPIX": 12 * int(geom["nside"]) ** 2 - 1,
    }
    cards["INDXSCHM"] = "EXPLICIT" if geom.get("region") else "IMPLICIT"
    return cards


def _config_card(hdr, config) -> None:
    if config is not None:
        hdr["CONFIG"] = json.dumps(config, sort_keys=True, default=str)


def _hpx_table(planes: np.ndarray, prefix: str, geom: dict, pix: np.ndarray, dtype: str):
    from astropy.io import fits

    cols = []
    if geom.get("region"):
        cols.append(fits.Column("PIX", "J", array=np.asarray(pix, dtype=np.int32)))
    for i, plane in enumerate(planes):
        cols.append(fits.Column(f"{prefix}{i + 1}", dtype, array=plane))
    hdu = fits.BinTableHDU.from_columns(cols, name="SKYMAP")
    hdu.header.update(_hpx_cards(geom))
    return hdu


def write_ccube(counts, path, gti=None, config=None, overwrite=True, var="counts",
                dtype=np.int32) -> Path:
    """Write a counts product in gtbin's layout (WCS) or Fermipy's HEALPix layout; a model
    counts cube (gtmodel's layout) with ``var="model_counts", dtype=np.float32``."""
    from astropy.io import fits

    geom = counts.attrs["geom"]
    data = np.asarray(counts[var].values)
    emin = np.asarray(counts["energy_min"].values, dtype=np.float64)
    emax = np.asarray(counts["energy_max"].values, dtype=np.float64)
    if geom["type"] == "wcs":
        prim = fits.PrimaryHDU(data.astype(dtype))
        prim.header.update(_wcs_cards(counts.attrs))
        prim.header["CTYPE3"] = "Energy"
        prim.header["CUNIT3"] = "MeV"
        prim.header["CRPIX3"] = 1
        prim.header["CRVAL3"] = float(emin[0])
        prim.header["CDELT3"] = float((emax[-1] - emin[0]) / len(emin))
        hdus = [prim]
    else:
        prim = fits.PrimaryHDU()
        hdus = [prim, _hpx_table(data.astype(np.float32), "CHANNEL", geom,
                                 counts["pix"].values, "E")]
    prim.header.update(_COMMON)
    prim.header["CREATOR"] = "fermixr"
    _time_cards(prim.header, counts.attrs)
    _config_card(prim.header, config)
    eb = fits.BinTableHDU.from_columns(
        [fits.Column("CHANNEL", "I", array=np.arange(1, len(emin) + 1, dtype=np.int16)),
         fits.Column("E_MIN", "E", unit="keV", array=emin * 1e3),
         fits.Column("E_MAX", "E", unit="keV", array=emax * 1e3)],
        name="EBOUNDS",
    )
    eb.header.update(_COMMON)
    hdus.append(eb)
    if gti is not None:
        hdus.append(gti_hdu(gti["START"].values, gti["STOP"].values, gti.attrs))
    return _write(fits.HDUList(hdus), path, overwrite)


def write_expcube(exposure, path, gti=None, config=None, overwrite=True) -> Path:
    """Write an exposure product in gtexpcube2's layout (WCS: log-energy third axis and an
    ENERGIES table; HEALPix: Fermipy's HPXEXPOSURES layout)."""
    from astropy.io import fits

    geom = exposure.attrs["geom"]
    data = np.asarray(exposure["exposure"].values, dtype=np.float32)
    energies = np.asarray(exposure["energy_true"].values, dtype=np.float64)
    if geom["type"] == "wcs":
        prim = fits.PrimaryHDU(data)
        prim.header.update(_wcs_cards(exposure.attrs))
        lne = np.log(energies)
        prim.header["CTYPE3"] = "log_Energy"
        prim.header["CRPIX3"] = 1
        prim.header["CRVAL3"] = float(lne[0])
        prim.header["CDELT3"] = float((lne[-1] - lne[0]) / max(len(lne) - 1, 1))
        hdus = [prim]
    else:
        prim = fits.PrimaryHDU()
        tab = _hpx_table(data, "ENERGY", geom, exposure["pix"].values, "E")
        tab.name = "HPXEXPOSURES"
        hdus = [prim, tab]
    prim.header.update(_COMMON)
    prim.header["CREATOR"] = "fermixr"
    prim.header["IRFS"] = str(exposure.attrs.get("irfs", ""))
    _time_cards(prim.header, exposure.attrs)
    _config_card(prim.header, config)
    en = fits.BinTableHDU.from_columns(
        [fits.Column("Energy", "D", unit="MeV", array=energies)], name="ENERGIES")
    hdus.append(en)
    if gti is not None:
        hdus.append(gti_hdu(gti["START"].values, gti["STOP"].values, gti.attrs))
    return _write(fits.HDUList(hdus), path, overwrite)


def write_srcmaps(srcmaps, counts, path, gti=None, config=None, overwrite=True) -> Path:
    """Write a gtsrcmaps-layout file: the counts cube, EBOUNDS, GTI and one image HDU per
    source holding its map at the true-energy nodes."""
    from astropy.io import fits

    tmp = write_ccube(counts, Path(path), gti=gti, config=config, overwrite=overwrite)
    with fits.open(tmp) as hl:
        hdus = [h.copy() for h in hl]
    geom = srcmaps.attrs["geom"]
    energies = np.asarray(srcmaps["energy_true"].values, dtype=np.float64)
    for name in srcmaps["source"].values:
        arr = np.asarray(srcmaps["srcmap"].sel(source=name).values, dtype=np.float32)
        if geom["type"] == "wcs":
            hdu = fits.ImageHDU(arr, name=str(name))
            hdu.header.update(_wcs_cards(srcmaps.attrs))
            hdu.header["CTYPE3"] = "photon energy"
            hdu.header["CRPIX3"] = 1.0
            hdu.header["CRVAL3"] = float(energies[0])
            hdu.header["CDELT3"] = float((energies[-1] - energies[0]) / max(len(energies) - 1, 1))
        else:
            hdu = _hpx_table(arr, "ENERGY", geom, srcmaps["pix"].values, "E")
            hdu.name = str(name)
        hdus.append(hdu)
    return _write(fits.HDUList(hdus), path, overwrite=True)


def _write(hdul, path, overwrite) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    hdul.writeto(tmp, overwrite=True, output_verify="silentfix")
    if path.exists() and not overwrite:
        tmp.unlink()
        raise FileExistsError(f"{path} exists")
    os.replace(tmp, path)
    return path


def read_srcmap_hdus(path, names=None) -> dict:
    """Read source-map image HDUs of a gtsrcmaps file: name -> (energies MeV, array
    (energy, y, x) counts per unit dN/dE at the true-energy nodes, header as a dict whose
    WCS numbers are floats even where the file stores them as strings)."""
    from astropy.io import fits

    from .headers import numeric_header

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"gtlike.srcmap: file {str(p)!r} does not exist")
    out = {}
    with fits.open(p) as hl:
        if "EBOUNDS" not in hl:
            raise FileFormatError(f"{str(p)!r} is not a gtsrcmaps file: it has no EBOUNDS HDU")
        eb = hl["EBOUNDS"].data
        scale = 1e-3 if (hl["EBOUNDS"].header.get("TUNIT2", "keV").strip() == "keV") else 1.0
        edges = np.append(np.asarray(eb["E_MIN"], float), float(eb["E_MAX"][-1])) * scale
        for h in hl[1:]:
            if h.name in ("EBOUNDS", "GTI") or h.data is None or h.is_image is False:
                continue
            if names is not None and h.name not in names:
                continue
            arr = np.asarray(h.data, dtype=np.float64)
            if arr.ndim != 3 or arr.shape[0] != len(edges):
                raise FileFormatError(
                    f"{str(p)!r} HDU {h.name!r}: expected {len(edges)} energy planes "
                    f"(the EBOUNDS edges), found shape {arr.shape}"
                )
            out[h.name] = (edges, arr, numeric_header(h.header, p, hdu=h.name))
    return out


def srcmap_hdu_names(path) -> list[str]:
    """Names of the source-map image HDUs of a gtsrcmaps file."""
    from astropy.io import fits

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"gtlike.srcmap: file {str(p)!r} does not exist")
    with fits.open(p) as hl:
        return [h.name for h in hl[1:] if h.is_image and h.name not in ("EBOUNDS", "GTI")]


def read_bexpmap(path):
    """(WcsGeom of the map, energies MeV, cube (n_energy, ny, nx) cm2 s) of a gtexpcube2
    WCS file."""
    from astropy.io import fits

    from ..geom.wcs import WcsGeom
    from .headers import numeric_header

    try:
        hl = fits.open(path)
    except FileNotFoundError:
        raise InputFileError(f"gtlike.bexpmap: file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise FileFormatError(f"gtlike.bexpmap: cannot read {str(path)!r}: {exc}") from None
    with hl:
        if "ENERGIES" not in hl or hl[0].data is None or hl[0].data.ndim != 3:
            raise FileFormatError(
                f"gtlike.bexpmap {str(path)!r} is not a gtexpcube2 exposure cube: expected a "
                "3-D primary image (energy, lat, lon) and an ENERGIES table"
            )
        cube = np.asarray(hl[0].data, dtype=np.float64)
        energies = np.asarray(hl["ENERGIES"].data.field(0), dtype=np.float64)
        geom = WcsGeom.from_header(numeric_header(hl[0].header, path, hdu="PRIMARY"))
    if cube.shape[0] != energies.size:
        raise FileFormatError(
            f"gtlike.bexpmap {str(path)!r}: {cube.shape[0]} planes but {energies.size} energies"
        )
    return geom, energies, cube
