"""``baseline_challenger_cb``: plays a safe baseline until the learned policy provably beats it.

Section (``baseline_challenger_cb.cc``, ``distributionally_robust.cc``), 14 × f64 = 112 bytes::

    chi_squared: alpha, tau, n, sumw, sumwsq, sumwr, sumwsqr, sumwsqrsq, rmin, rmax, wmin, wmax
    discounted_expectation: sum, n

Each learn updates ``x ← tau·x + term`` for the sums and the running extrema of rewards and
importance weights. VW's merge resets everything, so the merged model falls back to the
baseline until it has re-collected evidence. vwmerge sums the statistics (exact when tau = 1,
approximate under discounting; ``base + Σ(xᵢ − base)`` in base mode), takes min of the minima and
max of the maxima, and keeps alpha and tau (they come from the options and are equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import MergeContext, ModelWeights, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of

FIELDS = (
    "alpha", "tau", "n", "sumw", "sumwsq", "sumwr", "sumwsqr", "sumwsqrsq", "rmin", "rmax", "wmin", "wmax",
    "expectation_sum", "expectation_n",
)  # fmt: skip
SUMS = ("n", "sumw", "sumwsq", "sumwr", "sumwsqr", "sumwsqrsq", "expectation_sum", "expectation_n")
MINS = ("rmin", "wmin")
MAXS = ("rmax", "wmax")


@attrs.frozen(eq=False)
class ChallengerState:
    values: np.ndarray  #: float64, one per FIELDS entry

    def __getitem__(self, name: str) -> float:
        return float(self.values[FIELDS.index(name)])


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="baseline_challenger_cb",
            rank=rank_of("baseline_challenger_cb"),
            triggers=("baseline_challenger_cb",),
            options=("cb_c_alpha", "cb_c_tau"),
            section=True,
            description="baseline vs learned policy; chi-squared statistics summed",
        )
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: ChallengerState | None) -> Any:
    if io.reading:
        return ChallengerState(io.r.array("<f8", len(FIELDS), "baseline_challenger_cb statistics"))
    assert state is not None
    io.w.array(state.values, "<f8")
    return None


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[ChallengerState],
    weights: ModelWeights,
    base: ChallengerState | None,
    context: MergeContext,
) -> ChallengerState:
    stack = np.stack([s.values for s in states])
    out = states[0].values.copy()
    idx = {name: FIELDS.index(name) for name in FIELDS}
    sums = [idx[n] for n in SUMS]
    if base is None:
        out[sums] = stack[:, sums].sum(axis=0)
    else:
        out[sums] = base.values[sums] + (stack[:, sums] - base.values[sums]).sum(axis=0)
    everyone = stack if base is None else np.vstack([stack, base.values])
    out[[idx[n] for n in MINS]] = everyone[:, [idx[n] for n in MINS]].min(axis=0)
    out[[idx[n] for n in MAXS]] = everyone[:, [idx[n] for n in MAXS]].max(axis=0)
    return ChallengerState(out)


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: ChallengerState) -> dict[str, Any]:
    return {name: float(v) for name, v in zip(FIELDS, state.values.tolist(), strict=True)}
