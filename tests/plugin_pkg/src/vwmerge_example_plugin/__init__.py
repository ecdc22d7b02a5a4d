"""A third-party vwmerge plugin: VW's SquareCB exploration (``--cb_explore_adf --squarecb``).

SquareCB writes one section, a ``u64`` count of learn calls that sets its exploration schedule
(``gamma = gamma_scale · counter^gamma_exponent``). VW's own merge resets it to 0, which sends
the merged model back to its most exploratory state; this plugin sums it instead, so exploration
continues as if one learner had seen all the data (base mode: ``base + Σ(cᵢ − base)``).

It is also the worked example of vwmerge's override policy: a plugin from a distribution other
than ``vwmerge`` that declares a reduction name beats the built-in one. Every merge it performs
logs ``merged by vwmerge-example-plugin`` so that a test (or a user) can see who merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import structlog
from vwmerge.plugin import MergeContext, ModelWeights, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of

DISTRIBUTION = "vwmerge-example-plugin"
REDUCTION = "cb_explore_adf_squarecb"
#: VW reads and writes the counter only for files from 8.11.0 on.
COUNTER_SINCE = (8, 11, 0)
U64 = 1 << 64

#: SquareCB's own options (all kept in the model's options string when given).
OPTIONS = ("gamma_scale", "gamma_exponent", "elim", "mellowness", "cb_min_cost", "cb_max_cost", "epsilon")

log = structlog.get_logger("vwmerge")


@attrs.frozen
class SquareCbState:
    """The learn-call counter; None for files older than 8.11.0, which have no section bytes."""

    counter: int | None


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name=REDUCTION,
            rank=rank_of(REDUCTION),
            triggers=("squarecb",),
            options=(*OPTIONS, "cb_explore_adf"),
            section=True,
            # VW sets squarecb up only under --cb_explore_adf (both options are "necessary").
            enabled=lambda o: "squarecb" in o and "cb_explore_adf" in o,
            description=f"SquareCB exploration counter, summed on merge ({DISTRIBUTION})",
        )
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: SquareCbState | None) -> SquareCbState | None:
    has_counter = io.model.version >= COUNTER_SINCE
    if io.reading:
        return SquareCbState(io.r.u64("squarecb counter") if has_counter else None)
    assert state is not None
    if state.counter is not None:
        io.w.u64(state.counter)
    return None


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[SquareCbState],
    weights: ModelWeights,
    base: SquareCbState | None,
    context: MergeContext,
) -> SquareCbState:
    """Sum the counters, unweighted: they count examples, whatever weight each model gets."""
    if any(s.counter is None for s in states):
        return SquareCbState(None)
    merged = sum(s.counter or 0 for s in states) % U64
    log.info(
        f"merged by {DISTRIBUTION}",
        reduction=reduction.name,
        counters=[s.counter for s in states],
        merged=merged,
    )
    return SquareCbState(merged)


@hookimpl
def vwmerge_subtract(
    reduction: StackEntry, state: SquareCbState, base: SquareCbState, context: MergeContext
) -> SquareCbState:
    if state.counter is None or base.counter is None:
        return SquareCbState(None)
    return SquareCbState((state.counter - base.counter) % U64)


@hookimpl
def vwmerge_add(
    reduction: StackEntry, base: SquareCbState, delta: SquareCbState, context: MergeContext
) -> SquareCbState:
    if base.counter is None or delta.counter is None:
        return base
    return SquareCbState((base.counter + delta.counter) % U64)


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: SquareCbState) -> dict[str, Any]:
    return {"counter": state.counter, "plugin": DISTRIBUTION}
