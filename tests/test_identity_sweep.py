"""Identity sweep: ``merge(m, m, m)`` is m for every initialisation, reduction and bit count.

For every option set a real VW 9.11.9 model m is trained (30 examples) and merged with itself
(3 copies; example-count weights, and explicit weights for every third set). Checked each time:

* the merged weight table equals m's: bit for bit with explicit weights (θ = Σ wᵢθ/Σw in float64,
  rounded once), within VW's float32 rounding (≤ 7·2⁻²⁴ relative, see test_properties) with
  example-count weights;
* VW's own view of the weights is m's: the merged file loaded by VW and saved again gives the
  same table as m loaded by VW and saved again (VW fills rows absent from a file with its
  load-time initialisation, e.g. ``--new_mf``'s random weights, so a dropped row shows here);
* VW predicts with the merged file what it predicts with m, on held-out examples that also
  carry features no training example had (the rows only an initialisation wrote);
* a merge of two different models of the same options loads in VW and predicts finite values.

Options vwmerge refuses are listed with the refusal they must get. Keep it small: ~1 s per
option set at most, no parallelism.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import vowpalwabbit
import vwmerge
from helpers import vwtrain
from helpers.models import INPUT_SEEDS, INPUT_SIZES, Models
from vwmerge.format.weights import WeightTable, union_sorted

U32 = 2.0**-24
K = 3  #: copies per self-merge

INITS = (
    "",
    "--initial_weight 0.5",
    "--random_weights",
    "--normal_weights",
    "--truncated_normal_weights",
    "--sparse_weights",
    "--sparse_weights --initial_weight 0.5",
)


@attrs.frozen
class Case:
    args: str
    train: str = "learn"  #: "learn" (vwtrain, example by example) or "passes" (bfgs: a data file)
    refused: str | None = None  #: the refusal vwmerge must give (a fragment of its message)
    explicit: bool = False  #: also merge the copies with explicit weights
    vw_extra: str = ""  #: what VW needs to load the files again (bfgs: -t --predict_only_model)


def _cases() -> list[Case]:
    raw: list[tuple[str, str]] = []
    for init in INITS:  # plain gd, every initialisation, both bit counts
        raw += [("", f"{init} -b 10"), ("", f"{init} -b 18")]
    for red in ("--adaptive", "--normalized", "--invariant", "--sgd", "--adaptive --normalized"):
        raw += [(red, "-b 10"), (red, "--initial_weight 0.5 -b 18"), (red, "--random_weights -b 18")]
    stacks = ("--oaa 3", "--nn 2", "--cb_explore_adf", "--csoaa 3", "--lrq ab2", "--interactions ab")
    for i, red in enumerate(stacks):
        bits = ("-b 10", "-b 18")
        raw += [
            (red, bits[i % 2]),
            (red, f"--initial_weight 0.5 {bits[(i + 1) % 2]}"),
            (red, f"--normal_weights {bits[i % 2]}"),
            (red, "--sparse_weights --initial_weight 0.5 -b 10"),
        ]
    for red in ("--ftrl", "--pistol", "--coin", "--freegrad"):
        raw += [(red, "-b 10"), (red, "--initial_weight 0.5 -b 10")]
    raw += [("--new_mf 2 -q ab", rest) for rest in ("-b 10", "-b 18", "--sparse_weights -b 10")]
    raw += [("--rank 2 -q ab", "-b 10")]
    raw += [("--svrg", "--initial_weight 0.5 -b 10"), ("--OjaNewton", "--random_weights -b 10")]
    raw += [("--cbzo --policy linear", "--initial_weight 0.5 -b 10")]
    cases = [Case(f"{red} {rest}".strip(), explicit=i % 3 == 0) for i, (red, rest) in enumerate(raw)]
    bfgs = "--bfgs --predict_only_model -b 10"
    cases.append(Case(bfgs, train="passes", explicit=True, vw_extra="--predict_only_model -t"))
    cases.append(Case("--lda 3 -b 8", train="passes"))
    cases += [
        Case("--search 3 --search_task sequence -b 10", refused="--search"),
        Case("--replay_b 10 -b 10", refused="--replay_b"),
    ]
    return cases


CASES = _cases()


def test_the_sweep_covers_at_least_60_option_sets() -> None:
    assert len(CASES) >= 60
    assert len({c.args for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------------------------
def _held_out(args: str, n: int = 12) -> list[str | list[str]]:
    """Held-out examples, each with features no training example had (rows only an
    initialisation wrote), in the namespaces the interactions of the sweep use (a, b)."""
    out: list[str | list[str]] = []
    for i, ex in enumerate(vwtrain.test_examples(args, n=n)):
        extra = f" |a new{i}:1 |b other{i % 5}:0.5"
        out.append(ex + extra if isinstance(ex, str) else [line + extra for line in ex])
    return out


def _train_passes(args: str, seed: int, n: int, path: Path) -> Path:
    rng = random.Random(seed)
    data = path.with_suffix(".txt")
    data.write_text("\n".join(str(e) for e in vwtrain._examples(args, rng, n)) + "\n")
    cache = path.with_suffix(".cache")
    ws = vowpalwabbit.Workspace(
        f"{args} -d {data} --passes 2 -c -k --cache_file {cache} -f {path} --quiet", enable_logging=False
    )
    ws.finish()
    return path


def _train_refused(args: str, path: Path) -> Path:
    """A few examples of the label type the refused reductions read (multiclass sequences)."""
    ws = vowpalwabbit.Workspace(f"{args} --quiet", enable_logging=False)
    try:
        for _ in range(5):
            ws.learn("1 |a x\n2 |a y\n3 |a z" if "--search" in args else "1 |a x")
        ws.save(str(path))
    finally:
        ws.finish()
    return path


def _inputs(models: Models, case: Case) -> tuple[Path, Path]:
    if case.train == "passes":
        root = models.root
        paths = [
            _train_passes(case.args, s, n, root / f"sweep_{case.args.split()[0][2:]}_{s}.model")
            for s, n in zip(INPUT_SEEDS[:2], INPUT_SIZES[:2], strict=True)
        ]
        return paths[0], paths[1]
    a, b = (models.train(case.args, s, n) for s, n in zip(INPUT_SEEDS[:2], INPUT_SIZES[:2], strict=True))
    return a, b


def _vw_resaved(path: Path, out: Path, extra: str) -> vwmerge.Workspace:
    """The model as VW holds it after loading ``path``: loaded by VW, saved again, read back."""
    ws = vowpalwabbit.Workspace(f"-i {path} --quiet {extra}", enable_logging=False)
    try:
        ws.save(str(out))
    finally:
        ws.finish()
    return vwmerge.load(out)


def _dense(*tables: WeightTable) -> list[np.ndarray]:
    """Each table's values on the union of their rows (a row a table lacks is zeros)."""
    canon = [t.canonical() for t in tables]
    union = union_sorted([t.index for t in canon])
    out = []
    for t in canon:
        d = np.zeros((len(union), t.k), np.float64)
        d[np.searchsorted(union, t.index)] = t.values
        out.append(d)
    return out


def _assert_same_weights(got: WeightTable, want: WeightTable, rel: float, what: str) -> None:
    assert got.columns == want.columns, what
    g, w = _dense(got, want)
    err = np.abs(g - w)
    bound = rel * np.abs(w)
    bad = err > bound
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} of {w.size} values differ (largest {float(err.max()):.3g}; "
        f"{int(np.count_nonzero(w))} non-zero values expected)"
    )


def _numbers(preds: Sequence[Any]) -> np.ndarray:
    return np.concatenate([np.atleast_1d(np.asarray(p, dtype=np.float64)).ravel() for p in preds])


def _assert_same_predictions(got: Sequence[Any], want: Sequence[Any], what: str) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        ga, wa = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        assert ga.shape == wa.shape, (what, g, w)
        np.testing.assert_allclose(ga, wa, rtol=1e-5, atol=1e-6, err_msg=what)


def _predict(path: Path, case: Case, examples: list[str | list[str]]) -> list[Any]:
    if case.train != "passes":
        return vwtrain.predict(path, examples, case.vw_extra)
    # Through VW's predictions file (its Python predict cannot parse lda's examples).
    data, preds = path.with_suffix(".predict.txt"), path.with_suffix(".predictions.txt")
    data.write_text("\n".join(str(e) for e in examples) + "\n")
    extra = " ".join(t for t in case.vw_extra.split() if t != "-t")
    vowpalwabbit.Workspace(f"-i {path} -t -d {data} -p {preds} --quiet {extra}", enable_logging=False).finish()
    return [[float(x) for x in line.split()] for line in preds.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.args.replace(" ", "_") or "default" for c in CASES])
def test_self_merge_is_the_model(models: Models, case: Case, tmp_path: Path) -> None:
    if case.refused is not None:
        path = _train_refused(case.args, tmp_path / "m.model")
        with pytest.raises(vwmerge.VWMergeError, match=case.refused):
            vwmerge.merge([vwmerge.load(path)] * K)
        return
    m_path, other_path = _inputs(models, case)
    m = vwmerge.load(m_path)
    examples = _held_out(case.args)
    expected = _predict(m_path, case, examples)
    want = m.states[-1].table
    vw_want = _vw_resaved(m_path, tmp_path / "m_vw.model", case.vw_extra).states[-1].table

    runs: list[tuple[str, list[float] | None, float]] = [("example-count weights", None, 2 * K + 1)]
    if case.explicit:
        runs.append(("explicit weights", [1.0, 2.0, 3.0], 0.0))
    for what, weights, ulps in runs:
        out = tmp_path / f"self_{len(weights or [])}.model"
        vwmerge.merge([m] * K, weights=weights).save(out)
        merged = vwmerge.load(out)
        _assert_same_weights(merged.states[-1].table, want, ulps * U32, f"{what}: merged table")
        vw_got = _vw_resaved(out, tmp_path / "merged_vw.model", case.vw_extra).states[-1].table
        _assert_same_weights(vw_got, vw_want, ulps * U32, f"{what}: VW's weights after loading")
        _assert_same_predictions(_predict(out, case, examples), expected, what)

    pair = tmp_path / "pair.model"
    vwmerge.merge([m, vwmerge.load(other_path)]).save(pair)
    preds = _numbers(_predict(pair, case, examples))
    assert all(math.isfinite(x) for x in preds), preds


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", ["--initial_weight 0.5 -b 18", "--new_mf 2 -q ab -b 10"])
@pytest.mark.parametrize("jobs", [None, 2], ids=["sequential", "jobs2"])
def test_the_streaming_cli_gives_the_model_back(models: Models, tmp_path: Path, args: str, jobs: int | None) -> None:
    """``vwmerge merge`` (the streaming merger: gd's partial hooks, two passes sequentially,
    float64 partials with --jobs) on 3 copies gives the model's weights and predictions back."""
    m_path = models.train(args, INPUT_SEEDS[0], INPUT_SIZES[0])
    out = tmp_path / "merged.model"
    cmd = [sys.executable, "-m", "vwmerge", "merge", "-q", "-o", str(out), *[str(m_path)] * K]
    subprocess.run([*cmd, *(["--jobs", str(jobs)] if jobs else [])], check=True, capture_output=True, text=True)
    if jobs is None:
        assert out.read_bytes() == vwmerge.merge([vwmerge.load(m_path)] * K).to_bytes()
    _assert_same_weights(vwmerge.load(out).states[-1].table, vwmerge.load(m_path).states[-1].table, 7 * U32, "CLI")
    examples = _held_out(args)
    _assert_same_predictions(vwtrain.predict(out, examples), vwtrain.predict(m_path, examples), "CLI")


@pytest.mark.parametrize("args", ["--initial_weight 0.5 -b 10", "--random_weights -b 10", "--new_mf 2 -q ab -b 10"])
def test_base_mode_keeps_the_bases_value_where_no_model_moved(models: Models, tmp_path: Path, args: str) -> None:
    """With a base, a row every model left as the base had it (all columns) keeps the base's
    value bit for bit (its deltas are all 0), in memory and streamed; the merge loads in VW."""
    base_path, paths = models.resumed(args)
    base = vwmerge.load(base_path)
    inputs = [vwmerge.load(p) for p in paths]
    merged = vwmerge.merge(inputs, base=base)
    b, *ms, got = _dense(base.states[-1].table, *(m.states[-1].table for m in inputs), merged.states[-1].table)
    still = np.all([np.all(m == b, axis=1) for m in ms], axis=0)
    assert still.sum() > len(still) // 2  # most rows: no example touched them
    np.testing.assert_array_equal(got[still], b[still])
    out = tmp_path / "merged.model"
    cmd = [sys.executable, "-m", "vwmerge", "merge", "-q", "--base", str(base_path), "-o", str(out), *map(str, paths)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert out.read_bytes() == merged.to_bytes()
    preds = _numbers(vwtrain.predict(out, _held_out(args)))
    assert all(math.isfinite(x) for x in preds)
