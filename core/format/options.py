"""The options string stored in a model: parsing, semantic comparison, de-duplication.

VW writes kept options as ``--name [value]`` in alphabetical order; a token that does not start
with ``--`` is the value of the option before it. VW appends ``--random_seed <state>`` when its
RNG state is non-zero; that is state, not configuration, so comparisons ignore it.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

#: Options that are RNG/run state rather than model configuration.
STATE_OPTIONS = frozenset({"random_seed"})


@attrs.frozen
class Options:
    """An ordered list of ``(name, value)`` pairs; ``value`` is None for switches."""

    items: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> Options:
        items: list[tuple[str, str | None]] = []
        for tok in text.split():
            if tok.startswith("--") and len(tok) > 2:
                items.append((tok[2:], None))
            elif items and items[-1][1] is None:
                items[-1] = (items[-1][0], tok)
            elif items:
                # A value with spaces is not something VW writes; keep it joined.
                name, val = items[-1]
                items[-1] = (name, f"{val} {tok}")
            else:
                items.append((tok, None))
        return cls(tuple(items))

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.items)

    def __contains__(self, name: object) -> bool:
        return any(n == name for n, _ in self.items)

    def names(self) -> list[str]:
        return list(dict.fromkeys(n for n, _ in self.items))

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.items if n == name and v is not None]

    def get(self, name: str, default: str | None = None) -> str | None:
        vals = self.values(name)
        return vals[-1] if vals else default

    def get_int(self, name: str, default: int) -> int:
        v = self.get(name)
        return int(float(v)) if v is not None else default

    def get_float(self, name: str, default: float) -> float:
        v = self.get(name)
        return float(v) if v is not None else default

    def has_any(self, *names: str) -> bool:
        return any(n in self for n in names)

    def configuration(self) -> frozenset[tuple[str, str | None]]:
        """What defines the model: options as a set (duplicates and RNG state dropped)."""
        return frozenset((n, v) for n, v in self.items if n not in STATE_OPTIONS)

    def random_seed(self) -> str | None:
        return self.get("random_seed")

    def deduplicated(self) -> Options:
        seen: set[tuple[str, str | None]] = set()
        out = []
        for item in self.items:
            if item in seen:
                continue
            seen.add(item)
            out.append(item)
        return Options(tuple(out))

    def has_duplicates(self) -> bool:
        return len(set(self.items)) != len(self.items)

    def to_text(self) -> str:
        parts = []
        for n, v in self.items:
            parts.append(f" --{n}" if v is None else f" --{n} {v}")
        return "".join(parts)

    def diff(self, other: Options) -> str:
        """A short human description of how the configurations differ."""
        a, b = self.configuration(), other.configuration()

        def fmt(items: frozenset[tuple[str, str | None]]) -> str:
            return " ".join(f"--{n}" if v is None else f"--{n} {v}" for n, v in sorted(items, key=str))

        only_a, only_b = a - b, b - a
        parts = []
        if only_a:
            parts.append(f"only in the first: {fmt(only_a)}")
        if only_b:
            parts.append(f"only in this one: {fmt(only_b)}")
        return "; ".join(parts) or "identical"
