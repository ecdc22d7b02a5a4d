"""Reductions that write no section to the model file: their learned state lives entirely in
the weights (verified against VW 9.11.9 by exact parsing; see docs/merge-semantics.md).

They still need a declaration: the core derives the stack from the options and refuses options
no plugin understands, and their feature widths decide how many per-model states the
reductions below them store.
"""

from __future__ import annotations

from vwmerge import ReductionSpec, hookimpl, rank_of
from vwmerge.options import Options


def _int_opt(name: str, default: int = 1):
    def width(options: Options) -> int:
        return options.get_int(name, default)

    return width


def _ect_width(options: Options) -> int:
    # With the default --error 0 the tournament uses k-1 binary learners.
    k = options.get_int("ect", 2)
    return max(1, k - 1) if options.get_int("error", 0) == 0 else k


def _nn_width(options: Options) -> int:
    return options.get_int("nn", 0) + 1


def _lrq_width(options: Options) -> int:
    ranks = [int("".join(ch for ch in v[2:] if ch.isdigit()) or 0) for v in options.values("lrq")]
    return 1 + max(ranks, default=0)


def _spec(name: str, rank_name: str, triggers: tuple[str, ...], options: tuple[str, ...] = (), **kw) -> ReductionSpec:
    return ReductionSpec(name=name, rank=rank_of(rank_name), triggers=triggers, options=options, **kw)


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        _spec("count_label", "count_label", (), enabled=lambda o: True,
              description="counts labels for shared data; no state"),
        _spec("scorer", "scorer", (), ("link",), enabled=lambda o: True,
              description="link function; no state"),
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
              enabled=lambda o: o.has_any("cb_adf", "cb_explore_adf", "ccb_explore_adf", "slates")),
        # Verified 0 bytes against VW 9.11.9 files (tests/test_bottoms_trees.py).
        _spec("new_mf", "mf", ("new_mf",), width=lambda o: 2 * o.get_int("new_mf", 0) + 1),
        _spec("lrqfa", "lrqfa", ("lrqfa",), width=lambda o: 1 + max(
            (sum(c.isalpha() for c in v) * int("".join(c for c in v if c.isdigit()) or 0)
             for v in o.values("lrqfa")), default=0)),
        _spec("baseline", "baseline", ("baseline",), ("lr_multiplier", "global_only", "check_enabled")),
        _spec("confidence", "confidence", ("confidence",), ("confidence_after_training",)),
        _spec("autolink", "autolink", ("autolink",)),
        _spec("top", "top", ("top",)),
        _spec("interact", "interact", ("interact",)),
        _spec("cs_active", "cs_active", ("cs_active",),
              ("simulation", "baseline", "domination", "mellowness", "range_c", "max_labels", "min_labels",
               "cost_max", "cost_min", "csa_debug"), width=_int_opt("cs_active")),
    ]  # fmt: skip
