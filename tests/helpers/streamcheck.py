"""Checks shared by the streaming and dask tests: "equal within float32 rounding", made precise.

The sequential merge folds the inputs in float32 in input order (VW's rounding); ``--jobs`` and
dask sum float64 partials in another grouping and round once. docs/scale.md bounds the
difference of every value by (2N + 2)·2⁻²⁴·Σᵢ|wᵢθᵢ|, wᵢ being the weight input i has in that
value (its explicit or example-count weight, or aᵢ/A per row on gd's adaptive path, the
example-count weight where A = 0), plus 2⁻²³·|value| in base mode for adding the merged delta to
the base. That bound is what is checked here, on every row and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import vwmerge
from vwmerge.engine.merging import prepare_merge
from vwmerge.format.weights import union_sorted

U = 2.0**-24  #: float32 unit roundoff


def _aligned(tables: Sequence[vwmerge.WeightTable], union: np.ndarray) -> list[np.ndarray]:
    out = []
    for t in (t.canonical() for t in tables):
        dense = np.zeros((len(union), t.k), np.float32)
        dense[np.searchsorted(union, t.index)] = t.values
        out.append(dense)
    return out


def weighted_magnitude(
    inputs: Sequence[vwmerge.Workspace],
    base: vwmerge.Workspace | None,
    weights: Sequence[float] | None,
    union: np.ndarray,
) -> np.ndarray:
    """Σᵢ|wᵢθᵢ| per row and column of ``union`` (θᵢ: input i's rows, or its delta from the base)."""
    prep = prepare_merge(inputs, weights=weights, base=base)
    mw = prep.context.weights
    thetas = _aligned([m.states[-1].table for m in inputs], union)
    if base is not None:
        (b,) = _aligned([base.states[-1].table], union)
        thetas = [t - b for t in thetas]
    columns = inputs[0].states[-1].table.columns
    if mw.explicit or mw.equal_fallback:
        w = [np.full((len(union), 1), abs(v)) for v in mw.values]
    elif inputs[0].states[-1].resume and "adaptive" in columns:
        a = [t[:, columns.index("adaptive")].astype(np.float64) for t in thetas]
        total = sum(a)
        safe = np.where(total > 0, total, 1.0)
        w = [np.where(total > 0, np.abs(ai) / safe, float(pi))[:, None] for ai, pi in zip(a, mw.vw_f32, strict=True)]
    else:
        w = [np.full((len(union), 1), float(v)) for v in mw.vw_f32]
    return sum(wi * np.abs(t.astype(np.float64)) for wi, t in zip(w, thetas, strict=True))


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

    Returns the largest difference relative to its bound (< 1 passes), for the curious.
    """
    seq, par = vwmerge.load(sequential, vw_options=vw_options), vwmerge.load(parallel, vw_options=vw_options)
    assert seq.header == par.header
    for entry, a, b in zip(seq.stack[:-1], seq.states[:-1], par.states[:-1], strict=True):
        assert a == b, f"{entry.name} differs"
    assert seq.states[-1].online == par.states[-1].online, "counters differ"
    models = [vwmerge.load(p, vw_options=vw_options) for p in inputs]
    base_ws = vwmerge.load(base, vw_options=vw_options) if base is not None else None
    tables = [m.states[-1].table for m in [*models, *([base_ws] if base_ws else []), seq, par]]
    union = union_sorted([t.canonical().index for t in tables])
    out_seq, out_par = _aligned([seq.states[-1].table, par.states[-1].table], union)
    bound = (2 * len(models) + 2) * U * weighted_magnitude(models, base_ws, weights, union)
    if base_ws is not None:
        bound = bound + 2 * U * np.abs(out_seq.astype(np.float64))
    diff = np.abs(out_seq.astype(np.float64) - out_par)
    worst = float(np.max(diff / np.where(bound > 0, bound, 1.0), initial=0.0))
    assert np.all(diff <= bound), f"largest difference {diff.max()} exceeds the float32 bound ({worst:.2f}x)"
    return worst
