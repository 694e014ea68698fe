"""``Analysis``: Fermipy's ``GTAnalysis`` method names over fermixr's engine and stateless
functions.

The object holds only what a session of work changes: the resolved recipe, the sky model
(an immutable :class:`~fermixr.model.SkyModel`, replaced on every change) and, after
``setup()``, the data products of each component opened from the run directory.  Every
number comes from the engine's products and the likelihood functions; a failed fit leaves
the model as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import GeometryError, RecipeError
from ..model.skymodel import SkyModel
from ..model.source import Source

class _Component:
    """The arrays one likelihood term needs, read from the run's products: counts
    (n_bins, n_pix), source maps at the true-energy nodes (n_bins + 1 + 2 n_extra of them
    with energy dispersion) and, with dispersion on, the response matrix."""

    def __init__(self, counts_ds, srcmaps_ds, edges, drm=None):
        self.counts_ds = counts_ds
        self.geom_attrs = dict(counts_ds.attrs)
        self.sky_shape = counts_ds["counts"].shape[1:]
        self.counts = np.asarray(counts_ds["counts"].values, dtype=np.float64).reshape(
            counts_ds["counts"].shape[0], -1)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.nodes = np.asarray(srcmaps_ds["energy_true"].values, dtype=np.float64)
        self.n_extra = (self.nodes.size - self.edges.size) // 2
        k = self.n_extra
        if not np.allclose(self.nodes[k:self.nodes.size - k], self.edges, rtol=1e-6):
            raise RecipeError("source-map energies do not match the counts cube's bin edges")
        if tuple(srcmaps_ds["srcmap"].shape[2:]) != tuple(self.sky_shape):
            raise GeometryError(f"source maps of sky shape {tuple(srcmaps_ds['srcmap'].shape[2:])}"
                                f" for a counts cube of sky shape {tuple(self.sky_shape)}")
        maps = np.asarray(srcmaps_ds["srcmap"].values, dtype=np.float64)
        self.names = [str(n) for n in srcmaps_ds["source"].values]
        self.maps = {n: maps[i].reshape(maps.shape[1], -1) for i, n in enumerate(self.names)}
        self.map_keys: dict[str, str] = {}   # name -> digest of the spatial model mapped
        self._stack, self._stack_key = None, None
        self.model = None      # the component's own model as configured (isodiff per component)
        self.drm = drm
        self.wmap = None       # likelihood weights (n_bins, n_pix), gtlike.wmap

    def measured_maps(self, name):
        """A source's maps at the measured bins' edges (no dispersion)."""
        m = self.maps[name]
        return m[self.n_extra:m.shape[0] - self.n_extra]

    def stacked(self, model, true_nodes: bool) -> np.ndarray:
        """The maps of ``model``'s sources as one (n_src, n_nodes, n_pix) array, at every
        true-energy node or at the measured edges; kept while the sources and their maps
        stay the same (every likelihood evaluation of a fit, a scan or a TS needs it, and
        stacking copies every map)."""
        key = (true_nodes, tuple((s.name, self.map_keys.get(s.name)) for s in model))
        if self._stack_key != key:
            get = self.maps.__getitem__ if true_nodes else self.measured_maps
            self._stack = np.stack([get(s.name) for s in model])
            self._stack_key = key
        return self._stack


class Analysis:
    """A Fermi-LAT binned likelihood analysis configured by a recipe or Fermipy config.

    ``Analysis('config.yaml', selection={'emax': 10000})`` overrides sections as Fermipy
    does.  Call :meth:`setup` first."""

    def __init__(self, config, **overrides):
        from ..engine.recipe import load_recipe
        from ..engine.run import resolve_outdir

        self.recipe = load_recipe(config, **overrides)
        self.config = self.recipe.config
        self.outdir = resolve_outdir(self.recipe)
        self.model: SkyModel | None = None
        self._comps: list[_Component] | None = None   # read from the run on first use
        self._zeroed: dict[str, float] = {}
        self._models_cache: dict[str, object] = {}
        # the last fit's (parameter names, covariance), or a stored fit product to read it
        # from when first needed (a cached recipe step)
        self._fit_cov: tuple[list, np.ndarray] | str | Path | None = None
        self._priors: dict[str, tuple[float, float]] = {}       # "src:par" -> (mean, sigma)

    # ------------------------------------------------------------------ setup -----------
    def setup(self, scheduler=None, verbose: bool = False) -> "Analysis":
        """Make every data product (selection, livetime, exposure, counts, source maps)
        through the engine, reusing cached ones, and build the sky model."""
        from ..engine.run import run_recipe

        doc = self.recipe.to_dict()
        doc["steps"] = ["setup"]
        run_recipe(doc, outdir=self.outdir, scheduler=scheduler, verbose=verbose)
        return self._load_products()

    def _load_products(self) -> "Analysis":
        """Build the sky model; the data products of the run directory are opened when a
        method first needs them."""
        from ..engine.plan import sky_model

        comps = self.recipe.components
        self._comps = None
        self._recipe_model = sky_model(comps[0])
        self.model = self._recipe_model
        return self

    @property
    def _components(self) -> list[_Component]:
        if self._comps is None:
            self._comps = self._read_components()
        return self._comps

    @_components.setter
    def _components(self, value):
        self._comps = list(value)

    def _read_components(self) -> list[_Component]:
        from ..engine.plan import sky_model
        from ..engine.run import open_run

        run = open_run(self.outdir, dask=False)
        n = len(self.recipe.components)
        out = []
        for i in range(n):
            sfx = f"/{i:02d}" if n > 1 else ""
            if f"counts{sfx}" not in run:
                raise RecipeError(f"the run {str(self.outdir)!r} has no counts{sfx}: call "
                                  "setup() first")
            counts = run[f"counts{sfx}"].load()
            edges = np.append(counts["energy_min"].values, counts["energy_max"].values[-1])
            if f"srcmaps{sfx}" not in run:
                raise RecipeError("setup made no source maps: the recipe's model section "
                                  "holds no source")
            cfg = self.recipe.components[i]
            drm = None
            if cfg["gtlike"].get("edisp") and f"drm{sfx}" in run:
                drm = np.asarray(run[f"drm{sfx}"]["drm"].values, dtype=np.float64)
            try:
                comp = _Component(counts, run[f"srcmaps{sfx}"].load(), edges, drm)
            except (GeometryError, RecipeError) as exc:
                raise GeometryError(f"component {i}: {exc}") from None
            comp.model = sky_model(cfg) if i else self._recipe_model
            comp.map_keys = {s.name: _map_key(s) for s in comp.model if s.name in comp.maps}
            if cfg["gtlike"].get("wmap"):
                comp.wmap = _read_wmap(cfg["gtlike"]["wmap"], comp.counts.shape)
            out.append(comp)
        return out

    def _require_setup(self):
        if self.model is None:
            raise RecipeError("call setup() first")

    # ------------------------------------------------------------- the model ----------
    def _spectral(self, src: Source, comp: "_Component | None" = None):
        """The spectral model of ``src``; a FileFunction reads its table (cached), the
        component's own when its configuration names another file (isodiff per
        component)."""
        from ..model.spectral import get_spectral_model

        cls = get_spectral_model(src.spectrum)
        if src.spectrum == "FileFunction":
            if comp is not None and comp.model is not None and src.name in comp.model:
                own = comp.model.find(src.name)
                if own.spectrum == "FileFunction":
                    src = own
            key = str(src.spectrum_file)
            if key not in self._models_cache:
                self._models_cache[key] = cls.from_file(src.spectrum_file)
            return self._models_cache[key]
        return cls()

    def roi_source(self, name: str) -> Source:
        self._require_setup()
        return self.model.find(name)

    def _replace(self, src: Source) -> None:
        self.model = self.model.replace_source(src)

    def _set_free(self, name: str, pars, free: bool) -> None:
        src = self.roi_source(name)
        for p in pars:
            src = src.with_param(p, free=bool(free))
        self._replace(src)

    def free_parameter(self, name, par, free=True):
        self._set_free(name, [par], free)

    def free_norm(self, name, free=True):
        src = self.roi_source(name)
        self._set_free(name, [self._spectral(src).norm_param], free)

    def free_index(self, name, free=True):
        src = self.roi_source(name)
        idx = self._spectral(src).index_params[:1]
        if not idx:
            raise RecipeError(f"source {src.name!r} ({src.spectrum}) has no index parameter")
        self._set_free(name, idx, free)

    def free_shape(self, name, free=True):
        src = self.roi_source(name)
        self._set_free(name, self._spectral(src).shape_params, free)

    def free_source(self, name, free=True, pars=None):
        """Free (or fix) a source's spectral parameters: all but the reference energies and
        limits (``pars=None``), ``'norm'``, ``'shape'``, or a list of names."""
        src = self.roi_source(name)
        sm = self._spectral(src)
        if pars is None:
            names = [n for n in sm.par_names if n not in sm.scale_params]
        elif pars == "norm":
            names = [sm.norm_param]
        elif pars == "shape":
            names = list(sm.shape_params)
        else:
            names = [pars] if isinstance(pars, str) else list(pars)
        self._set_free(name, names, free)

    def free_sources(self, free=True, pars=None, cuts=None, distance=None, skydir=None,
                     minmax_ts=None, minmax_npred=None, exclude=None, square=False):
        """Free (or fix) the parameters ``pars`` of every source :meth:`get_sources`
        selects with the same options; returns the sources changed."""
        srcs = self.get_sources(cuts=cuts, distance=distance, skydir=skydir,
                                minmax_ts=minmax_ts, minmax_npred=minmax_npred,
                                exclude=exclude, square=square)
        for src in srcs:
            self.free_source(src.name, free=free, pars=pars)
        return [self.model.find(s.name) for s in srcs]

    def set_parameter(self, name, par, value, true_value=True, scale=None, bounds=None,
                      error=None):
        """Set a parameter; ``true_value`` (default) means ``value`` is the physical
        value."""
        src = self.roi_source(name)
        p = src.param(par)
        changes = {}
        if scale is not None:
            changes["scale"] = float(scale)
        sc = changes.get("scale", p.scale)
        changes["value"] = float(value) / sc if true_value else float(value)
        if bounds is not None:
            changes["min"], changes["max"] = (None if b is None else float(b) for b in bounds)
        if error is not None:
            changes["error"] = float(error)
        new = p.replace(**changes).check(where=src.name)
        self._replace(src.with_param(par, **{k: getattr(new, k) for k in changes}))

    def set_parameter_bounds(self, name, par, bounds):
        src = self.roi_source(name)
        lo, hi = bounds
        src.param(par).replace(min=lo, max=hi).check(where=src.name)
        self._replace(src.with_param(par, min=lo, max=hi))

    def set_norm(self, name, value):
        src = self.roi_source(name)
        self.set_parameter(name, self._spectral(src).norm_param, value, true_value=False)

    def zero_source(self, name):
        src = self.roi_source(name)
        norm = self._spectral(src).norm_param
        self._zeroed[src.name] = src.param(norm).value
        p = src.param(norm)
        self._replace(src.with_param(norm, value=0.0, min=min(0.0, p.min or 0.0)))

    def unzero_source(self, name):
        src = self.roi_source(name)
        if src.name in self._zeroed:
            self._replace(src.with_param(self._spectral(src).norm_param,
                                         value=self._zeroed.pop(src.name)))

    def _compute_map(self, src: Source, comp_index: int) -> np.ndarray:
        """Source map of ``src`` for one component, computed now from the run's livetime
        cube (the engine caches the maps of the recipe's own sources; an added or changed
        source gets its map here)."""
        from ..engine.plan import roi_center
        from ..engine.run import open_run
        from ..geom.coords import geom_from_attrs
        from ..irf.irfset import load_irfs
        from ..srcmap.build import source_map_array

        cfg = self.recipe.components[comp_index]
        n = len(self.recipe.components)
        sfx = f"/{comp_index:02d}" if n > 1 else ""
        run = open_run(self.outdir, dask=False)
        comp = self._components[comp_index]
        irfs = load_irfs(cfg["gtlike"]["irfs"], cfg["selection"]["evtype"],
                         caldb=cfg["data"].get("caldb"))
        spatial = src.spatial_key()
        m = source_map_array(spatial, geom_from_attrs(comp.geom_attrs), comp.nodes,
                             run[f"ltcube{sfx}"].load(), irfs, roi_center(cfg),
                             rfactor=cfg["gtlike"].get("rfactor") or 2, name=src.name)
        return m.reshape(m.shape[0], -1)

    def _ensure_maps(self, src: Source) -> None:
        """Give every component a map of ``src``'s current spatial model (the engine's
        maps serve the recipe's sources as configured; an added, moved or reshaped source
        gets its map computed here, once)."""
        key = _map_key(src)
        for i, comp in enumerate(self._components):
            if comp.map_keys.get(src.name) != key:
                comp.maps[src.name] = self._compute_map(src, i)
                comp.map_keys[src.name] = key

    def add_source(self, name, src_dict, free=None) -> Source:
        """Add a source from a Fermipy source dictionary (``ra``/``dec`` or ``glon``/
        ``glat``, ``SpectrumType``, ``SpatialModel``, parameters ...) and compute its maps."""
        from ..engine.plan import roi_center
        from ..model.build import source_from_dict

        self._require_setup()
        d = dict(src_dict, name=name)
        src = source_from_dict(d, roi_center(self.recipe.components[0]), where=f"add_source({name!r})")
        if free is not None:
            sm = self._spectral(src)
            for p in sm.par_names:
                if p not in sm.scale_params:
                    src = src.with_param(p, free=bool(free))
        model = self.model.add(src)            # raises if the name exists
        self._ensure_maps(src)
        self.model = model
        return src

    def set_source_spectrum(self, name, spectrum_type="PowerLaw", spectrum_pars=None):
        """Give a source another spectral model (parameters from ``spectrum_pars``, else
        the model's defaults); its map does not change."""
        from ..model.parameters import Parameter
        from ..model.spectral import get_spectral_model

        src = self.roi_source(name)
        cls = get_spectral_model(spectrum_type)
        given = dict(spectrum_pars or {})
        pars = tuple(Parameter.from_any(q.name, given[q.name], q, where=src.name)
                     if q.name in given else q for q in cls.params)
        self._replace(src.replace(spectrum=spectrum_type, spectral=pars))

    def set_source_morphology(self, name, spatial_model=None, spatial_pars=None):
        """Change a source's spatial model or parameters (``RA``, ``DEC``, ``Sigma``,
        ``Radius`` ..., physical values) and recompute its maps."""
        from ..model.parameters import Parameter
        from ..model.spatial import default_params, spatial_type

        src = self.roi_source(name)
        kind = spatial_type(spatial_model or src.spatial_model)
        old = {p.name: p for p in src.spatial}
        given = dict(spatial_pars or {})
        pars = []
        for q in default_params(kind):
            base = old.get(q.name, q)
            pars.append(Parameter.from_any(q.name, given[q.name], base, where=src.name)
                        if q.name in given else base)
        meta = dict(src.meta)
        if src.skydir != _radec(pars):
            meta.pop("pos_ellipse", None)      # the old position's uncertainty
        new = src.replace(spatial_model=kind, spatial=tuple(pars), meta=meta)
        self._ensure_maps(new)
        self._replace(new)

    def delete_source(self, name):
        src = self.roi_source(name)
        self.model = self.model.remove(src.name)
        return src

    def delete_sources(self, cuts=None, distance=None, skydir=None, minmax_ts=None,
                       minmax_npred=None, exclude=None, square=False, names=None):
        """Delete every source :meth:`get_sources` selects with these options (with none
        given, every source, as Fermipy does); returns the deleted sources."""
        srcs = self.get_sources(cuts=cuts, distance=distance, skydir=skydir,
                                minmax_ts=minmax_ts, minmax_npred=minmax_npred,
                                exclude=exclude, square=square, names=names)
        return [self.delete_source(s.name) for s in srcs]

    def get_sources(self, cuts=None, distance=None, skydir=None, minmax_ts=None,
                    minmax_npred=None, exclude=None, square=False, coordsys=None,
                    names=None) -> list[Source]:
        """The sources passing Fermipy's selection, point-like ones by distance from
        ``skydir`` (default the ROI centre), then the diffuse ones (which have no position
        and pass the distance cut):

        * ``distance`` (deg): on the sky, or with ``square`` within |x|, |y| <= distance
          of the AIT projection centred on ``skydir`` in ``coordsys`` (default the
          binning frame);
        * ``cuts``: ``{key: [min, max]}`` (either may be null), a ``(key, min, max)``
          tuple or a list of them, on entries of the source dictionary (``ts``,
          ``npred``, ``offset``, ``flux`` ...) or columns of the source's catalog row
          (``Signif_Avg``, ``Variability_Index`` ...); a source without the key fails;
        * ``minmax_ts``, ``minmax_npred``: [min, max] of TS and npred (computed now, with
          the current parameters);
        * ``exclude``, ``names``: names left out / the only names considered."""
        from ..engine.plan import roi_center
        from ..geom.frames import ait_offsets, angular_separation, fermipy_cel_to_gal

        self._require_setup()
        cuts = _parse_cuts(cuts)
        for what, mm in (("minmax_ts", minmax_ts), ("minmax_npred", minmax_npred)):
            if mm is not None:
                cuts[what[7:]] = _minmax(mm, what)
        center = (tuple(float(v) for v in skydir) if skydir is not None
                  else roi_center(self.recipe.components[0]))
        frame = str(coordsys or self.config["binning"].get("coordsys") or "CEL").upper()
        exclude = {str(n) for n in (exclude or [])}
        wanted = None if names is None else [self.roi_source(n).name for n in names]
        point, diffuse = [], []
        for src in self.model:
            if src.name in exclude or any(src.matches(n) for n in exclude):
                continue
            if wanted is not None and src.name not in wanted:
                continue
            if src.skydir is None:
                diffuse.append(src)
                continue
            ra, dec = src.skydir
            d = float(angular_separation(np.array([ra]), np.array([dec]), *center)[0])
            if distance is not None:
                if square:
                    if frame == "GAL":
                        x, y = ait_offsets(*fermipy_cel_to_gal(*center),
                                           *fermipy_cel_to_gal(ra, dec), "GAL")
                    else:
                        x, y = ait_offsets(*center, ra, dec, "CEL")
                    if max(abs(float(x[0])), abs(float(y[0]))) > distance:
                        continue
                elif d > distance:
                    continue
            point.append((d, src))
        point.sort(key=lambda t: t[0])
        candidates = [s for _, s in point] + diffuse
        for key in cuts:
            if candidates and key not in ("ts", "npred") and not any(
                    self._source_property(s, key) is not None for s in candidates):
                raise RecipeError(f"cuts: no source has a property {key!r} (keys of the "
                                  "source dictionary or of the catalog row)")
        return [s for s in candidates
                if all(_in_range(self._source_property(s, k), mm) for k, mm in cuts.items())]

    def _source_property(self, src: Source, key: str):
        """A value of the source dictionary or the source's catalog row, or None."""
        from ..engine.plan import roi_center
        from ..geom.coords import geom_from_attrs
        from ..estimators.sourcedict import CATALOG_COLUMNS, SCALARS, position_dict

        if key == "ts":
            return self._ts(src)
        if key == "npred":
            return self.npred(src.name)
        if key in src.meta and isinstance(src.meta[key], (int, float)):
            return float(src.meta[key])
        pos = position_dict(src, roi_center(self.recipe.components[0]),
                            geom_from_attrs(self._components[0].geom_attrs))
        if key in pos:
            return pos[key]
        if key not in SCALARS + CATALOG_COLUMNS:
            return None
        v = self.get_src_model(src.name, scan=False).get(key)
        return float(v) if isinstance(v, (int, float, np.floating)) else None

    def get_params(self, freeonly=False) -> list[dict]:
        """One dict per spectral parameter (Fermipy's ``get_params``)."""
        self._require_setup()
        out = []
        for s in self.model:
            for p in s.spectral:
                if freeonly and not p.free:
                    continue
                out.append({"src_name": s.name, "par_name": p.name, "value": p.value,
                            "scale": p.scale, "min": p.min, "max": p.max, "free": p.free,
                            "error": p.error, "idx": len(out)})
        return out

    # ---------------------------------------------------------- likelihood ------------
    def _cost(self):
        from ..likelihood.cost import BinnedPoissonCost, SourceTerm

        from ..irf.drm import source_drm
        from ..likelihood.dispersed import DispersedPoissonCost

        self._require_setup()
        total = None
        for i, comp in enumerate(self._components):
            gl = self.recipe.components[i]["gtlike"]
            # phased analyses: an exposure scale for the component, or per source
            esc = 1.0 if gl.get("expscale") is None else float(gl["expscale"])
            src_esc = dict(gl.get("src_expscale") or {})
            scales = [float(src_esc.get(src.name, esc)) for src in self.model]
            wmap = comp.wmap
            terms = []
            for src in self.model:
                if comp.map_keys.get(src.name) != _map_key(src):
                    self._ensure_maps(src)
                terms.append(SourceTerm.from_source(src, model=self._spectral(src, comp)))
            if comp.drm is not None:
                # energy dispersion: every source through the response matrix, except
                # those gtlike.edisp_disable names (identity on the measured bins)
                drms = [source_drm(src.name, comp.drm, edisp=True,
                                   edisp_disable=gl.get("edisp_disable") or ())
                        for src in self.model]
                cost = DispersedPoissonCost(comp.counts, comp.stacked(self.model, True),
                                            comp.nodes, terms, drms, wmap=wmap, scales=scales)
            else:
                cost = BinnedPoissonCost(comp.counts, comp.stacked(self.model, False),
                                         comp.edges, terms, wmap=wmap, src_expscale=scales)
            total = cost if total is None else total + cost
        if self._priors:
            from ..likelihood.priors import GaussianPrior

            free = set(total.parameters)
            for name, (mean, sigma) in self._priors.items():
                if name in free:
                    total = total + GaussianPrior(name, mean, sigma)
        return total

    # ------------------------------------------------------------------ priors ----------
    def add_gauss_prior(self, name, parName, mean, sigma):
        """A Gaussian prior (scaled units, as the Science Tools apply it) on a parameter;
        it takes part in fits while the parameter is free."""
        src = self.roi_source(name)
        if not src.param(parName).free:
            raise RecipeError(f"prior on {src.name}:{parName}: the parameter is fixed; free it "
                              "first (free_parameter / free_source)")
        if not (float(sigma) > 0):
            raise RecipeError(f"prior on {src.name}:{parName}: sigma must be > 0, got {sigma}")
        self._priors[f"{src.name}:{parName}"] = (float(mean), float(sigma))

    def remove_prior(self, name, parName):
        self._priors.pop(f"{self.roi_source(name).name}:{parName}", None)

    def remove_priors(self):
        self._priors.clear()

    def constrain_norms(self, srcNames, cov_scale=1.0):
        """Gaussian priors on the norms of ``srcNames`` at their current values, with
        sigma = cov_scale x their errors (Fermipy's constrain_norms)."""
        for n in srcNames:
            src = self.roi_source(n)
            norm = src.param(self._spectral(src).norm_param)
            if norm.error is None or not norm.error > 0:
                raise RecipeError(f"constrain_norms: {src.name} has no error on its norm; "
                                  "fit first")
            self.add_gauss_prior(src.name, norm.name, norm.value, cov_scale * norm.error)

    def loglike(self) -> float:
        """log L of the current model (gtlike's value, without log n!)."""
        c = self._cost()
        return -float(c(c.x0)) if c.npar else -float(c(np.zeros(0)))

    def fit(self, optimizer=None, **kwargs) -> dict:
        """Maximise the likelihood over the free parameters; on success the model takes
        the best-fit values and errors, on failure it is left as it was.  Returns
        Fermipy's fit() dict."""
        from ..fit.fitter import fit as run_fit

        cost = self._cost()
        if cost.npar == 0:
            raise RecipeError("fit: no free parameter; free some with free_source()/"
                              "free_norm()")
        opt = dict(self.config.get("optimizer") or {})
        opt.update(kwargs)
        res = run_fit(cost, optimizer=optimizer or opt.get("optimizer", "MINUIT"),
                      tol=opt.get("tol", 1e-3), max_iter=opt.get("max_iter", 100),
                      retries=opt.get("retries", 3),
                      min_fit_quality=opt.get("min_fit_quality", 2))
        if res.fit_success:
            for name, v, e in zip(res.par_names, res.values, res.errors):
                src, par = name.rsplit(":", 1)
                s = self.model.find(src)
                self._replace(s.with_param(par, value=float(v), error=float(e)))
            self._fit_cov = (list(res.par_names), np.array(res.covariance))
        out = res.to_dict()
        out["loglike0"] = float(res.loglike0)
        return out

    def optimize(self, npred_frac=None, npred_threshold=None, shape_ts_threshold=None,
                 max_free_sources=None, skip=None, **kwargs) -> dict:
        """Fermipy's three passes to bring every source near its optimum: (1) the norms of
        the brightest sources holding ``npred_frac`` of the predicted counts, jointly;
        (2) the norm of each other source with npred above ``npred_threshold``, one at a
        time; (3) the shape of each source with TS above ``shape_ts_threshold`` (at most
        ``max_free_sources`` at a time, brightest first).  Every parameter's free flag is
        restored afterwards.  Returns loglike0, loglike1, dloglike, config."""
        ro = dict(self.config.get("roiopt") or {})
        npred_frac = ro.get("npred_frac", 0.95) if npred_frac is None else npred_frac
        npred_threshold = (ro.get("npred_threshold", 1.0) if npred_threshold is None
                           else npred_threshold)
        shape_ts_threshold = (ro.get("shape_ts_threshold", 25.0) if shape_ts_threshold is None
                              else shape_ts_threshold)
        max_free_sources = (ro.get("max_free_sources", 5) if max_free_sources is None
                            else max_free_sources)
        skip = set(skip or [])
        self._require_setup()
        flags = {(s.name, p.name): p.free for s in self.model for p in s.spectral}
        loglike0 = self.loglike()

        def fix_all():
            for s in self.model:
                for p in s.spectral:
                    if p.free:
                        self._replace(self.model.find(s.name).with_param(p.name, free=False))

        def quiet_fit():
            try:
                return self.fit(optimizer="NEWTON", **kwargs)
            except RecipeError:
                return None

        npred = {s.name: self.npred(s.name) for s in self.model if s.name not in skip}
        order = sorted(npred, key=lambda n: -npred[n])
        total = sum(max(v, 0.0) for v in npred.values()) or 1.0
        fix_all()
        bright, acc = [], 0.0
        for n in order:
            if acc / total >= npred_frac:
                break
            bright.append(n)
            acc += max(npred[n], 0.0)
        for n in bright:
            self.free_norm(n)
        quiet_fit()
        fix_all()
        for n in order:
            if n in bright or npred[n] < npred_threshold:
                continue
            self.free_norm(n)
            quiet_fit()
            fix_all()
        shaped = [n for n in order if self._ts(self.model.find(n)) > shape_ts_threshold]
        for i in range(0, len(shaped), max(int(max_free_sources), 1)):
            for n in shaped[i:i + max(int(max_free_sources), 1)]:
                self.free_source(n, pars="shape")
            quiet_fit()
            fix_all()
        for (sname, pname), free in flags.items():
            if free and sname in self.model:
                self._replace(self.model.find(sname).with_param(pname, free=True))
        loglike1 = self.loglike()
        return {"loglike0": loglike0, "loglike1": loglike1, "dloglike": loglike1 - loglike0,
                "config": {"npred_frac": npred_frac, "npred_threshold": npred_threshold,
                           "shape_ts_threshold": shape_ts_threshold,
                           "max_free_sources": max_free_sources}}

    # ---------------------------------------------------------------- maps ------------
    def model_counts_map(self, name=None, weighted=False):
        """Model counts (energy, y, x) or (energy, pix) of the whole model or of one
        source, summed over components; an xarray DataArray on the counts geometry.
        ``weighted``: multiplied by the likelihood weights map (gtlike.wmap)."""
        import xarray as xr

        total = None
        for comp, m in zip(self._components, self._component_cubes(name)):
            if weighted and comp.wmap is not None:
                m = m * comp.wmap
            m = m.reshape((-1,) + tuple(comp.sky_shape))
            total = m if total is None else total + m
        ref = self._components[0].counts_ds["counts"]
        return xr.DataArray(total, dims=ref.dims, coords=ref.coords, name="model_counts",
                            attrs={"units": "count"})

    def _component_cubes(self, name=None) -> list[np.ndarray]:
        """Model counts (n_bins, n_pix) of each component: the whole model or one source."""
        cost = self._cost()
        out = []
        for comp, c in zip(self._components, getattr(cost, "components", [cost])):
            m = c.model_cube(c.x0) if name is None else c.source_cube(
                self.model.find(name).name, c.x0)
            out.append(np.asarray(m).reshape(comp.counts.shape))
        return out

    def counts_map(self):
        import xarray as xr

        ref = self._components[0].counts_ds["counts"]
        tot = sum(c.counts.reshape(ref.shape) for c in self._components)
        return xr.DataArray(tot, dims=ref.dims, coords=ref.coords, name="counts")

    def profile_norm(self, name, xvals=None, npts=None, reoptimize=False) -> dict:
        """Likelihood profile of a source's normalisation (scaled units): ``xvals`` or
        ``npts`` points (gtlike.llscan_npts) from 0 to well past the best value; other
        parameters held, or refitted at each point with ``reoptimize``.  Returns xvals,
        loglike, dloglike and the flux / eflux at each point."""
        src = self.roi_source(name)
        norm = src.param(self._spectral(src).norm_param)
        npts = int(npts or (self.config.get("gtlike") or {}).get("llscan_npts", 20))
        if xvals is None:
            hi = norm.value + 5 * (norm.error or 0.5 * abs(norm.value) or 1.0)
            xvals = np.linspace(0.0, max(hi, 2 * norm.value), npts)
        return self.profile(src.name, norm.name, xvals, reoptimize=reoptimize)

    def profile(self, name, parName, xvals=None, npts=None, reoptimize=False) -> dict:
        """Likelihood profile of any spectral parameter over ``xvals`` (scaled units; by
        default ``npts`` = gtlike.llscan_npts values over +-3 errors, within the bounds);
        others held, or refitted with ``reoptimize``.  Returns xvals, loglike, dloglike
        and the source's flux / eflux (analysis energy range) at each point."""
        src = self.roi_source(name)
        sm = self._spectral(src)
        p = src.param(parName)
        if xvals is None:
            npts = int(npts or (self.config.get("gtlike") or {}).get("llscan_npts", 20))
            half = 3 * (p.error or 0.1 * abs(p.value) or 0.1)
            lo = p.value - half if p.min is None else max(p.min, p.value - half)
            hi = p.value + half if p.max is None else min(p.max, p.value + half)
            xvals = np.linspace(lo, hi, npts)
        emin, emax = self._emin_emax()
        saved = self.model
        ll, fl, efl = [], [], []
        try:
            for x in np.asarray(xvals, dtype=float):
                lo = None if p.min is None else min(p.min, x)
                hi = None if p.max is None else max(p.max, x)
                self._replace(self.model.find(src.name).with_param(
                    parName, value=float(x), free=False, min=lo, max=hi))
                if reoptimize:
                    try:
                        self.fit(optimizer="NEWTON")
                    except RecipeError:
                        pass
                ll.append(self.loglike())
                pv = self.model.find(src.name).spectral_values()
                fl.append(float(sm.flux(emin, emax, pv)))
                efl.append(float(sm.eflux(emin, emax, pv)))
                self.model = saved
        finally:
            self.model = saved
        ll = np.array(ll)
        return {"xvals": np.asarray(xvals, float), "loglike": ll, "dloglike": ll - ll.max(),
                "flux": np.array(fl), "eflux": np.array(efl)}

    def bowtie(self, name, loge=None, npts=50) -> dict:
        """The spectrum of a source with its 1-sigma band from the fit covariance:
        energies (MeV), dnde, dnde_err, dnde_lo, dnde_hi, dnde_ferr (fractional)."""
        src = self.roi_source(name)
        sm = self._spectral(src)
        p = src.spectral_values()
        idx = np.flatnonzero([q.free for q in src.spectral])
        cov = self._physical_covariance(src, idx)
        if loge is None:
            emin, emax = self._emin_emax()
            e = np.geomspace(emin, emax, int(npts))
        else:
            e = 10 ** np.asarray(loge, dtype=float)
        f = np.asarray(sm.evaluate(e, p), dtype=float)
        err = np.zeros_like(f)
        if idx.size:
            g = np.asarray(sm.gradient(e, p), dtype=float)[idx]
            err = np.sqrt(np.clip(np.einsum("ai,ab,bi->i", g, cov, g), 0, None))
        return {"energies": e, "dnde": f, "dnde_err": err, "dnde_lo": f - err,
                "dnde_hi": f + err, "dnde_ferr": err / f}

    def generate_model(self, model_name=None, rng=None, seed=None):
        """Replace the counts of every component by a Poisson realisation of the current
        model (of one source with ``model_name``); ``rng`` (a numpy Generator) or ``seed``
        makes it reproducible.  Returns the seed used."""
        if rng is None:
            seed = int(np.random.SeedSequence().entropy % (2 ** 32)) if seed is None else seed
            rng = np.random.default_rng(seed)
        cost = self._cost()
        costs = getattr(cost, "components", [cost])
        for comp, c in zip(self._components, costs):
            mu = c.model_cube(c.x0) if model_name is None else c.source_cube(
                self.model.find(model_name).name, c.x0)
            comp.counts = rng.poisson(np.asarray(mu).reshape(comp.counts.shape)).astype(float)
        return seed

    def npred(self, name) -> float:
        return float(self.model_counts_map(name).sum())

    def write_xml(self, xmlfile):
        """The model as a Science Tools XML file."""
        from ..model.xml import write_xml

        path = Path(xmlfile)
        if not path.is_absolute():
            path = self.outdir / path
        if path.suffix != ".xml":
            path = path.with_suffix(".xml")
        return write_xml(self.model, path)

    # ----------------------------------------------------------- source dicts -----------
    def _emin_emax(self):
        e = self._components[0].edges
        return float(e[0]), float(e[-1])

    def get_src_model(self, name, covariance=None, scan=True) -> dict:
        """Fermipy's source dictionary of one source: names and types, position, offsets
        and positional uncertainty, spectral parameters with errors, TS, npred (also per
        energy bin, ``model_counts``, and weighted), the flux / eflux / dN/dE families with
        errors, the correlation of its normalisation with the other sources' (last fit)
        and, with ``scan``, the normalisation likelihood scan and the 95% upper limits."""
        from ..engine.plan import roi_center
        from ..geom.coords import geom_from_attrs
        from ..model.spatial import XML_FUNCTION, param_to_width
        from ..estimators.sourcedict import (catalog_columns, dnde_family, flux_family,
                                             position_dict)

        src = self.roi_source(name)
        sm = self._spectral(src)
        p = src.spectral_values()
        width = {q.name: q.physical for q in src.spatial}
        d = {"name": src.name, "Source_Name": src.name, "SpectrumType": src.spectrum,
             "SpatialModel": src.spatial_model,
             "SpatialType": XML_FUNCTION.get(src.spatial_model, src.spatial_model),
             "SpatialWidth": (param_to_width(src.spatial_model, width.get("Sigma",
                                                                         width.get("Radius", 0.0)))
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
        d.update(position_dict(src, roi_center(self.recipe.components[0]),
                               geom_from_attrs(self._components[0].geom_attrs)))
        d.update(catalog_columns(src.spectrum, d["param_names"], p))
        counts = self.model_counts_map(src.name)
        d["model_counts"] = counts.sum(axis=tuple(range(1, counts.ndim))).values
        d["npred"] = float(d["model_counts"].sum())
        wts = [c.wmap for c in self._components]
        if any(w is not None for w in wts):
            wcounts = self.model_counts_map(src.name, weighted=True)
            d["model_counts_wt"] = wcounts.sum(axis=tuple(range(1, wcounts.ndim))).values
            d["npred_wt"] = float(d["model_counts_wt"].sum())
        else:
            d["model_counts_wt"], d["npred_wt"] = d["model_counts"], d["npred"]
        d["ts"] = self._ts(src)
        free = np.array([q.free for q in src.spectral])
        idx = np.flatnonzero(free)
        cov = covariance if covariance is not None else self._physical_covariance(src, idx)
        emin, emax = self._emin_emax()
        d.update(flux_family(sm, p, cov, idx, emin, emax))
        d.update(dnde_family(sm, p, cov, idx, emin, emax))
        d["correlation"] = self._norm_correlations(src)
        d["loglike"] = self.loglike()
        if scan and not src.is_diffuse:
            d.update(self._norm_scan(src, d))
        return d

    def _norm_correlations(self, src) -> dict:
        """Correlation coefficient of the source's normalisation with every other free
        normalisation of the last fit (Fermipy's ``correlation`` dict); empty when the
        norm was not free."""
        if self._last_fit_covariance() is None:
            return {}
        names, cov = self._last_fit_covariance()
        key = f"{src.name}:{self._spectral(src).norm_param}"
        if key not in names:
            return {}
        i = names.index(key)
        out = {}
        for j, n in enumerate(names):
            sname, par = n.rsplit(":", 1)
            if j == i or sname not in self.model:
                continue
            other = self.model.find(sname)
            if par == self._spectral(other).norm_param:
                out[sname] = float(cov[i, j] / np.sqrt(cov[i, i] * cov[j, j]))
        return out

    def _norm_scan(self, src, d) -> dict:
        """Fermipy's likelihood scan of the normalisation (others held) and the 95% upper
        limits of the flux family read from it (2 dlogL = 2.71, on a spline of the
        scan)."""
        from scipy.interpolate import PchipInterpolator

        norm = src.param(self._spectral(src).norm_param)
        npts = int((self.config.get("gtlike") or {}).get("llscan_npts", 20))
        err = norm.error if norm.error else abs(norm.value) or 1.0
        hi = max(norm.value + 10 * err, 3 * abs(norm.value), 1e-30)
        xs = np.linspace(0.0, hi, npts)
        prof = self.profile_norm(src.name, xvals=xs)
        out = {"norm_scan": xs, "loglike_scan": prof["loglike"],
               "dloglike_scan": prof["dloglike"], "flux_scan": prof["flux"],
               "eflux_scan": prof["eflux"]}
        dll = prof["dloglike"]
        imax = int(np.argmax(dll))
        ul_x = float("nan")
        if dll[-1] < -1.353 and imax < len(xs) - 1:
            f = PchipInterpolator(xs[imax:], dll[imax:] + 1.353)
            fine = np.linspace(xs[imax], xs[-1], 2001)
            cross = np.flatnonzero(f(fine) < 0)
            if cross.size:
                ul_x = float(fine[cross[0]])
        ratio = ul_x / norm.value if norm.value else float("nan")
        for key in ("flux", "flux100", "flux1000", "flux10000", "eflux", "eflux100",
                    "eflux1000", "eflux10000"):
            out[f"{key}_ul95"] = d[key] * ratio
        return out

    def _last_fit_covariance(self):
        """(parameter names, covariance in scaled units) of the last fit, or None."""
        if isinstance(self._fit_cov, (str, Path)):
            from ..engine.store import open_product_dir

            fit = open_product_dir(self._fit_cov, dask=False)
            self._fit_cov = (([str(v) for v in fit["param"].values],
                              fit["covariance"].values.astype(float))
                             if fit.sizes["param"] else None)
        return self._fit_cov

    def _physical_covariance(self, src, idx) -> np.ndarray:
        """Covariance (physical units) of the source's free parameters ``idx`` from the
        last fit, else the diagonal of their errors."""
        scales = np.array([src.spectral[i].scale for i in idx])
        if self._last_fit_covariance() is not None:
            names, cov = self._last_fit_covariance()
            keys = [f"{src.name}:{src.spectral[i].name}" for i in idx]
            if all(k in names for k in keys):
                j = [names.index(k) for k in keys]
                return cov[np.ix_(j, j)] * np.outer(scales, scales)
        errs = np.array([src.spectral[i].error or 0.0 for i in idx]) * np.abs(scales)
        return np.diag(errs ** 2)

    def _ts(self, src) -> float:
        """TS = 2 (log L with the source - log L without it), other parameters held."""
        if src.is_diffuse:
            return float("nan")
        ll1 = self.loglike()
        saved = self.model
        norm = src.param(self._spectral(src).norm_param)
        try:   # the source at zero flux: the same log L as without it, same map stack
            self.model = self.model.replace_source(src.with_param(
                norm.name, value=0.0, min=None if norm.min is None else min(norm.min, 0.0)))
            ll0 = self.loglike()
        finally:
            self.model = saved
        return float(max(2.0 * (ll1 - ll0), 0.0))

    def roi_results(self) -> dict:
        return {s.name: self.get_src_model(s.name) for s in self.model}

    # ------------------------------------------------------------- write/load -----------
    def write_roi(self, outfile="fit_roi", save_model_map=False, make_plots=False) -> dict:
        """Write the ROI: ``<prefix>.npy`` (roi, sources, config, version), ``<prefix>.fits``
        (one row per source), ``<prefix>_NN.xml`` (one model per component),
        ``<prefix>.yaml`` (the configuration) and ``<prefix>.zarr`` (xarray, one row per
        source); with ``save_model_map`` the model counts cube of each component,
        ``<prefix>_mcube_NN.fits`` (gtmodel's layout).  Returns the paths written."""
        import json

        import yaml

        from .._version import __version__
        from ..engine.store import write_dataset_atomic
        from ..estimators.sourcedict import sources_dataset, sources_table

        self._require_setup()
        files = self.roi_files(outfile, save_model_map=save_model_map, make_plots=make_plots)
        files["npy"].parent.mkdir(parents=True, exist_ok=True)
        sources = self.roi_results()
        model_dicts = [s.to_dict() for s in self.model]
        cfg = self.recipe.to_dict()
        roi = {"loglike": self.loglike(), "model": {"sources": model_dicts},
               "npred": float(sum(v["npred"] for v in sources.values()))}
        paths = {}
        paths["npy"] = files["npy"]
        np.save(paths["npy"], {"roi": roi, "sources": sources, "config": cfg,
                               "version": __version__}, allow_pickle=True)
        table = sources_table(sources)
        paths["fits"] = files["fits"]
        table.meta["CONFIG"] = json.dumps(cfg, sort_keys=True, default=str)
        table.write(paths["fits"], overwrite=True)
        for i in range(len(self._components)):
            paths[f"xml_{i:02d}"] = self.write_xml(files[f"xml_{i:02d}"])
        paths["yaml"] = files["yaml"]
        paths["yaml"].write_text(yaml.safe_dump(cfg, sort_keys=False))
        paths["zarr"] = write_dataset_atomic(sources_dataset(sources), files["zarr"])
        if save_model_map:
            from ..io.st_fits import write_ccube

            for i, (comp, m) in enumerate(zip(self._components, self._component_cubes())):
                ds = comp.counts_ds.drop_vars("counts").assign(
                    model_counts=(comp.counts_ds["counts"].dims,
                                  m.reshape(comp.counts_ds["counts"].shape)))
                paths[f"mcube_{i:02d}"] = write_ccube(ds, files[f"mcube_{i:02d}"], config=cfg,
                                                      var="model_counts", dtype=np.float32)
        if make_plots:
            paths.update(self._write_roi_plots(files))
        return paths

    def roi_files(self, outfile="fit_roi", save_model_map=False, make_plots=False) -> dict:
        """The files ``write_roi(outfile, ...)`` writes, by key (npy, fits, yaml, zarr,
        xml_NN, with ``save_model_map`` mcube_NN, with ``make_plots`` counts_spectrum and
        counts_map, suffixed _NN when there are several components): ``outfile`` relative to
        the output directory, a .npy or .fits suffix dropped."""
        prefix = Path(outfile)
        if not prefix.is_absolute():
            prefix = self.outdir / prefix
        prefix = prefix.with_suffix("") if prefix.suffix in (".npy", ".fits") else prefix
        n = len(self.recipe.components)

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

    def _write_roi_plots(self, files: dict) -> dict:
        """The counts spectrum (counts against the model and its brightest sources, with
        residuals) and the counts map (counts, model and residual significance summed over
        energy) of each component, at the ``counts_spectrum[_NN]`` and ``counts_map[_NN]``
        paths of ``files`` (:meth:`roi_files`)."""
        from ..engine.plan import roi_center
        from ..geom.coords import geom_from_attrs
        from ..geom.wcs import WcsGeom
        from ..plot import counts_maps_figure, counts_spectrum_figure, save_figure

        cost = self._cost()
        costs = getattr(cost, "components", [cost])
        markers = [(s.name, *s.skydir) for s in self.model if s.skydir is not None]
        many = len(self._components) > 1
        out = {}
        for i, (comp, c) in enumerate(zip(self._components, costs)):
            sfx = f"_{i:02d}" if many else ""
            title = f"component {i}" if many else None
            m = np.asarray(c.model_cube(c.x0)).reshape(comp.counts.shape)
            per_src = {}
            for s in self.model:
                v = np.asarray(c.source_cube(s.name, c.x0)).reshape(comp.counts.shape)
                per_src[s.name] = v.sum(axis=1)
            fig = counts_spectrum_figure(comp.edges, comp.counts.sum(axis=1), m.sum(axis=1),
                                         per_src, title=title)
            key = f"counts_spectrum{sfx}"
            out[key] = save_figure(fig, files[key])
            geom = geom_from_attrs(comp.geom_attrs)
            radius = 2.5 * abs(geom.cdelt[1]) if isinstance(geom, WcsGeom) else 0.0
            fig = counts_maps_figure(geom, comp.counts.sum(axis=0), m.sum(axis=0), markers,
                                     center_radec=roi_center(self.recipe.components[i]),
                                     radius_deg=radius, title=title)
            key = f"counts_map{sfx}"
            out[key] = save_figure(fig, files[key])
        return out

    def load_roi(self, infile) -> "Analysis":
        """Restore the model (every parameter bit for bit) from a ``write_roi`` file."""
        self._require_setup()
        p = Path(infile)
        if not p.is_absolute() and not p.exists():
            p = self.outdir / p
        if p.suffix != ".npy":
            p = p.with_suffix(".npy")
        doc = np.load(p, allow_pickle=True).item()
        self.model = SkyModel.from_dict(doc["roi"]["model"])
        return self

    @classmethod
    def create(cls, infile, **overrides) -> "Analysis":
        """An Analysis rebuilt from a ``write_roi`` results file: its configuration, the
        same products (from the cache) and the saved model."""
        p = Path(infile)
        if p.suffix != ".npy":
            p = p.with_suffix(".npy")
        doc = np.load(p, allow_pickle=True).item()
        gta = cls(doc["config"], **overrides)
        gta.setup()
        return gta.load_roi(p)

    def print_roi(self) -> str:
        lines = [f"{'name':<24}{'SpatialModel':<16}{'SpectrumType':<18}{'npred':>10}  free"]
        for s in self.model:
            nfree = sum(p.free for p in s.spectral)
            lines.append(f"{s.name:<24}{s.spatial_model:<16}{s.spectrum:<18}"
                         f"{self.npred(s.name):10.2f}  {nfree or ''}")
        text = "\n".join(lines)
        print(text)
        return text

    def print_params(self, allpars=False) -> str:
        """Print the free spectral parameters (every one with ``allpars``)."""
        lines = [f"{'source':<24}{'parameter':<14}{'value':>12}{'error':>12}{'scale':>10} free"]
        for p in self.get_params(freeonly=not allpars):
            err = "" if p["error"] is None else f"{p['error']:12.4g}"
            lines.append(f"{p['src_name']:<24}{p['par_name']:<14}{p['value']:12.5g}{err:>12}"
                         f"{p['scale']:10.3g} {'*' if p['free'] else ''}")
        text = "\n".join(lines)
        print(text)
        return text


def _in_range(v, minmax):
    """Fermipy's min/max selection: a bound of None passes everything, a NaN value
    fails a bound that is set."""
    if v is None:
        return False
    lo, hi = minmax
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _minmax(v, what):
    try:
        lo, hi = v
        return (None if lo is None else float(lo), None if hi is None else float(hi))
    except (TypeError, ValueError):
        raise RecipeError(f"{what}: got {v!r}; expected [min, max] (either may be null)") \
            from None


def _parse_cuts(cuts) -> dict:
    """``cuts`` as {key: (min, max)} from a dict, a (key, min, max) tuple or a list."""
    if cuts is None:
        return {}
    if isinstance(cuts, dict):
        return {str(k): _minmax(v, f"cuts[{k!r}]") for k, v in cuts.items()}
    if isinstance(cuts, tuple) and len(cuts) == 3 and isinstance(cuts[0], str):
        cuts = [cuts]
    out = {}
    for c in cuts:
        if not (isinstance(c, (list, tuple)) and len(c) == 3 and isinstance(c[0], str)):
            raise RecipeError(f"cuts: got {c!r}; expected (key, min, max)")
        out[c[0]] = _minmax(c[1:], f"cuts[{c[0]!r}]")
    return out


def _read_wmap(path, shape):
    """A likelihood weights map (gtlike.wmap: a FITS cube on the counts geometry, as
    gtwtsmap / Fermipy's weights maps) flattened to ``shape``."""
    from astropy.io import fits

    from ..errors import FileFormatError, InputFileError

    if not Path(path).is_file():
        raise InputFileError(f"gtlike.wmap: file {str(path)!r} does not exist")
    data = np.asarray(fits.getdata(path), dtype=np.float64)
    if data.size != int(np.prod(shape)) or data.shape[0] != shape[0]:
        raise FileFormatError(f"gtlike.wmap {str(path)!r}: shape {data.shape} does not match "
                              f"the counts cube ({shape[0]} energy bins, {shape[1]} pixels)")
    return data.reshape(shape)


def _map_key(src: Source) -> str:
    """What a source map depends on, as a short digest."""
    from ..engine.hashing import digest

    return digest(src.spatial_key())


def _radec(pars):
    p = {q.name: q.physical for q in pars}
    return (p["RA"], p["DEC"]) if "RA" in p and "DEC" in p else None
