"""Reductions that write no section to the model file: their learned state lives entirely in
the weights (verified against VW 9.11.9 by exact parsing; see docs/merge-semantics.md).

They still need a declaration: the core derives the stack from the options and refuses options
no plugin understands, and their feature widths decide how many per-model states the
reductions below them store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vwmerge.plugin import Options, ReductionSpec, hookimpl, rank_of

#: VW keeps an --lrq/--lrqfa rank in a 32-bit unsigned integer.
MAX_LRQ_RANK = 2**32 - 1

#: Bottom learners that VW lists *above* scorer (lda, cbzo). VW's setup walks its list from the top
#: and stops at the first bottom learner, so reductions listed below them are never set up.
HIGH_BOTTOMS = ("lda", "cbzo")

#: Options enabling a reduction whose input label type is not VW's SIMPLE (multiclass, multilabel,
#: cost-sensitive, contextual-bandit, continuous-action, ccb/slates, search, no label), from each
#: setup function's ``set_input_label_type`` in VW 9.11. Every one of them is listed above all the
#: SIMPLE-label reductions (binary, boosting, bootstrap, top, scorer, nn...), so when one is
#: enabled it, or another of the set, is the learner count_label would sit on.
NON_SIMPLE_LABEL = (
    "oaa", "ect", "log_multi", "recall_tree", "emt", "memory_tree", "multilabel_oaa", "plt",
    "cs_active", "csoaa", "csoaa_ldf", "wap_ldf", "cb", "cb_adf", "cb_explore", "cb_explore_adf",
    "multiworld_test", "cats_tree", "automl", "ccb_explore_adf", "slates", "warm_cb",
    "cb_explore_pdf", "pmf_to_pdf", "cats_pdf", "cats", "cbify", "cbify_ldf", "ot", "replay_c",
    "search", "experimental_igl", *HIGH_BOTTOMS,
)  # fmt: skip

#: Options enabling a multi-line reduction with a CB, CS or CB-with-observations input label:
#: the learners shared_feature_merger accepts as its base (VW's shared_feature_merger.cc);
#: on any other base (single-line cb_algs, csoaa, multiworld_test...) VW leaves it out.
MULTILINE_CB_CS = ("csoaa_ldf", "wap_ldf", "cb_adf", "cb_explore_adf", "ccb_explore_adf", "slates")

#: Options holding interaction specs, and VW's wildcard namespace ``:`` (hex escapes are decoded).
INTERACTION_OPTIONS = ("quadratic", "cubic", "interactions", "experimental_full_name_interactions")
WILDCARDS = (":", "\\x3a", "\\x3A")


def _count_label_enabled(options: Options) -> bool:
    """VW's count_label keeps itself only over a learner with SIMPLE labels (count_label.cc), and
    not at all with ``--dont_output_best_constant``. cbify is the one reduction whose label type
    depends on an option: ``--cbify_reg`` reads SIMPLE labels, and cbify sits above the others."""
    if "dont_output_best_constant" in options:
        return False
    if "cbify" in options:
        return "cbify_reg" in options
    return not options.has_any(*NON_SIMPLE_LABEL)


def _has_wildcard_interaction(options: Options) -> bool:
    for name in INTERACTION_OPTIONS[:3]:
        if any(w in v for v in options.values(name) for w in WILDCARDS):
            return True
    # Full-name interactions are '|'-separated terms; VW takes a term that is exactly ':' as the
    # wildcard (it splits the undecoded text, so an escaped ':' is a namespace name there).
    return any(t == ":" for v in options.values(INTERACTION_OPTIONS[3]) for t in v.split("|"))


def _generate_interactions_enabled(options: Options) -> bool:
    """VW expands interactions only when some contain a wildcard, or under ccb_explore_adf (which
    adds wildcard slot interactions after setup); automl handles interactions itself
    (generate_interactions.cc). ``--slates`` stores ``--ccb_explore_adf`` in the model."""
    if options.has_any("automl", *HIGH_BOTTOMS):
        return False
    return "ccb_explore_adf" in options or _has_wildcard_interaction(options)


def _int_opt(name: str, default: int = 1) -> Callable[[Options], int]:
    def width(options: Options) -> int:
        return options.get_int(name, default)

    return width


def _ect_width(options: Options) -> int:
    # With the default --error 0 the tournament uses k-1 binary learners.
    k = options.get_int("ect", 2)
    return max(1, k - 1) if options.get_int("error", 0) == 0 else k


def _nn_width(options: Options) -> int:
    return options.get_int("nn", 0) + 1


def _lrq_rank(options: Options, name: str, value: str) -> int:
    """The rank in an ``--lrq``/``--lrqfa`` value such as ``ab2`` (its digits), validated."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) > 10 or int(digits or 0) > MAX_LRQ_RANK:
        raise options.invalid(name, value, f"has a rank above {MAX_LRQ_RANK}")
    return int(digits or 0)


def _lrq_width(options: Options) -> int:
    ranks = [_lrq_rank(options, "lrq", v[2:]) for v in options.values("lrq")]
    return 1 + max(ranks, default=0)


def _lrqfa_width(options: Options) -> int:
    widths = (sum(c.isalpha() for c in v) * _lrq_rank(options, "lrqfa", v) for v in options.values("lrqfa"))
    return 1 + max(widths, default=0)


def _spec(
    name: str, rank_name: str, triggers: tuple[str, ...], options: tuple[str, ...] = (), **kw: Any
) -> ReductionSpec:
    return ReductionSpec(name=name, rank=rank_of(rank_name), triggers=triggers, options=options, **kw)


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        _spec("count_label", "count_label", (), ("dont_output_best_constant",), enabled=_count_label_enabled,
              description="counts labels for shared data; no state"),
        _spec("scorer", "scorer", (), ("link",), enabled=lambda o: not o.has_any(*HIGH_BOTTOMS),
              description="link function; no state"),
        _spec("generate_interactions", "generate_interactions", (), enabled=_generate_interactions_enabled,
              description="expands wildcard interactions; no state"),
        _spec("binary", "binary", ("binary",)),
        _spec("oaa", "oaa", ("oaa",), ("probabilities", "scores", "indexing"), width=_int_opt("oaa")),
        _spec("csoaa", "csoaa", ("csoaa",), ("indexing",), width=_int_opt("csoaa")),
        _spec("ect", "ect", ("ect",), ("error", "link"), width=_ect_width),
        _spec("multilabel_oaa", "multilabel_oaa", ("multilabel_oaa",), ("probabilities",),
              width=_int_opt("multilabel_oaa")),
        _spec("nn", "nn", ("nn",), ("inpass", "multitask", "dropout", "meanfield"), width=_nn_width),
        _spec("lrq", "lrq", ("lrq",), ("lrqdropout",), width=_lrq_width),
        _spec("csoaa_ldf", "csoaa_ldf", ("csoaa_ldf", "wap_ldf"), ("csoaa_rank", "ldf_override")),
        _spec("cb_to_cbadf", "cb_to_cbadf", ("cb", "cb_explore"), ("cbify",),
              enabled=lambda o: o.has_any("cb", "cb_explore") and "cb_force_legacy" not in o),
        _spec("shared_feature_merger", "shared_feature_merger", ("cb_adf", "cb_explore_adf"),
              enabled=lambda o: o.has_any(*MULTILINE_CB_CS)),
        # Verified 0 bytes against VW 9.11.9 files (tests/test_bottoms_trees.py).
        _spec("new_mf", "mf", ("new_mf",), width=lambda o: 2 * o.get_int("new_mf", 0) + 1),
        _spec("lrqfa", "lrqfa", ("lrqfa",), width=_lrqfa_width),
        _spec("baseline", "baseline", ("baseline",), ("lr_multiplier", "global_only", "check_enabled")),
        _spec("confidence", "confidence", ("confidence",), ("confidence_after_training",)),
        _spec("autolink", "autolink", ("autolink",)),
        _spec("top", "top", ("top",)),
        _spec("interact", "interact", ("interact",)),
        _spec("cs_active", "cs_active", ("cs_active",),
              ("simulation", "baseline", "domination", "mellowness", "range_c", "max_labels", "min_labels",
               "cost_max", "cost_min", "csa_debug"), width=_int_opt("cs_active")),
    ]  # fmt: skip
