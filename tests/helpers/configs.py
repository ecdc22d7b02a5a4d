"""The VW configurations the tests train, shared by the modules that test them and by
``test_stack.py``, which checks vwmerge's stack against VW's for every one of them."""

from __future__ import annotations

import attrs


# --------------------------------------------------------------------------------------------
# Base learners and reductions without state (test_roundtrip.py).
@attrs.frozen
class Config:
    """A training configuration and what its file must contain."""

    args: str
    k: int = 3  #: floats per weight row
    resume: bool = True
    cb_pairs: int = 0  #: (event_sum, action_sum) pairs cb_adf writes; 0 = no cb_adf section
    mtr: bool = False  #: cb_adf counters are updated (cb_type mtr)
    gd_states: int = 1  #: per-model (normalized_sum_norm_x, total_weight) pairs gd writes

    def __str__(self) -> str:
        return self.args or "default"


SGD_LIKE = {"k": 1}
GD = [
    Config(""),
    Config("--sgd", **SGD_LIKE),
    Config("--adaptive", k=2),
    Config("--normalized", k=2),
    Config("--invariant", **SGD_LIKE),
    Config("--adaptive --normalized"),
    Config("--predict_only_model", k=1, resume=False),
    Config("--predict_only_model --sgd", k=1, resume=False),
    Config("--predict_only_model --adaptive", k=1, resume=False),
    Config("--sparse_weights"),
    Config("--sparse_weights --sgd", **SGD_LIKE),
    Config("-b 10"),
    Config("-b 18"),
    Config("-b 24"),
    Config("--sgd --sparse_weights -b 31", **SGD_LIKE),
    Config("--loss_function logistic"),
    Config("--loss_function hinge"),
    Config("--loss_function quantile"),
    Config("-q ab"),
    Config("--cubic abb"),
    Config("--interactions ab"),
    Config("--noconstant"),
    Config("--l1 1e-3 --l2 1e-3"),
    Config("--id abc"),
]
#: Reductions that write no section (scorer is in every gd stack; count_label over SIMPLE labels).
NO_SECTION = [
    Config("--oaa 3"),
    Config("--csoaa 3"),
    Config("--ect 3"),
    Config("--binary"),
    Config("--nn 3"),
    Config("--lrq ab2"),
    Config("--multilabel_oaa 3"),
    Config("--csoaa_ldf m"),
]
CB = [
    *(Config(f"--cb_adf --cb_type {t}", cb_pairs=1, mtr=t == "mtr") for t in ("ips", "dm", "dr", "mtr", "sm")),
    Config("--cb_explore_adf", cb_pairs=1, mtr=True),
    Config("--cb 3", cb_pairs=1, mtr=True),
    Config("--cb_explore 3", cb_pairs=1, mtr=True),
]
PER_MODEL = [
    Config("--oaa 3 --per_model_save_load", gd_states=3),
    # dr gives cb_adf width 2: gd below it stores 2 per-model states, cb_adf (nothing above) 1.
    Config("--cb_adf --cb_type dr --per_model_save_load", cb_pairs=1, gd_states=2),
    # Feature widths from reductions.md §3: nn k → k+1, ect k → k−1, lrq rank r → 1+r.
    Config("--nn 3 --per_model_save_load", gd_states=4),
    Config("--csoaa 3 --per_model_save_load", gd_states=3),
    Config("--ect 5 --per_model_save_load", gd_states=4),
    Config("--lrq ab2 --per_model_save_load", gd_states=3),
    Config("--multilabel_oaa 3 --per_model_save_load", gd_states=3),
]
#: Every configuration tested here (the count is reported).
ROUNDTRIP_CONFIGS: list[Config] = GD + NO_SECTION + CB + PER_MODEL


# --------------------------------------------------------------------------------------------
# Contextual-bandit reductions (test_cb_reductions.py).
@attrs.frozen
class Case:
    """A VW configuration and the reductions of this plugin set it must put in the stack."""

    args: str
    #: reductions that must be in vwmerge's stack (and, by name prefix, in VW's learner list)
    stack: tuple[str, ...]
    #: of those, the ones that write a section: their merge rule is checked (see RULES)
    stateful: tuple[str, ...] = ()
    #: per-model states expected for cb_adf under --per_model_save_load (reductions.md §3)
    pmsl: int | None = None
    #: VW's base-model merge works (ccb: VW refuses, "interactions size" of its fresh output)
    vw_merges_base: bool = True

    @property
    def id(self) -> str:
        return self.args


CASES: tuple[Case, ...] = (
    Case("--cb_explore_adf", ("cb_explore_adf_greedy",)),
    Case("--cb_explore_adf --squarecb", ("cb_explore_adf_squarecb",), ("cb_explore_adf_squarecb",)),
    Case("--cb_explore_adf --squarecb --elim", ("cb_explore_adf_squarecb",), ("cb_explore_adf_squarecb",)),
    Case("--cb_explore_adf --regcb", ("cb_explore_adf_regcb",), ("cb_explore_adf_regcb",)),
    Case("--cb_explore_adf --regcbopt", ("cb_explore_adf_regcb",), ("cb_explore_adf_regcb",)),
    Case("--cb_explore_adf --cover 3", ("cb_explore_adf_cover",), ("cb_explore_adf_cover",)),
    Case("--cb_explore_adf --cover 3 --per_model_save_load", ("cb_explore_adf_cover",), ("cb_explore_adf_cover",), 8),
    Case("--cb_explore_adf --bag 3", ("cb_explore_adf_bag",)),
    Case("--cb_explore_adf --bag 3 --per_model_save_load", ("cb_explore_adf_bag",), pmsl=3),
    Case("--cb_explore_adf --softmax", ("cb_explore_adf_softmax",)),
    Case("--cb_explore_adf --first 100", ("cb_explore_adf_first",), ("cb_explore_adf_first",)),
    Case("--cb_explore_adf --synthcover", ("cb_explore_adf_synthcover",), ("cb_explore_adf_synthcover",)),
    Case("--cb_explore_adf --rnd 3", ("cb_explore_adf_rnd",)),
    Case("--cb_explore_adf --rnd 2 --per_model_save_load", ("cb_explore_adf_rnd",), pmsl=3),
    Case(
        "--cb_explore_adf --large_action_space",
        ("cb_explore_adf_large_action_space", "cb_explore_adf_greedy", "cb_actions_mask"),
    ),
    Case(
        "--cb_explore_adf --large_action_space --squarecb",
        ("cb_explore_adf_large_action_space", "cb_explore_adf_squarecb", "cb_actions_mask"),
        ("cb_explore_adf_squarecb",),
    ),
    Case("--cb_explore_adf --graph_feedback", ("cb_explore_adf_graph_feedback",), ("cb_explore_adf_graph_feedback",)),
    Case("--cb_explore 3 --cb_force_legacy", ("cb_explore", "cb_algs"), ("cb_explore",)),
    Case("--cb_explore 3 --cb_force_legacy --cover 2", ("cb_explore", "cb_algs"), ("cb_explore",)),
    Case("--cb_explore 3 --cb_force_legacy --bag 3", ("cb_explore", "cb_algs"), ("cb_explore",)),
    Case("--cb_explore 3 --cb_force_legacy --first 3", ("cb_explore", "cb_algs"), ("cb_explore",)),
    Case("--cb 3 --cb_force_legacy", ("cb_algs",)),
    Case("--cb_explore_adf --epsilon_decay --model_count 3", ("epsilon_decay",), ("epsilon_decay",)),
    Case(
        "--cb_explore_adf --epsilon_decay --model_count 2 --per_model_save_load",
        ("epsilon_decay",),
        ("epsilon_decay",),
        2,
    ),
    Case("--cb_explore_adf --automl 3", ("automl",), ("automl",)),
    Case("--cb_explore_adf --automl 2 --per_model_save_load", ("automl",), ("automl",), 2),
    Case("--ccb_explore_adf", ("ccb_explore_adf", "cb_sample"), ("ccb_explore_adf",), vw_merges_base=False),
    Case("--slates", ("slates", "ccb_explore_adf", "cb_sample"), ("ccb_explore_adf",), vw_merges_base=False),
    Case("--cb_explore_adf --baseline_challenger_cb", ("baseline_challenger_cb",), ("baseline_challenger_cb",)),
    Case("--cb_explore_adf --cb_dro", ("cb_dro",)),
    Case("--cb_explore_adf --explore_eval", ("explore_eval",)),
    Case("--cbify 3", ("cbify",)),
    Case("--cbify 3 --cb_explore_adf --squarecb", ("cbify", "cb_explore_adf_squarecb"), ("cb_explore_adf_squarecb",)),
    Case("--cbify 3 --cb_force_legacy --cover 2", ("cbify", "cb_explore", "cb_algs"), ("cb_explore",)),
    Case("--boosting 3", ("boosting",), ("boosting",)),
    Case("--boosting 3 --alg logistic", ("boosting",), ("boosting",)),
    Case("--boosting 3 --alg adaptive", ("boosting",), ("boosting",)),
    Case("--bootstrap 3", ("bootstrap",)),
    Case("--multiworld_test f", ("multiworld_test",), ("multiworld_test",)),
    Case("--multiworld_test f --learn 3", ("multiworld_test", "cb_algs"), ("multiworld_test",)),
    Case("--warm_cb 3 --cb_explore_adf --warm_start 10 --interaction 30", ("warm_cb",)),
    Case(
        "--cats 4 --min_value 0 --max_value 10 --bandwidth 1",
        ("cats", "cats_pdf", "cats_tree", "get_pmf", "pmf_to_pdf", "cb_explore_pdf", "sample_pdf"),
    ),
    Case(
        "--cats_pdf 4 --min_value 0 --max_value 10 --bandwidth 1",
        ("cats_pdf", "cats_tree", "get_pmf", "pmf_to_pdf", "cb_explore_pdf"),
    ),
)


# --------------------------------------------------------------------------------------------
# Other base learners and the tree reductions (test_bottoms_trees.py).
@attrs.frozen
class Cfg:
    """A VW configuration, how it is trained, and what VW needs besides the file to load it."""

    args: str
    #: VW's learner names that must be enabled (get_enabled_learners) ...
    vw: tuple[str, ...]
    #: ... and the vwmerge stack entries they correspond to
    names: tuple[str, ...]
    #: learn (Workspace.learn), passes (a data file, 3 passes, cache), file (a data file), dsjson
    train: str = "learn"
    #: options VW needs to load the model that the file does not record
    extra: str = ""
    #: options vwmerge needs (they change the layout)
    vw_options: str = ""
    #: merging k copies predicts exactly like the model (marginal's counts legitimately add up)
    copies_predict: bool = True

    @property
    def id(self) -> str:
        return self.args


BOTTOM_CONFIGS: tuple[Cfg, ...] = (
    Cfg("--ftrl", ("ftrl-Proximal-FTRL",), ("ftrl",)),
    Cfg("--ftrl --ftrl_alpha 0.1 --ftrl_beta 0.5", ("ftrl-Proximal-FTRL",), ("ftrl",)),
    Cfg("--ftrl --predict_only_model", ("ftrl-Proximal-FTRL",), ("ftrl",)),
    Cfg("--pistol", ("ftrl-PiSTOL",), ("pistol",)),
    Cfg("--coin", ("ftrl-Coin Betting",), ("coin",)),
    Cfg("--coin --predict_only_model", ("ftrl-Coin Betting",), ("coin",)),
    Cfg("--freegrad", ("freegrad",), ("freegrad",)),
    Cfg("--freegrad --restart", ("freegrad",), ("freegrad",)),
    Cfg("--svrg", ("svrg",), ("svrg",), train="passes"),
    Cfg("--OjaNewton", ("OjaNewton",), ("OjaNewton",)),
    Cfg("--cbzo --policy linear -b 12", ("cbzo",), ("cbzo",)),
    Cfg("--bfgs --predict_only_model -b 12", ("bfgs",), ("bfgs",), train="passes", extra="--predict_only_model"),
    Cfg("--lda 3 -b 8", ("lda",), ("lda",), train="file"),
    Cfg("--rank 2 -q ab -b 10", ("rank",), ("rank",)),
    Cfg("--log_multi 3", ("log_multi",), ("log_multi",)),
    Cfg("--recall_tree 4", ("recall_tree",), ("recall_tree",)),
    Cfg("--memory_tree 4", ("memory_tree",), ("memory_tree",)),
    Cfg(
        "--memory_tree 4 --oas --max_number_of_labels 4",
        ("memory_tree",),
        ("memory_tree",),
        extra="--oas --max_number_of_labels 4",
    ),
    Cfg("--plt 4 --loss_function logistic", ("plt",), ("plt",), extra="--loss_function logistic"),
    Cfg("--marginal m", ("marginal",), ("marginal",), copies_predict=False),
    Cfg(
        "--marginal m --compete",
        ("marginal",),
        ("marginal",),
        extra="--compete",
        vw_options="--compete",
        copies_predict=False,
    ),
    Cfg("--active --simulation", ("active-simulation",), ("active",), extra="--simulation"),
    Cfg("--stage_poly -b 10 --batch_sz 8", ("stage_poly",), ("stage_poly",)),
    Cfg(
        "--cb_explore_adf --coin --experimental_igl -q UA --dsjson",
        ("experimental_igl", "ftrl-Coin Betting"),
        ("experimental_igl", "coin"),
        train="dsjson",
    ),
    Cfg("--new_mf 2 -q ab -b 10", ("new_mf",), ("new_mf",)),
    Cfg("--lrqfa ab2", ("lrqfa",), ("lrqfa",)),
    Cfg("--baseline", ("baseline",), ("baseline",)),
    Cfg("--confidence", ("confidence",), ("confidence",)),
    Cfg("--autolink 2", ("autolink",), ("autolink",)),
    Cfg("--top 2", ("top",), ("top",)),
    Cfg("--interact ab", ("interact",), ("interact",)),
    Cfg("--cs_active 3", ("cs_active",), ("cs_active",), extra="--simulation"),
)
