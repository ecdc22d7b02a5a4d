"""cb_adf: contextual bandits with action-dependent features (and what enables it: ``--cb K``,
``--cb_explore(_adf)``, ``--cb_type``). Its section is the MTR counters ``event_sum`` and
``action_sum`` (u64), once, or once per sub-model under ``--per_model_save_load``.

Merge: counters are summed, unweighted (VW does the same; the ratio they form is an average
over all examples seen). Base mode: ``base + Σ(cᵢ − base)`` via add/subtract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import (
    MergeContext,
    ModelWeights,
    Options,
    ReductionSpec,
    SectionIO,
    StackEntry,
    hookimpl,
    rank_of,
)


def _width(options: Options) -> int:
    return 2 if options.get("cb_type") == "dr" else 1


@attrs.frozen(eq=False)
class CbAdfState:
    counters: np.ndarray  #: uint64, shape (n, 2): event_sum, action_sum

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CbAdfState) and np.array_equal(self.counters, other.counters)

    __hash__ = None  # type: ignore[assignment]


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="cb_adf",
            rank=rank_of("cb_adf"),
            triggers=("cb_adf",),
            options=("cb_type", "clip_p", "no_predict", "large_action_space", "cb_force_legacy", "rank_all"),
            section=True,
            width=_width,
            description="contextual bandit with action-dependent features (MTR counters)",
        )
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: CbAdfState | None) -> Any:
    n = reduction.above if "per_model_save_load" in io.model.options else 1
    if io.model.version < (8, 3, 2):
        if io.reading:
            return CbAdfState(np.zeros((0, 2), np.uint64))
        return None
    if io.reading:
        return CbAdfState(io.r.array("<u8", 2 * n, "cb_adf counters").reshape(n, 2))
    assert state is not None
    io.w.array(state.counters, "<u8")
    return None


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[CbAdfState],
    weights: ModelWeights,
    base: Any,
    context: MergeContext,
) -> CbAdfState:
    total = np.zeros_like(states[0].counters, dtype=np.uint64)
    for s in states:
        total += s.counters  # uint64 arithmetic wraps like VW's size_t
    return CbAdfState(total)


@hookimpl
def vwmerge_subtract(reduction: StackEntry, state: CbAdfState, base: CbAdfState, context: MergeContext) -> Any:
    return CbAdfState(state.counters - base.counters)


@hookimpl
def vwmerge_add(reduction: StackEntry, base: CbAdfState, delta: CbAdfState, context: MergeContext) -> Any:
    return CbAdfState(base.counters + delta.counters)


@hookimpl
def vwmerge_scale(reduction: StackEntry, delta: CbAdfState, scale: float, context: MergeContext) -> CbAdfState:
    """``--scale`` leaves these counters alone: they count real events, not learned parameters."""
    return delta


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: CbAdfState) -> dict[str, Any]:
    c = state.counters
    return {"event_sum": c[:, 0].tolist(), "action_sum": c[:, 1].tolist()}
