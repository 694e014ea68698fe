"""``gta.roi``: a read-only view of the sources of an analysis state with Fermipy's
``ROIModel`` interface.

``roi['Crab']`` is a :class:`ROISource`: Fermipy's source dictionary (``src['ts']``,
``src['flux']``, ``src['param_values']``, ``src['offset']`` ...) with ``.name``,
``.skydir`` (an astropy SkyCoord) and ``.data``.  Names match case- and space-insensitively
or by association; an unknown name is one error naming the closest ones.  The view never
changes the analysis: edits go through the :class:`~fermixr.api.analysis.Analysis`
methods, and ``gta.roi`` is made again from the new state each time it is asked for.
Entries that need the likelihood are computed when first read and kept by the view.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..estimators import edits as E
from ..model.skymodel import SkyModel

__all__ = ["ROI", "ROISource", "to_radec"]

# entries the normalisation scan adds (computed only when one of them is read)
_SCAN_KEYS = ("norm_scan", "dloglike_scan", "loglike_scan", "flux_scan", "eflux_scan",
              "flux_ul95", "flux100_ul95", "flux1000_ul95", "flux10000_ul95",
              "eflux_ul95", "eflux100_ul95", "eflux1000_ul95", "eflux10000_ul95")


def to_radec(skydir) -> tuple[float, float]:
    """(ra, dec) in deg from a SkyCoord or an (ra, dec) pair."""
    if skydir is None:
        raise ModelError("skydir: got None; expected a SkyCoord or (ra, dec) in deg")
    if hasattr(skydir, "icrs"):
        c = skydir.icrs
        return float(c.ra.deg), float(c.dec.deg)
    try:
        ra, dec = (float(v) for v in skydir)
    except (TypeError, ValueError):
        raise ModelError(f"skydir: got {skydir!r}; expected a SkyCoord or (ra, dec) in "
                         "deg") from None
    return ra, dec


_SAME_PLACE_DEG = 0.2     # as selection.target: matches closer than this are one object


def find_source(model: SkyModel, name: str):
    """The source called ``name`` or associated with it (SkyModel.find); several sources
    associated with one name within 0.2 deg of each other (4FGL's Crab nebula components
    are both associated with 'Crab') resolve, as ``selection.target`` does, to the one of
    highest catalog significance, with a warning naming the others."""
    import warnings

    from ..geom.frames import angular_separation

    try:
        return model.find(name)
    except ModelError:
        hits = [s for s in model if s.matches(name)]
        if len(hits) < 2 or any(s.position is None for s in hits):
            raise
        pos = np.array([s.position for s in hits])
        sep = max(float(angular_separation(pos[:, 0], pos[:, 1], *p).max()) for p in pos)
        if sep > _SAME_PLACE_DEG:
            raise

        def signif(s):
            v = s.meta.get("Signif_Avg", s.meta.get("TS"))
            return float(v) if isinstance(v, (int, float)) and np.isfinite(v) else -np.inf

        best = max(hits, key=signif)
        warnings.warn(f"{name!r} is associated with {len(hits)} sources within "
                      f"{sep:.2f} deg: taking {best.name!r} (highest catalog significance); "
                      f"the others: {', '.join(s.name for s in hits if s is not best)}",
                      stacklevel=3)
        return best


def _skycoord(radec):
    from astropy.coordinates import SkyCoord

    return None if radec is None else SkyCoord(radec[0], radec[1], unit="deg", frame="icrs")


class ROISource(Mapping):
    """One source of the ROI as Fermipy's source dictionary (read-only)."""

    def __init__(self, roi: "ROI", src):
        self._roi = roi
        self._src = src
        self._data: dict | None = None

    # -- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._src.name

    @property
    def source(self):
        """The :class:`fermixr.model.source.Source` behind the view."""
        return self._src

    @property
    def skydir(self):
        """Position as an astropy SkyCoord (ICRS), None for a diffuse source."""
        return _skycoord(self._src.position)

    @property
    def radec(self):
        return None if self._src.position is None else np.array(self._src.position)

    @property
    def associations(self) -> list[str]:
        return [self.name] + [a for a in self._src.associations if a]

    @property
    def assoc(self) -> dict:
        return {f"ASSOC{i + 1}": a for i, a in enumerate(self._src.associations)}

    @property
    def diffuse(self) -> bool:
        """A diffuse background (no position: isotropic, map cube), as Fermipy's; a
        SpatialMap template source has a position and is extended."""
        return self._src.position is None

    @property
    def extended(self) -> bool:
        return self._src.spatial_model != "PointSource" and not self.diffuse

    @property
    def spectral_pars(self) -> dict:
        return {p.name: p.to_dict() for p in self._src.spectral}

    @property
    def spatial_pars(self) -> dict:
        return {p.name: p.to_dict() for p in self._src.spatial}

    @property
    def params(self) -> dict:
        return {**self.spectral_pars, **self.spatial_pars}

    # -- the dictionary ------------------------------------------------------------------
    @property
    def data(self) -> dict:
        """The whole source dictionary (with the normalisation scan when there are
        data)."""
        self._fill(scan=True)
        return dict(self._data)

    def _fill(self, scan: bool) -> None:
        if self._data is None:
            self._data = self._roi._source_dict(self._src, scan=False)
        if scan and "norm_scan" not in self._data and self._roi.state is not None \
                and self._src.position is not None:
            from ..estimators.profile import norm_scan

            d = self._data
            fluxes = {k: d[k] for k in ("flux", "flux100", "flux1000", "flux10000", "eflux",
                                        "eflux100", "eflux1000", "eflux10000")}
            d.update(norm_scan(self._roi.state, self.name, fluxes, self._roi.llscan_npts))

    def __getitem__(self, key):
        self._fill(scan=key in _SCAN_KEYS)
        try:
            return self._data[key]
        except KeyError:
            raise KeyError(f"source {self.name!r} has no entry {key!r}; entries: "
                           f"{', '.join(sorted(self._data))}") from None

    def __iter__(self):
        self._fill(scan=True)
        return iter(self._data)

    def __len__(self) -> int:
        self._fill(scan=True)
        return len(self._data)

    def __contains__(self, key) -> bool:
        self._fill(scan=key in _SCAN_KEYS)
        return key in self._data

    def get(self, key, default=None):
        return self[key] if key in self else default

    def separation(self, skydir):
        """Angular separation (astropy Angle) from ``skydir``."""
        return self.skydir.separation(_skycoord(to_radec(skydir)))

    def __repr__(self) -> str:
        return f"ROISource({self.name!r}, {self._src.spatial_model}, {self._src.spectrum})"

    def __str__(self) -> str:
        d = self._roi._source_dict(self._src, scan=False) if self._data is None \
            else self._data
        lines = [f"Name           : {self.name}",
                 f"Associations   : {list(self._src.associations)}",
                 f"RA/DEC         : {d['ra']:10.3f}/{d['dec']:10.3f}",
                 f"GLON/GLAT      : {d['glon']:10.3f}/{d['glat']:10.3f}",
                 f"TS             : {d.get('ts', float('nan')):.2f}",
                 f"Npred          : {d.get('npred', float('nan')):.2f}",
                 f"Flux           : {d['flux']:9.4g} +/- {d['flux_err']:9.4g}",
                 f"EnergyFlux     : {d['eflux']:9.4g} +/- {d['eflux_err']:9.4g}",
                 f"SpatialModel   : {self._src.spatial_model}",
                 f"SpectrumType   : {self._src.spectrum}",
                 "Spectral Parameters"]
        for n, v, e in zip(d["param_names"], d["param_values"], d["param_errors"]):
            lines.append(f"{n:<15}: {v:10.4g} +/- {e:10.4g}")
        return "\n".join(lines)


class ROI:
    """The sources of an analysis state (or of a sky model alone, without data: then only
    the entries that need no likelihood), with Fermipy's ``ROIModel`` methods."""

    def __init__(self, state=None, *, model: SkyModel | None = None, skydir=None,
                 coordsys: str | None = None, llscan_npts: int = 20, geom=None):
        self.state = state
        self.model = state.model if state is not None else model
        if self.model is None:
            raise ModelError("ROI: give an analysis state or a sky model")
        center = state.roi_center if state is not None and skydir is None else skydir
        self._center = None if center is None else to_radec(center)
        self.coordsys = str(coordsys or (state.coordsys if state is not None else "CEL"))
        self.llscan_npts = int(llscan_npts)
        self._geom = geom
        self._views: dict[str, ROISource] = {}

    @classmethod
    def create_from_position(cls, skydir, config: dict, *, base=None) -> "ROI":
        """An ROI (a sky model, no data) built from a Fermipy ``model`` configuration
        (``catalogs``, ``sources``, ``src_radius`` / ``src_roiwidth``, ``isodiff`` ...)
        around ``skydir``; ``config`` is the ``model`` section or a whole configuration."""
        from ..model.build import build_sky_model

        cfg = dict(config or {})
        coordsys = "CEL"
        if "model" in cfg and isinstance(cfg["model"], dict):
            coordsys = (cfg.get("binning") or {}).get("coordsys", coordsys)
            cfg = cfg["model"]
        center = to_radec(skydir)
        model = build_sky_model(cfg, center, base=base, coordsys=coordsys)
        return cls(model=model, skydir=center, coordsys=coordsys)

    # -- lookup ----------------------------------------------------------------------------
    def _view(self, src) -> ROISource:
        v = self._views.get(src.name)
        if v is None:
            v = self._views[src.name] = ROISource(self, src)
        return v

    def __getitem__(self, name) -> ROISource:
        if not isinstance(name, str):
            raise ModelError(f"roi[{name!r}]: expected a source name")
        return self._view(find_source(self.model, name))

    def get_source_by_name(self, name) -> ROISource:
        return self[name]

    def get_sources_by_name(self, name) -> list[ROISource]:
        """Every source called ``name`` or associated with it."""
        hits = [s for s in self.model if s.matches(name)]
        if not hits:
            self.model.find(name)           # raises, naming the closest names
        return [self._view(s) for s in hits]

    def has_source(self, name) -> bool:
        return name in self.model

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self.model

    def __iter__(self):
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.model)

    @property
    def sources(self) -> list[ROISource]:
        return [self._view(s) for s in self.model]

    @property
    def point_sources(self) -> list[ROISource]:
        return [self._view(s) for s in self.model if s.spatial_model == "PointSource"]

    @property
    def diffuse_sources(self) -> list[ROISource]:
        return [self._view(s) for s in self.model if s.position is None]

    @property
    def names(self) -> list[str]:
        return self.model.names

    @property
    def skydir(self):
        """The ROI centre as an astropy SkyCoord (ICRS)."""
        return _skycoord(self._center)

    # -- selections ------------------------------------------------------------------------
    def _selection_state(self):
        if self.state is not None:
            return self.state
        return _ModelOnly(self.model, self._center, self.coordsys)

    def get_sources(self, skydir=None, distance=None, cuts=None, minmax_ts=None,
                    minmax_npred=None, exclude=None, square=False, coordsys=None,
                    names=None) -> list[ROISource]:
        """Fermipy's selection (see :func:`fermixr.estimators.edits.get_sources`): point
        and extended sources nearest first, then the diffuse ones."""
        if (cuts or minmax_ts or minmax_npred) and self.state is None:
            raise ModelError("get_sources: cuts on ts or npred need data; this ROI is a "
                             "sky model only")
        srcs = E.get_sources(self._selection_state(), cuts=cuts, distance=distance,
                             skydir=None if skydir is None else to_radec(skydir),
                             minmax_ts=minmax_ts, minmax_npred=minmax_npred,
                             exclude=exclude, square=square,
                             coordsys=coordsys or self.coordsys, names=names)
        return [self._view(s) for s in srcs]

    def get_sources_by_position(self, skydir, dist, min_dist=None, square=False,
                                coordsys=None) -> list[ROISource]:
        """Sources (not the diffuse ones) with min_dist <= distance from ``skydir`` <= dist
        (deg; with ``square`` the AIT-projected |x|, |y|), nearest first."""
        from ..geom.frames import angular_separation

        radec = to_radec(skydir)
        inner = self.get_sources(skydir=radec, distance=dist, square=square,
                                 coordsys=coordsys)
        out = []
        for v in inner:
            if v.diffuse:
                continue
            if min_dist is not None:
                pos = v._src.position
                d = float(angular_separation(np.array([pos[0]]), np.array([pos[1]]),
                                             *radec)[0])
                if d < float(min_dist):
                    continue
            out.append(v)
        return out

    # -- the dictionaries ------------------------------------------------------------------
    def _source_dict(self, src, scan: bool) -> dict:
        if self.state is not None:
            from ..estimators.sourcedict import source_dict

            return source_dict(self.state, src.name, scan=scan,
                               llscan_npts=self.llscan_npts)
        return _model_only_dict(src, self._center, self._geom)

    def source_dicts(self) -> dict:
        """{name: source dictionary} of every source."""
        return {v.name: v.data for v in self.sources}

    # -- output ----------------------------------------------------------------------------
    def write_xml(self, path) -> Path:
        """The model as a Science Tools XML file."""
        from ..model.xml import write_xml

        path = Path(path)
        return write_xml(self.model, path if path.suffix == ".xml" else
                         path.with_suffix(".xml"))

    def write_fits(self, path, config: dict | None = None) -> Path:
        """The ROI table (one row per source, the columns write_roi writes) as FITS."""
        import json

        from ..engine.roi_output import write_atomic
        from ..estimators.sourcedict import sources_table

        path = Path(path)
        if path.suffix not in (".fits", ".fit"):
            path = path.with_suffix(".fits")
        table = sources_table({v.name: v.data for v in self.sources})
        if config is not None:
            table.meta["CONFIG"] = json.dumps(config, sort_keys=True, default=str)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, lambda tmp: table.write(tmp, format="fits",
                                                         overwrite=True))

    def __str__(self) -> str:
        if self.state is not None:
            return E.roi_text(self.state)
        return _model_text(self.model, self._center)

    def print(self) -> str:
        text = str(self)
        print(text)
        return text

    def __repr__(self) -> str:
        return f"ROI({len(self)} sources, centre {self._center})"


class _ModelOnly:
    """What get_sources reads of a state, for a sky model without data."""

    def __init__(self, model, center, coordsys):
        self.model = model
        self.roi_center = center
        self.coordsys = coordsys


def _model_only_dict(src, center, geom) -> dict:
    """The entries of the source dictionary that need neither data nor likelihood."""
    from ..estimators.sourcedict import catalog_columns, ellipse_dict
    from ..geom.frames import angular_separation, fermipy_cel_to_gal

    names = np.array([q.name for q in src.spectral])
    values = src.spectral_values()
    d = {"name": src.name, "Source_Name": src.name, "SpectrumType": src.spectrum,
         "SpatialModel": src.spatial_model, "associations": list(src.associations),
         "param_names": names, "param_values": values,
         "param_errors": np.array([np.nan if q.error is None else q.error * abs(q.scale)
                                   for q in src.spectral])}
    d.update({k: float("nan") for k in ("ra", "dec", "glon", "glat", "offset")})
    d.update(ellipse_dict(None, None, None))
    if src.position is not None:
        ra, dec = src.position
        glon, glat = fermipy_cel_to_gal(ra, dec)
        d.update(ra=ra, dec=dec, glon=glon, glat=glat)
        if center is not None:
            d["offset"] = float(angular_separation(np.array([ra]), np.array([dec]),
                                                   *center)[0])
        d.update(ellipse_dict(ra, dec, src.meta.get("pos_ellipse")))
    d.update(catalog_columns(src.spectrum, names, values))
    d.update({k: v for k, v in src.meta.items() if isinstance(v, (int, float, str))
              and k not in d})
    return d


def _model_text(model, center) -> str:
    lines = [f"{'name':<24}{'SpatialModel':<16}{'SpectrumType':<18}{'offset':>8}"]
    for s in model:
        d = _model_only_dict(s, center, None)
        off = "-----" if not np.isfinite(d["offset"]) else f"{d['offset']:8.3f}"
        lines.append(f"{s.name:<24}{s.spatial_model:<16}{s.spectrum:<18}{off:>8}")
    return "\n".join(lines)
