"""Fermi-LAT catalog FILES (4FGL DR1..DR4, 3FGL and files in their format): finding them,
reading their tables into plain columns, and finding the templates of their extended
sources.  No sky-model objects here; :mod:`fermixr.model.catalog` builds the sources.

Format facts used here (FSSC catalog descriptions; Fermipy's ``catalog.py``):

* HDU ``LAT_Point_Source_Catalog`` holds one row per source (``Source_Name``, ``RAJ2000``,
  ``DEJ2000``, ``SpectrumType``, ``Pivot_Energy``, spectral and association columns,
  ``Extended_Source_Name``); HDU ``ExtendedSources`` describes the extended ones
  (``Source_Name`` = the main table's ``Extended_Source_Name``, ``Model_Form``,
  ``Model_SemiMajor``, ``Spatial_Function``, ``Spatial_Filename`` ...).
* The family follows from the columns: 4FGL (``PL_``/``LP_``/``PLEC_Flux_Density``) with
  ``PLEC_IndexS``/``PLEC_ExpfactorS`` in DR3/DR4 (DR4 when the header says so or the file
  version is v32 or later), else DR1/DR2; 3FGL (``Flux_Density``).  HDU names match
  case-insensitively (the FSSC's files spell them ``ExtendedSources``).
* Extended-source templates (``Spatial_Filename``) are looked up in ``extdir`` (default
  ``$LATEXTDIR``; and its ``Templates`` folder), then beside the catalog file and in the
  catalog's standard archive folder (``Extended_14years``, ``Extended_12years``,
  ``Extended_8years``, ``Extended_archive_v15``) under the catalog's folder and
  ``$FERMIPY_DATA_DIR/catalogs``.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError
from .paths import expand_path

__all__ = ["CatalogTable", "read_catalog_table", "resolve_catalog", "catalog_search_dirs",
           "extended_template_dirs", "find_extended_template", "CATALOG_NAMES", "MAIN_HDU",
           "EXT_HDUS", "COLS_4FGL", "COLS_3FGL", "BASE_COLS", "strip_text", "python_value"]

MAIN_HDU = "LAT_Point_Source_Catalog"
EXT_HDUS = ("ExtendedSources", "EXTENDED_SOURCES", "Extended Sources")

# bare catalog names -> file name patterns (the highest version found wins)
# (file names as the FSSC publishes them, ``.fit``; ``.fits`` and gzipped copies are found
# too).  A bare ``4FGL`` is DR1, as in Fermipy; when no DR1 file is found the newest
# release found is used, with a warning naming it.
_DR1 = ("gll_psc_v2[0-2]", "gll_psc_v19")
_DR2 = ("gll_psc_v2[3-7]",)
_DR3 = ("gll_psc_v2[89]", "gll_psc_v3[01]")
_DR4 = ("gll_psc_v3[2-9]",)
CATALOG_NAMES: dict[str, tuple[str, ...]] = {
    "3FGL": ("gll_psc_v16", "gll_psc_v1[0-6]"),
    "4FGL": _DR1,
    "4FGL-DR1": _DR1,
    "4FGL-DR2": _DR2,
    "4FGL-DR3": _DR3,
    "4FGL-DR4": _DR4,
    "FERMIXR_EXAMPLE": ("fermixr_example",),
}
_CATALOG_SUFFIXES = (".fit", ".fits", ".fit.gz", ".fits.gz")
# standard extended-source archive folder of each catalog family
_EXT_ARCHIVES = {"3FGL": ("Extended_archive_v15",),
                 "4FGL-DR1": ("Extended_8years", "LAT_extended_sources_8years"),
                 "4FGL-DR2": ("Extended_8years", "LAT_extended_sources_8years"),
                 "4FGL-DR3": ("Extended_12years",),
                 "4FGL-DR4": ("Extended_14years", "Extended_12years")}

# spectral columns by catalog family and spectrum kind
COLS_4FGL = {"PowerLaw": ("PL_Flux_Density", "PL_Index"),
             "LogParabola": ("LP_Flux_Density", "LP_Index", "LP_beta"),
             "PLEC4": ("PLEC_Flux_Density", "PLEC_IndexS", "PLEC_ExpfactorS", "PLEC_Exp_Index"),
             "PLEC2": ("PLEC_Flux_Density", "PLEC_Index", "PLEC_Expfactor", "PLEC_Exp_Index")}
COLS_3FGL = {"PowerLaw": ("Flux_Density", "Spectral_Index"),
             "LogParabola": ("Flux_Density", "Spectral_Index", "beta"),
             "PLEC": ("Flux_Density", "Spectral_Index", "Cutoff")}
BASE_COLS = ("Source_Name", "RAJ2000", "DEJ2000", "SpectrumType", "Pivot_Energy")


# --------------------------------------------------------------------------------------
# finding catalog files
# --------------------------------------------------------------------------------------
def catalog_search_dirs(base: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for a catalog given by a bare name, in order: ``base``,
    ``$FERMIXR_CATALOG_DIR``, fermixr's own ``catalogs`` folder, ``$FERMIPY_DATA_DIR/catalogs``,
    ``$FERMI_DIR/refdata/fermi/catalogs``."""
    dirs: list[Path] = []
    if base is not None:
        dirs.append(Path(base))
    for var, sub in (("FERMIXR_CATALOG_DIR", ""),):
        if os.environ.get(var):
            dirs.extend(Path(p) for p in os.environ[var].split(os.pathsep) if p)
    here = Path(__file__).resolve().parent.parent
    dirs += [here / "_data" / "catalogs", here.parent / "catalogs"]
    for var, sub in (("FERMIPY_DATA_DIR", "catalogs"), ("FERMI_DIR", "refdata/fermi/catalogs")):
        if os.environ.get(var):
            dirs.append(Path(os.environ[var]) / sub)
    out, seen = [], set()
    for d in dirs:
        k = str(d)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out


def _glob_catalog(patterns, dirs) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        for d in dirs:
            for suffix in _CATALOG_SUFFIXES:
                found += [Path(f) for f in glob.glob(str(d / (pattern + suffix)))]
    return found


def _version_key(p: Path):
    m = re.search(r"v(\d+)", p.name)
    return (int(m.group(1)) if m else -1, p.name)


def resolve_catalog(name: str | os.PathLike, *, base: str | os.PathLike | None = None) -> Path:
    """The file of catalog ``name``: a path (``$VARS`` and ``~`` expanded, relative to
    ``base``) or a bare name (3FGL, 4FGL, 4FGL-DR1..DR4, fermixr_example) looked up in
    :func:`catalog_search_dirs`.  InputFileError says where it looked."""
    s = os.fspath(name)
    key = s.strip().upper().replace("_", "-") if not os.sep in s else ""
    key = {"FERMIXR-EXAMPLE": "FERMIXR_EXAMPLE"}.get(key, key)
    p = Path(expand_path(s, base))
    if p.is_file():
        return p
    if key in CATALOG_NAMES:
        dirs = catalog_search_dirs(base)
        found = []
        found = _glob_catalog(CATALOG_NAMES[key], dirs)
        if found:
            return max(found, key=_version_key)
        if key == "4FGL":
            for release in ("4FGL-DR4", "4FGL-DR3", "4FGL-DR2"):
                newer = _glob_catalog(CATALOG_NAMES[release], dirs)
                if newer:
                    path = max(newer, key=_version_key)
                    import warnings

                    warnings.warn(f"catalog '4FGL' (DR1 in Fermipy, gll_psc_v19-v22) not found; "
                                  f"using {release}, {path}; write {release!r} to say so",
                                  UserWarning, stacklevel=2)
                    return path
        raise InputFileError(
            f"catalog {s!r}: no file matching "
            f"{' or '.join(p + '.fit' for p in CATALOG_NAMES[key])} (or .fits, .gz) in "
            f"{', '.join(str(d) for d in dirs)}; download it from the FSSC "
            "(https://fermi.gsfc.nasa.gov/ssc/data/access/lat/) into one of them, set "
            "FERMIXR_CATALOG_DIR to its folder, or give its path")
    if not os.path.isabs(s) and base is not None:
        hint = f" (looked for {p})"
    else:
        hint = "" if str(p) == s else f" (expanded to {p})"
    raise InputFileError(f"catalog file {s!r} not found{hint}; known catalog names: "
                         f"{', '.join(sorted(CATALOG_NAMES))}")


# --------------------------------------------------------------------------------------
# extended-source templates
# --------------------------------------------------------------------------------------
def extended_template_dirs(family: str, catalog_path: str | os.PathLike,
                           extdir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for the templates of a ``family`` catalog read from
    ``catalog_path``, in order (see the module docstring)."""
    dirs: list[Path] = []
    archives = _EXT_ARCHIVES.get(family, ())
    if extdir is None and os.environ.get("LATEXTDIR"):
        extdir = os.environ["LATEXTDIR"]        # the LAT archive's own variable
    if extdir is not None:
        e = Path(expand_path(extdir))
        if not e.is_dir() and os.environ.get("FERMIPY_DATA_DIR"):
            e = Path(os.environ["FERMIPY_DATA_DIR"]) / "catalogs" / os.fspath(extdir)
        dirs += [e, e / "Templates"]
    roots = [Path(catalog_path).parent]
    if os.environ.get("FERMIPY_DATA_DIR"):
        roots.append(Path(os.environ["FERMIPY_DATA_DIR"]) / "catalogs")
    for r in roots:
        dirs += [r, r / "Templates"]
        for a in archives:
            dirs += [r / a, r / a / "Templates"]
    return dirs


def find_extended_template(fname: str, family: str, catalog_path: str | os.PathLike,
                           extdir: str | os.PathLike | None = None) -> Path | None:
    """The file of template ``fname`` (an absolute path, or a name looked up in
    :func:`extended_template_dirs`); None when not found."""
    if str(fname).startswith(("$LATEXTDIR/", "${LATEXTDIR}/")) and not os.environ.get(
            "LATEXTDIR"):
        fname = str(fname).split("/", 1)[1]     # the archive's layout, under extdir
    p = Path(expand_path(fname))
    if p.is_absolute() and p.is_file():
        return p
    for d in extended_template_dirs(family, catalog_path, extdir):
        q = d / fname
        if q.is_file():
            return q
    return None


# --------------------------------------------------------------------------------------
# the catalog table
# --------------------------------------------------------------------------------------
def strip_text(v) -> str:
    """A FITS string cell as a stripped ``str``."""
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace")
    return str(v).strip()


def python_value(v):
    """A FITS scalar cell as a plain Python value (stripped ``str``, bool, int, float)."""
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("ascii", "replace").strip()
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


@dataclasses.dataclass(frozen=True, eq=False)
class CatalogTable:
    """A catalog FITS file held as plain columns.

    ``family``: ``4FGL-DR1``/``4FGL-DR2`` (PLSuperExpCutoff2 columns), ``4FGL-DR3``
    (PLSuperExpCutoff4 columns; DR4 has the same layout and is reported as DR4 when the
    header says so) or ``3FGL``."""

    path: Path
    family: str
    columns: dict            # name -> numpy array (main HDU)
    extended: dict           # Extended name (stripped) -> {column: value}
    header: dict

    def __len__(self) -> int:
        return len(self.columns["Source_Name"])

    @property
    def names(self) -> list[str]:
        return [strip_text(v) for v in self.columns["Source_Name"]]

    @property
    def ra(self) -> np.ndarray:
        return np.asarray(self.columns["RAJ2000"], dtype=np.float64)

    @property
    def dec(self) -> np.ndarray:
        return np.asarray(self.columns["DEJ2000"], dtype=np.float64)


def _file_version(path: Path, header: dict) -> int | None:
    """The catalog file's version number (``gll_psc_v35`` -> 35): the header's VERSION or
    FILENAME, else the file's name."""
    for text in (header.get("VERSION"), header.get("FILENAME"), path.name):
        m = re.search(r"(?:^|psc_)v(\d+)", str(text or ""))
        if m:
            return int(m.group(1))
    return None


def _family(path: Path, cols: set, header: dict, types: set) -> str:
    if {"PL_Flux_Density", "LP_Flux_Density", "PLEC_Flux_Density"} & cols:
        text = " ".join(str(header.get(k, "")) for k in ("CDS-NAME", "RELEASE", "VERSION"))
        version = _file_version(path, header)
        if "PLEC_IndexS" in cols or "PLEC_ExpfactorS" in cols:
            dr4 = "DR4" in text.upper() or (version is not None and version >= 32)
            return "4FGL-DR4" if dr4 else "4FGL-DR3"
        dr2 = "DR2" in text.upper() or (version is not None and 23 <= version <= 27)
        return "4FGL-DR2" if dr2 else "4FGL-DR1"
    if "Flux_Density" in cols:
        return "3FGL"
    raise FileFormatError(f"{path}: HDU {MAIN_HDU} has none of the flux-density columns of "
                          "a 4FGL (PL_Flux_Density, LP_Flux_Density, PLEC_Flux_Density) or "
                          "3FGL (Flux_Density) catalog")


def _required(family: str, cols: set, types: set) -> dict[str, list[str]]:
    """Missing columns, keyed by what needs them."""
    missing: dict[str, list[str]] = {}
    base = [c for c in BASE_COLS if c not in cols]
    if base:
        missing["every source"] = base
    for t in sorted(types):
        if family.startswith("4FGL"):
            if t.startswith("PLSuperExpCutoff") or t.startswith("PLExpCutoff"):
                need = COLS_4FGL["PLEC4"] if family in ("4FGL-DR3", "4FGL-DR4") \
                    else COLS_4FGL["PLEC2"]
            else:
                need = COLS_4FGL.get(t, ())
        else:
            need = COLS_3FGL["PLEC"] if t in ("PLExpCutoff", "PLSuperExpCutoff") \
                else COLS_3FGL.get(t, ())
        m = [c for c in need if c not in cols]
        if m:
            missing[f"SpectrumType {t}"] = m
    return missing


def read_catalog_table(path: str | os.PathLike) -> CatalogTable:
    """Read a 4FGL/3FGL-format FITS catalog into a :class:`CatalogTable`.  FileFormatError
    names the file and the missing HDU or columns."""
    from astropy.io import fits

    p = Path(expand_path(path))
    if not p.is_file():
        raise InputFileError(f"catalog file {os.fspath(path)!r} not found")
    try:
        hdul = fits.open(p, memmap=False)
    except OSError as e:
        raise FileFormatError(f"{p}: not a readable FITS file ({e})") from None
    with hdul:
        names = [h.name for h in hdul]
        upper = [n.upper() for n in names]      # EXTNAMEs match case-insensitively
        main = None
        if MAIN_HDU.upper() in upper:
            main = hdul[upper.index(MAIN_HDU.upper())]
        else:
            for h in hdul[1:]:
                if isinstance(h, fits.BinTableHDU) and "Source_Name" in h.columns.names:
                    main = h
                    break
        if main is None:
            raise FileFormatError(f"{p}: no HDU {MAIN_HDU} (or any table with a Source_Name "
                                  f"column); HDUs: {', '.join(names)}")
        header = {k: main.header[k] for k in main.header if k and not k.startswith("T")}
        header.update({k: hdul[0].header[k] for k in hdul[0].header if k})
        cols = {c: np.array(main.data[c]) for c in main.columns.names}
        ext = {}
        has_ext = False
        for en in EXT_HDUS:
            if en.upper() in upper:
                eh = hdul[upper.index(en.upper())]
                has_ext = True
                enames = eh.columns.names
                if "Source_Name" not in enames:
                    raise FileFormatError(f"{p}: HDU {en} has no Source_Name column")
                data = eh.data
                for r in range(len(data) if data is not None else 0):
                    d = {c: python_value(data[c][r]) for c in enames
                         if not (isinstance(data[c][r], np.ndarray) and data[c][r].ndim > 0)}
                    key = strip_text(d["Source_Name"]).replace(" ", "").lower()
                    ext[key] = d
                break
    colset = set(cols)
    types = set(strip_text(v) for v in cols["SpectrumType"]) if "SpectrumType" in cols \
        else set()
    family = _family(p, colset, header, types)
    missing = _required(family, colset, types)
    if missing:
        parts = "; ".join(f"{', '.join(v)} (for {k})" for k, v in missing.items())
        raise FileFormatError(f"{p}: HDU {main.name} of this {family}-format catalog lacks "
                              f"columns {parts}")
    if "Extended_Source_Name" in cols and not has_ext:
        if any(strip_text(v) for v in cols["Extended_Source_Name"]):
            raise FileFormatError(f"{p}: sources name extended models (Extended_Source_Name) "
                                  f"but there is no ExtendedSources HDU; HDUs: {', '.join(names)}")
    return CatalogTable(path=p, family=family, columns=cols, extended=ext, header=header)
