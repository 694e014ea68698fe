"""``Analysis``: Fermipy's ``GTAnalysis`` method names over fermixr's engine and estimators.

The object holds one frozen :class:`~fermixr.likelihood.roi.AnalysisState` (the data of
each component, the sky model, the priors and the fit of that model) and replaces it
whole on every change; it never mutates half of it.  Every method is a short delegation:
model edits to :mod:`fermixr.estimators.edits`, numbers to the registered estimators
(:mod:`fermixr.estimators`), files to the engine.  A failed fit leaves the state as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RecipeError
from ..estimators import edits as E
from ..estimators import edits_more as EM
from ..likelihood.roi import AnalysisState, build_cost
from ..model.skymodel import SkyModel
from ..model.source import Source

_FIT_OPTIONS = ("optimizer", "tol", "max_iter", "init_lambda", "retries", "min_fit_quality",
                "verbosity")


class Analysis:
    """A Fermi-LAT binned likelihood analysis configured by a recipe or Fermipy config.

    ``Analysis('config.yaml', selection={'emax': 10000})`` overrides sections as Fermipy
    does.  Call :meth:`setup` first.  ``Analysis.from_state(state)`` wraps an analysis
    state built in memory (no run directory)."""

    def __init__(self, config, **overrides):
        from ..engine.recipe import load_recipe
        from ..engine.run import resolve_outdir

        self.recipe = load_recipe(config, **overrides)
        self.config = self.recipe.config
        self.outdir = resolve_outdir(self.recipe)
        self._state: AnalysisState | None = None

    @classmethod
    def from_state(cls, state: AnalysisState, config=None, outdir=None) -> "Analysis":
        """An Analysis over ``state`` (e.g. arrays from another tool); ``config``: a
        configuration dict for the fit options (default the option table's)."""
        from ..engine.options import default_config
        from ..engine.recipe import merge_config

        gta = cls.__new__(cls)
        gta.recipe = None
        gta.config = merge_config(default_config(), dict(config or {}))
        gta.outdir = Path(outdir) if outdir is not None else Path.cwd()
        gta._state = state
        return gta

    @classmethod
    def from_gammapy(cls, path_or_files, config=None, outdir=None, **kwargs) -> "Analysis":
        """An Analysis over Gammapy data: a MapDataset FITS file, or the loose counts /
        background / exposure / PSF cubes (a folder or a dict of paths); ``kwargs``
        (``width``, ``center``) go to :func:`fermixr.engine.gammapy_import.import_gammapy`;
        ``outdir`` (made if missing; default the working folder) receives written files."""
        from ..engine.gammapy_import import import_gammapy

        state = import_gammapy(path_or_files, **kwargs)
        if outdir is not None:
            Path(outdir).mkdir(parents=True, exist_ok=True)
        return cls.from_state(state, config, outdir)

    def copy(self) -> "Analysis":
        """Another Analysis on the same (frozen) state: changes to one never reach the
        other."""
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    # ------------------------------------------------------------------ state -----------
    @property
    def state(self) -> AnalysisState:
        if self._state is None:
            raise RecipeError("call setup() first")
        return self._state

    @state.setter
    def state(self, value: AnalysisState) -> None:
        self._state = value

    @property
    def model(self) -> SkyModel | None:
        return None if self._state is None else self._state.model

    @model.setter
    def model(self, value: SkyModel) -> None:
        self.state = E.with_all_maps(self.state.with_model(value))

    def setup(self, scheduler=None, verbose: bool = False) -> "Analysis":
        """Make every data product (selection, livetime, exposure, counts, source maps)
        through the engine, reusing cached ones, and build the sky model."""
        from ..engine.run import run_recipe

        doc = self.recipe.to_dict()
        doc["steps"] = ["setup"]
        run_recipe(doc, outdir=self.outdir, scheduler=scheduler, verbose=verbose)
        return self._load_products()

    def _load_products(self) -> "Analysis":
        """The state of the run: the sky model now, the data products when first needed."""
        from ..engine.state import load_state

        self._state = load_state(self.recipe, self.outdir)
        return self

    def _edit(self, func, *args, **kwargs):
        """Apply an edit returning a state, or (state, value); returns the value."""
        out = func(self.state, *args, **kwargs)
        if isinstance(out, tuple):
            self.state, value = out
            return value
        self.state = out
        return None

    def roi_source(self, name: str) -> Source:
        return self.state.model.find(name)

    # ------------------------------------------------------------- the model ----------
    def free_parameter(self, name, par, free=True):
        self._edit(E.free_parameter, name, par, free)

    def free_norm(self, name, free=True):
        self._edit(E.free_norm, name, free)

    def free_index(self, name, free=True):
        self._edit(E.free_index, name, free)

    def free_shape(self, name, free=True):
        self._edit(E.free_shape, name, free)

    def free_source(self, name, free=True, pars=None):
        """Free (or fix) a source's spectral parameters: all but the reference energies and
        limits (``pars=None``), ``'norm'``, ``'shape'``, or a list of names."""
        self._edit(E.free_source, name, free=free, pars=pars)

    def free_sources(self, free=True, pars=None, cuts=None, distance=None, skydir=None,
                     minmax_ts=None, minmax_npred=None, exclude=None, square=False):
        """Free (or fix) ``pars`` of every source :meth:`get_sources` selects; returns the
        sources changed."""
        return self._edit(E.free_sources, free=free, pars=pars, cuts=cuts,
                          distance=distance, skydir=skydir, minmax_ts=minmax_ts,
                          minmax_npred=minmax_npred, exclude=exclude, square=square)

    def set_parameter(self, name, par, value, true_value=True, scale=None, bounds=None,
                      error=None):
        """Set a parameter; ``true_value`` (default) means ``value`` is the physical value."""
        self._edit(E.set_parameter, name, par, value, true_value=true_value, scale=scale,
                   bounds=bounds, error=error)

    def set_parameter_bounds(self, name, par, bounds):
        self._edit(E.set_parameter_bounds, name, par, bounds)

    def set_norm(self, name, value):
        self._edit(E.set_norm, name, value)

    def zero_source(self, name):
        self._edit(E.zero_source, name)

    def unzero_source(self, name):
        self._edit(E.unzero_source, name)

    def add_source(self, name, src_dict, free=None) -> Source:
        """Add a source from a Fermipy source dictionary (``ra``/``dec`` or ``glon``/
        ``glat``, ``SpectrumType``, ``SpatialModel``, parameters ...) with its maps."""
        return self._edit(E.add_source, name, src_dict, free=free)

    def set_source_spectrum(self, name, spectrum_type="PowerLaw", spectrum_pars=None):
        self._edit(E.set_source_spectrum, name, spectrum_type, spectrum_pars)

    def set_source_morphology(self, name, spatial_model=None, spatial_pars=None):
        """Change a source's spatial model or parameters (physical values); its maps are
        made (and cached in the run's store)."""
        self._edit(E.set_source_morphology, name, spatial_model, spatial_pars)

    def delete_source(self, name):
        return self._edit(E.delete_source, name)

    def delete_sources(self, cuts=None, distance=None, skydir=None, minmax_ts=None,
                       minmax_npred=None, exclude=None, square=False, names=None):
        """Delete every source :meth:`get_sources` selects (with none given, every
        source, as Fermipy does); returns the deleted sources."""
        return self._edit(E.delete_sources, cuts=cuts, distance=distance, skydir=skydir,
                          minmax_ts=minmax_ts, minmax_npred=minmax_npred, exclude=exclude,
                          square=square, names=names)

    def get_sources(self, cuts=None, distance=None, skydir=None, minmax_ts=None,
                    minmax_npred=None, exclude=None, square=False, coordsys=None,
                    names=None) -> list[Source]:
        """The sources passing Fermipy's selection (see
        :func:`fermixr.estimators.edits.get_sources`)."""
        if coordsys is None:
            coordsys = self.config["binning"]["coordsys"]
        return E.get_sources(self.state, cuts=cuts, distance=distance, skydir=skydir,
                             minmax_ts=minmax_ts, minmax_npred=minmax_npred,
                             exclude=exclude, square=square, coordsys=coordsys, names=names)

    def get_params(self, freeonly=False) -> list[dict]:
        """One dict per spectral parameter (Fermipy's ``get_params``)."""
        return E.get_params(self.state, freeonly)

    # ------------------------------------------------------------------ priors ----------
    def add_gauss_prior(self, name, parName, mean, sigma):
        """A Gaussian prior (scaled units) on a free parameter."""
        self._edit(E.add_gauss_prior, name, parName, mean, sigma)

    def remove_prior(self, name, parName):
        self._edit(E.remove_prior, name, parName)

    def remove_priors(self):
        self._edit(E.remove_priors)

    def constrain_norms(self, srcNames, cov_scale=1.0):
        """Gaussian priors on the norms of ``srcNames`` (sigma = cov_scale x error)."""
        self._edit(E.constrain_norms, srcNames, cov_scale)

    @property
    def _priors(self):
        return dict(self.state.priors)

    # -------------------------------------------------------------- likelihood ----------
    def _cost(self):
        return build_cost(self.state)

    def loglike(self) -> float:
        """log L of the current model (gtlike's value, without log n!)."""
        from ..likelihood.roi import loglike

        return loglike(self.state)

    def _fit_options(self, **kwargs) -> dict:
        opt = {k: v for k, v in self.config["optimizer"].items() if k in _FIT_OPTIONS}
        opt.update({k: v for k, v in kwargs.items() if v is not None})
        return opt

    def fit(self, optimizer=None, update=True, **kwargs) -> dict:
        """Maximise the likelihood over the free parameters; on success (and with
        ``update``) the model takes the best-fit values and errors and the fit's
        covariance, on failure (or without ``update``) the state is left as it was.
        Returns Fermipy's fit() dict."""
        from ..estimators.fit import fit_state

        out, new = fit_state(self.state, **self._fit_options(optimizer=optimizer, **kwargs))
        if update:
            self.state = new
        return out

    def optimize(self, npred_frac=None, npred_threshold=None, shape_ts_threshold=None,
                 max_free_sources=None, skip=None, **kwargs) -> dict:
        """Fermipy's three passes bringing every source near its optimum (roiopt);
        returns loglike0, loglike1, dloglike, config."""
        from ..estimators.optimize import optimize_state

        ro = self.config["roiopt"]
        given = {"npred_frac": npred_frac, "npred_threshold": npred_threshold,
                 "shape_ts_threshold": shape_ts_threshold,
                 "max_free_sources": max_free_sources, "skip": skip}
        opts = {k: (ro.get(k) if v is None else v) for k, v in given.items()}
        opts = {k: v for k, v in opts.items() if v is not None}
        out, self.state = optimize_state(self.state, fit_options=self._fit_options(**kwargs),
                                         **opts)
        return out

    # ---------------------------------------------------------------- maps ------------
    def _component_cubes(self, name=None, weighted=False) -> list[np.ndarray]:
        from ..estimators.ts import model_cubes

        return model_cubes(self.state, name, weighted)

    def _sum_components(self, cubes, name, units):
        import xarray as xr

        from ..likelihood.roi import require_one_grid

        comps = self.state.components
        require_one_grid(comps, name)
        total = sum(m.reshape((-1,) + tuple(c.sky_shape)) for c, m in zip(comps, cubes))
        ref = comps[0].template["counts"] if comps[0].template is not None else None
        if ref is None:
            return xr.DataArray(total, name=name, attrs={"units": units})
        return xr.DataArray(total, dims=ref.dims, coords=ref.coords, name=name,
                            attrs={"units": units})

    def model_counts_map(self, name=None, weighted=False):
        """Model counts (energy, y, x) or (energy, pix) of the whole model or of one
        source, summed over components; ``weighted``: times the likelihood weights."""
        return self._sum_components(self._component_cubes(name, weighted), "model_counts",
                                    "count")

    def counts_map(self):
        out = self._sum_components([c.counts for c in self.state.components], "counts",
                                   "count")
        out.attrs = {}
        return out

    def npred(self, name) -> float:
        from ..estimators.ts import npred

        return npred(self.state, name)

    def profile_norm(self, name, xvals=None, npts=None, reoptimize=False) -> dict:
        """Likelihood profile of a source's normalisation (scaled units) from 0 to well
        past its best value (``npts`` = gtlike.llscan_npts points, or ``xvals``)."""
        from ..estimators.profile import norm_xvals

        src = self.roi_source(name)
        if xvals is None:
            xvals = norm_xvals(self.state, src.name, npts or self._llscan_npts())
        return self.profile(src.name, self.state.spectral(src).norm_param, xvals,
                            reoptimize=reoptimize)

    def profile(self, name, parName, xvals=None, npts=None, reoptimize=False) -> dict:
        """Likelihood profile of any spectral parameter over ``xvals`` (scaled units);
        others held, or refitted with ``reoptimize``.  Returns xvals, loglike, dloglike
        and the source's flux / eflux at each point."""
        from ..estimators.profile import profile_values

        out = profile_values(self.state, self.roi_source(name).name, parName, xvals,
                             npts=npts or self._llscan_npts(), reoptimize=reoptimize,
                             fit_options=self._fit_options())
        out.pop("par_name")
        return out

    def _llscan_npts(self) -> int:
        return int(self.config["gtlike"]["llscan_npts"])

    def bowtie(self, name, loge=None, npts=50) -> dict:
        """The spectrum of a source with its 1-sigma band from the fit covariance."""
        from ..estimators.bowtie import bowtie_values

        return bowtie_values(self.state, self.roi_source(name).name, loge, npts)

    def residmap(self, prefix="", **kwargs) -> dict:
        """Fermipy's residmap(): residual significance of the test source ``model`` (options
        of the residmap section, overridden by ``kwargs``); writes
        ``<prefix>_residmap.fits`` (and .npy, and the plot with make_plots) in the output
        folder.  Returns sigma, excess, data, model, name, file, src_dict."""
        from ..engine.residmap_output import residmap_dict, residmap_outputs

        ds, paths = residmap_outputs(self.state, self.outdir, prefix, self.config, kwargs)
        return residmap_dict(ds, paths.get("fits"))

    def tsmap(self, prefix="", **kwargs) -> dict:
        """Fermipy's tsmap(): TS map of a test source (options of the tsmap section as
        keywords); writes ``<prefix>_tsmap.fits`` and returns Fermipy's dict."""
        from ..engine.tsmap_output import run_tsmap, tsmap_dict

        ds, paths = run_tsmap(self.state, dict(self.config["tsmap"]), self.outdir,
                              dict(kwargs, prefix=prefix))
        return tsmap_dict(ds, None if "fits" not in paths else str(paths["fits"]))

    def sed(self, name, loge_bins=None, **kwargs) -> dict:
        """Fermipy's sed(): the SED of source ``name`` (options of the sed section as
        keywords); writes ``<prefix>_<name>_sed.fits`` and returns Fermipy's dict."""
        from ..engine.sed_output import run_sed
        from ..estimators.sed import sed_dict

        ds, paths = run_sed(self.state, dict(self.config["sed"]), self.outdir,
                            dict(kwargs, name=name, loge_bins=loge_bins),
                            llscan_npts=self._llscan_npts())
        return sed_dict(ds, None if "fits" not in paths else str(paths["fits"]))

    def tscube(self, prefix="", **kwargs) -> dict:
        """Fermipy's tscube(): TS cube of a test source (options of the tscube section as
        keywords); writes ``<prefix>_tscube.fits`` and returns Fermipy's dict (ts,
        sqrt_ts, npred, amplitude, name, src_dict, file, config, tscube)."""
        from ..engine.tscube_output import run_tscube, tscube_dict

        ds, paths = run_tscube(self.state, dict(self.config["tscube"]), self.outdir,
                               dict(kwargs, prefix=prefix))
        return tscube_dict(ds, None if "fits" not in paths else str(paths["fits"]),
                           dict(self.config["tscube"], **kwargs))

    def generate_model(self, model_name=None, rng=None, seed=None):
        """Replace the counts of every component by a Poisson realisation of the current
        model (of one source with ``model_name``); returns the seed used."""
        return self._edit(E.generate_model, model_name, rng=rng, seed=seed)

    # ----------------------------------------------------------- source dicts -----------
    def get_src_model(self, name, paramsonly=False, reoptimize=False, npts=None,
                      covariance=None, scan=True) -> dict:
        """Fermipy's source dictionary of one source (see
        :func:`fermixr.estimators.sourcedict.source_dict`); ``reoptimize``: ``ts`` is
        gtlike's, the other free parameters refitted without the source; ``paramsonly``:
        no normalisation scan."""
        from ..estimators.edits_more import ts_reoptimized
        from ..estimators.sourcedict import source_dict

        d = source_dict(self.state, self.roi_source(name).name, covariance=covariance,
                        scan=scan and not paramsonly,
                        llscan_npts=npts or self._llscan_npts())
        if reoptimize:
            d["ts"] = ts_reoptimized(self.state, d["name"], self._fit_options())
        return d

    def roi_results(self) -> dict:
        return {s.name: self.get_src_model(s.name) for s in self.model}

    # ------------------------------------------------------------- write/load -----------
    def write_xml(self, xmlfile):
        """The model as a Science Tools XML file."""
        from ..engine.roi_output import write_model_xml

        path = Path(xmlfile)
        return write_model_xml(self.model, path if path.is_absolute() else self.outdir / path)

    def _config_dict(self) -> dict:
        return self.recipe.to_dict() if self.recipe is not None else dict(self.config)

    def write_roi(self, outfile="fit_roi", save_model_map=False, make_plots=False) -> dict:
        """Write the ROI: ``<prefix>.npy``, ``.fits``, ``_NN.xml``, ``.yaml``, ``.zarr``,
        with ``save_model_map`` the model cubes, with ``make_plots`` the counts spectrum
        and map of each component.  Returns the paths written."""
        from ..engine.roi_output import write_roi

        return write_roi(self.state, self._config_dict(), self.outdir, outfile,
                         save_model_map=save_model_map, make_plots=make_plots)

    def roi_files(self, outfile="fit_roi", save_model_map=False, make_plots=False) -> dict:
        """The files ``write_roi(outfile, ...)`` writes, by key."""
        from ..engine.roi_output import roi_files

        n = len(self.recipe.components) if self.recipe is not None else \
            len(self.state.components)
        return roi_files(self.outdir, n, outfile, save_model_map, make_plots)

    def load_roi(self, infile) -> "Analysis":
        """Restore the model (every parameter bit for bit) from a ``write_roi`` file."""
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
        text = E.roi_text(self.state)
        print(text)
        return text

    def print_params(self, allpars=False) -> str:
        """Print the free spectral parameters (every one with ``allpars``)."""
        text = E.params_text(self.state, allpars)
        print(text)
        return text

    # ---------------------------------------------- the ROI and Fermipy's everyday API ------
    @property
    def roi(self):
        """The sources of the current state as Fermipy's ROIModel (a read-only view:
        ``gta.roi['Crab']['ts']``); made again from the state each time."""
        from .roi import ROI

        return ROI(self.state, coordsys=self.config["binning"]["coordsys"],
                   llscan_npts=self._llscan_npts())

    def set_energy_range(self, logemin=None, logemax=None):
        """Use only the energy bins between ``logemin`` and ``logemax`` (log10 MeV, each
        taken to the nearest bin edge; None: the first / last edge) in the likelihood,
        npred and fluxes; returns the [logemin, logemax] used."""
        return self._edit(EM.set_energy_range, logemin, logemax)

    @property
    def loge_bounds(self):
        """[log10 emin, log10 emax] of the energy range in use."""
        return np.log10(np.array(self.state.energy_range))

    @property
    def log_energies(self):
        """log10 of the analysis energy bin edges (MeV), every bin."""
        return np.log10(self.state.components[0].edges)

    def model_counts_spectrum(self, name, logemin=None, logemax=None, summed=False,
                              weighted=False):
        """Model counts per analysis energy bin of a source (None: the whole model)."""
        return EM.model_counts_spectrum(self.state, None if name is None else
                                        self.get_source_name(name), logemin, logemax,
                                        summed, weighted)

    def load_xml(self, xmlfile):
        """Make the model the one in an XML file (relative paths from the output folder)."""
        p = Path(xmlfile)
        self._edit(EM.load_xml, p if p.is_absolute() or p.exists() else self.outdir / p)

    def lock_parameter(self, name, par, lock=True):
        """A locked parameter keeps its free flag through free_source(s) / free_*."""
        self._edit(EM.lock_parameter, name, par, lock)

    def lock_source(self, name, lock=True):
        self._edit(EM.lock_source, name, lock)

    def unlock_source(self, name):
        self._edit(EM.lock_source, name, False)

    def free_sources_by_name(self, names, free=True, pars=None):
        return self._edit(EM.free_sources_by_name, names, free=free, pars=pars)

    def set_edisp_flag(self, name, flag=True):
        self._edit(EM.set_edisp_flag, name, flag)

    def get_source_dnde(self, name):
        """(log10 E/MeV, dN/dE) of a source (a FileFunction's table)."""
        return EM.get_source_dnde(self.state, name)

    def set_source_dnde(self, name, dnde):
        """A FileFunction's table values (written to the output folder)."""
        from ..engine.model_output import set_source_dnde

        self.state = set_source_dnde(self.state, name, dnde, self.outdir)

    def set_norm_bounds(self, name, bounds):
        self._edit(EM.set_norm_bounds, name, bounds)

    def set_norm_scale(self, name, scale):
        self._edit(EM.set_norm_scale, name, scale)

    def set_parameter_scale(self, name, par, scale):
        """Another scale for a parameter, its physical value and bounds kept."""
        self._edit(EM.set_parameter_scale, name, par, scale)

    def get_norm(self, name) -> float:
        return EM.get_norm(self.state, name)

    def get_free_param_vector(self) -> np.ndarray:
        return EM.get_free_param_vector(self.state)

    def set_free_param_vector(self, values):
        self._edit(EM.set_free_param_vector, values)

    def get_free_source_params(self, name) -> list:
        return EM.get_free_source_params(self.state, name)

    def get_source_name(self, name) -> str:
        return EM.get_source_name(self.state, name)

    def reload_source(self, name):
        self._edit(EM.reload_sources, [name])

    def reload_sources(self, names):
        self._edit(EM.reload_sources, names)

    def add_sources_from_roi(self, names, roi):
        """Copy sources of another ROI (or Analysis, or sky model) into this model."""
        model = getattr(roi, "model", roi)
        return self._edit(EM.add_sources_from_model, names, model)

    def write_model_map(self, model_name=None, name=None) -> dict:
        """Model counts cube per component (``mcube_<model_name>_NN.fits``)."""
        from ..engine.model_output import write_model_map

        return write_model_map(self.state, self._config_dict(), self.outdir, model_name, name)

    def write_fits(self, fitsfile):
        """The ROI table (write_roi's .fits) alone."""
        p = Path(fitsfile)
        return self.roi.write_fits(p if p.is_absolute() else self.outdir / p,
                                   config=self._config_dict())

    def print_model(self) -> str:
        text = EM.model_text(self.state)
        print(text)
        return text

    def make_plots(self, prefix, mcube_map=None, **kwargs) -> dict:
        """The plots fermixr makes of the ROI (counts spectrum and counts map per
        component: fermixr.engine.model_output.PLOTS); returns their paths."""
        from ..engine.model_output import make_plots

        return make_plots(self.state, self.outdir, prefix, mcube_map)

    def simulate_roi(self, name=None, randomize=True, restore=False, seed=None, rng=None):
        """Replace the counts by a Poisson draw of the model (of source ``name``), or its
        expectation (``randomize=False``); ``restore`` brings the data back.  Returns the
        record with the seed used."""
        return self._edit(EM.simulate_roi, name, randomize, restore, seed=seed, rng=rng)

    def simulate_source(self, src_dict=None, seed=None, rng=None):
        """Add the Poisson counts of a source (not kept in the model) to the counts."""
        return self._edit(EM.simulate_source, src_dict, seed=seed, rng=rng)

    # ------------------------------------------------------------- light curve ---------
    def lightcurve(self, name, scheduler=None, verbose=False, **kwargs) -> dict:
        """Fermipy's lightcurve(): ``name`` fitted in each time bin (options of the
        lightcurve section, overridden by ``kwargs``: binsz, nbins, time_bins, free_params,
        free_background, free_radius, free_sources, max_free_sources, shape_ts_threshold,
        systematic, outdir, write_fits, write_npy, make_plots, prefix, optimizer).  Each
        bin is a keyed sub-plan of the store: finished bins are reused, a bin without GTIs
        or events or whose fit fails is recorded (fit_success False, status, reason).
        Returns Fermipy's dict (name, tmin, tmax, fit_success, ts_var, config, the flux /
        eflux / dnde families per bin, loglike_const, loglike_fixed ...)."""
        from ..engine.lightcurve import lightcurve_dict, run_lightcurve
        from ..engine.run import dask_client

        if self.recipe is None:
            raise RecipeError("lightcurve() needs an Analysis made from a recipe (the bins' "
                              "data products come from its files)")
        with dask_client(scheduler) as client:
            ds, paths = run_lightcurve(self.state, self.recipe, self.outdir,
                                       self.roi_source(name).name, kwargs,
                                       fit_options=self._fit_options(), client=client,
                                       verbose=verbose)
        return lightcurve_dict(ds, paths.get("fits"))

    def weighted_lightcurve(self, name, binsz=86400.0, timing=None, **kwargs):
        """A weighted-photon light curve of ``name`` (Kerr 2019, as wtlike) from this
        fitted model: photon weights from the model cubes, each cell's exposure from the
        FT2 rows; keywords nbins, time_bins, interpolate, blocks, bayesian_blocks_prior,
        p0, write_fits, make_plots, prefix.  Returns the ``wtlike`` Dataset."""
        from ..engine.wtlike_output import run_weighted_lightcurve

        if self.recipe is None:
            raise RecipeError("weighted_lightcurve() needs an Analysis made from a recipe "
                              "(the events and FT2 come from its files)")
        ds, _ = run_weighted_lightcurve(self.state, self.recipe, self.outdir, name,
                                        dict(kwargs, binsz=binsz), timing=timing)
        return ds


    # ------------------------------------------------ localize / find_sources -----------
    def localize(self, name, **kwargs) -> dict:
        """Fermipy's localize(): the position of ``name`` (options of the localize section
        as keywords: nstep, dtheta_max, update, fix_shape, free_background, free_radius,
        make_plots, write_fits, write_npy, prefix, optimizer); writes
        ``<prefix>_<name>_loc.fits`` / ``.npy`` and, with ``update`` (default), moves the
        source.  Returns Fermipy's dict.  Nothing changes or is written on an error."""
        from ..engine.localize_output import localize_dict, run_localize

        res, paths = run_localize(self.state, dict(self.config["localize"]), self.outdir,
                                  dict(kwargs, name=name))
        if res.state is not None:
            self.state = res.state
        return localize_dict(res.dataset, None if "fits" not in paths else str(paths["fits"]))

    def find_sources(self, prefix="", **kwargs) -> dict:
        """Fermipy's find_sources(): new point sources at TS-map peaks (options of the
        sourcefind section as keywords, plus search_skydir, search_minmax_radius, tsmap);
        adds them to the model.  Returns {'peaks', 'sources', ...}."""
        from ..engine.localize_output import find_sources_dict, run_find_sources

        res, paths = run_find_sources(self.state, dict(self.config["sourcefind"]),
                                      self.outdir, dict(kwargs, prefix=prefix))
        if res.state is not None:
            self.state = res.state
        return find_sources_dict(res.dataset, res.state if res.state is not None
                                 else self.state,
                                 None if "fits" not in paths else str(paths["fits"]))

    # -------------------------------------------------- extension and curvature -------
    def extension(self, name, **kwargs) -> dict:
        """Fermipy's extension(): the width scan of ``name`` (options of the extension
        section as keywords, plus prefix / outfile / optimizer); writes
        ``<prefix>_<name>_ext.fits`` and .npy in the output folder; with ``update`` (and
        sqrt(TS_ext) above sqrt_ts_threshold) the model takes the extended source.
        Returns Fermipy's dict (ext, ext_err_lo/hi, ext_ul95, ts_ext, the scan ...)."""
        import json

        from ..engine.extension_output import extension_dict, run_extension

        new, ds, paths = run_extension(self.state, dict(self.config["extension"]),
                                       self.outdir, dict(kwargs, name=name),
                                       fit_options=self._fit_options(),
                                       config=json.dumps(self._config_dict(), default=str))
        if new is not None:
            self.state = new
        return extension_dict(ds, str(paths["fits"]) if "fits" in paths else None)

    def curvature(self, name, **kwargs) -> dict:
        """Fermipy's curvature(): PowerLaw against LogParabola and PLSuperExpCutoff4 (b =
        2/3 fixed, and free), each refitted with the free parameters of the model; the
        model is left as it was.  Returns ts_curv, lp_ts_curv, ple_ts_curv,
        ple_free_ts_curv, loglike_pl / lp / ple / ple_free and each model's parameters."""
        from ..engine.extension_output import curvature_dict
        from ..estimators import run

        opts = dict(kwargs)
        fo = self._fit_options(**(opts.pop("optimizer", None) or {}))
        return curvature_dict(run("curvature", self.state, name, optimizer=fo,
                                  **opts).dataset)


GTAnalysis = Analysis
