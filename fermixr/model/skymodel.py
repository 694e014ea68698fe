"""The sky model: an ordered, immutable collection of sources with name lookup."""

from __future__ import annotations

import dataclasses

from ..errors import ModelError
from .source import Source, normalize_name


@dataclasses.dataclass(frozen=True)
class SkyModel:
    sources: tuple[Source, ...] = ()

    def __post_init__(self):
        seen = {}
        for s in self.sources:
            k = normalize_name(s.name)
            if k in seen:
                raise ModelError(f"sky model: two sources named {seen[k]!r} and {s.name!r}")
            seen[k] = s.name

    def __len__(self):
        return len(self.sources)

    def __iter__(self):
        return iter(self.sources)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def find(self, name: str) -> Source:
        """The source called ``name`` (case- and whitespace-insensitive), else the one
        associated with it; an error names the key when none or several match."""
        k = normalize_name(name)
        direct = [s for s in self.sources if normalize_name(s.name) == k]
        if direct:
            return direct[0]
        hits = [s for s in self.sources if s.matches(name)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            close = self.closest_names(name)
            raise ModelError(f"no source matches {name!r} in the sky model "
                             f"({len(self.sources)} sources)"
                             + (f"; closest names: {', '.join(close)}" if close else ""))
        raise ModelError(f"{name!r} matches several sources: "
                         f"{', '.join(s.name for s in hits)}")

    def closest_names(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` sources whose name (or an association, then shown as "name
        (association)") is most like ``name``, for error messages."""
        import difflib

        keys = {}
        for s in self.sources:
            keys.setdefault(normalize_name(s.name), (s.name, s.name))
            for a in s.associations:
                if a:
                    keys.setdefault(normalize_name(a), (s.name, f"{s.name} ({a})"))
        out, seen = [], set()
        for h in difflib.get_close_matches(normalize_name(name), list(keys), n=4 * n,
                                           cutoff=0.5):
            src, shown = keys[h]
            if src not in seen:
                seen.add(src)
                out.append(shown)
        return out[:n]

    def __getitem__(self, name: str) -> Source:
        return self.find(name)

    def __contains__(self, name: str) -> bool:
        try:
            self.find(name)
        except ModelError:
            return False
        return True

    def replace_source(self, source: Source, name: str | None = None) -> "SkyModel":
        old = self.find(name or source.name).name
        return SkyModel(tuple(source if s.name == old else s for s in self.sources))

    def add(self, source: Source) -> "SkyModel":
        if normalize_name(source.name) in {normalize_name(n) for n in self.names}:
            raise ModelError(f"source {source.name!r} is already in the sky model")
        return SkyModel(self.sources + (source,))

    def remove(self, name: str) -> "SkyModel":
        old = self.find(name).name
        return SkyModel(tuple(s for s in self.sources if s.name != old))

    def merge(self, other: "SkyModel") -> "SkyModel":
        """Sources of ``other`` replace same-named ones here (the last catalog wins)."""
        out = list(self.sources)
        index = {normalize_name(s.name): i for i, s in enumerate(out)}
        for s in other.sources:
            k = normalize_name(s.name)
            if k in index:
                out[index[k]] = s
            else:
                index[k] = len(out)
                out.append(s)
        return SkyModel(tuple(out))

    def to_dict(self) -> dict:
        return {"sources": [s.to_dict() for s in self.sources]}

    @classmethod
    def from_dict(cls, d: dict) -> "SkyModel":
        return cls(tuple(Source.from_dict(s) for s in d["sources"]))
