"""The options string stored in a model: parsing, semantic comparison, de-duplication.

VW writes kept options as ``--name [value]`` in alphabetical order; a token that does not start
with ``--`` is the value of the option before it. VW appends ``--random_seed <state>`` when its
RNG state is non-zero; that is state, not configuration, so comparisons ignore it.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator

import attrs

from ..errors import ModelFormatError

#: Options that are RNG/run state rather than model configuration.
STATE_OPTIONS = frozenset({"random_seed"})

#: The largest value an integer option may have unless its reader says otherwise: VW keeps
#: counts and sizes (``--oaa``, ``--rank``, ``--nn``, tree sizes...) in 32-bit unsigned integers.
MAX_OPTION_INT = 2**32 - 1

_INTEGER = re.compile(r"^[+-]?[0-9]+$")


@attrs.frozen
class Options:
    """An ordered list of ``(name, value)`` pairs; ``value`` is None for switches."""

    items: tuple[tuple[str, str | None], ...]
    #: The file the options come from, named in the errors of the validated accessors.
    source: str | None = attrs.field(default=None, eq=False, kw_only=True)
    #: The option names, for ``in`` (plugins ask it many times for every model they read).
    _names: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_names", frozenset(n for n, _ in self.items))

    @classmethod
    def parse(cls, text: str, *, source: str | None = None) -> Options:
        return cls(_parse_items(text), source=source)

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.items)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def names(self) -> list[str]:
        return list(dict.fromkeys(n for n, _ in self.items))

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.items if n == name and v is not None]

    def get(self, name: str, default: str | None = None) -> str | None:
        vals = self.values(name)
        return vals[-1] if vals else default

    def get_int(self, name: str, default: int, *, low: int = 0, high: int = MAX_OPTION_INT) -> int:
        """The integer value of option ``name`` (``default`` when absent), validated.

        Every plugin reads integer options through here: a value that is not written as an
        integer (``inf``, ``nan``, ``1e9``, ``1.5``, ``abc``) or lies outside ``low..high``
        raises a :class:`ModelFormatError` naming the file and the option. VW itself writes
        such options as plain integers, so only a damaged or forged file has anything else.
        """
        v = self.get(name)
        if v is None:
            return default
        text = v.strip()
        if not _INTEGER.match(text):
            raise self.invalid(name, v, "is not an integer")
        value = int(text)
        if not low <= value <= high:
            raise self.invalid(name, v, f"is out of range {low}..{high}")
        return value

    def get_float(self, name: str, default: float, *, low: float = -math.inf, high: float = math.inf) -> float:
        """The finite float value of option ``name`` (``default`` when absent), validated."""
        v = self.get(name)
        if v is None:
            return default
        try:
            value = float(v)
        except ValueError:
            raise self.invalid(name, v, "is not a number") from None
        if not math.isfinite(value):
            raise self.invalid(name, v, "is not a finite number")
        if not low <= value <= high:
            raise self.invalid(name, v, f"is out of range {low:g}..{high:g}")
        return value

    def invalid(self, name: str, value: str, problem: str) -> ModelFormatError:
        """The error for a bad value of option ``name`` (for plugins that parse values themselves)."""
        shown = value if len(value) <= 40 else value[:40] + "..."
        return ModelFormatError(f"option --{name} {shown!r} {problem}", source=self.source)

    def has_any(self, *names: str) -> bool:
        return not self._names.isdisjoint(names)

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
        return Options(tuple(out), source=self.source)

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


@functools.lru_cache(maxsize=1024)
def _parse_items(text: str) -> tuple[tuple[str, str | None], ...]:
    """The ``(name, value)`` pairs of an options string, remembered (the models of a merge
    mostly share their options string, and each is parsed more than once)."""
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
    return tuple(items)
