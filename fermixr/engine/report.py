"""``fermixr report RUN``: one self-contained HTML page about a run.

The page needs nothing but itself: figures are PNGs inlined as data URIs, the style sheet
is inline, there is no script.  It shows, from the run's products only (nothing is
recomputed):

* the fit: optimizer, quality, status, log L and the free parameters of every fit step,
  with warnings for a failed fit or a quality below 3;
* the sources of the last ``write_roi`` product: TS, npred, flux (1-100 GeV family and the
  full range), spectral index, offset from the ROI centre;
* every figure the run wrote into its folder (write_roi, sed, tsmap, residmap, ...), and a
  counts map and counts spectrum of each component made here from the counts products;
* every product with its state (fresh / stale / ...), key, computing time and provenance
  (step version, parameters, input files), and the resolved recipe.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from .store import read_marker

__all__ = ["build_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#1d2330;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #cdd3dd;padding-bottom:.2em;
margin-top:1.8em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}th,td{padding:.25em .6em;
border-bottom:1px solid #e4e7ec;text-align:right}th{background:#f3f5f8}
td.l,th.l{text-align:left}.warn{background:#fff4e0;border-left:4px solid #e89a1c;
padding:.5em .8em;margin:.4em 0}.bad{background:#fde8e8;border-left:4px solid #c62828;
padding:.5em .8em;margin:.4em 0}.ok{color:#2e7d32}.meta{color:#5b6472;font-size:.9em}
figure{display:inline-block;margin:.6em;vertical-align:top}figure img{max-width:520px;
border:1px solid #e4e7ec}figcaption{font-size:.85em;color:#5b6472;text-align:center}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em}
details{margin:.3em 0}summary{cursor:pointer}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(v, fmt=".4g") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not math.isfinite(f):
        return "&ndash;"
    return format(f, fmt)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(data: bytes, caption: str) -> str:
    return (f'<figure><img src="{_png_uri(data)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _fig_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _component_figures(run) -> list[str]:
    """A counts map and a counts spectrum of each component's counts product."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for name in sorted(n for n in run if n == "counts" or n.startswith("counts/")):
        ds = run[name].load()
        c = np.asarray(ds["counts"].values, dtype=float)
        e = np.asarray(ds["energy"].values, dtype=float)
        fig, ax = plt.subplots(1, 2, figsize=(9.5, 3.6),
                               gridspec_kw={"wspace": 0.45})
        img = c.sum(axis=0)
        if img.ndim == 2:
            im = ax[0].imshow(img, origin="lower", cmap="magma")
            fig.colorbar(im, ax=ax[0], label="counts")
            ax[0].set_title(f"{name}: counts summed over energy")
        else:                                    # HEALPix: the pixel values in order
            ax[0].plot(img, lw=0.5)
            ax[0].set_xlabel("HEALPix pixel")
            ax[0].set_title(f"{name}: counts per pixel")
        per_bin = c.reshape(c.shape[0], -1).sum(axis=1)
        ax[1].step(e, per_bin, where="mid")
        ax[1].set_xscale("log")
        ax[1].set_xlabel("energy [MeV]")
        ax[1].set_ylabel("counts per bin")
        ax[1].set_title(f"{int(c.sum())} counts")
        out.append(_figure(_fig_bytes(fig), f"{name}: counts map and spectrum"))
    return out


def _fit_section(run, steps) -> tuple[str, list[str]]:
    from ..model.skymodel import SkyModel
    from .summaries import FIT_QUALITY

    parts, warnings = [], []
    names = [n for n in run if n == "fit" or n.startswith("fit_")]
    if not names:
        return "<p>No fit step in this run.</p>", warnings
    for n in sorted(names, key=lambda s: (len(s), s)):
        ds = run[n].load()
        a = ds.attrs
        q = a.get("fit_quality")
        ok = a.get("fit_success", True)
        cls = "ok" if ok and q == 3 else ""
        parts.append(f"<h3>{_e(n)}</h3><p class='{cls}'>optimizer {_e(a.get('optimizer'))}; "
                     f"quality {_e(q)} ({_e(FIT_QUALITY.get(q, '?'))}); status "
                     f"{_e(a.get('fit_status'))}; {_e(a.get('message', ''))}; log L = "
                     f"{_num(a.get('loglike'), '.3f')}; EDM = {_num(a.get('edm'), '.3g')}</p>")
        if not ok:
            warnings.append(f"{n}: the fit FAILED ({a.get('message', '')}); the model kept "
                            "its values from before it")
        elif q is not None and q < 3:
            warnings.append(f"{n}: fit quality {q} ({FIT_QUALITY.get(q, '?')}): the "
                            "errors are not from a full accurate covariance")
        if "param" not in ds.coords or ds.sizes.get("param", 0) == 0:
            continue
        model = None
        try:
            model = SkyModel.from_dict(json.loads(a["model"]))
        except Exception:         # the report never fails on an old product's model
            pass
        rows = []
        for p, v, err in zip(np.asarray(ds["param"].values), np.asarray(ds["value"].values),
                             np.asarray(ds["error"].values)):
            scale = 1.0
            if model is not None and ":" in str(p):
                src, par = str(p).rsplit(":", 1)
                try:
                    scale = float(model.find(src).param(par).scale)
                except Exception:
                    pass
            rows.append(f"<tr><td class='l'>{_e(p)}</td><td>{_num(v, '.6g')}</td>"
                        f"<td>{_num(err, '.3g')}</td><td>{_num(scale, '.3g')}</td>"
                        f"<td>{_num(float(v) * scale, '.6g')}</td></tr>")
        parts.append("<table><tr><th class='l'>parameter</th><th>value</th><th>error</th>"
                     "<th>scale</th><th>physical</th></tr>" + "".join(rows) + "</table>")
    for s in steps:
        if s.get("status") == "failed":
            warnings.append(f"step {s['name']} failed: {s.get('message', '')}")
    return "".join(parts), warnings


def _sources_section(run) -> str:
    names = [n for n in run if n == "roi" or n.startswith("roi_")]
    if not names:
        return ("<p>No <code>write_roi</code> step in this run: add one to the recipe's "
                "steps for the source table.</p>")
    name = sorted(names, key=lambda s: (len(s), s))[-1]
    ds = run[name].load()
    cols = [("SpatialModel", "spatial", None), ("SpectrumType", "spectrum", None),
            ("ts", "TS", ".1f"), ("npred", "npred", ".1f"),
            ("flux1000", "flux 1-100 GeV [cm⁻² s⁻¹]", ".3e"), ("flux1000_err", "±", ".2e"),
            ("flux", "flux [cm⁻² s⁻¹]", ".3e"), ("flux_err", "±", ".2e"),
            ("Spectral_Index", "index", ".3f"), ("offset", "offset [°]", ".3f")]
    cols = [c for c in cols if c[0] in ds]
    head = "<tr><th class='l'>source</th>" + "".join(
        f"<th class='{'l' if f is None else ''}'>{_e(t)}</th>" for _, t, f in cols) + "</tr>"
    rows = []
    for i, s in enumerate(np.asarray(ds["source"].values)):
        cells = []
        for k, _, f in cols:
            v = ds[k].values[i]
            cells.append(f"<td class='l'>{_e(v)}</td>" if f is None else
                         f"<td>{_num(v, f)}</td>")
        rows.append(f"<tr><td class='l'>{_e(s)}</td>{''.join(cells)}</tr>")
    return f"<p class='meta'>from product <code>{_e(name)}</code></p><table>{head}" \
           f"{''.join(rows)}</table>"


def _products_section(run_dir: Path, run) -> tuple[str, list[str]]:
    from .run import list_run

    warnings = []
    try:
        rows = list_run(run_dir)
    except Exception as exc:            # e.g. a run folder from an older version
        rows = []
        warnings.append(f"product states unavailable: {exc}")
    body = []
    for r in rows:
        prov = {}
        try:
            prov = read_marker(run.path(r["name"])) or {}
        except KeyError:
            pass
        if r["state"] not in ("fresh", "(analysis step)") and not str(
                r["state"]).startswith("shared"):
            warnings.append(f"product {r['name']} is {r['state']}")
        detail = ""
        if prov:
            keep = {k: prov[k] for k in ("step_version", "fermixr_version", "committed_utc",
                                         "host", "params", "inputs", "files") if k in prov}
            detail = (f"<details><summary>provenance</summary><pre>"
                      f"{_e(json.dumps(keep, indent=1, sort_keys=True, default=str))}</pre>"
                      "</details>")
        body.append(f"<tr><td class='l'>{_e(r['name'])}</td><td class='l'>{_e(r['step'])}"
                    f"</td><td class='l'>{_e(r['state'])}</td><td class='l'><code>"
                    f"{_e(r['key'])}</code></td><td class='l'>{_e(r['last_run'])}</td>"
                    f"<td>{_num(prov.get('wall_seconds', r['seconds']), '.2f')}</td>"
                    f"<td class='l'>{detail}</td></tr>")
    table = ("<table><tr><th class='l'>product</th><th class='l'>step</th>"
             "<th class='l'>state</th><th class='l'>key</th><th class='l'>last run</th>"
             "<th>compute s</th><th class='l'></th></tr>" + "".join(body) + "</table>")
    return table, warnings


def build_report(run_dir) -> str:
    """The HTML text of the report of ``run_dir``."""
    from .._version import __version__
    from .run import RECIPE_COPY, RunProducts

    run_dir = Path(run_dir).expanduser().resolve()
    if not (run_dir / "run.json").is_file():
        raise InputFileError(f"{str(run_dir)!r} is not a fermixr run folder (no run.json); "
                             "give the --outdir of a `fermixr run`")
    run = RunProducts(run_dir)
    doc = json.loads((run_dir / "run.json").read_text())
    steps = doc.get("analysis_steps", [])
    fit_html, warnings = _fit_section(run, steps)
    products_html, more = _products_section(run_dir, run)
    warnings += more
    figures = [_figure(p.read_bytes(), p.name) for p in sorted(run_dir.glob("*.png"))]
    figures += _component_figures(run)
    recipe = run_dir / RECIPE_COPY
    recipe_html = (f"<details><summary>resolved recipe ({_e(recipe.name)})</summary><pre>"
                   f"{_e(recipe.read_text())}</pre></details>" if recipe.is_file() else "")
    warn_html = "".join(f"<div class='{'bad' if 'FAILED' in w or 'failed' in w else 'warn'}'>"
                        f"{_e(w)}</div>" for w in warnings) or \
        "<p class='ok'>No warnings: every fit converged with quality 3 and every product is " \
        "fresh.</p>"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fermixr report: {_e(run_dir.name)}</title><style>{_CSS}</style></head>
<body>
<h1>fermixr run <code>{_e(run_dir.name)}</code></h1>
<p class="meta">{_e(run_dir)} &middot; last run finished {_e(doc.get('finished_utc', '?'))}
in {_num(doc.get('wall_seconds'), '.2f')} s with fermixr {_e(doc.get('fermixr_version', '?'))}
&middot; report made {_e(now)} by fermixr {_e(__version__)}</p>
<h2 id="warnings">Warnings</h2>{warn_html}
<h2 id="fit">Fit</h2>{fit_html}
<h2 id="sources">Sources</h2>{_sources_section(run)}
<h2 id="figures">Figures</h2>{''.join(figures) or '<p>No figures.</p>'}
<h2 id="products">Products</h2>{products_html}
<h2 id="recipe">Recipe</h2>{recipe_html}
</body></html>
"""


def write_report(run_dir, dest=None) -> Path:
    """Write the report of ``run_dir`` to ``dest`` (default ``RUN/report.html``), atomically;
    returns the path."""
    from .roi_output import write_atomic

    text = build_report(run_dir)
    dest = Path(dest) if dest is not None else Path(run_dir) / "report.html"
    write_atomic(dest, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return dest
