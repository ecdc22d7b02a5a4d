"""Continuous-action contextual bandits (CATS): ``cats``, ``cats_pdf``, ``cats_tree``, ``get_pmf``,
``pmf_to_pdf``, ``cb_explore_pdf`` and ``sample_pdf``.

``--cats K`` inserts the whole chain into the options string (``--cats_pdf K --cats_tree K
--cb_explore_pdf --get_pmf --pmf_to_pdf K --sample_pdf --binary ...``). None of them writes a
section (verified against VW 9.11.9): the tree's node learners are weight slots, so the
weights carry everything. cats_tree's feature width is its number of internal nodes (K − 1).
"""

from __future__ import annotations

from vwmerge.plugin import Options, ReductionSpec, hookimpl, rank_of

RANGE = ("min_value", "max_value")


def _tree_width(options: Options) -> int:
    # A minimal-depth binary tree over K leaves has 2K − 1 nodes, K − 1 of them internal.
    return max(1, options.get_int("cats_tree", 1) - 1)


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec("cats", rank_of("cats"), ("cats",), (*RANGE, "bandwidth"),
                      description="continuous actions (tree + smoothing); no state"),
        ReductionSpec("cats_pdf", rank_of("cats_pdf"), ("cats_pdf",),
                      description="cats as a pdf; no state"),
        ReductionSpec("cats_tree", rank_of("cats_tree"), ("cats_tree",), ("tree_bandwidth", "link"),
                      width=_tree_width, description="binary tree over discretized actions; state is in the weights"),
        ReductionSpec("get_pmf", rank_of("get_pmf"), ("get_pmf",), description="action to pmf; no state"),
        ReductionSpec("pmf_to_pdf", rank_of("pmf_to_pdf"), ("pmf_to_pdf",), (*RANGE, "bandwidth", "first_only"),
                      description="pmf to smoothed pdf; no state"),
        ReductionSpec("cb_explore_pdf", rank_of("cb_explore_pdf"), ("cb_explore_pdf",),
                      (*RANGE, "epsilon", "first_only"), description="pdf exploration; no state"),
        ReductionSpec("sample_pdf", rank_of("sample_pdf"), ("sample_pdf",),
                      description="samples a continuous action; no state"),
    ]  # fmt: skip
