"""Algebraic properties of ``vwmerge.merge`` over many reduction stacks (hypothesis).

Models are trained once per session by the real VW 9.11.9 (``tests/vwtrain.py``); hypothesis
picks how many copies, which pre-trained models, in which order, with which explicit weights.
Where a property holds exactly it is asserted bit for bit; where float32 rounding enters, the
bound is derived in the test's docstring and asserted, never a loose ``allclose``.

Notation: u = 2⁻²⁴ (float32 unit roundoff), θ a weight-table value (any saved column),
"effective" weights are the stored ones after pending ``--l1``/``--l2`` truncation, which is what
VW predicts with and what vwmerge merges.

Add a stack: one line in :data:`STACKS`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import vwmerge
from helpers.vwtrain import predict, test_examples, train
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from vwmerge.format.weights import WeightTable
from vwmerge.testing import Kit

U32 = 2.0**-24  #: float32 unit roundoff
U64 = 2.0**-53  #: float64 unit roundoff
TINY = float(np.finfo(np.float32).tiny)


@attrs.frozen
class Stack:
    """A VW configuration to test, and what its merge is expected to preserve."""

    args: str
    #: reductions whose section is a vector of u64 learn counters (merged by summing)
    counters: tuple[str, ...] = ()
    #: reductions that need a plugin; the stack is skipped while one is not installed
    needs: tuple[str, ...] = ()
    #: k merged copies predict like the original (false when a counter drives exploration)
    copies_predict_alike: bool = True
    #: bottoms that merge each saved column by its own rule, in float64 (ftrl family, freegrad):
    #: (column, rule) with rule mean, sum, max, minpos or dual. Empty: gd, where every column is
    #: a weighted mean computed in VW's float32 arithmetic.
    rules: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return self.args or "default"

    def rule(self, column: str) -> str:
        return dict(self.rules).get(column, "mean") if self.rules else "vw"

    def columns(self, table: WeightTable, *rules: str) -> list[str]:
        """The table's columns merged by one of ``rules`` ("vw" or "mean" select gd's too)."""
        wanted = set(rules) | ({"vw"} if "mean" in rules else set())
        return [c for c in table.columns if self.rule(c) in wanted]


CB = ("cb_adf",)
PISTOL = (("w", "mean"), ("neg_sum_g", "mean"), ("sum_abs_g", "mean"), ("max_abs_x", "max"))
FTRL = (("w", "mean"), ("z", "dual"), ("sum_g2", "mean"))
FREEGRAD = (
    ("w", "mean"), ("sum_g", "mean"), ("sum_g2", "mean"), ("h1", "minpos"), ("max_g", "max"), ("sum_ratio", "mean"),
)  # fmt: skip
STACKS: tuple[Stack, ...] = (
    Stack(""),
    Stack("--sgd"),
    Stack("--adaptive"),
    Stack("--normalized"),
    Stack("--invariant"),
    Stack("--adaptive --normalized"),
    Stack("-q ab"),
    Stack("--loss_function logistic"),
    Stack("--l1 1e-4 --l2 1e-4"),
    Stack("--sgd --l1 1e-3 --l2 1e-3"),
    Stack("--oaa 3"),
    Stack("--oaa 3 --loss_function logistic --probabilities"),
    Stack("--oaa 3 --per_model_save_load"),
    Stack("--csoaa 3"),
    Stack("--ect 3"),
    Stack("--multilabel_oaa 3"),
    Stack("--binary --loss_function logistic"),
    Stack("--nn 3"),
    Stack("--lrq ab2"),
    Stack("--csoaa_ldf m"),
    Stack("--cb 3", counters=CB),
    Stack("--cb_adf", counters=CB),
    Stack("--cb_adf --cb_type dr --per_model_save_load", counters=CB),
    Stack("--cb_explore_adf", counters=CB),
    Stack("--cb_explore_adf --softmax", counters=CB),
    Stack("--cb_explore_adf --bag 3", counters=CB),
    Stack("--cb_explore_adf --squarecb", counters=(*CB, "cb_explore_adf_squarecb"), copies_predict_alike=False),
    Stack("--cb_explore_adf --squarecb --elim", counters=(*CB, "cb_explore_adf_squarecb"), copies_predict_alike=False),
    Stack("--cb_explore_adf --regcb", counters=(*CB, "cb_explore_adf_regcb"), copies_predict_alike=False),
    Stack("--cb_explore_adf --cover 3", counters=(*CB, "cb_explore_adf_cover"), copies_predict_alike=False),
    Stack("--ftrl", needs=("ftrl",), rules=FTRL),
    Stack("--ftrl --loss_function logistic", needs=("ftrl",), rules=FTRL),
    Stack("--pistol", needs=("pistol",), rules=PISTOL),
    Stack("--coin", needs=("coin",), rules=(*PISTOL, ("wealth", "mean"), ("max_abs_g", "max"))),
    Stack("--freegrad", needs=("freegrad",), rules=FREEGRAD),
)
STACK_IDS = [s.id for s in STACKS]

POOL = 4  #: independent models per stack (different data and sizes, so different counts)
CONTINUATIONS = 2  #: models trained on from a common base, per stack

PROPERTY_SETTINGS = settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------------------------
# Models, trained once per session
@attrs.frozen(eq=False)
class Pool:
    """One stack's pre-trained models, loaded, with VW's predictions for them."""

    stack: Stack
    models: tuple[vwmerge.Workspace, ...]
    base: vwmerge.Workspace
    continued: tuple[vwmerge.Workspace, ...]
    examples: list[Any]
    predictions: dict[str, list[Any]]
    paths: dict[str, Path]
    scratch: Path

    def vw_predict(self, ws: vwmerge.Workspace) -> list[Any]:
        """Save ``ws``, load it in VW and predict the held-out examples."""
        path = self.scratch / f"merged{next(_counter)}.model"
        ws.save(path)
        return predict(path, self.examples)


_counter = itertools.count()


class Pools:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._pools: dict[str, Pool] = {}

    def get(self, stack: Stack) -> Pool:
        missing = [r for r in stack.needs if r not in vwmerge.default_registry().specs]
        if missing:
            pytest.skip(f"no plugin for {', '.join(missing)} installed yet")
        if stack.id not in self._pools:
            self._pools[stack.id] = self._train(stack, len(self._pools))
        return self._pools[stack.id]

    def _train(self, stack: Stack, n: int) -> Pool:
        # File names carry no stack name: vwtrain picks label types by substrings of the args.
        d = self.root / f"s{n}"
        d.mkdir()
        paths: dict[str, Path] = {}
        for i in range(POOL):
            paths[f"m{i}"] = train(stack.args, 11 + i, d / f"m{i}.model", n=40 + 10 * i)
        paths["base"] = base = train(stack.args, 7, d / "base.model", n=40)
        for j in range(CONTINUATIONS):
            args = f"{stack.args} -i {base} --preserve_performance_counters"
            paths[f"c{j}"] = train(args, 21 + j, d / f"c{j}.model", n=30)
        examples = test_examples(stack.args, n=12)
        return Pool(
            stack=stack,
            models=tuple(vwmerge.load(paths[f"m{i}"]) for i in range(POOL)),
            base=vwmerge.load(base),
            continued=tuple(vwmerge.load(paths[f"c{j}"]) for j in range(CONTINUATIONS)),
            examples=examples,
            predictions={name: predict(p, examples) for name, p in paths.items()},
            paths=paths,
            scratch=d,
        )


@pytest.fixture(scope="session")
def pools(tmp_path_factory: pytest.TempPathFactory) -> Pools:
    return Pools(tmp_path_factory.mktemp("properties"))


# --------------------------------------------------------------------------------------------
# Helpers
def bottom(ws: vwmerge.Workspace) -> Any:
    return ws.states[-1]


def effective(table: WeightTable, online: Any) -> WeightTable:
    """Stored weights with pending L1 truncation and L2 shrink applied, all in float32, as VW
    does when it loads a model to predict: ``sign(w)·max(|w| − g, 0)·c``."""
    if online is None or getattr(online, "l1_state", None) is None:
        return table.canonical()
    g, c = np.float32(online.l1_state), np.float32(online.l2_state)
    t = table.canonical()
    vals = np.array(t.values, np.float32)
    w = vals[:, 0]
    mag = np.maximum(np.abs(w) - g, np.float32(0)).astype(np.float32)
    vals[:, 0] = (np.copysign(mag, w) * c).astype(np.float32)
    return t.with_values(vals)


def weights_of(ws: vwmerge.Workspace) -> WeightTable:
    st_ = bottom(ws)
    return effective(st_.table, getattr(st_, "online", None))


def aligned(*tables: WeightTable) -> list[np.ndarray]:
    """Each table's values (float64) on the union of their rows; a missing row is all zeros."""
    union = np.zeros(0, np.uint64)
    for t in tables:
        union = np.union1d(union, t.index.astype(np.uint64))
    out = []
    for t in tables:
        dense = np.zeros((len(union), t.k), np.float64)
        dense[np.searchsorted(union, t.index.astype(np.uint64))] = t.values
        out.append(dense)
    return out


def assert_same_table(got: WeightTable, want: WeightTable) -> None:
    """Bit-identical: the same rows (VW writes only rows with a non-zero value) and values."""
    want = want.canonical().nonzero()
    got = got.canonical()
    assert got.columns == want.columns
    np.testing.assert_array_equal(got.index, want.index)
    np.testing.assert_array_equal(got.values.view(np.uint32), want.values.view(np.uint32))


def assert_columns_equal(got: WeightTable, want: WeightTable, columns: Sequence[str]) -> None:
    """Bit-identical values in ``columns`` on the union of rows (a missing row is zeros)."""
    g, w = aligned(got, want)
    for c in columns:
        j = want.columns.index(c)
        np.testing.assert_array_equal(g[:, j], w[:, j], err_msg=f"column {c}")


def assert_within(
    got: WeightTable,
    want: WeightTable,
    rel: float,
    what: str,
    scale_by: Sequence[WeightTable] = (),
    columns: Sequence[str] | None = None,
) -> None:
    """|got − want| ≤ rel·scale per value, where scale is |want|, or max |θ| over ``scale_by``;
    only ``columns`` when given."""
    g, w, *others = aligned(got, want, *scale_by)
    scale = np.max(np.abs(np.stack(others)), axis=0) if others else np.abs(w)
    bound = rel * scale + TINY
    err = np.abs(g - w)
    if columns is not None:
        keep = [c in columns for c in want.columns]
        err, bound = np.where(keep, err, 0.0), np.where(keep, bound, 1.0)
    if err.size and not np.all(err <= bound):
        i, j = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"{what}: |Δ| {err[i, j]:.3g} exceeds the rounding bound {bound[i, j]:.3g} at row {i} "
            f"column {got.columns[j]} (got {g[i, j]!r}, want {w[i, j]!r})"
        )


def section_u64(ws: vwmerge.Workspace, name: str) -> np.ndarray:
    """A reduction's section as the plugin writes it, read as little-endian u64 counters."""
    return np.frombuffer(Kit(ws.registry).section(ws, name), "<u8")


def assert_predictions_close(got: Sequence[Any], want: Sequence[Any]) -> None:
    """VW's predictions from two models whose weights agree to float32 rounding: numbers within
    1e-5 relative, labels equal."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        ga, wa = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        assert ga.shape == wa.shape, (g, w)
        np.testing.assert_allclose(ga, wa, rtol=1e-5, atol=1e-6)


FLOAT_COUNTERS = ("weighted_labeled_examples", "weighted_labels", "weighted_unlabeled_examples", "sum_loss")
INT_COUNTERS = ("example_number", "total_features")


def counter_values(online: Any) -> dict[str, float]:
    vals = {name: getattr(online, name) for name in FLOAT_COUNTERS}
    for i, v in enumerate(online.normalized_sum_norm_x):
        vals[f"normalized_sum_norm_x[{i}]"] = v
    for i, v in enumerate(online.total_weight):
        vals[f"total_weight[{i}]"] = v
    return vals


# --------------------------------------------------------------------------------------------
# 1. k copies of one model
@pytest.mark.parametrize("stack", STACKS, ids=STACK_IDS)
@PROPERTY_SETTINGS
@given(k=st.integers(2, 5), pick=st.integers(0, POOL - 1))
def test_k_copies_give_the_model_back(pools: Pools, stack: Stack, k: int, pick: int) -> None:
    """Merging k copies of model m (VW's example-count weighting) gives m's weights back and
    k times its counters.

    Weights. Adaptive path: A = a+…+a (k terms, f32), r = f32(a/A), out = Σ f32(θ·r); simple
    path: p = f32(c/S) with S = c+…+c, out = Σ f32(θ·p). For k = 2 and k = 4 every step is exact
    (2x is exact; f32(3x) errs by at most half an ulp of 4x, so f32(f32(3x) + x) rounds back to
    4x, a tie going to 4x's even significand; r, p are then 1/2 or 1/4, θ/2 and θ/4 are exact,
    and their 2 or 4 copies sum back to θ the same way), so the table is bit-identical. For k = 3, 5 the merged value is
    θ·(1+δ₁)(1+δ₂)(1+δ₃)/(1+δ₄) with |δ| bounded by (k−1)u for the two k-term sums and u for the
    division and the product: |out − θ| ≤ (2k+1)·u·|θ|. This holds for every saved column
    (w, adaptive, normalized).

    Counters (gd's shared data, summed in f64): k copies of one value summed left to right are
    within k·2⁻⁵³ relative of k·x; u64 counters are exactly k·x. ``t`` counts initial_t
    once: t' = f + k(t − f). Every u64 learn counter of a counting reduction (cb_adf MTR sums,
    exploration counters) is exactly k times. Pending ``--l1/--l2`` is applied, then reset.

    Column-rule bottoms (ftrl, pistol, coin, freegrad) accumulate in f64 and round once: a mean
    of k copies is θ(1+ε), |ε| ≤ (k+1)·2⁻⁵³ ≪ 2⁻²⁵, so exactly θ (every per-row statistic is a
    mean); maxima are θ; ftrl's z is the mean where it fits the closed form, so θ too.
    The merged file loads in VW and predicts like m (unless a counter drives exploration).
    """
    pool = pools.get(stack)
    m = pool.models[pick]
    merged = vwmerge.merge([m] * k)

    want = weights_of(m)
    if stack.rules:
        g, w = aligned(bottom(merged).table, want)
        for j, c in enumerate(want.columns):
            expected = {
                "mean": w[:, j],
                "max": w[:, j],
                "minpos": np.where(w[:, j] > 0, w[:, j], 0.0),
                "dual": w[:, j],
            }.get(stack.rule(c))
            if expected is not None:
                np.testing.assert_array_equal(g[:, j], expected, err_msg=f"column {c} ({stack.rule(c)})")
    elif k in (2, 4):
        assert_same_table(bottom(merged).table, want)
    else:
        assert_within(bottom(merged).table, want, (2 * k + 1) * U32, f"{k} copies")

    on, mon = bottom(m).online, bottom(merged).online
    if on is not None:
        for name, v in counter_values(on).items():
            got = counter_values(mon)[name]
            assert abs(got - k * v) <= k * U64 * abs(k * v), (name, got, k * v)
        for name in INT_COUNTERS:
            assert getattr(mon, name) == k * getattr(on, name) % 2**64, name
        f = float(np.float32(on.initial_t))
        assert math.isclose(mon.t, f + k * (on.t - f), rel_tol=k * U64), (mon.t, on.t)
        assert (mon.min_label, mon.max_label, mon.initial_t) == (on.min_label, on.max_label, on.initial_t)
        if on.l1_state is not None:
            assert (mon.l1_state, mon.l2_state) == (0.0, 1.0)
    for name in stack.counters:
        np.testing.assert_array_equal(section_u64(merged, name), section_u64(m, name) * np.uint64(k))
    assert merged.header.bits == m.header.bits
    assert (merged.header.min_label, merged.header.max_label) == (m.header.min_label, m.header.max_label)

    if stack.copies_predict_alike:
        assert_predictions_close(pool.vw_predict(merged), pool.predictions[f"m{pick}"])


@pytest.mark.parametrize("stack", STACKS, ids=STACK_IDS)
@PROPERTY_SETTINGS
@given(k=st.integers(2, 5), pick=st.integers(0, POOL - 1), data=st.data())
def test_k_copies_with_explicit_weights_are_exact(pools: Pools, stack: Stack, k: int, pick: int, data: Any) -> None:
    """With explicit weights every parameter is Σ wᵢθ/Σw accumulated in f64 and rounded once:
    for k copies that is θ·(1+ε) with |ε| ≤ (k+1)·2⁻⁵³ ≪ 2⁻²⁵ (half a float32 ulp), so rounding
    gives θ back bit for bit, whatever the weights (for column-rule bottoms: every mean column)."""
    pool = pools.get(stack)
    m = pool.models[pick]
    w = data.draw(st.lists(st.floats(1e-3, 1e3), min_size=k, max_size=k), label="weights")
    merged = vwmerge.merge([m] * k, weights=w)
    if stack.rules:
        assert_columns_equal(bottom(merged).table, weights_of(m), stack.columns(weights_of(m), "mean"))
    else:
        assert_same_table(bottom(merged).table, weights_of(m))


# --------------------------------------------------------------------------------------------
# 2. Input order
@st.composite
def selections(draw: Any, explicit: bool) -> tuple[list[int], list[int], list[float] | None]:
    k = draw(st.integers(2, 5), label="k")
    picks = draw(st.lists(st.integers(0, POOL - 1), min_size=k, max_size=k), label="models")
    perm = draw(st.permutations(range(k)), label="permutation")
    weights = draw(st.lists(st.floats(0.05, 20.0), min_size=k, max_size=k), label="weights") if explicit else None
    return picks, list(perm), weights


@pytest.mark.parametrize("stack", STACKS, ids=STACK_IDS)
@PROPERTY_SETTINGS
@given(sel=selections(explicit=False))
@example(sel=([0, 1], [1, 0], None))
def test_permuting_inputs_changes_only_rounding(pools: Pools, stack: Stack, sel: Any) -> None:
    """Merging the same models in another order (VW weighting) changes each parameter by no more
    than float32 rounding: both results are within 2k·u·max|θᵢ| of the exact per-parameter
    weighted mean (every weight rᵢ, pᵢ ∈ [0, 1] and they sum to 1; the two k-term f32 sums, the
    quotient and the product contribute (k−1)u, (k−1)u, u, u), so they differ by at most
    4k·u·max|θᵢ|. Counters are order-free: u64 sums exactly, f64 sums to (k−1)·2⁻⁵³·Σ|xᵢ|;
    counting sections, header and row set (up to values that round to zero) are identical,
    except the random generator state in the options string, which is the first input's."""
    picks, perm, _ = sel
    pool = pools.get(stack)
    models = [pool.models[i] for i in picks]
    a = vwmerge.merge(models)
    b = vwmerge.merge([models[i] for i in perm])
    _assert_order_free(a, b, models, 4 * len(models) * U32, stack)


@pytest.mark.parametrize("stack", STACKS, ids=STACK_IDS)
@PROPERTY_SETTINGS
@given(sel=selections(explicit=True))
def test_permuting_inputs_and_weights_changes_only_rounding(pools: Pools, stack: Stack, sel: Any) -> None:
    """Explicit weights permuted with their models: the f64 accumulations differ by at most
    2(k−1)·2⁻⁵³·max|θᵢ| before the one rounding to f32, so the results are within one float32
    ulp of each other plus that: bounded by 2u·max|θᵢ|. Column-rule bottoms also sum columns:
    bounded by 2u·Σ|θᵢ| ≤ 2k·u·max|θᵢ| (ftrl's recomputed z is not compared)."""
    picks, perm, weights = sel
    pool = pools.get(stack)
    models = [pool.models[i] for i in picks]
    a = vwmerge.merge(models, weights=weights)
    b = vwmerge.merge([models[i] for i in perm], weights=[weights[i] for i in perm])
    _assert_order_free(a, b, models, 2 * U32, stack)


def _assert_order_free(
    a: vwmerge.Workspace, b: vwmerge.Workspace, models: Sequence[vwmerge.Workspace], rel: float, stack: Stack
) -> None:
    inputs = [weights_of(m) for m in models]
    columns = None
    if stack.rules:
        rel, columns = max(rel, 2 * len(models) * U32), stack.columns(inputs[0], "mean", "sum", "max", "minpos")
    assert_within(bottom(b).table, bottom(a).table, rel, "permuted merge", scale_by=inputs, columns=columns)
    # The options string also records VW's random generator state (--random_seed, written by
    # bag, cover, ...): the merged model carries the first input's, so only that may differ.
    assert attrs.evolve(a.header, options_raw=b"") == attrs.evolve(b.header, options_raw=b"")
    assert a.options.configuration() == b.options.configuration()
    assert b.options.random_seed() in {m.options.random_seed() for m in models}
    oa, ob = bottom(a).online, bottom(b).online
    if oa is not None:
        k = len(models)
        for name, v in counter_values(oa).items():
            mag = sum(abs(counter_values(bottom(m).online)[name]) for m in models)
            assert abs(counter_values(ob)[name] - v) <= 2 * (k - 1) * U64 * mag, name
        for name in (*INT_COUNTERS, "min_label", "max_label", "initial_t", "l1_state", "l2_state"):
            assert getattr(ob, name) == getattr(oa, name), name
        assert math.isclose(ob.t, oa.t, rel_tol=2 * k * U64)
    for name in stack.counters:
        np.testing.assert_array_equal(section_u64(a, name), section_u64(b, name))


# --------------------------------------------------------------------------------------------
# 3. One-hot weights
@st.composite
def one_hot(draw: Any) -> tuple[list[int], int, float]:
    k = draw(st.integers(2, 5), label="k")
    picks = draw(st.lists(st.integers(0, POOL - 1), min_size=k, max_size=k), label="models")
    hot = draw(st.integers(0, k - 1), label="hot")
    scale = draw(st.floats(1e-3, 1e3), label="scale")
    return picks, hot, scale


@pytest.mark.parametrize("stack", STACKS, ids=STACK_IDS)
@PROPERTY_SETTINGS
@given(sel=one_hot())
@example(sel=([0, 1], 0, 1.0))  # the literal weights [1, 0]
def test_one_hot_weights_give_that_models_weights(pools: Pools, stack: Stack, sel: Any) -> None:
    """Weights c·eⱼ (e.g. [1, 0]) normalize to exactly 1 and 0; θⱼ·1 + Σ θᵢ·0 is exact in f64,
    so the merged table is model j's effective table bit for bit (rows that only other models
    had become zero and are not written). Counters still describe all inputs (summed).
    Column-rule bottoms: the mean columns are model j's (sums and maxima cover every input)."""
    picks, hot, scale = sel
    pool = pools.get(stack)
    models = [pool.models[i] for i in picks]
    weights = [scale if i == hot else 0.0 for i in range(len(models))]
    merged = vwmerge.merge(models, weights=weights)
    want = weights_of(models[hot])
    if stack.rules:
        assert_columns_equal(bottom(merged).table, want, stack.columns(want, "mean"))
    else:
        assert_same_table(bottom(merged).table, want)
    on = bottom(merged).online
    if on is not None:
        total = sum(bottom(m).online.weighted_labeled_examples for m in models)
        assert on.weighted_labeled_examples == total


# --------------------------------------------------------------------------------------------
# 4. Base mode with a single model
@pytest.mark.parametrize("stack", STACKS, ids=STACK_IDS)
@PROPERTY_SETTINGS
@given(pick=st.integers(0, CONTINUATIONS - 1))
def test_base_mode_with_one_model_gives_that_model(pools: Pools, stack: Stack, pick: int) -> None:
    """``merge([m], base=b)`` for m trained on from b (VW ``-i b --preserve_performance_counters``)
    equals m. Each value is f32(b + f32(m − b)) (the single delta has weight 1 and, on the
    adaptive path, ratio a/a = 1): exactly m wherever m − b is exact in float32 (Sterbenz:
    b/2 ≤ m ≤ 2b), and within u·(|m| + |m − b|) elsewhere. Counters: u64 exactly m's, f64
    within 2⁻⁵³·(|m| + |m − b|); counting sections exactly m's. VW predicts with it like with m.

    Column-rule bottoms compute b + (m − b) in f64, which is exact for float32 inputs: means
    and sums are m bit for bit, and so are maxima (m's are ≥ b's, m having trained on from b).
    """
    pool = pools.get(stack)
    b, m = pool.base, pool.continued[pick]
    merged = vwmerge.merge([m], base=b)

    wm, wb = weights_of(m), weights_of(b)
    if stack.rules:
        assert_columns_equal(bottom(merged).table, wm, stack.columns(wm, "mean", "sum", "max"))
    else:
        _assert_base_round_trip(bottom(merged).table, wm, wb)
    _assert_base_counters(stack, merged, m, b)
    assert_predictions_close(pool.vw_predict(merged), pool.predictions[f"c{pick}"])


def _assert_base_round_trip(merged: WeightTable, wm: WeightTable, wb: WeightTable) -> None:
    got, want, base_vals = aligned(merged, wm, wb)
    sterbenz = (want == 0) | (base_vals == 0) | ((want / base_vals >= 0.5) & (want / base_vals <= 2.0))
    np.testing.assert_array_equal(got[sterbenz], want[sterbenz])
    bound = U32 * (np.abs(want) + np.abs(want - base_vals)) * (1 + U32)
    assert np.all(np.abs(got - want) <= bound + TINY)


def _assert_base_counters(stack: Stack, merged: vwmerge.Workspace, m: vwmerge.Workspace, b: vwmerge.Workspace) -> None:
    on, ob, mon = bottom(m).online, bottom(b).online, bottom(merged).online
    if on is not None:
        for name, v in counter_values(on).items():
            d = v - counter_values(ob)[name]
            assert abs(counter_values(mon)[name] - v) <= 2 * U64 * (abs(v) + abs(d)), name
        for name in (*INT_COUNTERS, "min_label", "max_label", "initial_t"):
            assert getattr(mon, name) == getattr(on, name), name
        assert math.isclose(mon.t, on.t, rel_tol=4 * U64)
    for name in stack.counters:
        np.testing.assert_array_equal(section_u64(merged, name), section_u64(m, name))
