"""The ``weighted_lightcurve`` recipe step: a weighted-photon light curve of a source from
the recipe's fitted model (:mod:`fermixr.engine.wtlike_output`), a ``wtlike`` product;
``write_fits`` / ``make_plots`` also write ``<prefix>_<name>_wtlike.fits`` / ``.png``."""

from __future__ import annotations

from .steps import register_step
from .wtlike_output import OUT_KEYS, WTLIKE_KEYS


@register_step("weighted_lightcurve", version="1", product="wtlike", kind="result")
def _weighted_lightcurve(state, params, ctx):
    """Weighted-photon light curve of a source (Kerr 2019) from the fitted model."""
    from .wtlike_output import run_weighted_lightcurve

    opts = {k: params[k] for k in WTLIKE_KEYS + OUT_KEYS if params.get(k) is not None}
    ds, _ = run_weighted_lightcurve(state, ctx.recipe, ctx.outdir, params["name"], opts)
    return state, ds
