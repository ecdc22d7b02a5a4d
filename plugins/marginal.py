"""marginal (``--marginal <namespaces>``): per-id label marginals, and with ``--compete`` the
AdaNormalHedge experts that weigh them against the feature-based prediction.

Section (``marginal.cc``)::

    u64 n; n × {u64 key_row; f64 numerator; f64 denominator}        (a std::map: ascending key)
    only with --compete:
    u64 m; m × {u64 key_row; f32 r1, c1, w1, r2, c2, w2}            (an unordered_map: any order)

``--compete`` is **not** recorded in the file, yet it adds the expert block; without it the
section cannot be delimited. The expert block has one entry per marginal key (both are created
together), so vwmerge recognizes it: a file that has the block but is loaded without
``--compete`` (or the reverse) raises :class:`vwmerge.ModelFormatError` naming the option to
pass (``vw_options="--compete"`` / ``--vw-options "--compete"``). A model whose map is empty
cannot be told apart; pass the option then.

Merge (VW's merge resets the map to empty, which makes every id predict the prior again).
Each key starts at ``(--initial_numerator, --initial_denominator)`` (0.5, 1 unless given; they are
not stored) and every learn adds ``label·w`` and ``w``, so over the union of keys
``numerator = init + Σ(numᵢ − init)`` over the inputs that have the key (likewise the
denominator); with a base model ``base + Σ(numᵢ − base)``. Exact when ``--decay`` is 0 (VW's
default; a warning says it is approximate otherwise). Experts: the regrets and squared regrets
are sums over examples, so they are summed the same way (starting at 0) and each expert's
weight is recomputed with VW's AdaNormalHedge formula. Merged experts are written in ascending
key order (VW's order is arbitrary).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import (
    MergeContext,
    ModelFormatError,
    ModelWeights,
    Reader,
    ReductionSpec,
    SectionIO,
    StackEntry,
    hookimpl,
    rank_of,
)

MARGINAL = np.dtype([("key", "<u8"), ("num", "<f8"), ("den", "<f8")])
EXPERT = np.dtype(
    [("key", "<u8"), ("r1", "<f4"), ("c1", "<f4"), ("w1", "<f4"), ("r2", "<f4"), ("c2", "<f4"), ("w2", "<f4")]
)
OPTIONS = (
    "initial_denominator",
    "initial_numerator",
    "compete",
    "update_before_learn",
    "unweighted_marginals",
    "decay",
)


@attrs.frozen(eq=False)
class MarginalState:
    marginals: np.ndarray  #: MARGINAL records, file order
    experts: np.ndarray | None  #: EXPERT records in file order; None without --compete


def _looks_like_experts(r: Reader, keys: np.ndarray) -> bool:
    """Does an expert block for exactly these keys start at the cursor?"""
    if r.remaining < 8:
        return False
    m = int(np.frombuffer(r.buf, "<u8", 1, r.pos)[0])
    if m != len(keys) or 8 + m * EXPERT.itemsize > r.remaining:
        return False
    block = np.frombuffer(r.buf, EXPERT, m, r.pos + 8)
    return bool(np.array_equal(np.sort(block["key"]), np.sort(keys)))


def read_marginal(r: Reader, compete: bool, source: str) -> MarginalState:
    n = r.count("marginal entries", MARGINAL.itemsize, kind="u64")
    marginals = r.array(MARGINAL, n, "marginal entries")
    present = _looks_like_experts(r, marginals["key"])
    if not compete:
        if n and present:
            raise ModelFormatError(
                "this marginal model was trained with --compete (its section has the expert block), which VW "
                'does not record in the file; load it with vw_options="--compete" (CLI: --vw-options "--compete")',
                source=source,
            )
        return MarginalState(marginals, None)
    if not present:
        raise ModelFormatError(
            "--compete was given but this marginal section has no expert block after its "
            f"{n} marginal(s); the model was trained without --compete: drop it from the VW options",
            source=source,
        )
    m = r.count("marginal experts", EXPERT.itemsize, kind="u64")
    return MarginalState(marginals, r.array(EXPERT, m, "marginal experts"))


def adanormalhedge(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """VW's ``get_adanormalhedge_weights`` in float32."""
    r = r.astype(np.float32)
    c = c.astype(np.float32)
    rp = np.maximum(r, np.float32(0))
    ok = (c != 0) & (rp != 0)
    safe_c = np.where(ok, c, np.float32(1))
    with np.errstate(over="ignore"):
        w = np.float32(2) * rp * np.exp(rp * rp / (np.float32(3) * safe_c)) / (np.float32(3) * safe_c)
    return np.where(ok, w, np.float32(0)).astype(np.float32)


def _combine(
    records: Sequence[np.ndarray], base: np.ndarray | None, fields: Sequence[str], init: dict[str, float], dtype: Any
) -> np.ndarray:
    """Over the union of keys: ref + Σ(xᵢ − ref) over the inputs holding the key, where ref is the
    base's value when the base holds the key, else ``init``."""
    keys = np.unique(np.concatenate([r["key"] for r in records] + ([base["key"]] if base is not None else [])))
    out = np.zeros(len(keys), dtype)
    out["key"] = keys
    ref = {f: np.full(len(keys), init[f], np.float64) for f in fields}
    if base is not None:
        pos = np.searchsorted(keys, base["key"])
        for f in fields:
            ref[f][pos] = base[f]
    acc = {f: ref[f].copy() for f in fields}
    for rec in records:
        pos = np.searchsorted(keys, rec["key"])
        for f in fields:
            np.add.at(acc[f], pos, rec[f].astype(np.float64) - ref[f][pos])
    for f in fields:
        out[f] = acc[f]
    return out


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="marginal", rank=rank_of("marginal"), triggers=("marginal",), options=OPTIONS, section=True,
            description="per-id label marginals (+ AdaNormalHedge experts with --compete, not recorded in the file)",
        )
    ]  # fmt: skip


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: MarginalState | None) -> Any:
    if io.reading:
        return read_marginal(io.r, "compete" in io.model.options, io.model.source)
    assert state is not None
    io.w.u64(len(state.marginals))
    io.w.array(state.marginals, MARGINAL)
    if state.experts is not None:
        io.w.u64(len(state.experts))
        io.w.array(state.experts, EXPERT)
    return None


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[MarginalState],
    weights: ModelWeights,
    base: MarginalState | None,
    context: MergeContext,
) -> MarginalState:
    opts = context.models[0].options  # includes vw_options the file does not record
    if opts.get_float("decay", 0.0) != 0.0:
        context.warn(reduction, "--decay is not 0: summing the marginals' increments is only approximate")
    init = {"num": opts.get_float("initial_numerator", 0.5), "den": opts.get_float("initial_denominator", 1.0)}
    marginals = _combine(
        [s.marginals for s in states], base.marginals if base is not None else None, ("num", "den"), init, MARGINAL
    )
    experts = None
    if states[0].experts is not None:
        fields = ("r1", "c1", "r2", "c2")
        experts = _combine(
            [s.experts for s in states if s.experts is not None],
            base.experts if base is not None else None,
            fields,
            dict.fromkeys(fields, 0.0),
            EXPERT,
        )
        experts["w1"] = adanormalhedge(experts["r1"], experts["c1"])
        experts["w2"] = adanormalhedge(experts["r2"], experts["c2"])
    return MarginalState(marginals, experts)


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: MarginalState) -> dict[str, Any]:
    m = state.marginals
    out: dict[str, Any] = {"marginals": len(m), "compete": state.experts is not None}
    if len(m):
        out["mean_marginal"] = float(np.mean(m["num"] / np.where(m["den"] != 0, m["den"], 1.0)))
    if state.experts is not None:
        out["experts"] = len(state.experts)
        out["vw_reload_options"] = "--compete"
    return out
