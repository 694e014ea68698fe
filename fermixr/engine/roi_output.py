"""``write_roi``'s files: the ROI as Fermipy writes it (``<prefix>.npy``, ``.fits``,
``_NN.xml``, ``.yaml``) plus ``<prefix>.zarr`` (one row per source), the model cubes and the
plots; every file is written to a temporary sibling and renamed into place, so a reader
never sees a half-written one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..likelihood.roi import AnalysisState


def roi_files(outdir, n_components: int, outfile="fit_roi", save_model_map=False,
              make_plots=False) -> dict:
    """The files ``write_roi(outfile, ...)`` writes, by key (npy, fits, yaml, zarr, xml_NN,
    with ``save_model_map`` mcube_NN, with ``make_plots`` counts_spectrum and counts_map,
    suffixed _NN when there are several components): ``outfile`` relative to the output
    directory, a .npy or .fits suffix dropped."""
    prefix = Path(outfile)
    if not prefix.is_absolute():
        prefix = Path(outdir) / prefix
    prefix = prefix.with_suffix("") if prefix.suffix in (".npy", ".fits") else prefix
    n = int(n_components)

    def at(tail):
        return prefix.with_name(prefix.name + tail)

    files = {ext: at("." + ext) for ext in ("npy", "fits", "yaml", "zarr")}
    files.update({f"xml_{i:02d}": at(f"_{i:02d}.xml") for i in range(n)})
    if save_model_map:
        files.update({f"mcube_{i:02d}": at(f"_mcube_{i:02d}.fits") for i in range(n)})
    if make_plots:
        for i in range(n):
            sfx = f"_{i:02d}" if n > 1 else ""
            for kind in ("spectrum", "map"):
                files[f"counts_{kind}{sfx}"] = at(f"_counts_{kind}{sfx}.png")
    return files


def file_record(path) -> list | None:
    """[size in bytes, sha256] of a file; of a directory (the .zarr), its total size and
    the sha256 over its files' relative names and contents; None when ``path`` is absent."""
    from .hashing import file_sha256

    path = Path(path)
    if path.is_file():
        return [path.stat().st_size, file_sha256(path)]
    if not path.is_dir():
        return None
    import hashlib

    h, size = hashlib.sha256(), 0
    for f in sorted(q for q in path.rglob("*") if q.is_file()):
        n = f.stat().st_size
        size += n
        h.update(f"{f.relative_to(path).as_posix()}\0{n}\0{file_sha256(f)}\n".encode())
    return [size, h.hexdigest()]


def files_record(paths: dict) -> dict:
    """{key: {"path", "size", "sha256"}} of the files ``write_roi`` wrote."""
    out = {}
    for k, p in paths.items():
        rec = file_record(p)
        if rec is not None:
            out[k] = {"path": str(Path(p).resolve()), "size": rec[0], "sha256": rec[1]}
    return out


def files_differ(files: dict, recorded: dict) -> list[str]:
    """The keys of ``files`` (as :func:`roi_files` gives them) that are absent, or whose
    path, size or content differ from ``recorded`` (:func:`files_record` at write time)."""
    bad = []
    for k, p in files.items():
        rec = recorded.get(k) or {}
        if rec.get("path") != str(Path(p).resolve()):
            bad.append(k)
            continue
        now = file_record(p)
        if now is None or now != [rec.get("size"), rec.get("sha256")]:
            bad.append(k)
    return bad


def write_atomic(path: Path, write) -> Path:
    """``write(tmp_path)`` then rename onto ``path`` (the temporary sibling keeps the
    suffix, so writers that pick a format by suffix write the right one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def kept_files(files: dict, opts: dict) -> dict:
    """The files of ``files`` (kind -> path: fits, npy, png) that options ``opts`` have
    written: fits with write_fits, npy with write_npy (both default true), png with
    make_plots (default false)."""
    keep = {"fits": opts.get("write_fits", True), "npy": opts.get("write_npy", True),
            "png": opts.get("make_plots", False)}
    return {k: p for k, p in files.items() if keep[k]}


def save_npy_atomic(path: Path, doc) -> Path:
    """A pickled ``.npy`` document written through :func:`write_atomic`."""
    def save(tmp):
        with open(tmp, "wb") as f:
            np.save(f, doc, allow_pickle=True)

    return write_atomic(path, save)


def write_model_xml(model, path) -> Path:
    from ..model.xml import write_xml

    path = Path(path)
    if path.suffix != ".xml":
        path = path.with_suffix(".xml")
    return write_xml(model, path)          # atomic itself (relative names need the folder)


def write_roi(state: AnalysisState, config: dict, outdir, outfile="fit_roi",
              save_model_map=False, make_plots=False) -> dict:
    """Write the ROI of ``state`` (see the module doc); returns the paths written."""
    import json

    import yaml

    from .._version import __version__
    from ..estimators.sourcedict import source_dict, sources_dataset, sources_table
    from ..likelihood.roi import loglike
    from .store import write_dataset_atomic

    files = roi_files(outdir, len(state.components), outfile, save_model_map, make_plots)
    files["npy"].parent.mkdir(parents=True, exist_ok=True)
    sources = {s.name: source_dict(state, s.name) for s in state.model}
    roi = {"loglike": loglike(state),
           "model": {"sources": [s.to_dict() for s in state.model]},
           "npred": float(sum(v["npred"] for v in sources.values()))}
    paths = {}

    paths["npy"] = save_npy_atomic(files["npy"], {"roi": roi, "sources": sources,
                                                  "config": config, "version": __version__})
    table = sources_table(sources)
    table.meta["CONFIG"] = json.dumps(config, sort_keys=True, default=str)
    paths["fits"] = write_atomic(files["fits"], lambda tmp: table.write(tmp, format="fits",
                                                                   overwrite=True))
    for i in range(len(state.components)):
        paths[f"xml_{i:02d}"] = write_model_xml(state.model, files[f"xml_{i:02d}"])
    text = yaml.safe_dump(config, sort_keys=False)
    paths["yaml"] = write_atomic(files["yaml"], lambda tmp: tmp.write_text(text))
    paths["zarr"] = write_dataset_atomic(sources_dataset(sources), files["zarr"])
    if save_model_map or make_plots:
        from ..estimators.ts import model_cubes

        cubes = model_cubes(state)
    if save_model_map:
        from ..io.st_fits import write_ccube

        for i, (comp, m) in enumerate(zip(state.components, cubes)):
            ref = comp.template
            ds = ref.drop_vars("counts").assign(
                model_counts=(ref["counts"].dims, m.reshape(ref["counts"].shape)))
            key = f"mcube_{i:02d}"
            paths[key] = write_atomic(files[key], lambda tmp, ds=ds: write_ccube(
                ds, tmp, config=config, var="model_counts", dtype=np.float32))
    if make_plots:
        paths.update(_write_plots(state, files, cubes))
    return paths


def _write_plots(state: AnalysisState, files: dict, cubes) -> dict:
    """The counts spectrum (counts against the model and its brightest sources, with
    residuals) and the counts map (counts, model and residual significance summed over
    energy) of each component."""
    from ..estimators.ts import model_cubes
    from ..geom.wcs import WcsGeom
    from ..plot import counts_maps_figure, counts_spectrum_figure, save_figure

    markers = [(s.name, *s.skydir) for s in state.model if s.skydir is not None]
    per_source = {s.name: model_cubes(state, s.name) for s in state.model}
    many = len(state.components) > 1
    out = {}
    for i, (comp, m) in enumerate(zip(state.components, cubes)):
        sfx = f"_{i:02d}" if many else ""
        title = f"component {i}" if many else None
        per_src = {n: c[i].sum(axis=1) for n, c in per_source.items()}
        fig = counts_spectrum_figure(comp.edges, comp.counts.sum(axis=1), m.sum(axis=1),
                                     per_src, title=title)
        key = f"counts_spectrum{sfx}"
        out[key] = save_figure(fig, files[key])            # atomic itself
        geom = comp.geom
        radius = 2.5 * abs(geom.cdelt[1]) if isinstance(geom, WcsGeom) else 0.0
        fig = counts_maps_figure(geom, comp.counts.sum(axis=0), m.sum(axis=0), markers,
                                 center_radec=state.roi_center, radius_deg=radius,
                                 title=title)
        key = f"counts_map{sfx}"
        out[key] = save_figure(fig, files[key])
    return out
