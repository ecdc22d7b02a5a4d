"""Checks shared by the streaming and dask tests: "equal within float32 rounding", made precise.

The sequential merge folds the inputs in float32 in input order (VW's rounding); ``--jobs`` and
dask sum float64 partials in another grouping and round once. docs/scale.md bounds the
difference per value by (N + 4)·2⁻²⁴·Σᵢ|wᵢθᵢ|, with wᵢ the weight input i has in that value
(at most 1 for normalized weights): that is the bound checked here, on every row and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import vwmerge
from vwmerge.weights import union_sorted

U32 = 2.0**-24


def _aligned(tables: Sequence[vwmerge.WeightTable]) -> list[np.ndarray]:
    canon = [t.canonical() for t in tables]
    union = union_sorted([t.index for t in canon])
    out = []
    for t in canon:
        dense = np.zeros((len(union), t.k), np.float64)
        dense[np.searchsorted(union, t.index)] = t.values
        out.append(dense)
    return out


def assert_within_rounding(
    sequential: Path | str,
    parallel: Path | str,
    inputs: Sequence[Path | str],
    *,
    weights: Sequence[float] | None = None,
    base: Path | str | None = None,
    vw_options: str | None = None,
) -> float:
    """Every weight within the documented bound, everything but the weights identical.

    Returns the largest difference seen relative to its bound (for the curious; < 1 passes).
    """
    seq, par = vwmerge.load(sequential, vw_options=vw_options), vwmerge.load(parallel, vw_options=vw_options)
    assert seq.header == par.header
    for entry, a, b in zip(seq.stack[:-1], seq.states[:-1], par.states[:-1], strict=True):
        assert a == b, f"{entry.name} differs"
    sa, sb = seq.states[-1], par.states[-1]
    assert sa.online == sb.online, "counters differ"
    models = [vwmerge.load(p, vw_options=vw_options) for p in inputs]
    thetas = [m.states[-1].table for m in models]
    if base is not None:
        b = vwmerge.load(base, vw_options=vw_options).states[-1].table
        thetas.append(b)  # deltas θᵢ − base: bounded by |θᵢ| + |base|
    scale = max(1.0, *(abs(w) / abs(sum(weights)) for w in weights)) if weights else 1.0
    n = len(models)
    *theta_rows, out_a, out_b = _aligned([*thetas, sa.table, sb.table])
    magnitude = sum(np.abs(t) for t in theta_rows) * scale
    if base is not None:
        magnitude = magnitude + n * np.abs(theta_rows[-1]) * scale
    bound = (n + 4) * U32 * magnitude
    diff = np.abs(out_a - out_b)
    worst = float(np.max(diff / np.where(bound > 0, bound, 1.0), initial=0.0))
    assert np.all(diff <= bound), f"largest difference {diff.max()} exceeds the float32 bound ({worst:.2f}x)"
    return worst
