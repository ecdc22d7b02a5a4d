"""``epsilon_decay``: several cb models of growing scope in weight slots, promoted by confidence bounds.

Section (``epsilon_decay.cc``)::

    u32 R; R × { u32 n_r; CSR[n_r] }      conf_seq_estimators (triangular: n_r = r + 1)
    u32 M; u64 weight_indices[M]          slot of each model (a permutation, starts 0..M-1)
    u64 global_counter                    (starts at 1; advanced only with --epsilon_decay_audit)

(CSR: see :mod:`vwmerge.plugins.confidence_sequence`.) With ``--predict_only_model`` VW writes no
section and drops the epsilon_decay options, so such a file has no epsilon_decay in its stack.

Merge. VW resets the estimators and the permutation while averaging the slot weights. Slot
weights are averaged slot by slot (by gd), which is meaningful only when every input keeps each
model in the same slot. So: when all ``weight_indices`` (and the estimator shapes) agree, the
estimators' statistics are summed (they are running sums), ``last_w``/``last_r`` come from the
input with the largest merge weight, and ``global_counter`` continues from the combined count.
When the permutations differ, vwmerge keeps the **largest input's** state whole and warns that
the averaged slot weights mix different sub-models (remapping slots would need the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import MergeContext, ModelWeights, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of
from vwmerge.plugins.confidence_sequence import ConfidenceSequence, combine, read_cs, summary, write_cs

OPTIONS = (
    "model_count", "min_scope", "epsilon_decay_significance_level", "epsilon_decay_audit", "constant_epsilon",
    "bonferroni_denominator", "min_champ_examples", "initial_epsilon", "shift_model_bounds", "reward_as_cost",
    "tol_x", "opt_func", "challenger_epsilon",
)  # fmt: skip


@attrs.frozen(eq=False)
class EpsilonDecayState:
    estimators: tuple[tuple[ConfidenceSequence, ...], ...]
    weight_indices: tuple[int, ...]
    global_counter: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(row) for row in self.estimators)


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="epsilon_decay",
            rank=rank_of("epsilon_decay"),
            triggers=("epsilon_decay",),
            options=OPTIONS,
            section=True,
            width=lambda o: o.get_int("model_count", 3),
            description="epsilon decay over models of growing scope; estimators summed when slots agree",
        )
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: EpsilonDecayState | None) -> Any:
    if io.reading:
        r = io.r
        rows = []
        for _ in range(r.count("epsilon_decay estimator rows", 4)):
            rows.append(tuple(read_cs(r) for _ in range(r.count("epsilon_decay estimators", 8))))
        n = r.count("epsilon_decay weight_indices", 8)
        indices = tuple(int(i) for i in r.array("<u8", n, "epsilon_decay weight_indices"))
        return EpsilonDecayState(tuple(rows), indices, r.u64("epsilon_decay global_counter"))
    assert state is not None
    w = io.w
    w.u32(len(state.estimators))
    for row in state.estimators:
        w.u32(len(row))
        for cs in row:
            write_cs(w, cs)
    w.u32(len(state.weight_indices))
    w.array(np.asarray(state.weight_indices, dtype=np.uint64), "<u8")
    w.u64(state.global_counter)
    return None


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[EpsilonDecayState],
    weights: ModelWeights,
    base: EpsilonDecayState | None,
    context: MergeContext,
) -> EpsilonDecayState:
    largest = int(np.argmax(weights.values))
    everyone = [*states, *([base] if base is not None else [])]
    if len({(s.weight_indices, s.shape) for s in everyone}) > 1:
        context.warn(
            reduction,
            "epsilon_decay models keep their sub-models in different weight slots, so the slot-by-slot "
            "averaged weights mix different sub-models; keeping the epsilon_decay state of the input "
            "with the largest weight unchanged",
            kept_from=context.sources[largest],
            weight_indices=[list(s.weight_indices) for s in everyone],
        )
        return states[largest]
    rows = tuple(
        tuple(
            combine([s.estimators[r][c] for s in states], base.estimators[r][c] if base else None, largest)
            for c in range(len(states[0].estimators[r]))
        )
        for r in range(len(states[0].estimators))
    )
    start = base.global_counter if base is not None else 1
    counter = max(1, start + sum(s.global_counter - start for s in states)) % (1 << 64)  # u64 wraps
    return EpsilonDecayState(rows, states[0].weight_indices, counter)


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: EpsilonDecayState) -> dict[str, Any]:
    return {
        "weight_indices": list(state.weight_indices),
        "global_counter": state.global_counter,
        "estimators": [[summary(cs) for cs in row] for row in state.estimators],
    }
