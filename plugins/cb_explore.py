"""Contextual-bandit exploration: the ``cb_explore_adf`` family and legacy ``cb_explore``.

Most explorers keep their state in the weights and write nothing (greedy, softmax, bag, rnd,
large_action_space). The others write one small record (docs/reductions.md):

* squarecb (also ``--elim``), regcb/regcbopt, cover, graph_feedback and legacy ``cb_explore``:
  a u64 learn counter that drives the exploration schedule. Merged by **summing**, so the
  schedule continues as if the union of the data had been seen (VW resets it to 0, which
  restarts exploration at its most exploratory). Base mode: ``base + Σ(cᵢ − base)``.
* first: the remaining explore-first budget ``tau`` (u64). Each input consumed ``N0 − tauᵢ``
  of it, so the merge leaves ``max(0, N0 − Σ(N0 − tauᵢ))`` (VW restarts at ``N0``).
* synthcover: the running min and max of logged costs (2 × f32): min of mins, max of maxes.

Files older than the version that introduced a record do not contain it; the state is then
``None`` and nothing is written back (the merged file keeps the first input's version, and a
merge only takes files VW reads alike, so all inputs have the record or none has).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from vwmerge.plugin import MergeContext, ModelWeights, Options, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of

#: The explorers that replace greedy (VW's cb_explore_adf_greedy setup checks exactly these).
NON_GREEDY = (
    "first", "bag", "cover", "regcb", "regcbopt", "squarecb", "rnd", "softmax", "synthcover", "graph_feedback",
)  # fmt: skip

#: Reductions whose section is one u64 learn counter, and the file version that added it.
COUNTERS: dict[str, tuple[int, int, int]] = {
    "cb_explore_adf_squarecb": (8, 11, 0),
    "cb_explore_adf_regcb": (8, 11, 0),
    "cb_explore_adf_cover": (8, 9, 0),
    "cb_explore_adf_graph_feedback": (0, 0, 0),
    "cb_explore": (8, 9, 0),
}
FIRST_SINCE = (8, 11, 0)
SYNTHCOVER_SINCE = (8, 9, 0)
U64 = 1 << 64


@attrs.frozen
class Counter:
    """A learn counter, or (in base mode) the change of one since the base. None: not in the file."""

    value: int | None


@attrs.frozen
class FirstTau:
    """The remaining tau-first budget. None: not in the file."""

    tau: int | None


@attrs.frozen
class FirstConsumed:
    """Base mode delta of ``first``: how much of the base's budget one model consumed."""

    consumed: int | None


@attrs.frozen
class CostRange:
    """synthcover's running extrema of logged costs (float32 values). None: not in the file."""

    min_cost: float | None
    max_cost: float | None


# --------------------------------------------------------------------------------------------
def _has_adf(o: Options, flag: str) -> bool:
    return "cb_explore_adf" in o and flag in o


def _cover_width(o: Options) -> int:
    # cover trains C+1 policies; with mtr (the default) each also keeps a dr copy.
    return (o.get_int("cover", 1) + 1) * (2 if o.get("cb_type", "mtr") == "mtr" else 1)


def _legacy_width(o: Options) -> int:
    if "cover" in o:
        return o.get_int("cover", 1) + 1
    if "bag" in o:
        return o.get_int("bag", 1)
    return 1


def _adf(name: str, flag: str, options: tuple[str, ...] = (), *, section: bool = False, **kw: Any) -> ReductionSpec:
    kw.setdefault("enabled", lambda o: _has_adf(o, flag))
    return ReductionSpec(
        name=name,
        rank=rank_of(name),
        triggers=(flag,),
        options=("cb_explore_adf", "epsilon", "first_only", "cb_type", *options),
        section=section,
        **kw,
    )


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    squarecb_opts = ("gamma_scale", "gamma_exponent", "elim", "mellowness", "cb_min_cost", "cb_max_cost")
    las_opts = (
        "max_actions", "spanner_c", "thread_pool_size", "block_size", "las_hint_explicit_simd", "two_pass_svd",
        "action_cache_slack",
    )  # fmt: skip
    return [
        _adf("cb_explore_adf_greedy", "cb_explore_adf",
             enabled=lambda o: "cb_explore_adf" in o and not o.has_any(*NON_GREEDY),
             description="epsilon-greedy exploration; no state"),
        _adf("cb_explore_adf_softmax", "softmax", ("lambda",), description="softmax exploration; no state"),
        _adf("cb_explore_adf_bag", "bag", ("greedify",), width=lambda o: o.get_int("bag", 1),
             description="bagging exploration; state is in the weights"),
        _adf("cb_explore_adf_rnd", "rnd", ("rnd_alpha", "rnd_invlambda"), width=lambda o: 1 + o.get_int("rnd", 1),
             description="random network distillation exploration; state is in the weights"),
        _adf("cb_explore_adf_large_action_space", "large_action_space", las_opts,
             description="large action spaces (SVD spanner); no state"),
        ReductionSpec("cb_actions_mask", rank_of("cb_actions_mask"), ("large_action_space",),
                      enabled=lambda o: _has_adf(o, "large_action_space"),
                      description="action masking under large_action_space; no state"),
        _adf("cb_explore_adf_squarecb", "squarecb", squarecb_opts, section=True,
             description="SquareCB exploration; learn counter (summed)"),
        _adf("cb_explore_adf_regcb", "regcb", ("regcbopt", "mellowness", "cb_min_cost", "cb_max_cost"), section=True,
             enabled=lambda o: "cb_explore_adf" in o and o.has_any("regcb", "regcbopt"),
             description="RegCB exploration; learn counter (summed)"),
        _adf("cb_explore_adf_cover", "cover", ("psi", "nounif"), section=True, width=_cover_width,
             description="online cover exploration; learn counter (summed)"),
        _adf("cb_explore_adf_graph_feedback", "graph_feedback", ("gamma_scale", "gamma_exponent"), section=True,
             description="graph feedback exploration; learn counter (summed)"),
        _adf("cb_explore_adf_first", "first", section=True,
             description="tau-first exploration; remaining budget (consumed budgets add up)"),
        _adf("cb_explore_adf_synthcover", "synthcover", ("synthcoverpsi", "synthcoversize"), section=True,
             description="synthetic cover exploration; min/max logged cost"),
        ReductionSpec("cb_explore", rank_of("cb_explore"), ("cb_explore",),
                      ("first", "epsilon", "bag", "cover", "nounif", "psi", "cb_force_legacy"),
                      section=True, width=_legacy_width,
                      enabled=lambda o: "cb_explore" in o and "cb_force_legacy" in o,
                      description="legacy (non-adf) cb exploration; cover's learn counter (summed)"),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
def _since(io: SectionIO, version: tuple[int, int, int]) -> bool:
    return io.model.version >= version


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: Any) -> Any:
    name = reduction.name
    if name in COUNTERS:
        present = _since(io, COUNTERS[name])
        if io.reading:
            return Counter(io.r.u64(f"{name} counter") if present else None)
        if present:
            io.w.u64(state.value if state.value is not None else 0)
        return None
    if name == "cb_explore_adf_first":
        present = _since(io, FIRST_SINCE)
        if io.reading:
            return FirstTau(io.r.u64("first tau") if present else None)
        if present:
            io.w.u64(state.tau if state.tau is not None else 0)
        return None
    if name == "cb_explore_adf_synthcover":
        present = _since(io, SYNTHCOVER_SINCE)
        if io.reading:
            if not present:
                return CostRange(None, None)
            return CostRange(io.r.f32("synthcover min_cost"), io.r.f32("synthcover max_cost"))
        if present:
            io.w.f32(state.min_cost if state.min_cost is not None else 0.0)
            io.w.f32(state.max_cost if state.max_cost is not None else 0.0)
        return None
    return None


# --------------------------------------------------------------------------------------------
def _present(values: Sequence[int | None], first_has: bool) -> list[int] | None:
    """The values to combine, or None when the output (first input's version) has no field."""
    if not first_has:
        return None
    return [v for v in values if v is not None]


def _wrap_u64(total: int) -> int:
    """A sum of u64 counters past 2^64 wraps, as in VW's merge (sums of deltas may be negative)."""
    return total % U64 if total >= U64 else total


def _first_budget(context: MergeContext) -> int:
    return context.output.options.get_int("first", 0)


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[Any],
    weights: ModelWeights,
    base: Any,
    context: MergeContext,
) -> Any:
    name = reduction.name
    if name in COUNTERS:
        vals = _present([s.value for s in states], states[0].value is not None)
        return Counter(None if vals is None else _wrap_u64(sum(vals)))
    if name == "cb_explore_adf_first":
        if isinstance(states[0], FirstConsumed):  # base mode: deltas
            used = _present([s.consumed for s in states], states[0].consumed is not None)
            return FirstConsumed(None if used is None else _wrap_u64(sum(used)))
        taus = _present([s.tau for s in states], states[0].tau is not None)
        if taus is None:
            return FirstTau(None)
        n0 = _first_budget(context)
        if any(t > n0 for t in taus):
            context.warn(reduction, f"a model's remaining --first budget exceeds --first {n0}; clamping", taus=taus)
        return FirstTau(max(0, n0 - sum(max(0, n0 - t) for t in taus)))
    if name == "cb_explore_adf_synthcover":
        if states[0].min_cost is None:
            return CostRange(None, None)
        lows = [s.min_cost for s in states if s.min_cost is not None]
        highs = [s.max_cost for s in states if s.max_cost is not None]
        return CostRange(min(lows), max(highs))
    return None


@hookimpl
def vwmerge_subtract(reduction: StackEntry, state: Any, base: Any, context: MergeContext) -> Any:
    name = reduction.name
    if name in COUNTERS:
        if state.value is None or base.value is None:
            return Counter(None)
        return Counter(state.value - base.value)
    if name == "cb_explore_adf_first":
        if state.tau is None or base.tau is None:
            return FirstConsumed(None)
        return FirstConsumed(base.tau - state.tau)
    if name == "cb_explore_adf_synthcover":
        return state  # extrema are not differences: merge them as they are, fold the base in on add
    return None


@hookimpl
def vwmerge_add(reduction: StackEntry, base: Any, delta: Any, context: MergeContext) -> Any:
    name = reduction.name
    if name in COUNTERS:
        if base.value is None or delta.value is None:
            return Counter(base.value)
        total = base.value + delta.value
        if total < 0:
            context.warn(reduction, "models counted fewer examples than the base; the counter is set to 0")
        return Counter(min(max(total, 0), U64 - 1))
    if name == "cb_explore_adf_first":
        if base.tau is None or delta.consumed is None:
            return FirstTau(base.tau)
        return FirstTau(max(0, base.tau - max(0, delta.consumed)))
    if name == "cb_explore_adf_synthcover":
        if base.min_cost is None or delta.min_cost is None:
            return base
        return CostRange(min(base.min_cost, delta.min_cost), max(base.max_cost, delta.max_cost))
    return None


@hookimpl
def vwmerge_scale(reduction: StackEntry, delta: Any, scale: float, context: MergeContext) -> Any:
    """``--scale`` leaves these alone: counters and ``--first`` budgets count real examples, and
    synthcover's cost range is an extremum, not a learned parameter."""
    if reduction.name in COUNTERS or reduction.name in ("cb_explore_adf_first", "cb_explore_adf_synthcover"):
        return delta
    return None


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: Any) -> dict[str, Any] | None:
    if isinstance(state, Counter):
        return {"counter": state.value}
    if isinstance(state, FirstTau):
        return {"tau": state.tau}
    if isinstance(state, CostRange):
        return {"min_cost": state.min_cost, "max_cost": state.max_cost}
    return None
