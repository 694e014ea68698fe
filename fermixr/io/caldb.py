"""Find and read the LAT instrument response files of a CALDB.

A CALDB is located from an explicit folder or ``$CALDB``; both the CALDB root (the folder
holding ``data/glast/lat/bcf``) and the ``bcf`` folder itself are accepted.

IRF names resolve through the CALDB index (``data/glast/lat/caldb.indx[.gz]``, HDU
``CIF``), as the Science Tools' CALDB lookup does: a row per response HDU, with the IRF
name in the ``VERSION(...)`` boundary of ``CAL_CBD``, the event type in ``DETNAM``
(FRONT, BACK, PSF0..3, EDISP0..3), the kind of table in ``CAL_CNAM`` (EFF_AREA, PHI_DEP,
EFFICIENCY_PARS, RPSF, PSF_SCALING, EDISP, EDISP_SCALING), the file in ``CAL_DIR`` /
``CAL_FILE`` (relative to the CALDB root; a gzipped copy is accepted) and the HDU number
in ``CAL_XNO``; rows whose ``CAL_QUAL`` is not 0 are ignored.  So any IRF a user's CALDB
lists (``P8R3_SOURCE_V3``, ``P8R3_ULTRACLEANVETO_V3``, ...) resolves, whatever its file
names.  Without an index, or for a name the index does not list, files following the
standard naming are found directly:

* Pass 8: ``bcf/{ea,psf,edisp}/{aeff,psf,edisp}_<IRF>_{FB,PSF,EDISP}.fits[.gz]`` with one
  HDU per event type (``EFFECTIVE AREA_FRONT``, ``RPSF_PSF2``, ``ENERGY DISPERSION_EDISP0``,
  ``PSF_SCALING_PARAMS_BACK`` ...);
* Pass 7: ``bcf/{ea,psf,edisp}/{aeff,psf,edisp}_<IRF>_{front,back}.fits[.gz]``, one file per
  conversion type with un-suffixed HDU names.

Event types are Fermipy bit masks: FRONT=1, BACK=2, PSF0..3 = 4, 8, 16, 32 and
EDISP0..3 = 64, 128, 256, 512.  A mask must select types of one partition only.

The readers return plain numpy arrays (float64) in the file's units; evaluation lives in
:mod:`fermixr.irf`.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputFileError, IRFError

__all__ = [
    "EVENT_TYPE_BITS",
    "PARTITIONS",
    "IRFFiles",
    "resolve_caldb",
    "evtype_names",
    "evtype_mask",
    "CaldbIndexEntry",
    "read_caldb_index",
    "caldb_irf_names",
    "find_irf_files",
    "read_table",
    "read_aeff",
    "read_psf",
    "read_edisp",
]

EVENT_TYPE_BITS: dict[str, int] = {
    "FRONT": 1,
    "BACK": 2,
    "PSF0": 4,
    "PSF1": 8,
    "PSF2": 16,
    "PSF3": 32,
    "EDISP0": 64,
    "EDISP1": 128,
    "EDISP2": 256,
    "EDISP3": 512,
}

# partition name (the file suffix of Pass 8 IRFs) -> event types in bit order
PARTITIONS: dict[str, tuple[str, ...]] = {
    "FB": ("FRONT", "BACK"),
    "PSF": ("PSF0", "PSF1", "PSF2", "PSF3"),
    "EDISP": ("EDISP0", "EDISP1", "EDISP2", "EDISP3"),
}

_SUBDIRS = {"aeff": "ea", "psf": "psf", "edisp": "edisp"}


# --------------------------------------------------------------------------------------
# locating the CALDB
# --------------------------------------------------------------------------------------
def resolve_caldb(caldb: str | os.PathLike | None = None) -> Path:
    """The ``bcf`` folder of a CALDB.

    ``caldb`` may be the CALDB root (holding ``data/glast/lat/bcf``), the ``bcf`` folder
    itself, or None to use ``$CALDB``.  Raises :class:`InputFileError` naming what was
    tried when no ``bcf`` folder is found.
    """
    if caldb is None:
        env = os.environ.get("CALDB")
        if not env:
            raise InputFileError(
                "no CALDB given and $CALDB is not set: pass caldb='/path/to/caldb' "
                "(the folder holding data/glast/lat/bcf) or set the CALDB variable"
            )
        caldb = env
    root = Path(caldb).expanduser()
    candidates = [
        root / "data" / "glast" / "lat" / "bcf",
        root / "glast" / "lat" / "bcf",
        root / "lat" / "bcf",
        root / "bcf",
        root,
    ]
    for c in candidates:
        if c.is_dir() and any((c / sub).is_dir() for sub in _SUBDIRS.values()):
            return c.resolve()
    raise InputFileError(
        f"CALDB folder {str(root)!r} holds no LAT response files: expected the CALDB root "
        f"(with data/glast/lat/bcf/{{ea,psf,edisp}}) or the bcf folder itself"
    )


def _index_path(bcf: Path) -> Path | None:
    for p in (bcf.parent / "caldb.indx.gz", bcf.parent / "caldb.indx"):
        if p.exists():
            return p
    return None


# the index's CAL_CNAM of each table of an event type (_REQUIRED: those it must list)
_INDEX_CNAMS = {
    "aeff": "EFF_AREA",
    "psf": "RPSF",
    "edisp": "EDISP",
    "phi_dependence": "PHI_DEP",
    "efficiency": "EFFICIENCY_PARS",
    "psf_scaling": "PSF_SCALING",
    "edisp_scaling": "EDISP_SCALING",
}
_REQUIRED = ("aeff", "psf", "edisp")


@dataclass(frozen=True)
class CaldbIndexEntry:
    """One row of a CALDB index: IRF name (``VERSION`` boundary), event type
    (``DETNAM``), table kind (``CAL_CNAM``), the file as listed (``CAL_DIR/CAL_FILE``)
    and as found on disk (None when absent), and the HDU number (``CAL_XNO``)."""

    irfs: str
    event_type: str
    cnam: str
    listed: str
    path: Path | None
    hdu: int
    row: int


def _text(v) -> str:
    return " ".join(str(x) for x in np.atleast_1d(v)).strip()


def _listed_file(index: Path, bcf: Path, cal_dir: str, cal_file: str) -> Path | None:
    """The file a row names: ``CAL_DIR`` is relative to the CALDB root (the index sits in
    ``<root>/data/glast/lat``); a folder moved as a whole is found through the part of
    ``CAL_DIR`` below ``bcf``.  ``x.fits`` may be stored as ``x.fits.gz`` and back."""
    names = [cal_file]
    names.append(cal_file[:-3] if cal_file.endswith(".gz") else cal_file + ".gz")
    d = cal_dir.strip("/")
    folders = [anc / d for anc in list(index.parents)[:4]]
    if "bcf/" in d + "/":
        folders.append(bcf / d.split("bcf", 1)[1].strip("/"))
    folders.append(bcf / Path(d).name)
    for f in folders:
        for n in names:
            if (f / n).is_file():
                return f / n
    return None


def read_caldb_index(caldb: str | os.PathLike | None = None) -> tuple[CaldbIndexEntry, ...]:
    """The rows of the CALDB index beside the ``bcf`` folder (empty when there is none)
    whose ``CAL_QUAL`` is 0 and that name an IRF (a ``VERSION(...)`` boundary).

    A file that is not a CALDB index (no ``CIF`` table with the columns DETNAM, CAL_DIR,
    CAL_FILE, CAL_CNAM, CAL_CBD, CAL_XNO) raises :class:`FileFormatError` naming it."""
    bcf = resolve_caldb(caldb)
    idx = _index_path(bcf)
    if idx is None:
        return ()
    st = idx.stat()
    return _read_index_cached(str(idx), str(bcf), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _read_index_cached(idx: str, bcf: str, _mtime: int, _size: int
                       ) -> tuple[CaldbIndexEntry, ...]:
    from astropy.io import fits

    need = ("DETNAM", "CAL_DIR", "CAL_FILE", "CAL_CNAM", "CAL_CBD", "CAL_XNO")
    try:
        with fits.open(idx) as hdul:
            if "CIF" not in [h.name.upper() for h in hdul]:
                raise FileFormatError(
                    f"CALDB index {idx!r} has no CIF table; HDUs: "
                    f"{', '.join(h.name for h in hdul)}")
            data = hdul["CIF"].data
            cols = [c.upper() for c in data.columns.names]
            missing = [c for c in need if c not in cols]
            if missing:
                raise FileFormatError(
                    f"CALDB index {idx!r} lacks the columns {', '.join(missing)} of a "
                    f"CALDB index (CIF); columns: {', '.join(cols)}")
            rows = {c: list(data[c]) for c in need}
            qual = list(data["CAL_QUAL"]) if "CAL_QUAL" in cols else [0] * len(data)
    except OSError as exc:
        raise FileFormatError(f"cannot read CALDB index {idx!r}: {exc}") from None
    out = []
    version = re.compile(r"VERSION\(([^)]+)\)", re.IGNORECASE)
    for i in range(len(qual)):
        if int(qual[i]) != 0:
            continue
        m = version.search(_text(rows["CAL_CBD"][i]))
        if m is None:
            continue
        cal_dir, cal_file = _text(rows["CAL_DIR"][i]), _text(rows["CAL_FILE"][i])
        out.append(CaldbIndexEntry(
            irfs=m.group(1).strip(),
            event_type=_text(rows["DETNAM"][i]).upper(),
            cnam=_text(rows["CAL_CNAM"][i]).upper(),
            listed=f"{cal_dir}/{cal_file}",
            path=_listed_file(Path(idx), Path(bcf), cal_dir, cal_file),
            hdu=int(rows["CAL_XNO"][i]),
            row=i + 1,
        ))
    return tuple(out)


def _index_names(bcf: Path) -> tuple[str, ...]:
    """IRF names listed in the CALDB index, in index order."""
    names: list[str] = []
    for e in read_caldb_index(bcf):
        if e.irfs not in names:
            names.append(e.irfs)
    return tuple(names)


def _file_names(bcf: Path) -> list[str]:
    names = set()
    pat = re.compile(r"^aeff_(.+?)_(FB|PSF|EDISP|front|back)\.fits(\.gz)?$")
    ea = bcf / "ea"
    if ea.is_dir():
        for f in ea.iterdir():
            m = pat.match(f.name)
            if m:
                names.add(m.group(1))
    return sorted(names)


def caldb_irf_names(caldb: str | os.PathLike | None = None, *, with_files: bool = False
                    ) -> list[str]:
    """IRF names the CALDB offers: those in its index plus those with effective-area
    files.  ``with_files=True`` keeps only the names whose files are present."""
    bcf = resolve_caldb(caldb)
    present = []
    for e in read_caldb_index(bcf):
        if e.cnam == "EFF_AREA" and e.path is not None and e.irfs not in present:
            present.append(e.irfs)
    present += [n for n in _file_names(bcf) if n not in present]
    if with_files:
        return present
    out = list(_index_names(bcf))
    for n in present:
        if n not in out:
            out.append(n)
    return out


# --------------------------------------------------------------------------------------
# event types
# --------------------------------------------------------------------------------------
def evtype_mask(evtype) -> int:
    """The bit mask of ``evtype`` (an int, a type name, or a list of names/ints)."""
    if isinstance(evtype, (bool, np.bool_)):
        raise IRFError(f"event type {evtype!r} is not a bit mask or a type name")
    if isinstance(evtype, (int, np.integer)):
        return int(evtype)
    if isinstance(evtype, str):
        key = evtype.strip().upper()
        if key in EVENT_TYPE_BITS:
            return EVENT_TYPE_BITS[key]
        if key in PARTITIONS:
            return sum(EVENT_TYPE_BITS[n] for n in PARTITIONS[key])
        if key.isdigit():
            return int(key)
        raise IRFError(
            f"unknown event type {evtype!r}; known: {', '.join(EVENT_TYPE_BITS)} "
            f"or a bit mask such as 3 (FRONT+BACK) or 60 (PSF0..3)"
        )
    try:
        return sum(evtype_mask(e) for e in evtype)
    except TypeError:
        raise IRFError(f"event type {evtype!r} is not a bit mask or a type name") from None


def evtype_names(evtype) -> tuple[str, list[str]]:
    """(partition, event-type names) selected by a Fermipy ``evtype`` bit mask.

    >>> evtype_names(3)
    ('FB', ['FRONT', 'BACK'])
    >>> evtype_names(60)[1]
    ['PSF0', 'PSF1', 'PSF2', 'PSF3']

    A mask selecting types of two partitions (e.g. 5 = FRONT + PSF0), bits outside the
    known types, or no type at all is an :class:`IRFError` naming the mask.
    """
    mask = evtype_mask(evtype)
    known = sum(EVENT_TYPE_BITS.values())
    if mask <= 0:
        raise IRFError(f"event type mask {mask} selects no event type")
    if mask & ~known:
        raise IRFError(
            f"event type mask {mask} has bits {mask & ~known} that are no LAT event type "
            f"(FRONT=1, BACK=2, PSF0..3=4..32, EDISP0..3=64..512)"
        )
    hit = {p: [n for n in names if mask & EVENT_TYPE_BITS[n]] for p, names in PARTITIONS.items()}
    parts = [p for p, names in hit.items() if names]
    if len(parts) != 1:
        desc = "; ".join(f"{p}: {'+'.join(hit[p])}" for p in parts)
        raise IRFError(
            f"event type mask {mask} mixes partitions ({desc}); one analysis component "
            f"uses types of one partition only, e.g. 3 (FRONT+BACK), 60 (PSF0..3) or "
            f"960 (EDISP0..3)"
        )
    return parts[0], hit[parts[0]]


# --------------------------------------------------------------------------------------
# file lookup
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IRFFiles:
    """Where the responses of one event type live: ``(file, extname)`` pairs."""

    irfs: str
    event_type: str
    is_front: bool
    aeff: tuple[Path, str]
    psf: tuple[Path, str]
    edisp: tuple[Path, str]
    phi_dependence: tuple[Path, str] | None = None
    efficiency: tuple[Path, str] | None = None
    psf_scaling: tuple[Path, str] | None = None
    edisp_scaling: tuple[Path, str] | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def _clean_irf_name(irfs: str) -> str:
    name = str(irfs).strip()
    if "::" in name:
        name = name.split("::", 1)[0]
    return name


def _find_file(bcf: Path, kind: str, stem: str) -> Path | None:
    base = bcf / _SUBDIRS[kind]
    for ext in (".fits.gz", ".fits"):
        p = base / f"{kind}_{stem}{ext}"
        if p.exists():
            return p
    return None


def _hdu_names(path: Path) -> tuple[str, ...]:
    return _hdu_names_cached(str(path))


@functools.lru_cache(maxsize=64)
def _hdu_names_cached(path: str) -> tuple[str, ...]:
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            return tuple(h.name.upper() for h in hdul[1:])
    except OSError as exc:
        raise FileFormatError(f"cannot read IRF file {path!r}: {exc}") from None


def _pick(path: Path, *candidates: str) -> tuple[Path, str] | None:
    names = _hdu_names(path)
    for c in candidates:
        if c.upper() in names:
            return (path, c.upper())
    return None


def find_irf_files(irfs: str, evtype=3, caldb: str | os.PathLike | None = None
                   ) -> dict[str, IRFFiles]:
    """The response files of IRF ``irfs`` for each event type selected by ``evtype``.

    Returns an ordered mapping event-type name -> :class:`IRFFiles`.  An unknown IRF name
    raises :class:`IRFError` listing the names the CALDB offers; a known name whose files
    are missing raises :class:`InputFileError` naming the missing file.
    """
    bcf = resolve_caldb(caldb)
    name = _clean_irf_name(irfs)
    partition, types = evtype_names(evtype)
    indexed = {e.irfs.upper(): e.irfs for e in read_caldb_index(bcf)}
    if name.upper() in indexed:
        return _files_from_index(bcf, indexed[name.upper()], evtype, types)
    upper = {n.upper(): n for n in caldb_irf_names(bcf)}
    if name.upper() in upper:
        name = upper[name.upper()]
    out: dict[str, IRFFiles] = {}

    p8 = {k: _find_file(bcf, k, f"{name}_{partition}") for k in _SUBDIRS}
    p7 = {
        side: {k: _find_file(bcf, k, f"{name}_{side}") for k in _SUBDIRS}
        for side in ("front", "back")
    }
    have_p8 = p8["aeff"] is not None
    have_p7 = p7["front"]["aeff"] is not None or p7["back"]["aeff"] is not None
    if not have_p8 and not have_p7:
        offered = caldb_irf_names(bcf)
        present = caldb_irf_names(bcf, with_files=True)
        if name.upper() in upper or any(
            _find_file(bcf, "aeff", f"{name}_{p}") for p in PARTITIONS
        ):
            raise InputFileError(
                f"IRF {name!r} has no {partition} response files in {bcf}: expected "
                f"{bcf / 'ea' / f'aeff_{name}_{partition}.fits.gz'}; IRFs with files "
                f"here: {', '.join(present) or 'none'}"
            )
        index = _index_path(bcf)
        where = f"the CALDB index {index}" if index is not None else \
            f"the CALDB at {bcf} (no caldb.indx beside it)"
        raise IRFError(
            f"unknown IRF name {irfs!r}; {where} offers: "
            f"{', '.join(offered) or 'none'} (files present for: "
            f"{', '.join(present) or 'none'})"
        )

    if have_p8:
        for kind in _SUBDIRS:
            if p8[kind] is None:
                raise InputFileError(
                    f"IRF {name!r}: missing {kind} file "
                    f"{bcf / _SUBDIRS[kind] / f'{kind}_{name}_{partition}.fits.gz'}"
                )
        for t in types:
            aeff = _pick(p8["aeff"], f"EFFECTIVE AREA_{t}")
            psf = _pick(p8["psf"], f"RPSF_{t}")
            edisp = _pick(p8["edisp"], f"ENERGY DISPERSION_{t}")
            for kind, hit, ext in (("aeff", aeff, f"EFFECTIVE AREA_{t}"),
                                   ("psf", psf, f"RPSF_{t}"),
                                   ("edisp", edisp, f"ENERGY DISPERSION_{t}")):
                if hit is None:
                    raise FileFormatError(
                        f"IRF file {p8[kind]} has no HDU {ext!r} for event type {t}; "
                        f"HDUs: {', '.join(_hdu_names(p8[kind]))}"
                    )
            out[t] = IRFFiles(
                irfs=name,
                event_type=t,
                is_front=(t != "BACK"),
                aeff=aeff,
                psf=psf,
                edisp=edisp,
                phi_dependence=_pick(p8["aeff"], f"PHI_DEPENDENCE_{t}"),
                efficiency=_pick(p8["aeff"], f"EFFICIENCY_PARAMS_{t}"),
                psf_scaling=_pick(p8["psf"], f"PSF_SCALING_PARAMS_{t}"),
                edisp_scaling=_pick(p8["edisp"], f"EDISP_SCALING_PARAMS_{t}"),
            )
        return out

    # Pass 7 style: one file per conversion type
    if partition != "FB":
        raise IRFError(
            f"IRF {name!r} has only FRONT/BACK files (Pass 7 layout); event type mask "
            f"{evtype_mask(evtype)} selects {'+'.join(types)}"
        )
    for t in types:
        side = t.lower()
        files = p7[side]
        for kind in _SUBDIRS:
            if files[kind] is None:
                raise InputFileError(
                    f"IRF {name!r}: missing {kind} file "
                    f"{bcf / _SUBDIRS[kind] / f'{kind}_{name}_{side}.fits.gz'}"
                )
        aeff = _pick(files["aeff"], "EFFECTIVE AREA")
        psf = _pick(files["psf"], "RPSF")
        edisp = _pick(files["edisp"], "ENERGY DISPERSION")
        for kind, hit, ext in (("aeff", aeff, "EFFECTIVE AREA"), ("psf", psf, "RPSF"),
                               ("edisp", edisp, "ENERGY DISPERSION")):
            if hit is None:
                raise FileFormatError(
                    f"IRF file {files[kind]} has no HDU {ext!r}; HDUs: "
                    f"{', '.join(_hdu_names(files[kind]))}"
                )
        out[t] = IRFFiles(
            irfs=name,
            event_type=t,
            is_front=(t == "FRONT"),
            aeff=aeff,
            psf=psf,
            edisp=edisp,
            phi_dependence=_pick(files["aeff"], "PHI_DEPENDENCE"),
            efficiency=_pick(files["aeff"], "EFFICIENCY_PARAMS"),
            psf_scaling=_pick(files["psf"], "PSF_SCALING_PARAMS"),
            edisp_scaling=_pick(files["edisp"], "EDISP_SCALING_PARAMS"),
        )
    return out


def _index_hdu(entry: CaldbIndexEntry, index: Path) -> tuple[Path, str]:
    """(file, EXTNAME) of the HDU an index row points to."""
    names = _hdu_names(entry.path)
    if not 1 <= entry.hdu <= len(names):
        raise FileFormatError(
            f"CALDB index {index} row {entry.row} ({entry.irfs} {entry.event_type} "
            f"{entry.cnam}) points to HDU {entry.hdu} of {entry.path}, which has "
            f"{len(names)} extensions")
    ext = names[entry.hdu - 1]
    if not ext or names.count(ext) > 1:
        raise FileFormatError(
            f"HDU {entry.hdu} of {entry.path} (CALDB index {index} row {entry.row}) has "
            f"{'no EXTNAME' if not ext else f'the EXTNAME {ext!r} of another HDU'}; "
            f"a response table needs a name of its own")
    return (entry.path, ext)


def _files_from_index(bcf: Path, name: str, evtype, types: list[str]) -> dict[str, IRFFiles]:
    """The response files of an IRF the CALDB index lists, for the event types
    ``types``: for each type and table kind the index row (the last one when several
    qualify), its file and HDU."""
    index = _index_path(bcf)
    rows = [e for e in read_caldb_index(bcf) if e.irfs == name]
    have = []
    for e in rows:
        if e.event_type not in have:
            have.append(e.event_type)
    missing = [t for t in types if t not in have]
    if missing:
        raise IRFError(
            f"IRF {name!r} has no {'+'.join(missing)} responses in the CALDB index {index} "
            f"(event type mask {evtype_mask(evtype)}); the index lists it for "
            f"{', '.join(have) or 'no event type'}")
    out: dict[str, IRFFiles] = {}
    for t in types:
        found: dict[str, tuple[Path, str] | None] = {}
        for kind, cnam in _INDEX_CNAMS.items():
            hits = [e for e in rows if e.event_type == t and e.cnam == cnam]
            if not hits:
                if kind in _REQUIRED:
                    listed = sorted({e.cnam for e in rows if e.event_type == t})
                    raise IRFError(
                        f"IRF {name!r} {t}: the CALDB index {index} lists no {cnam} table "
                        f"(it lists {', '.join(listed)})")
                found[kind] = None
                continue
            entry = hits[-1]
            if entry.path is None:
                root = list(index.parents)[:4][-1]
                raise InputFileError(
                    f"IRF {name!r} {t} {cnam}: the CALDB index {index} (row {entry.row}) "
                    f"lists {entry.listed}, which is not under {root} nor in {bcf}")
            found[kind] = _index_hdu(entry, index)
        out[t] = IRFFiles(irfs=name, event_type=t, is_front=(t != "BACK"), **found)
    return out


# --------------------------------------------------------------------------------------
# table readers
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=128)
def _read_table_cached(path: str, extname: str) -> tuple[tuple[str, np.ndarray], ...]:
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            if extname.upper() not in [h.name.upper() for h in hdul]:
                raise FileFormatError(
                    f"IRF file {path!r} has no HDU {extname!r}; HDUs: "
                    f"{', '.join(h.name for h in hdul[1:])}"
                )
            hdu = hdul[extname]
            cols = []
            for name in hdu.columns.names:
                arr = np.array(hdu.data[name], dtype=np.float64)
                arr.setflags(write=False)
                cols.append((name.upper(), arr))
            return tuple(cols)
    except OSError as exc:
        raise FileFormatError(f"cannot read IRF file {path!r}: {exc}") from None


def read_table(path, extname: str) -> dict[str, np.ndarray]:
    """All columns of a binary-table HDU as read-only float64 arrays (one entry per row
    along the first axis; array cells keep their TDIM shape)."""
    return dict(_read_table_cached(str(path), str(extname)))


def _grid_table(path: Path, extname: str, value_cols: list[str] | None = None) -> dict:
    """Read an (energy, cos theta) parameter table of the first row."""
    cols = read_table(path, extname)
    for c in ("ENERG_LO", "ENERG_HI", "CTHETA_LO", "CTHETA_HI"):
        if c not in cols:
            raise FileFormatError(
                f"IRF table {path}[{extname}] has no column {c!r}; columns: "
                f"{', '.join(cols)}"
            )
    elo = cols["ENERG_LO"][0].ravel()
    ehi = cols["ENERG_HI"][0].ravel()
    clo = cols["CTHETA_LO"][0].ravel()
    chi = cols["CTHETA_HI"][0].ravel()
    names = value_cols or [c for c in cols if c not in ("ENERG_LO", "ENERG_HI",
                                                        "CTHETA_LO", "CTHETA_HI")]
    values = {}
    for n in names:
        if n not in cols:
            raise FileFormatError(
                f"IRF table {path}[{extname}] has no column {n!r}; columns: "
                f"{', '.join(cols)}"
            )
        v = cols[n][0]
        if v.size != elo.size * clo.size:
            raise FileFormatError(
                f"IRF table {path}[{extname}] column {n!r} has {v.size} values, expected "
                f"{elo.size} energies x {clo.size} cos(theta) = {elo.size * clo.size}"
            )
        values[n] = v.reshape(clo.size, elo.size)
    return {"energ_lo": elo, "energ_hi": ehi, "ctheta_lo": clo, "ctheta_hi": chi,
            "values": values, "names": names}


def read_aeff(files: IRFFiles) -> dict:
    """Effective-area table (m2, shape (n_costheta, n_energy)), the phi-dependence
    parameter tables when present, and the efficiency parameter rows."""
    out = _grid_table(files.aeff[0], files.aeff[1], ["EFFAREA"])
    out["phi"] = (_grid_table(files.phi_dependence[0], files.phi_dependence[1])
                  if files.phi_dependence else None)
    if files.efficiency:
        cols = read_table(*files.efficiency)
        if "EFFICIENCY_PARS" not in cols:
            raise FileFormatError(
                f"IRF table {files.efficiency[0]}[{files.efficiency[1]}] has no "
                f"EFFICIENCY_PARS column"
            )
        out["efficiency"] = np.asarray(cols["EFFICIENCY_PARS"], dtype=np.float64).reshape(-1, 6)
    else:
        out["efficiency"] = None
    return out


def read_psf(files: IRFFiles) -> dict:
    """King-function parameter tables (NCORE, NTAIL, SCORE, STAIL, GCORE, GTAIL), the
    PSF scaling parameters and the file format version (PSFVER)."""
    from astropy.io import fits

    names = ["NCORE", "NTAIL", "SCORE", "STAIL", "GCORE", "GTAIL"]
    out = _grid_table(files.psf[0], files.psf[1], names)
    with fits.open(files.psf[0]) as hdul:
        out["psfver"] = int(hdul[files.psf[1]].header.get("PSFVER", 3))
    if files.psf_scaling is None:
        raise FileFormatError(f"PSF file {files.psf[0]} has no PSF_SCALING_PARAMS HDU")
    out["scaling"] = read_table(*files.psf_scaling)["PSFSCALE"].ravel().copy()
    return out


def read_edisp(files: IRFFiles) -> dict:
    """Energy-dispersion parameter tables, the scaling parameters and EDISPVER."""
    from astropy.io import fits

    out = _grid_table(files.edisp[0], files.edisp[1])
    with fits.open(files.edisp[0]) as hdul:
        hdr = hdul[files.edisp[1]].header
        ver = hdr.get("EDISPVER")
    if ver is None:
        ver = 3 if "F" in out["values"] else 2
    out["edispver"] = int(ver)
    if files.edisp_scaling is None:
        raise FileFormatError(f"edisp file {files.edisp[0]} has no EDISP_SCALING_PARAMS HDU")
    out["scaling"] = read_table(*files.edisp_scaling)["EDISPSCALE"].ravel().copy()
    return out
