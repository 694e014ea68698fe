"""Export a run's products in the Science Tools' FITS layouts (``fermixr export``).

Files are named as Fermipy names them, with the component suffix even for one component:
``ltcube_00.fits``, ``ccube_00.fits``, ``bexpmap_00.fits``, ``srcmap_00.fits``.  A livetime
cube shared by several components is written once per component name (cheap, and what
Fermipy's file layout expects).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import StoreError
from .run import open_run

_WRITERS = ("ltcube", "counts", "exposure", "srcmaps")


def _components(run) -> list[tuple[str, str]]:
    """(suffix in product names, two-digit file suffix) of each component."""
    prefixes = _WRITERS + ("gti",)
    sfx = sorted({n.split("/", 1)[1] for n in run if "/" in n and n.split("/", 1)[0] in prefixes})
    return [(f"/{s}", s) for s in sfx] or [("", "00")]


def export_run(run_dir, fmt: str = "st", dest=None, config=None, sources=None) -> list[Path]:
    """Write every exportable product of ``run_dir``; return the files written.  ``fmt``
    "gammapy": one Gammapy MapDataset per component and the models of ``sources`` (see
    :mod:`fermixr.engine.gammapy_export`)."""
    from ..io.ltcube import write_ltcube
    from ..io.st_fits import write_ccube, write_expcube, write_srcmaps

    if fmt == "gammapy":
        from .gammapy_export import export_gammapy

        return export_gammapy(run_dir, dest, sources=sources)
    if fmt != "st":
        raise ValueError(f"export format {fmt!r}: 'st' (Science Tools FITS) or 'gammapy' "
                         "(Gammapy MapDatasets)")
    if sources:
        from ..errors import RecipeError

        raise RecipeError(f"--sources {sources}: only the gammapy format exports chosen "
                          "sources; the st format writes every product of the run")
    run = open_run(run_dir)
    dest = Path(dest) if dest else Path(run_dir) / "export"
    written: list[Path] = []
    for name_sfx, file_sfx in _components(run):
        def get(kind):
            n = f"{kind}{name_sfx}"
            return run[n].load() if n in run else None

        gti = get("gti")
        lt = get("ltcube")
        if lt is not None:
            written.append(write_ltcube(lt, dest / f"ltcube_{file_sfx}.fits"))
        counts = get("counts")
        if counts is not None:
            written.append(write_ccube(counts, dest / f"ccube_{file_sfx}.fits", gti=gti, config=config))
        exp = get("exposure")
        if exp is not None:
            written.append(write_expcube(exp, dest / f"bexpmap_{file_sfx}.fits", gti=gti, config=config))
        srcmaps = get("srcmaps")
        if srcmaps is not None and counts is not None:
            written.append(write_srcmaps(srcmaps, counts, dest / f"srcmap_{file_sfx}.fits", gti=gti,
                                         config=config))
    if not written:
        raise StoreError(f"run {str(run_dir)!r} holds no product that can be exported "
                         f"({', '.join(_WRITERS)})")
    return written
