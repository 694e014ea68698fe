"""A source of the sky model: a name, a spectrum and a spatial model, each with its
parameters, plus associations and catalog metadata.  Immutable: every change returns a new
``Source``."""

from __future__ import annotations

import dataclasses
import re

from ..errors import ModelError
from .parameters import Parameter
from .spatial import DIFFUSE_TYPES, spatial_type


def normalize_name(name: str) -> str:
    """Key under which names match: case- and whitespace-insensitive (``Mkn 421`` =
    ``mkn421``)."""
    return re.sub(r"\s+", "", str(name)).lower()


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    spectrum: str                              # spectral model tag (PowerLaw, ...)
    spectral: tuple[Parameter, ...]
    spatial_model: str = "PointSource"         # canonical spatial type
    spatial: tuple[Parameter, ...] = ()
    spatial_file: str | None = None            # SpatialMap / MapCubeFunction template
    spectrum_file: str | None = None           # FileFunction table
    associations: tuple[str, ...] = ()
    # catalog row and other metadata; not part of equality.  ``meta["pos_ellipse"]`` =
    # (1-sigma semi-major, semi-minor [deg], position angle [deg east of north]) of the
    # position's uncertainty, kept through to_dict/from_dict.
    meta: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "spatial_model", spatial_type(self.spatial_model))
        names = [p.name for p in self.spectral] + [p.name for p in self.spatial]
        if len(set(p.name for p in self.spectral)) != len(self.spectral):
            raise ModelError(f"source {self.name!r}: duplicate spectral parameter in {names}")

    # -- access -----------------------------------------------------------------------
    @property
    def is_diffuse(self) -> bool:
        return self.spatial_model in DIFFUSE_TYPES

    @property
    def skydir(self) -> tuple[float, float] | None:
        """(ra, dec) in deg for point and radial sources, None for diffuse ones."""
        p = {q.name: q for q in self.spatial}
        if "RA" in p and "DEC" in p:
            return (p["RA"].physical, p["DEC"].physical)
        return None

    @property
    def position(self) -> tuple[float, float] | None:
        """(ra, dec) in deg where the source is: its RA/DEC parameters, else for a
        SpatialMap template source the catalog position kept in ``meta`` or the template's
        reference pixel (CRVAL1/2, as Fermipy); None for the diffuse backgrounds."""
        sd = self.skydir
        if sd is not None or self.spatial_model != "SpatialMap":
            return sd
        try:
            return (float(self.meta["ra"]), float(self.meta["dec"]))
        except (KeyError, TypeError, ValueError):
            pass
        if self.spatial_file:
            from ..io.mapcube import template_reference

            ref = template_reference(self.spatial_file)
            if ref is not None:
                lon, lat, ctype1 = ref
                if ctype1.upper().startswith("GLON"):
                    from ..geom.frames import fermipy_gal_to_cel

                    return tuple(float(v) for v in fermipy_gal_to_cel(lon, lat))
                return (float(lon), float(lat))
        return None

    def param(self, name: str) -> Parameter:
        for p in self.spectral + self.spatial:
            if p.name == name:
                return p
        raise ModelError(f"source {self.name!r} has no parameter {name!r}; it has "
                         f"{', '.join(p.name for p in self.spectral + self.spatial)}")

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.spectral]

    def spectral_values(self):
        """Physical spectral parameter values in model order (numpy array)."""
        import numpy as np

        return np.array([p.physical for p in self.spectral], dtype=np.float64)

    def matches(self, key: str) -> bool:
        k = normalize_name(key)
        return k == normalize_name(self.name) or any(k == normalize_name(a)
                                                     for a in self.associations if a)

    # -- changes ----------------------------------------------------------------------
    def with_param(self, name: str, **changes) -> "Source":
        self.param(name)  # raises for an unknown name
        spec = tuple(p.replace(**changes) if p.name == name else p for p in self.spectral)
        spat = tuple(p.replace(**changes) if p.name == name else p for p in self.spatial)
        return dataclasses.replace(self, spectral=spec, spatial=spat)

    def replace(self, **changes) -> "Source":
        return dataclasses.replace(self, **changes)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "SpectrumType": self.spectrum,
            "spectral_pars": {p.name: p.to_dict() for p in self.spectral},
            "SpatialModel": self.spatial_model,
            "spatial_pars": {p.name: p.to_dict() for p in self.spatial},
            "Spatial_Filename": self.spatial_file,
            "Spectrum_Filename": self.spectrum_file,
            "associations": list(self.associations),
            **({"pos_ellipse": list(self.meta["pos_ellipse"])}
               if self.meta.get("pos_ellipse") is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Source":
        return cls(
            name=d["name"],
            spectrum=d["SpectrumType"],
            spectral=_in_model_order(d["SpectrumType"], tuple(
                Parameter(name=k, **v) for k, v in d["spectral_pars"].items())),
            spatial_model=d["SpatialModel"],
            spatial=tuple(Parameter(name=k, **v) for k, v in d.get("spatial_pars", {}).items()),
            spatial_file=d.get("Spatial_Filename"),
            spectrum_file=d.get("Spectrum_Filename"),
            associations=tuple(d.get("associations", ())),
            meta=({"pos_ellipse": tuple(float(v) for v in d["pos_ellipse"])}
                  if d.get("pos_ellipse") is not None else {}),
        )

    def spatial_key(self) -> dict:
        """What a source map depends on: the spatial model, its parameters and template
        (not the spectrum, not the name)."""
        return {"SpatialModel": self.spatial_model,
                "spatial_pars": {p.name: p.physical for p in self.spatial
                                 if p.name not in ("Prefactor", "Normalization", "Value")},
                "Spatial_Filename": self.spatial_file}


def _in_model_order(spectrum: str, pars: tuple) -> tuple:
    """``pars`` in the spectral model's own order when they are exactly its parameters.

    :meth:`Source.spectral_values` is positional, so a dict whose keys were reordered on
    the way (sorted by a JSON writer, a task marker) must not reorder the values the
    spectral function receives.  Types the registry does not know, or parameter sets that
    differ from the model's, keep the order given."""
    from ..errors import FermixrError

    try:
        from .xml import spectral_defaults

        order = [p.name for p in spectral_defaults(spectrum)[1]]
    except FermixrError:
        return pars
    by_name = {p.name: p for p in pars}
    if len(by_name) != len(pars) or set(by_name) != set(order):
        return pars
    return tuple(by_name[n] for n in order)
