"""Ensembles over weight slots: ``boosting`` (BBM, logistic, adaptive) and ``bootstrap``.

Both train N weak learners in N weight slots (feature width N). bootstrap stores nothing else.
boosting's section depends on ``--alg``:

* BBM (default): VW registers a save_load that writes nothing (0 bytes).
* logistic: ``i32 N; f32 alpha[N]`` — each weak learner's weight in the vote, clipped to [−2, 2].
* adaptive: ``i32 N; f32 alpha[N]; f32 v[N]`` — v are sampling weights that sum to 1.

VW's merge resets alpha to 0 (and v to 1), throwing away the vote while keeping the averaged
weak learners. The weak learners are averaged like the weights, so vwmerge averages alpha the
same way (Σ wᵢ αᵢ with the merge's model weights; ``base + Σ wᵢ(αᵢ − base)`` in base mode) and
renormalizes v to sum 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import (
    IncompatibleModelsError,
    MergeContext,
    ModelWeights,
    Options,
    ReductionSpec,
    SectionIO,
    StackEntry,
    hookimpl,
    rank_of,
)


def _alg(options: Options) -> str:
    return options.get("alg", "BBM") or "BBM"


@attrs.frozen(eq=False)
class BoostingState:
    """alpha (and v for adaptive) as float32 arrays; ``n`` is None for BBM (nothing stored)."""

    alg: str
    n: int | None
    alpha: np.ndarray
    v: np.ndarray | None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BoostingState)
            and (self.alg, self.n) == (other.alg, other.n)
            and np.array_equal(self.alpha, other.alpha)
            and (
                (self.v is None and other.v is None)
                or (self.v is not None and other.v is not None and np.array_equal(self.v, other.v))
            )
        )

    __hash__ = None  # type: ignore[assignment]


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="boosting",
            rank=rank_of("boosting"),
            triggers=("boosting",),
            options=("gamma", "alg"),
            section=True,
            width=lambda o: o.get_int("boosting", 1),
            description="online boosting; alpha (and v) weighted like the weights",
        ),
        ReductionSpec(
            name="bootstrap",
            rank=rank_of("bootstrap"),
            triggers=("bootstrap",),
            options=("bs_type",),
            width=lambda o: o.get_int("bootstrap", 1),
            description="online bootstrap; state is in the weights",
        ),
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: BoostingState | None) -> BoostingState | None:
    alg = _alg(io.model.options)
    if io.reading:
        if alg == "BBM":
            return BoostingState(alg, None, np.zeros(0, np.float32), None)
        r = io.r
        n = r.i32("boosting N")
        per = 8 if alg == "adaptive" else 4
        if n < 0 or n * per > r.remaining:
            raise r.fail(f"corrupt boosting section: N = {n} weak learners do not fit in {r.remaining} bytes")
        alpha = r.array("<f4", n, "boosting alpha")
        v = r.array("<f4", n, "boosting v") if alg == "adaptive" else None
        return BoostingState(alg, n, alpha, v)
    assert state is not None
    if state.n is None:
        return None
    io.w.i32(state.n)
    io.w.array(state.alpha, "<f4")
    if state.v is not None:
        io.w.array(state.v, "<f4")
    return None


def _weighted(arrays: Sequence[np.ndarray], w: np.ndarray, base: np.ndarray | None) -> np.ndarray:
    stack = np.stack([a.astype(np.float64) for a in arrays])
    if base is not None:
        return (base.astype(np.float64) + w @ (stack - base.astype(np.float64))).astype(np.float32)
    return (w @ stack).astype(np.float32)


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[BoostingState],
    weights: ModelWeights,
    base: BoostingState | None,
    context: MergeContext,
) -> BoostingState:
    first = states[0]
    if first.n is None:
        return first
    sizes = {s.n for s in states} | ({base.n} if base is not None else set())
    if len(sizes) > 1:
        raise IncompatibleModelsError(
            f"boosting: the models have different numbers of weak learners ({sorted(sizes, key=str)})"
        )
    w = np.asarray(weights.values, dtype=np.float64)
    alpha = _weighted([s.alpha for s in states], w, base.alpha if base is not None else None)
    v = None
    if first.v is not None:
        raw = _weighted([s.v for s in states if s.v is not None], w, base.v if base is not None else None)
        total = float(raw.astype(np.float64).sum())
        v = (raw / np.float32(total)).astype(np.float32) if total > 0 else np.full(first.n, 1.0 / first.n, np.float32)
    return BoostingState(first.alg, first.n, alpha, v)


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: BoostingState) -> dict[str, Any]:
    out: dict[str, Any] = {"alg": state.alg}
    if state.n is not None:
        out["alpha"] = state.alpha.tolist()
    if state.v is not None:
        out["v"] = state.v.tolist()
    return out
