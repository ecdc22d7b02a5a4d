"""freegrad: VW's FreeGrad base learner (``freegrad.cc``), gd's layout with 6 floats per row.

VW refuses to merge it. vwmerge merges each column by what it means (see ``ftrl.py`` for the
shared reasoning):

* ``w`` (the weight ``-t`` predicts with): weighted mean;
* ``sum_g`` (Σg), ``sum_g2`` (Σg²) and ``sum_ratio`` (Σ|g|/h, which drives restarts): weighted
  mean, like w (per-row learner state: k copies give it back, see ``ftrl.py``);
* ``max_g`` (h_t, the largest clipped gradient): maximum;
* ``h1`` (the first non-zero gradient, FreeGrad's initial hint): the smallest positive value,
  so that h1 ≤ h_t still holds and the merged hint is the earliest-seen scale.

Predict-only files store the weight only; it is averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vwmerge.plugin import MergeContext, ModelWeights, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of
from vwmerge.plugins.ftrl import describe_gd_like, merge_gd_like_columns, read_single_state
from vwmerge.plugins.gd import GdState, save_load_gd_like

COLUMNS = (
    ("w", "mean"), ("sum_g", "mean"), ("sum_g2", "mean"), ("h1", "minpos"), ("max_g", "max"), ("sum_ratio", "mean"),
)  # fmt: skip
OPTIONS = ("restart", "project", "radius", "fepsilon", "flipschitz_const")


def _columns(options: Any, resume: bool) -> tuple[str, ...]:
    return tuple(c for c, _ in COLUMNS) if resume else ("w",)


def _rules(cols: tuple[str, ...]) -> tuple[str, ...]:
    rules = dict(COLUMNS)
    return tuple(rules[c] for c in cols)


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="freegrad", rank=rank_of("freegrad"), triggers=("freegrad",), options=OPTIONS,
            section=True, bottom=True,
            description="FreeGrad base learner (w, Σg, Σg², h1, max g, Σ|g|/h per row)",
        )
    ]  # fmt: skip


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: GdState | None) -> GdState | None:
    return save_load_gd_like(io, reduction, state, _columns, read_single_state)


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[GdState],
    weights: ModelWeights,
    base: GdState | None,
    context: MergeContext,
) -> GdState:
    return merge_gd_like_columns(reduction, "freegrad", states, weights, base, context, _rules)


@hookimpl
def vwmerge_example_count(reduction: StackEntry, state: GdState) -> float | None:
    return state.online.weighted_labeled_examples if state.online is not None else None


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: GdState) -> dict[str, Any]:
    return describe_gd_like(state)
