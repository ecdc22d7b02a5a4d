"""Which options each built-in plugin knows, so that a command imports only the plugins a model
needs (:class:`vwmerge.contract.registry.Registry`).

Generated from the plugins by :func:`vwmerge.contract.registry.builtin_index_source`; a test
(tests/test_startup.py) fails with the new text when a plugin declares something else.
"""

# fmt: off
#: plugin -> (needed by every model, the option names its reductions know)
BUILTIN_INDEX: dict[str, tuple[bool, frozenset[str]]] = {
    "gd": (True, frozenset({
        "adaptive", "adax", "decay_learning_rate", "initial_t", "invariant", "l1_state", "l2_state",
        "learning_rate", "normalized", "power_t", "sgd", "sparse_l2",
    })),
    "cb_adf": (False, frozenset({
        "cb_adf", "cb_force_legacy", "cb_type", "clip_p", "large_action_space", "no_predict", "rank_all",
    })),
    "stateless": (True, frozenset({
        "autolink", "baseline", "binary", "cb", "cb_adf", "cb_explore", "cb_explore_adf", "cbify",
        "check_enabled", "confidence", "confidence_after_training", "cost_max", "cost_min", "cs_active",
        "csa_debug", "csoaa", "csoaa_ldf", "csoaa_rank", "domination", "dont_output_best_constant", "dropout",
        "ect", "error", "global_only", "indexing", "inpass", "interact", "ldf_override", "link",
        "lr_multiplier", "lrq", "lrqdropout", "lrqfa", "max_labels", "meanfield", "mellowness", "min_labels",
        "multilabel_oaa", "multitask", "new_mf", "nn", "oaa", "probabilities", "range_c", "scores",
        "simulation", "top", "wap_ldf",
    })),
    "ftrl": (False, frozenset({
        "coin", "ftrl", "ftrl_alpha", "ftrl_beta", "pistol",
    })),
    "freegrad": (False, frozenset({
        "fepsilon", "flipschitz_const", "freegrad", "project", "radius", "restart",
    })),
    "bottoms": (False, frozenset({
        "OjaNewton", "alpha", "alpha_inverse", "bfgs", "cbzo", "conjugate_gradient", "epoch_size",
        "hessian_on", "lda", "lda_D", "lda_alpha", "lda_epsilon", "lda_rho", "learning_rate_cnt", "math-mode",
        "mem", "metrics", "minibatch", "normalize", "policy", "radius", "random_init", "rank", "sketch_size",
        "stage_size", "svrg",
    })),
    "trees": (False, frozenset({
        "alpha", "bern_hyper", "dream_at_update", "dream_repeats", "kary_tree", "leaf_example_multiplier",
        "learn_at_leaf", "log_multi", "max_candidates", "max_depth", "max_number_of_labels", "memory_tree",
        "no_progress", "node_only", "oas", "online", "plt", "plt_force_load_legacy_model", "probabilities",
        "randomized_routing", "recall_tree", "swap_resistance", "threshold", "top_K", "top_k",
    })),
    "marginal": (False, frozenset({
        "compete", "decay", "initial_denominator", "initial_numerator", "marginal", "unweighted_marginals",
        "update_before_learn",
    })),
    "misc_state": (False, frozenset({
        "active", "batch_sz", "batch_sz_no_doubling", "direct", "experimental_igl", "mellowness",
        "sched_exponent", "simulation", "stage_poly",
    })),
    "cb_explore": (True, frozenset({
        "action_cache_slack", "bag", "block_size", "cb_explore", "cb_explore_adf", "cb_force_legacy",
        "cb_max_cost", "cb_min_cost", "cb_type", "cover", "elim", "epsilon", "first", "first_only",
        "gamma_exponent", "gamma_scale", "graph_feedback", "greedify", "lambda", "large_action_space",
        "las_hint_explicit_simd", "max_actions", "mellowness", "nounif", "psi", "regcb", "regcbopt", "rnd",
        "rnd_alpha", "rnd_invlambda", "softmax", "spanner_c", "squarecb", "synthcover", "synthcoverpsi",
        "synthcoversize", "thread_pool_size", "two_pass_svd",
    })),
    "ccb": (False, frozenset({
        "all_slots_loss", "cb_sample", "cb_type", "ccb_explore_adf", "ccb_no_slot_index", "no_predict",
        "slates",
    })),
    "ensemble": (False, frozenset({
        "alg", "boosting", "bootstrap", "bs_type", "gamma",
    })),
    "epsilon_decay": (False, frozenset({
        "bonferroni_denominator", "challenger_epsilon", "constant_epsilon", "epsilon_decay",
        "epsilon_decay_audit", "epsilon_decay_significance_level", "initial_epsilon", "min_champ_examples",
        "min_scope", "model_count", "opt_func", "reward_as_cost", "shift_model_bounds", "tol_x",
    })),
    "automl": (False, frozenset({
        "automl", "automl_significance_level", "csv_trace", "debug_reversed_learn", "default_lease",
        "fixed_significance_level", "interaction_type", "opt_func", "oracle_type", "priority_challengers",
        "priority_type", "reward_as_cost", "tol_x", "verbose_metrics",
    })),
    "baseline_challenger": (False, frozenset({
        "baseline_challenger_cb", "cb_c_alpha", "cb_c_tau",
    })),
    "mwt": (False, frozenset({
        "exclude_eval", "learn", "multiworld_test",
    })),
    "cb_misc": (True, frozenset({
        "cats", "cb", "cb_discrete", "cb_dro", "cb_dro_alpha", "cb_dro_tau", "cb_dro_wmax", "cb_force_legacy",
        "cb_max_cost", "cb_min_cost", "cb_type", "cbify", "cbify_cs", "cbify_ldf", "cbify_reg",
        "choices_lambda", "corrupt_prob_warm_start", "corrupt_type_warm_start", "epsilon", "eval",
        "explore_eval", "flip_loss_sign", "interaction", "interaction_update", "lambda_scheme", "loss0",
        "loss1", "loss_01_ratio", "loss_option", "loss_report", "lr_multiplier", "max_value", "min_value",
        "multiplier", "overwrite_label", "sim_bandit", "target_rate", "warm_cb", "warm_cb_cs", "warm_start",
        "warm_start_update",
    })),
    "cats": (False, frozenset({
        "bandwidth", "cats", "cats_pdf", "cats_tree", "cb_explore_pdf", "epsilon", "first_only", "get_pmf",
        "link", "max_value", "min_value", "pmf_to_pdf", "sample_pdf", "tree_bandwidth",
    })),
}
# fmt: on
