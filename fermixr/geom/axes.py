"""Energy axes: bin edges in MeV with the conventions of gtbin and Fermipy.

An :class:`EnergyAxis` holds strictly increasing edges.  Bins are closed on the left,
open on the right (``edges[i] <= E < edges[i+1]``), as gtbin's binners are; an axis whose
edges are log-uniform is recognised (:attr:`EnergyAxis.is_log`) and binned with gtbin's
``LogBinner`` formula ``int(n * log(E / emin) / log(emax / emin))`` so that events that sit
on an edge land where the Science Tools put them.
"""

from __future__ import annotations

import math

import numpy as np

from ..conventions import UNIT_ENERGY
from ..errors import GeometryError

_LOG_RTOL = 1e-9


class EnergyAxis:
    """Energy bins from ``edges`` [MeV] (1-D, at least two, finite, > 0, strictly increasing).

    ``name`` is the dimension name (``"energy"`` for reconstructed energy, the default, or
    ``"energy_true"``).
    """

    __slots__ = ("_edges", "_name", "_is_log")

    def __init__(self, edges, name: str = "energy"):
        e = np.array(edges, dtype=np.float64).reshape(-1) if np.ndim(edges) else None
        if e is None or e.size < 2:
            raise GeometryError(
                f"energy axis: expected at least two bin edges in MeV, got {edges!r}"
            )
        if not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise GeometryError(f"energy axis: edges must be finite and > 0 MeV, got {e.tolist()}")
        if np.any(np.diff(e) <= 0):
            raise GeometryError(
                f"energy axis: edges must be strictly increasing, got {e.tolist()}"
            )
        if name not in ("energy", "energy_true"):
            raise GeometryError(f"energy axis: name must be 'energy' or 'energy_true', got {name!r}")
        e.setflags(write=False)
        self._edges = e
        self._name = name
        ref = np.geomspace(e[0], e[-1], e.size)
        self._is_log = bool(np.allclose(e, ref, rtol=_LOG_RTOL, atol=0.0))

    # --- construction ------------------------------------------------------------------
    @classmethod
    def from_bounds(cls, emin, emax, binsperdec=None, enumbins=None, name: str = "energy"):
        """Log-uniform bins from ``emin`` to ``emax`` [MeV].

        ``enumbins`` wins when given; otherwise the number of bins is
        ``round(binsperdec * log10(emax / emin))`` (at least 1) as Fermipy computes it
        (``binsperdec`` defaults to Fermipy's 8).  Edges are ``logspace(log10 emin,
        log10 emax, n + 1)`` with the end points set exactly to ``emin`` and ``emax``.
        """
        emin = float(emin)
        emax = float(emax)
        if not (emin > 0 and emax > emin and math.isfinite(emax)):
            raise GeometryError(
                f"energy axis: need 0 < emin < emax, got emin={emin!r} MeV, emax={emax!r} MeV"
            )
        if enumbins is not None:
            n = int(enumbins)
            if n != enumbins or n < 1:
                raise GeometryError(f"energy axis: enumbins must be a positive integer, got {enumbins!r}")
        else:
            bpd = 8.0 if binsperdec is None else float(binsperdec)
            if not bpd > 0:
                raise GeometryError(f"energy axis: binsperdec must be > 0, got {binsperdec!r}")
            n = max(int(np.round(bpd * np.log10(emax / emin))), 1)
        edges = np.logspace(np.log10(emin), np.log10(emax), n + 1)
        edges[0] = emin
        edges[-1] = emax
        return cls(edges, name=name)

    @classmethod
    def from_log_bounds(cls, logemin, logemax, binsperdec=None, enumbins=None, name="energy"):
        """As :meth:`from_bounds` with Fermipy's ``logemin``/``logemax`` (log10 MeV)."""
        return cls.from_bounds(10.0 ** float(logemin), 10.0 ** float(logemax),
                               binsperdec=binsperdec, enumbins=enumbins, name=name)

    @classmethod
    def from_ebounds(cls, e_min, e_max, unit: str = "keV", name: str = "energy", snap=True):
        """Axis of an EBOUNDS table (columns ``E_MIN``, ``E_MAX``; gtbin writes keV, in
        float32).  With ``snap`` (default), edges that are log-uniform to float32 precision
        are replaced by the exact log-uniform edges gtbin binned with."""
        lo = np.asarray(e_min, dtype=np.float64).reshape(-1)
        hi = np.asarray(e_max, dtype=np.float64).reshape(-1)
        if lo.size == 0 or lo.shape != hi.shape:
            raise GeometryError(
                f"EBOUNDS: E_MIN and E_MAX must be non-empty and of equal length "
                f"(got {lo.size} and {hi.size})"
            )
        div = {"kev": 1e3, "mev": 1.0, "gev": 1e-3, "ev": 1e6}.get(str(unit).strip().lower())
        if div is None:
            raise GeometryError(f"EBOUNDS: unknown energy unit {unit!r} (expected keV, MeV, GeV)")
        if not np.allclose(lo[1:], hi[:-1], rtol=1e-6, atol=0):
            raise GeometryError("EBOUNDS: bins are not contiguous (E_MAX[i] != E_MIN[i+1])")
        raw = np.append(lo, hi[-1])
        edges = raw / div
        if snap:
            exact = np.geomspace(edges[0], edges[-1], edges.size)
            # float32 storage: relative error up to ~6e-8 per edge
            if np.allclose(edges, exact, rtol=5e-7, atol=0):
                # end points: the round numbers the user gave, before float32 storage
                e0, e1 = _clean(raw[0]) / div, _clean(raw[-1]) / div
                edges = np.logspace(np.log10(e0), np.log10(e1), edges.size)
                edges[0], edges[-1] = e0, e1
        return cls(edges, name=name)

    # --- properties --------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def edges(self) -> np.ndarray:
        """Bin edges [MeV] (read-only array of ``nbin + 1``)."""
        return self._edges

    @property
    def emin(self) -> float:
        return float(self._edges[0])

    @property
    def emax(self) -> float:
        return float(self._edges[-1])

    @property
    def nbin(self) -> int:
        return int(self._edges.size - 1)

    def __len__(self) -> int:
        return self.nbin

    @property
    def lo(self) -> np.ndarray:
        return self._edges[:-1].copy()

    @property
    def hi(self) -> np.ndarray:
        return self._edges[1:].copy()

    @property
    def centers(self) -> np.ndarray:
        """Geometric (log) centres ``sqrt(lo * hi)`` [MeV]."""
        return np.sqrt(self._edges[:-1] * self._edges[1:])

    @property
    def widths(self) -> np.ndarray:
        return np.diff(self._edges)

    @property
    def log_centers(self) -> np.ndarray:
        return np.log10(self.centers)

    @property
    def is_log(self) -> bool:
        """True when the edges are log-uniform (to 1e-9 relative)."""
        return self._is_log

    # --- binning -------------------------------------------------------------------------
    def bin_index(self, energy) -> np.ndarray:
        """Bin of each energy [MeV] (-1 outside ``[emin, emax)``), numpy reference of the
        binning kernel (gtbin's LogBinner formula for log axes, else left-closed edges)."""
        e = np.asarray(energy, dtype=np.float64)
        out = np.full(e.shape, -1, dtype=np.int64)
        inside = (e >= self.emin) & (e < self.emax)
        if self._is_log:
            n = self.nbin
            with np.errstate(divide="ignore", invalid="ignore"):
                idx = (n * np.log(e[inside] / self.emin) / math.log(self.emax / self.emin))
            idx = idx.astype(np.int64)
            out[inside] = np.minimum(idx, n - 1)
        else:
            out[inside] = np.searchsorted(self._edges, e[inside], side="right") - 1
        return out

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Canonical JSON-able description (used in cache keys)."""
        return {"type": "energy", "name": self._name, "edges": [float(x) for x in self._edges]}

    @classmethod
    def from_dict(cls, d: dict) -> "EnergyAxis":
        if not isinstance(d, dict) or "edges" not in d:
            raise GeometryError(f"energy axis dict must have 'edges', got {d!r}")
        if d.get("type", "energy") != "energy":
            raise GeometryError(f"not an energy axis dict (type={d.get('type')!r})")
        return cls(d["edges"], name=d.get("name", "energy"))

    def to_coords(self) -> dict:
        """xarray coords on dim ``name``: ``name`` (centres), ``name_min``, ``name_max``,
        each with attrs ``units = "MeV"``.  Values are (dims, data, attrs) tuples."""
        n = self._name
        attrs = {"units": UNIT_ENERGY}
        return {
            n: ((n,), self.centers, dict(attrs, long_name="geometric bin centre")),
            f"{n}_min": ((n,), self._edges[:-1].copy(), dict(attrs)),
            f"{n}_max": ((n,), self._edges[1:].copy(), dict(attrs)),
        }

    @classmethod
    def from_coords(cls, ds, name: str = "energy") -> "EnergyAxis":
        """Axis of a dataset carrying ``name_min``/``name_max`` coords."""
        try:
            lo = np.asarray(ds[f"{name}_min"].values, dtype=np.float64)
            hi = np.asarray(ds[f"{name}_max"].values, dtype=np.float64)
        except KeyError:
            raise GeometryError(
                f"dataset has no '{name}_min'/'{name}_max' coordinates to rebuild the energy axis"
            ) from None
        if lo.size and not np.allclose(lo[1:], hi[:-1], rtol=1e-12, atol=0):
            raise GeometryError(f"'{name}_min'/'{name}_max' do not describe contiguous bins")
        return cls(np.append(lo, hi[-1:]), name=name)

    # --- dunder --------------------------------------------------------------------------
    def __eq__(self, other) -> bool:
        return (isinstance(other, EnergyAxis) and self._name == other._name
                and np.array_equal(self._edges, other._edges))

    def __hash__(self):
        return hash((self._name, self._edges.tobytes()))

    def __repr__(self) -> str:
        kind = "log" if self._is_log else "edges"
        return (f"EnergyAxis({self._name}: {self.nbin} {kind} bins, "
                f"{self.emin:g}-{self.emax:g} MeV)")


def _clean(x: float) -> float:
    """The shortest decimal that rounds to the same float32 as ``x`` (undo float32 storage
    of round numbers such as 200 MeV)."""
    f32 = np.float32(x)
    for digits in range(1, 10):
        y = float(f"{float(f32):.{digits}g}")
        if np.float32(y) == f32:
            return y
    return float(f32)


def extend_log_edges(edges, n: int) -> np.ndarray:
    """``edges`` extended by ``n`` bins on each side, log-spaced with the log width of the
    first bin (below) and of the last bin (above), as the Science Tools extend the
    true-energy axis for energy dispersion (``edisp_bins``)."""
    e = np.asarray(edges, dtype=np.float64)
    n = abs(int(n))
    if n == 0:
        return e.copy()
    lo = math.log(e[1] / e[0])
    hi = math.log(e[-1] / e[-2])
    below = e[0] * np.exp(-lo * np.arange(n, 0, -1))
    above = e[-1] * np.exp(hi * np.arange(1, n + 1))
    return np.concatenate((below, e, above))
