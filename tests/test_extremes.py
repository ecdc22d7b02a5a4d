"""Reductions that combine extremes (running minima and maxima), merged from models that differ
in them: real VW models trained on costs, probabilities and labels of different ranges.

Every other test trains on costs 0/1 and labels in [0, 1], where "the first model's minimum" and
"the minimum of the models' minima" agree, so a merge that kept one model's extreme would pass.
Here each model sees its own range and the merged extreme is checked against the documented rule
(min of the minima, max of the maxima; in base mode the base's counts too), computed from the
inputs' own states.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import vwmerge
from helpers import vwtrain

#: (seed, lowest cost, highest cost, logged probability): ranges that overlap but differ, and the
#: model with the lowest minimum is neither the first nor the last.
RANGES = ((1, -1.0, 2.0, 0.5), (2, -3.0, 1.0, 0.25), (3, -0.5, 7.0, 0.8))


def _adf_examples(seed: int, lo: float, hi: float, p: float, n: int = 40) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        chosen = rng.randrange(3)
        cost = lo if i == 0 else hi if i == 1 else round(rng.uniform(lo, hi), 3)
        lines = [f"shared |s u{rng.randrange(4)}"]
        for a in range(3):
            label = f"0:{cost}:{p} " if a == chosen else ""
            lines.append(f"{label}|act a{a} f:{round(rng.random(), 3)}")
        out.append("\n".join(lines))
    return out


def _regression_examples(seed: int, lo: float, hi: float, n: int = 40) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        y = lo if i == 0 else hi if i == 1 else round(rng.uniform(lo, hi), 3)
        out.append(f"{y} |a x:{round(rng.random(), 3)} y:{round(rng.random(), 3)}")
    return out


def _cli_merge(out: Path, paths: list[Path], base: Path | None = None) -> vwmerge.Workspace:
    args = [sys.executable, "-m", "vwmerge", "merge", "-o", str(out), *(["--base", str(base)] if base else [])]
    done = subprocess.run([*args, *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return vwmerge.load(out)


@pytest.fixture(scope="module")
def cost_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("extremes")
    out: dict[str, list[Path]] = {}
    for args in ("--cb_explore_adf --synthcover", "--cb_explore_adf --baseline_challenger_cb"):
        slug = args.split("--")[-1].strip()
        out[args] = [
            vwtrain.train_on(args, _adf_examples(seed, lo, hi, p), root / f"{slug}{seed}.model")
            for seed, lo, hi, p in RANGES
        ]
    return out


def _synthcover(ws: vwmerge.Workspace) -> tuple[float, float]:
    st = ws.state("cb_explore_adf_synthcover")
    return st.min_cost, st.max_cost


def test_inputs_differ_in_their_extremes(cost_models: dict[str, list[Path]]) -> None:
    ranges = [_synthcover(vwmerge.load(p)) for p in cost_models["--cb_explore_adf --synthcover"]]
    assert len({lo for lo, _ in ranges}) == 3 and len({hi for _, hi in ranges}) == 3, ranges
    lows = [lo for lo, _ in ranges]
    assert lows.index(min(lows)) not in (0, len(lows) - 1)  # the minimum is in a middle model


def test_synthcover_takes_min_of_minima_and_max_of_maxima(cost_models: dict[str, list[Path]], tmp_path: Path) -> None:
    paths = cost_models["--cb_explore_adf --synthcover"]
    ranges = [_synthcover(vwmerge.load(p)) for p in paths]
    want = (min(lo for lo, _ in ranges), max(hi for _, hi in ranges))
    assert _synthcover(vwmerge.merge([vwmerge.load(p) for p in paths])) == want
    assert _synthcover(_cli_merge(tmp_path / "m.model", paths)) == want  # the streaming path
    for order in ([2, 0, 1], [1, 2, 0]):
        assert _synthcover(vwmerge.merge([vwmerge.load(paths[i]) for i in order])) == want


def test_synthcover_base_mode_folds_the_base_in(tmp_path: Path) -> None:
    args = "--cb_explore_adf --synthcover"
    base = vwtrain.train_on(args, _adf_examples(9, 0.0, 4.0, 0.5), tmp_path / "base.model")
    models = [
        vwtrain.train_on(args, _adf_examples(seed, lo, hi, p), tmp_path / f"m{seed}.model", initial=base)
        for seed, lo, hi, p in RANGES
    ]
    states = [_synthcover(vwmerge.load(p)) for p in [base, *models]]
    want = (min(lo for lo, _ in states), max(hi for _, hi in states))
    assert want != states[0] and want != states[1]  # neither the base's nor the first model's
    merged = vwmerge.merge([vwmerge.load(p) for p in models], base=vwmerge.load(base))
    assert _synthcover(merged) == want
    assert _synthcover(_cli_merge(tmp_path / "out.model", models, base=base)) == want


def test_synthcover_base_mode_with_the_widest_range_in_the_base(
    cost_models: dict[str, list[Path]], tmp_path: Path
) -> None:
    """Models that did not continue from the base (allowed in base mode): the base's own extremes,
    wider than every model's, must survive the merge (resumed models always carry them)."""
    args = "--cb_explore_adf --synthcover"
    base = vwtrain.train_on(args, _adf_examples(8, -9.0, 12.0, 0.5), tmp_path / "wide_base.model")
    models = cost_models[args]
    low, high = _synthcover(vwmerge.load(base))
    assert all(low < lo and high > hi for lo, hi in (_synthcover(vwmerge.load(p)) for p in models))
    merged = vwmerge.merge([vwmerge.load(p) for p in models], base=vwmerge.load(base))
    assert _synthcover(merged) == (low, high)
    assert _synthcover(_cli_merge(tmp_path / "out.model", models, base=base)) == (low, high)


def test_baseline_challenger_extrema(cost_models: dict[str, list[Path]], tmp_path: Path) -> None:
    paths = cost_models["--cb_explore_adf --baseline_challenger_cb"]
    states = [vwmerge.load(p).state("baseline_challenger_cb") for p in paths]
    for name in ("rmin", "rmax"):  # VW keeps wmin and wmax at 0 and inf here
        assert len({s[name] for s in states}) > 1, (name, [s[name] for s in states])
    merged = vwmerge.merge([vwmerge.load(p) for p in paths]).state("baseline_challenger_cb")
    cli = _cli_merge(tmp_path / "m.model", paths).state("baseline_challenger_cb")
    for got in (merged, cli):
        assert got["rmin"] == min(s["rmin"] for s in states) and got["wmin"] == min(s["wmin"] for s in states)
        assert got["rmax"] == max(s["rmax"] for s in states) and got["wmax"] == max(s["wmax"] for s in states)


@pytest.mark.parametrize("args", ["", "--ftrl", "--coin", "--freegrad"])
def test_label_range_is_the_union(args: str, tmp_path: Path) -> None:
    """The header's min/max label (what VW clips predictions to) and gd's online copy of it."""
    label_ranges = ((5, -1.0, 2.0), (6, -3.0, 1.0), (7, -0.5, 7.0))
    paths = [
        vwtrain.train_on(args, _regression_examples(seed, lo, hi), tmp_path / f"r{seed}.model")
        for seed, lo, hi in label_ranges
    ]
    inputs = [vwmerge.load(p) for p in paths]
    lows = [m.header.min_label for m in inputs]
    highs = [m.header.max_label for m in inputs]
    assert len(set(lows)) == 3 and len(set(highs)) == 3
    for merged in (vwmerge.merge(inputs), _cli_merge(tmp_path / "m.model", paths)):
        assert (merged.header.min_label, merged.header.max_label) == (min(lows), max(highs))
        online: Any = getattr(merged.states[-1], "online", None)
        if online is not None:
            assert (online.min_label, online.max_label) == (min(lows), max(highs))
