"""``automl``: interaction configurations tried in K live weight slots, champion in slot 0.

Section (``automl_iomodel.cc``)::

    i32 automl_state; u64 total_learn_count; u64 current_champ (always 0); u64 valid_config_size
    u32 n; n × { u8 namespace; u64 count }                                  ns_counter (map)
    u32 C; C × { u32 E; E × { u32 len; u8 ns[len] }; u64 lease; i32 state; i32 conf_type }
    u32 L; L × { CSR; u64 config_index; bool eligible_to_inactivate; CSR }  estimators (own, vs champ)
    u32 Q; Q × { f32 priority; u64 config_index }                            index_queue (pop order)

With ``--predict_only_model`` VW writes no section and removes ``--automl`` from the options,
so such a file has no automl in its stack.

Merge. VW resets automl to a single fresh config while averaging the slot weights, which no
longer match the interactions the merged model then uses. vwmerge merges only when every input
tried the same configurations (same namespaces, same state) and keeps the same config in each
live slot, so that the slot weights gd averages belong together: then counts are summed
(``total_learn_count``, ``ns_counter`` by namespace, the estimators' statistics) and the
scheduling state (leases, index_queue, automl_state, eligibility, last observation) comes from the
input with the largest merge weight. Otherwise the **largest input's** automl state is kept whole,
with a warning that the other inputs' slot weights do not belong to its configurations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import (
    MergeContext,
    ModelWeights,
    Reader,
    ReductionSpec,
    SectionIO,
    StackEntry,
    Writer,
    hookimpl,
    rank_of,
)
from vwmerge.plugins.confidence_sequence import ConfidenceSequence, combine, read_cs, summary, write_cs

OPTIONS = (
    "default_lease", "priority_type", "priority_challengers", "verbose_metrics", "csv_trace", "interaction_type",
    "oracle_type", "debug_reversed_learn", "automl_significance_level", "fixed_significance_level",
    "reward_as_cost", "tol_x", "opt_func",
)  # fmt: skip
CONFIG_STATES = ("New", "Live", "Inactive", "Removed")
U64 = 1 << 64
NS_DTYPE = np.dtype([("ns", "u1"), ("count", "<u8")])
QUEUE_DTYPE = np.dtype([("priority", "<f4"), ("config_index", "<u8")])


@attrs.frozen
class Config:
    """One candidate configuration: its namespace groups (exclusions or interactions)."""

    elements: tuple[bytes, ...]
    lease: int
    state: int
    conf_type: int

    def identity(self) -> tuple[tuple[bytes, ...], int, int]:
        return (self.elements, self.state, self.conf_type)


@attrs.frozen(eq=False)
class Estimator:
    own: ConfidenceSequence
    config_index: int
    eligible_to_inactivate: bool
    vs_champ: ConfidenceSequence


@attrs.frozen(eq=False)
class AutomlState:
    automl_state: int
    total_learn_count: int
    current_champ: int
    valid_config_size: int
    ns_counter: np.ndarray  #: NS_DTYPE, ascending namespace
    configs: tuple[Config, ...]
    estimators: tuple[Estimator, ...]
    index_queue: np.ndarray  #: QUEUE_DTYPE, pop order

    def slots(self) -> tuple[int, ...]:
        return tuple(e.config_index for e in self.estimators)

    def structure(self) -> tuple[Any, ...]:
        """What must agree between inputs for their slot weights to be mergeable."""
        return (tuple(c.identity() for c in self.configs), self.slots())


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="automl",
            rank=rank_of("automl"),
            triggers=("automl",),
            options=OPTIONS,
            section=True,
            width=lambda o: o.get_int("automl", 4),
            description="automatic interaction search over live slots; counts summed when configs agree",
        )
    ]


def _read_config(r: Reader) -> Config:
    elements = []
    for _ in range(r.count("automl config elements", 4)):
        n = r.count("automl namespace group", 1)
        elements.append(r.bytes(n, "automl namespace group"))
    lease = r.u64("automl config lease")
    return Config(tuple(elements), lease, r.i32("automl config state"), r.i32("automl config type"))


def _read(r: Reader) -> AutomlState:
    state = r.i32("automl state")
    count, champ, valid = r.u64("automl total_learn_count"), r.u64("automl current_champ"), r.u64("valid_config_size")
    ns = r.array(NS_DTYPE, r.count("automl ns_counter", NS_DTYPE.itemsize), "automl ns_counter")
    configs = tuple(_read_config(r) for _ in range(r.count("automl configs", 20)))
    estimators = []
    for _ in range(r.count("automl estimators", 8)):
        own = read_cs(r)
        index, eligible = r.u64("automl estimator config_index"), r.boolean("automl eligible_to_inactivate")
        estimators.append(Estimator(own, index, eligible, read_cs(r)))
    queue = r.array(QUEUE_DTYPE, r.count("automl index_queue", QUEUE_DTYPE.itemsize), "automl index_queue")
    for e in estimators:
        if e.config_index >= len(configs):
            raise r.fail(f"corrupt automl section: estimator uses config {e.config_index} of {len(configs)}")
    return AutomlState(state, count, champ, valid, ns, configs, tuple(estimators), queue)


def _write(w: Writer, s: AutomlState) -> None:
    w.i32(s.automl_state)
    w.u64(s.total_learn_count)
    w.u64(s.current_champ)
    w.u64(s.valid_config_size)
    w.u32(len(s.ns_counter))
    w.array(s.ns_counter, NS_DTYPE)
    w.u32(len(s.configs))
    for c in s.configs:
        w.u32(len(c.elements))
        for group in c.elements:
            w.u32(len(group))
            w.bytes(group)
        w.u64(c.lease)
        w.i32(c.state)
        w.i32(c.conf_type)
    w.u32(len(s.estimators))
    for e in s.estimators:
        write_cs(w, e.own)
        w.u64(e.config_index)
        w.boolean(e.eligible_to_inactivate)
        write_cs(w, e.vs_champ)
    w.u32(len(s.index_queue))
    w.array(s.index_queue, QUEUE_DTYPE)


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: AutomlState | None) -> AutomlState | None:
    if io.reading:
        return _read(io.r)
    assert state is not None
    _write(io.w, state)
    return None


def _ns_counts(states: Sequence[AutomlState], base: AutomlState | None) -> np.ndarray:
    """Per-namespace counts summed over the union of namespaces (``base + Σ(cᵢ − base)`` with a base)."""
    totals: dict[int, int] = {}
    parts = [(s.ns_counter, 1) for s in states] + ([(base.ns_counter, 1 - len(states))] if base is not None else [])
    for table, sign in parts:  # at most 256 namespaces
        for ns, count in zip(table["ns"].tolist(), table["count"].tolist(), strict=True):
            totals[ns] = totals.get(ns, 0) + sign * count
    out = np.zeros(len(totals), NS_DTYPE)
    keys = sorted(totals)
    out["ns"] = keys
    out["count"] = [min(max(totals[k], 0), U64 - 1) for k in keys]
    return out


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[AutomlState],
    weights: ModelWeights,
    base: AutomlState | None,
    context: MergeContext,
) -> AutomlState:
    largest = int(np.argmax(weights.values))
    lead = states[largest]
    everyone = [*states, *([base] if base is not None else [])]
    if len({s.structure() for s in everyone}) > 1:
        context.warn(
            reduction,
            "automl models tried different configurations or keep different configs in their live slots, "
            "so their slot weights do not belong together; keeping the automl state of the input with the "
            "largest weight unchanged",
            kept_from=context.sources[largest],
            live_configs=[list(s.slots()) for s in everyone],
        )
        return lead
    start = base.total_learn_count if base is not None else 0
    count = min(max(start + sum(s.total_learn_count - start for s in states), 0), U64 - 1)
    estimators = tuple(
        attrs.evolve(
            lead.estimators[k],
            own=combine([s.estimators[k].own for s in states], base.estimators[k].own if base else None, largest),
            vs_champ=combine(
                [s.estimators[k].vs_champ for s in states], base.estimators[k].vs_champ if base else None, largest
            ),
        )
        for k in range(len(lead.estimators))
    )
    return attrs.evolve(lead, total_learn_count=count, ns_counter=_ns_counts(states, base), estimators=estimators)


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: AutomlState) -> dict[str, Any]:
    return {
        "total_learn_count": state.total_learn_count,
        "configs": len(state.configs),
        "live_slots": [
            {
                "config": e.config_index,
                "state": CONFIG_STATES[c.state] if 0 <= (c := state.configs[e.config_index]).state < 4 else c.state,
                **summary(e.own),
            }
            for e in state.estimators
        ],
        "ns_counter": {chr(int(r["ns"])): int(r["count"]) for r in state.ns_counter},
    }
