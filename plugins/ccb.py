"""Conditional contextual bandits and slates: ``ccb_explore_adf``, ``slates``, ``cb_sample``.

``ccb_explore_adf`` (also under ``--slates``, which enables it) writes one bool,
``has_seen_multi_slot_example``: set for good once an example had more than one slot (or slot
features). When it is true on load, VW adds the slot-index interactions the weights were trained
with. VW's merge resets it to false, so its merged model silently drops those interactions;
vwmerge takes the logical **OR** of the inputs (and of the base in base mode).

VW reads the flag only from files of version 8.9.0 on (and only when the file's options contain
``ccb_explore_adf``, which a ccb or slates model always does); it always writes it. vwmerge keeps
the first input's version in the merged header, so older files round-trip without the byte (a
merge only takes files VW reads alike: all inputs have the byte or none has).
``slates`` and ``cb_sample`` write nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from vwmerge.plugin import MergeContext, ModelWeights, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of

FLAG_SINCE = (8, 9, 0)


@attrs.frozen
class CcbState:
    """``has_seen_multi_slot_example``; None when the file predates the flag."""

    multi_slot_seen: bool | None


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="ccb_explore_adf",
            rank=rank_of("ccb_explore_adf"),
            triggers=("ccb_explore_adf",),
            options=("all_slots_loss", "no_predict", "ccb_no_slot_index", "cb_type"),
            section=True,
            description="conditional contextual bandit; multi-slot flag (OR)",
        ),
        ReductionSpec(
            name="slates",
            rank=rank_of("slates"),
            triggers=("slates",),
            description="slates over ccb; no state",
        ),
        ReductionSpec(
            name="cb_sample",
            rank=rank_of("cb_sample"),
            triggers=("cb_sample",),
            description="samples an action from the pmf; no state",
        ),
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: CcbState | None) -> CcbState | None:
    present = io.model.version >= FLAG_SINCE
    if io.reading:
        return CcbState(io.r.boolean("ccb has_seen_multi_slot_example") if present else None)
    assert state is not None
    if present:
        io.w.boolean(bool(state.multi_slot_seen))
    return None


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[CcbState],
    weights: ModelWeights,
    base: CcbState | None,
    context: MergeContext,
) -> CcbState:
    if states[0].multi_slot_seen is None:
        return CcbState(None)
    everyone = [*states, *([base] if base is not None else [])]
    return CcbState(any(bool(s.multi_slot_seen) for s in everyone))


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: CcbState) -> dict[str, Any]:
    return {"has_seen_multi_slot_example": state.multi_slot_seen}
