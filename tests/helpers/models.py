"""Real VW 9.11.9 models trained at test time, cached per session (the ``models`` fixture's
:class:`Models`), and the example plugin package's coordinates."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import random
import re
from pathlib import Path
from typing import Any

import vowpalwabbit

from helpers import vwtrain

EXAMPLE_PLUGIN_DIST = "vwmerge-example-plugin"
EXAMPLE_PLUGIN_ENTRY_POINT = "example_squarecb"
PLUGIN_PKG = Path(__file__).resolve().parent / "plugin_pkg"

#: Seeds and example counts of the inputs of a configuration: different data *and* different
#: example counts, so VW's example-count weights are not all equal.
INPUT_SEEDS = (11, 12, 13)
INPUT_SIZES = (30, 37, 45)


def example_plugin_entry_point() -> importlib.metadata.EntryPoint | None:
    for ep in importlib.metadata.entry_points(group="vwmerge"):
        if ep.name == EXAMPLE_PLUGIN_ENTRY_POINT and ep.dist is not None and ep.dist.name == EXAMPLE_PLUGIN_DIST:
            return ep
    return None


def _slug(args: str, *extra: object) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "_", args).strip("_") or "default"
    digest = hashlib.sha1(repr((args, *extra)).encode()).hexdigest()[:8]
    return f"{text[:40]}_{digest}"


def continue_training(base: Path, args: str, seed: int, path: Path, n: int) -> Path:
    """Load ``base`` in VW like a resumed run (``-i base --preserve_performance_counters``: the
    counters go on from the base's, so base-mode deltas are meaningful), learn ``n`` more
    examples of the label type ``args`` implies, save."""
    rng = random.Random(seed)
    ws = vowpalwabbit.Workspace(f"-i {base} --preserve_performance_counters --quiet", enable_logging=False)
    try:
        for ex in vwtrain._examples(args, rng, n):
            ws.learn(ex if isinstance(ex, str) else "\n".join(ex))
        ws.save(str(path))
    finally:
        ws.finish()
    return path


class Models:
    """Trains and merges real VW models on demand; every file is made once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _once(self, key: tuple[Any, ...], make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def train(self, args: str, seed: int, n: int) -> Path:
        path = self.root / f"{_slug(args, seed, n)}.s{seed}.n{n}.model"
        return self._once(("train", args, seed, n), lambda: vwtrain.train(args, seed, path, n=n))

    def inputs(self, args: str, k: int = 3) -> list[Path]:
        """``k`` models of the configuration ``args`` (different seeds and example counts)."""
        return [self.train(args, s, n) for s, n in zip(INPUT_SEEDS[:k], INPUT_SIZES[:k], strict=True)]

    def copies(self, args: str, k: int) -> list[Path]:
        """``k`` byte-identical models (the same seed and data)."""
        return [self.train(args, INPUT_SEEDS[0], INPUT_SIZES[0])] * k

    def vw_merged(self, paths: list[Path], base: Path | None = None) -> Path:
        """VW's own merge of ``paths`` (optionally in base-model mode)."""
        key = ("vw_merge", tuple(map(str, paths)), str(base))
        out = self.root / f"vwmerged_{hashlib.sha1(repr(key).encode()).hexdigest()[:12]}.model"
        return self._once(key, lambda: vwtrain.vw_merge(paths, out, base=base))

    def resumed(
        self, args: str, k: int = 2, base_n: int = 30, more: tuple[int, ...] = (25, 40)
    ) -> tuple[Path, list[Path]]:
        """A base model trained on a prefix, and ``k`` models that continue training from it."""

        def make() -> tuple[Path, list[Path]]:
            base = self.train(args, 7, base_n)
            models = [
                continue_training(base, args, 100 + i, self.root / f"{_slug(args, 'resumed', i)}.model", more[i])
                for i in range(k)
            ]
            return base, models

        return self._once(("resumed", args, k, base_n, more), make)
