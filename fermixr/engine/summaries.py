"""Text summaries of products for people: the fit's result as a table (``fermixr show``,
the end of ``fermixr run``) and the values of small products, which xarray's repr leaves
as lazy placeholders."""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["fit_summary", "small_values", "FIT_QUALITY"]

FIT_QUALITY = {3: "full accurate covariance", 2: "covariance forced positive-definite",
               1: "diagonal approximation only", 0: "no covariance"}

_SMALL_BYTES = 64 << 10          # products up to this size are printed with their values


def fit_summary(ds) -> str:
    """The fit product ``ds`` as a table: optimizer, quality, status, log L, EDM, then each
    free parameter's value and error in the XML's scaled units with the scale, and the
    physical value (value x scale)."""
    from ..model.skymodel import SkyModel

    a = ds.attrs
    q = a.get("fit_quality")
    ok = a.get("fit_success", True)
    head = (f"fit ({a.get('optimizer', '?')}): {'succeeded' if ok else 'FAILED'}; quality "
            f"{q} ({FIT_QUALITY.get(q, '?')}), status {a.get('fit_status', '?')}, "
            f"{a.get('message', '')}".rstrip(", "))
    lines = [head, f"log L = {float(a.get('loglike', math.nan)):.3f}, "
                   f"EDM = {float(a.get('edm', math.nan)):.3g}"]
    if not ok:
        lines.append("the model keeps its values from before the fit")
    names = [str(n) for n in np.asarray(ds["param"].values)] if "param" in ds.coords else []
    if not names:
        lines.append("no free parameters")
        return "\n".join(lines)
    model = None
    if a.get("model"):
        try:
            model = SkyModel.from_dict(json.loads(a["model"]))
        except Exception:          # a summary never fails on an old product's model
            model = None
    values = np.asarray(ds["value"].values, dtype=float)
    errors = np.asarray(ds["error"].values, dtype=float)
    width = max(len(n) for n in names)
    lines.append(f"{'parameter':<{width}}  {'value':>12}  {'error':>10}  {'scale':>8}  "
                 f"{'physical':>12}")
    for n, v, e in zip(names, values, errors):
        scale = 1.0
        if model is not None and ":" in n:
            src, par = n.rsplit(":", 1)
            try:
                scale = float(model.find(src).param(par).scale)
            except Exception:
                scale = 1.0
        lines.append(f"{n:<{width}}  {v:>12.6g}  {e:>10.3g}  {scale:>8.3g}  "
                     f"{v * scale:>12.6g}")
    return "\n".join(lines)


def small_values(ds) -> str | None:
    """Every data variable of ``ds`` with its values, when the product is small (else
    None: xarray's repr is the summary)."""
    if ds.nbytes > _SMALL_BYTES:
        return None
    out = []
    with np.printoptions(precision=6, threshold=200, linewidth=100):
        for k, v in ds.data_vars.items():
            vals = np.asarray(v.values)
            unit = v.attrs.get("units")
            out.append(f"{k} {tuple(v.dims)}{' [' + unit + ']' if unit else ''}:")
            out.append("  " + np.array2string(vals).replace("\n", "\n  "))
    return "\n".join(out)
