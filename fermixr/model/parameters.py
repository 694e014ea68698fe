"""Model parameters in the Science Tools' convention.

A parameter has a ``value`` and ``min``/``max`` in scaled units and a ``scale``: its physical
value is ``value * scale`` (XML ``<parameter name="Prefactor" value="3.2" scale="1e-12" .../>``).
Fermipy writes a power-law Index as value 2, scale -1; the physical index is -2.

Parameters are immutable values; models describe their parameters and a fit returns new
values — nothing here is mutated in place.
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import ModelError


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str
    value: float
    scale: float = 1.0
    min: float | None = None
    max: float | None = None
    free: bool = False
    error: float | None = None

    @property
    def physical(self) -> float:
        return self.value * self.scale

    @property
    def bounds_physical(self) -> tuple[float, float]:
        """(lower, upper) physical bounds; a negative scale swaps them."""
        lo = -math.inf if self.min is None else self.min * self.scale
        hi = math.inf if self.max is None else self.max * self.scale
        return (min(lo, hi), max(lo, hi))

    def replace(self, **changes) -> "Parameter":
        return dataclasses.replace(self, **changes)

    def with_physical(self, x: float) -> "Parameter":
        return dataclasses.replace(self, value=float(x) / self.scale)

    def check(self, where: str = "") -> "Parameter":
        """Raise ModelError if the value lies outside its bounds or is not finite."""
        label = f"{where}.{self.name}" if where else self.name
        if not math.isfinite(self.value) or not math.isfinite(self.scale) or self.scale == 0:
            raise ModelError(f"{label}: value {self.value!r} x scale {self.scale!r} is not a "
                             "finite number with a non-zero scale")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ModelError(f"{label}: min {self.min} > max {self.max}")
        if self.min is not None and self.value < self.min:
            raise ModelError(f"{label}: value {self.value} is below its minimum {self.min}")
        if self.max is not None and self.value > self.max:
            raise ModelError(f"{label}: value {self.value} is above its maximum {self.max}")
        return self

    def to_dict(self) -> dict:
        d = {"value": self.value, "scale": self.scale, "min": self.min, "max": self.max,
             "free": self.free}
        if self.error is not None:
            d["error"] = self.error
        return d

    @classmethod
    def from_any(cls, name: str, obj, default: "Parameter | None" = None,
                 where: str = "") -> "Parameter":
        """A parameter from a number or a Fermipy-style dict ``{value, scale, min, max,
        free}``; what is not given comes from ``default``.

        As Fermipy reads them: a number (or a dict without ``scale``) is the physical value
        when the default scale is positive, and is then rescaled to a power-of-ten scale
        (``1e-12`` -> value 1, scale 1e-12; bounds given with it rescale too); when the
        default scale is negative (``Index``, scale -1) the number is the scaled value, so
        ``Index: 2.0`` means dN/dE ~ E^-2."""
        base = default or cls(name, 0.0)
        label = f"{where}.{name}" if where else name
        if isinstance(obj, Parameter):
            return obj.replace(name=name)
        if not isinstance(obj, dict):
            obj = {"value": obj}
        unknown = set(obj) - {"value", "scale", "min", "max", "free", "error", "name"}
        if unknown:
            raise ModelError(f"{label}: unknown keys {sorted(unknown)}; expected value, "
                             "scale, min, max, free")
        kw = {}
        for k in ("value", "scale", "min", "max", "error"):
            if k in obj and obj[k] is not None:
                try:
                    kw[k] = float(obj[k])
                except (TypeError, ValueError):
                    raise ModelError(f"{label}.{k}: got {obj[k]!r}; expected a number") from None
        if "free" in obj:
            kw["free"] = _as_bool(obj["free"], f"{label}.free")
        if "scale" not in kw and "value" in kw and base.scale > 0:
            # physical numbers: move the default's bounds to physical, pick a scale
            v = kw["value"]
            scale = 10.0 ** math.floor(math.log10(abs(v))) if v != 0 else base.scale
            lo = kw.get("min", None if base.min is None else base.min * base.scale)
            hi = kw.get("max", None if base.max is None else base.max * base.scale)
            kw.update(value=v / scale, scale=scale,
                      min=None if lo is None else lo / scale,
                      max=None if hi is None else hi / scale)
        return base.replace(name=name, **kw)


def _as_bool(v, label: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    raise ModelError(f"{label}: got {v!r}; expected true or false")
