"""``multiworld_test``: off-policy evaluation of the policies given as features of some namespaces.

Section (``mwt.cc``)::

    f64 total; u64 p; u64 policy[p] (first-seen order); p × { f64 cost; u32 action; bool seen }

``total`` counts the evaluated examples and ``cost`` is each policy's summed importance-weighted
cost, so the estimate of a policy is ``cost / total``. VW's merge empties the section. vwmerge
takes the union of the policies (first input's order, then new ones as they appear), sums
``total`` and ``cost``, ORs ``seen`` and keeps the first ``action`` seen (scratch, 0 on disk).
Base mode subtracts and adds back (``base + Σ(xᵢ − base)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import MergeContext, ModelWeights, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of

EVAL_DTYPE = np.dtype([("cost", "<f8"), ("action", "<u4"), ("seen", "u1")])  # packed: 13 bytes


@attrs.frozen(eq=False)
class MwtState:
    total: float
    policies: np.ndarray  #: uint64 feature indices, first-seen order
    evals: np.ndarray  #: EVAL_DTYPE, one per policy


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="multiworld_test",
            rank=rank_of("multiworld_test"),
            triggers=("multiworld_test",),
            options=("learn", "exclude_eval"),
            section=True,
            description="policy evaluation; costs and totals summed over the union of policies",
        )
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: MwtState | None) -> MwtState | None:
    if io.reading:
        r = io.r
        total = r.f64("multiworld_test total")
        n = r.count("multiworld_test policies", 8 + EVAL_DTYPE.itemsize, kind="u64")
        policies = r.array("<u8", n, "multiworld_test policies")
        return MwtState(total, policies, r.array(EVAL_DTYPE, n, "multiworld_test evaluations"))
    assert state is not None
    io.w.f64(state.total)
    io.w.u64(len(state.policies))
    io.w.array(state.policies, "<u8")
    io.w.array(state.evals, EVAL_DTYPE)
    return None


def _combine(parts: Sequence[tuple[MwtState, float]]) -> MwtState:
    """Σ sign·state over the union of policies, in first-seen order."""
    policies = np.concatenate([p.policies for p, _ in parts])
    _, first = np.unique(policies, return_index=True)
    order = np.sort(first)
    union = policies[order]
    sort = np.argsort(union)
    evals = np.zeros(len(union), EVAL_DTYPE)
    filled = np.zeros(len(union), bool)
    for state, sign in parts:
        pos = sort[np.searchsorted(union[sort], state.policies)]
        evals["cost"][pos] += sign * state.evals["cost"]
        evals["seen"][pos] |= state.evals["seen"]
        fresh = pos[~filled[pos]]
        evals["action"][fresh] = state.evals["action"][~filled[pos]]
        filled[pos] = True
    return MwtState(sum(sign * p.total for p, sign in parts), union, evals)


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[MwtState],
    weights: ModelWeights,
    base: MwtState | None,
    context: MergeContext,
) -> MwtState:
    return _combine([(s, 1.0) for s in states])


@hookimpl
def vwmerge_subtract(reduction: StackEntry, state: MwtState, base: MwtState, context: MergeContext) -> MwtState:
    return _combine([(state, 1.0), (base, -1.0)])


@hookimpl
def vwmerge_add(reduction: StackEntry, base: MwtState, delta: MwtState, context: MergeContext) -> MwtState:
    return _combine([(base, 1.0), (delta, 1.0)])


@hookimpl
def vwmerge_scale(reduction: StackEntry, delta: MwtState, scale: float, context: MergeContext) -> MwtState:
    """``--scale`` leaves these counters alone: they count real events, not learned parameters."""
    return delta


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: MwtState) -> dict[str, Any]:
    return {
        "total": state.total,
        "policies": len(state.policies),
        "cost": state.evals["cost"].tolist(),
        "seen": state.evals["seen"].astype(bool).tolist(),
    }
