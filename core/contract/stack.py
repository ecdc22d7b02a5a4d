"""How a model's reduction stack is derived from its options, like VW does.

VW builds its stack from a fixed list of setup functions (``reduction_stack.cc``): each
reduction whose options are present is enabled, and its position in that list is its position
in the stack (later = higher). Sections appear in the file top of stack first, bottom learner
last. vwmerge mirrors this: each plugin declares :class:`ReductionSpec` objects with a *rank*
taken from :data:`VW_SETUP_ORDER`, and the core sorts the enabled ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ..format.options import Options

if TYPE_CHECKING:
    from ..format.header import Header

#: VW 9.11's setup order, bottom to top. A reduction's rank is its index here; a third-party
#: reduction between two known ones can use a fractional rank (``rank_of("oaa") + 0.5``).
VW_SETUP_ORDER: tuple[str, ...] = (
    "gd", "ksvm", "ftrl", "freegrad", "svrg", "sender", "gd_mf", "print", "noop", "bfgs",
    "OjaNewton", "mf", "generate_interactions", "baseline", "replay_b", "active", "active_cover",
    "confidence", "nn", "marginal", "autolink", "lrq", "lrqfa", "stagewise_poly", "scorer", "lda",
    "cbzo", "bootstrap", "boosting", "binary", "replay_m", "top", "oaa", "ect", "log_multi",
    "recall_tree", "eigen_memory_tree", "memory_tree", "classweight", "multilabel_oaa", "plt",
    "cs_active", "csoaa", "interact", "csoaa_ldf", "cb_algs", "cb_adf", "multiworld_test",
    "cats_tree", "baseline_challenger_cb", "automl", "cb_explore",
    "cb_explore_adf_large_action_space", "cb_explore_adf_graph_feedback", "cb_explore_adf_greedy",
    "cb_explore_adf_softmax", "cb_explore_adf_rnd", "cb_explore_adf_regcb",
    "cb_explore_adf_squarecb", "cb_explore_adf_synthcover", "cb_explore_adf_first",
    "cb_explore_adf_cover", "cb_explore_adf_bag", "cb_dro", "experimental_igl", "cb_sample",
    "epsilon_decay", "explore_eval", "cb_actions_mask", "shared_feature_merger", "ccb_explore_adf",
    "slates", "warm_cb", "get_pmf", "pmf_to_pdf", "cb_explore_pdf", "cats_pdf", "sample_pdf",
    "cats", "cbify", "cbifyldf", "cb_to_cbadf", "offset_tree", "replay_c", "search",
    "audit_regressor", "metrics", "count_label",
)  # fmt: skip

_RANKS = {name: i for i, name in enumerate(VW_SETUP_ORDER)}


def rank_of(setup_name: str) -> float:
    """The stack rank of one of VW's own reductions (higher = nearer the top)."""
    return float(_RANKS[setup_name])


#: Options that configure features or hashing, not a reduction. The core owns them; any other
#: option in a model must be declared by some plugin's :class:`ReductionSpec`, or the model is
#: refused (so a reduction without a plugin is never silently mis-parsed).
CORE_OPTIONS = frozenset(
    {
        "quadratic", "cubic", "interactions", "experimental_full_name_interactions", "ignore",
        "ignore_linear", "keep", "redefine", "noconstant", "hash", "hash_seed", "affix", "spelling",
        "dictionary", "dictionary_path", "named_labels", "chain_hash", "random_seed",
        "leave_duplicate_interactions", "permutations", "ngram", "skips", "feature_limit",
        "per_model_save_load", "bit_precision", "id", "constant", "initial_weight", "random_weights",
        "normal_weights", "truncated_normal_weights", "sparse_weights", "input_feature_regularizer",
        "loss_function", "quantile_tau", "expectile_q", "logistic_min", "logistic_max",
        "link", "min_prediction", "max_prediction", "holdout_off", "holdout_period",
        "holdout_after", "early_terminate", "passes", "termination", "l1", "l2",
    }
)  # fmt: skip


def _one(_: Options) -> int:
    return 1


@attrs.frozen
class ReductionSpec:
    """A reduction a plugin provides: when it is in the stack, where, and what it stores.

    ``options`` are the option names that belong to the reduction (so the core knows they are
    understood). ``enabled`` decides from a model's options whether the reduction is in its stack
    (default: any of ``triggers`` is present). ``section`` says whether it writes bytes to the
    model file (VW's save_load); a reduction with a section but no merge hook triggers a warning.
    ``bottom`` marks a base learner (it owns the weights and must merge); ``fallback`` marks the
    bottom learner used when no other bottom is enabled (gd).
    """

    name: str
    rank: float
    triggers: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    section: bool = False
    bottom: bool = False
    fallback: bool = False
    width: Callable[[Options], int] = _one
    enabled: Callable[[Options], bool] | None = None
    description: str = ""

    def is_enabled(self, options: Options) -> bool:
        if self.enabled is not None:
            return bool(self.enabled(options))
        return options.has_any(*self.triggers)

    def known_options(self) -> frozenset[str]:
        return frozenset(self.triggers) | frozenset(self.options)


@attrs.frozen
class StackEntry:
    """One reduction of one model's stack, as handed to plugin hooks.

    ``above`` is the product of the feature widths of the reductions above this one: the number
    of per-model state copies VW writes under ``--per_model_save_load``.
    """

    spec: ReductionSpec
    plugin: str
    width: int
    above: int
    index: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def bottom(self) -> bool:
        return self.spec.bottom

    @property
    def section(self) -> bool:
        return self.spec.section


@attrs.frozen
class ModelInfo:
    """What every hook may need to know about the model a section belongs to."""

    header: Header
    options: Options
    stack: tuple[StackEntry, ...]
    source: str

    @property
    def version(self) -> tuple[int, int, int]:
        return self.header.version

    @property
    def bits(self) -> int:
        return self.header.bits

    @property
    def bottom(self) -> StackEntry:
        return self.stack[-1]
