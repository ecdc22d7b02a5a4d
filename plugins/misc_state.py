"""Small stateful reductions: active, stage_poly, experimental_igl.

* ``active`` (``--active``; ``--simulation`` is not stored): ``f32 min_seen_label, f32
  max_seen_label``, the running label range (starting at 0 and 1) used to query labels. VW writes
  these 8 bytes only when the workspace was loaded from a file of version 9.0–9.3 or ≥ 9.10, so a
  model trained from scratch has **0** bytes here, while VW 9.11.9's loader always expects 8 (it
  cannot reload its own fresh ``--active`` files). The file cannot say which: vwmerge tries both
  and keeps the one with which the rest of the stack parses to the end of the file (ties broken
  by the gd online state's label range, which VW writes equal to the header's). A round trip
  writes what was read; a merge always writes the 8 bytes (so VW can load it) with the min of
  the minima and max of the maxima; an input without the bytes contributes the label range its
  header records, widened to include VW's starting values 0 and 1. VW needs ``--simulation`` on
  the command line to load a simulation-mode model; vwmerge needs nothing.
* ``stage_poly`` (``--stage_poly``): ``u8 depthsbits[2·2^bits]``, per weight row a depth byte
  (127 = unset) and a flag byte (128 indicator, 1 parent, 2 cycle): the learned polynomial
  support. VW's merge resets it (dropping the support its weights were trained on). vwmerge
  applies VW's own cluster all-reduce rule (``reduce_min_max``): depth = the minimum over the
  inputs that set it, flags = the maximum, bytes whose indicator bit disagrees keep the first
  input's (with a base model the base is folded in first).
* ``experimental_igl``: ``u32 c; c × {f64 normalized_sum_norm_x; f64 total_weight}``, the policy
  learner's per-model normalizer state: summed, as gd sums its per-model states (their ratio is
  the average squared norm, which the sum keeps exact); ``base + Σ(xᵢ − base)`` with a base.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import structlog
from vwmerge.plugin import (
    IncompatibleModelsError,
    MergeContext,
    ModelWeights,
    Reader,
    ReductionSpec,
    SectionIO,
    StackEntry,
    VWMergeError,
    default_registry,
    hookimpl,
    rank_of,
)

log = structlog.get_logger("vwmerge")


# --------------------------------------------------------------------------------------------
@attrs.frozen
class ActiveState:
    labels: tuple[float, float] | None  #: (min_seen_label, max_seen_label); None = 0 bytes in the file


def _rest_parses(io: SectionIO, reduction: StackEntry, offset: int) -> tuple[bool, bool]:
    """Whether every section below ``reduction`` parses to EOF when this one is ``offset`` bytes
    long, and whether the bottom's online label range then equals the header's."""
    registry = io.registry or default_registry()
    scratch = Reader(io.r.buf, io.r.source, io.r.pos + offset)
    sub = SectionIO(io.model, reader=scratch, load_weights=True, registry=registry)
    state: Any = None
    try:
        for entry in io.model.stack[reduction.index + 1 :]:
            if entry.section:
                state = registry.call("vwmerge_save_load", entry, io=sub, state=None)
                if state is None:
                    return False, False
    except VWMergeError:
        return False, False
    if not scratch.at_end():
        return False, False
    online = getattr(state, "online", None)
    h = io.model.header
    labels_match = online is not None and (np.float32(online.min_label), np.float32(online.max_label)) == (
        np.float32(h.min_label),
        np.float32(h.max_label),
    )
    return True, labels_match


def read_active(io: SectionIO, reduction: StackEntry) -> ActiveState:
    r = io.r
    candidates = []
    for offset in (0, 8):
        if offset <= r.remaining:
            ok, labels_match = _rest_parses(io, reduction, offset)
            if ok:
                candidates.append((labels_match, offset))
    # Prefer a layout under which the online state's labels equal the header's; then 8 bytes
    # (what VW 9.11's loader expects).
    offset = max(candidates)[1] if candidates else 0
    if offset == 0:
        return ActiveState(None)
    return ActiveState((r.f32("active min_seen_label"), r.f32("active max_seen_label")))


def merge_active(states: Sequence[ActiveState], base: ActiveState | None, context: MergeContext) -> ActiveState:
    lows, highs = [], []
    infos = [*context.models, *([context.base] if base is not None and context.base is not None else [])]
    for st, info in zip([*states, *([base] if base is not None else [])], infos, strict=True):
        if st.labels is not None:
            lows.append(st.labels[0])
            highs.append(st.labels[1])
        else:
            lows.append(min(0.0, info.header.min_label))
            highs.append(max(1.0, info.header.max_label))
    return ActiveState((float(np.float32(min(lows))), float(np.float32(max(highs)))))


# --------------------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class StagePolyState:
    depthsbits: np.ndarray  #: uint8, 2 per weight row


INDICATOR = np.uint8(128)
DEFAULT_DEPTH = np.uint8(127)


def reduce_min_max(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """VW's ``reduce_min_max`` (stagewise_poly.cc), elementwise over the whole byte array."""
    i1, i2 = (v1 & INDICATOR) != 0, (v2 & INDICATOR) != 0
    depth = np.where(v1 == DEFAULT_DEPTH, v2, np.where(v2 != DEFAULT_DEPTH, np.minimum(v1, v2), v1))
    both = np.where(i1, np.maximum(v1, v2), depth)
    return np.where(i1 != i2, v1, both).astype(np.uint8)


# --------------------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class IglState:
    pairs: np.ndarray  #: float64, shape (c, 2): normalized_sum_norm_x, total_weight


# --------------------------------------------------------------------------------------------
@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="active", rank=rank_of("active"), triggers=("active",), options=("simulation", "direct", "mellowness"),
            section=True, description="active learning (seen label range; 0 or 8 bytes)",
        ),
        ReductionSpec(
            name="stage_poly", rank=rank_of("stagewise_poly"), triggers=("stage_poly",),
            options=("sched_exponent", "batch_sz", "batch_sz_no_doubling"), section=True,
            description="stagewise polynomial features (support bytes, merged by VW's all-reduce rule)",
        ),
        ReductionSpec(
            name="experimental_igl", rank=rank_of("experimental_igl"), triggers=("experimental_igl",),
            section=True, width=lambda o: 2, description="interaction-grounded learning (policy normalizer state)",
        ),
    ]  # fmt: skip


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: Any) -> Any:
    name = reduction.name
    if io.reading:
        if name == "active":
            return read_active(io, reduction)
        if name == "stage_poly":
            size = 2 << io.model.bits
            return StagePolyState(io.r.array("u1", size, f"stage_poly support bytes (2·2^{io.model.bits})"))
        c = io.r.count("experimental_igl per-model states", 16)
        return IglState(io.r.array("<f8", 2 * c, "experimental_igl per-model states").reshape(c, 2))
    w = io.w
    if name == "active":
        if state.labels is not None:
            w.f32(state.labels[0])
            w.f32(state.labels[1])
    elif name == "stage_poly":
        w.array(state.depthsbits, np.uint8)
    else:
        w.u32(len(state.pairs))
        w.array(state.pairs, "<f8")
    return None


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[Any],
    weights: ModelWeights,
    base: Any,
    context: MergeContext,
) -> Any:
    name = reduction.name
    if name == "active":
        return merge_active(states, base, context)
    if name == "stage_poly":
        arrays = [*([base.depthsbits] if base is not None else []), *(s.depthsbits for s in states)]
        out = np.array(arrays[0], np.uint8)
        for a in arrays[1:]:
            out = reduce_min_max(out, a)
        return StagePolyState(out)
    shapes = {s.pairs.shape for s in states} | ({base.pairs.shape} if base is not None else set())
    if len(shapes) > 1:
        raise IncompatibleModelsError(f"experimental_igl per-model state counts differ: {sorted(shapes)}")
    ref = base.pairs if base is not None else 0.0
    return IglState(ref + sum(s.pairs - ref for s in states))


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: Any) -> dict[str, Any]:
    if isinstance(state, ActiveState):
        out: dict[str, Any] = {
            "bytes": 0 if state.labels is None else 8,
            "vw_reload_options": "--simulation (if trained in simulation mode; VW does not record it)",
        }
        if state.labels is not None:
            out["min_seen_label"], out["max_seen_label"] = state.labels
        return out
    if isinstance(state, StagePolyState):
        d = state.depthsbits
        return {"rows": len(d) // 2, "rows_in_support": int(np.count_nonzero(d[0::2] != DEFAULT_DEPTH))}
    return {"normalized_sum_norm_x": state.pairs[:, 0].tolist(), "total_weight": state.pairs[:, 1].tolist()}
