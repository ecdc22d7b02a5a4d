"""Contextual-bandit reductions that write nothing: legacy ``cb`` (cb_algs), ``cb_dro``,
``explore_eval``, ``cbify`` / ``cbify_ldf`` and ``warm_cb``.

Their learned state lives entirely in the weights (verified against VW 9.11.9: 0 bytes each),
so there is nothing to merge. They are declared so that the core understands their options and
knows their feature widths, which decide how many per-model states the reductions below them
store under ``--per_model_save_load``. (cb_dro keeps a chi-squared estimator in memory but does
not save it: a reloaded cb_dro model starts it afresh, merged or not.)
"""

from __future__ import annotations

from vwmerge.plugin import Options, ReductionSpec, hookimpl, rank_of

CBIFY_OPTIONS = (
    "cbify_cs", "cbify_reg", "cats", "cb_discrete", "min_value", "max_value", "loss_option", "loss_report",
    "loss_01_ratio", "loss0", "loss1", "flip_loss_sign", "cb_min_cost", "cb_max_cost", "lr_multiplier",
)  # fmt: skip
WARM_CB_OPTIONS = (
    "warm_cb_cs", "loss0", "loss1", "warm_start", "epsilon", "interaction", "warm_start_update",
    "interaction_update", "corrupt_type_warm_start", "corrupt_prob_warm_start", "choices_lambda",
    "lambda_scheme", "overwrite_label", "sim_bandit", "cb_min_cost", "cb_max_cost", "lr_multiplier",
)  # fmt: skip


def _cb_algs_width(options: Options) -> int:
    # Doubly robust (the legacy default, and what mtr/sm are reset to) learns two models per action.
    return 1 if options.get("cb_type", "dr") in ("ips", "dm") else 2


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec("cb_algs", rank_of("cb_algs"), ("cb",), ("cb_type", "eval", "cb_force_legacy"),
                      width=_cb_algs_width,
                      enabled=lambda o: "cb" in o and o.has_any("cb_force_legacy", "eval"),
                      description="legacy contextual bandit (--cb K --cb_force_legacy); no state"),
        ReductionSpec("cb_dro", rank_of("cb_dro"), ("cb_dro",), ("cb_dro_alpha", "cb_dro_tau", "cb_dro_wmax"),
                      description="distributionally robust cb learning; estimator not saved"),
        ReductionSpec("explore_eval", rank_of("explore_eval"), ("explore_eval",), ("multiplier", "target_rate"),
                      description="offline evaluation of an exploration policy; no state"),
        ReductionSpec("cbify", rank_of("cbify"), ("cbify",), CBIFY_OPTIONS,
                      description="multiclass/regression to contextual bandit simulation; no state"),
        ReductionSpec("cbify_ldf", rank_of("cbifyldf"), ("cbify_ldf",), ("loss0", "loss1", "cb_min_cost",
                      "cb_max_cost", "lr_multiplier"),
                      description="cost-sensitive ldf to contextual bandit simulation; no state"),
        ReductionSpec("warm_cb", rank_of("warm_cb"), ("warm_cb",), WARM_CB_OPTIONS,
                      width=lambda o: o.get_int("choices_lambda", 1),
                      description="warm-started contextual bandit; no state"),
    ]  # fmt: skip
