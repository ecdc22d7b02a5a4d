"""vwmerge derives exactly VW's reduction stack from a model's options.

For every configuration the other VW test modules train (``helpers.configs``: the round-trip,
contextual-bandit and bottom-learner tables) plus a few that exercise the
label-type and wildcard rules, a model is trained by VW 9.11.9 at test time, VW reloads the file,
and vwmerge's stack read bottom first must equal VW's ``get_enabled_learners()`` name for name,
in order. The models are the session's shared ones (first seed and size of ``conftest``), so in a
full run nothing is trained twice.

VW's learner names are normalized by :func:`vwmerge_name`: drop the ``-variant`` suffix VW appends
(``scorer-identity``, ``csoaa_ldf-rank``, ``cbify-adf``...), then rename the few learners vwmerge
names differently (:data:`RENAMED`, :data:`RENAMED_EXACT`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import vowpalwabbit
import vwmerge
from helpers.configs import BOTTOM_CONFIGS, CASES, ROUNDTRIP_CONFIGS, Cfg
from helpers.models import INPUT_SEEDS, INPUT_SIZES, Models
from helpers.zoo import Zoo
from vwmerge.contract.registry import default_registry
from vwmerge.format.options import Options

#: VW learner (suffix dropped) -> vwmerge reduction, where the names differ: VW's legacy
#: contextual bandit learner is ``cb``; vwmerge calls it after VW's ``cb_algs_setup``.
RENAMED = {"cb": "cb_algs"}
#: Full VW learner names -> vwmerge reduction: VW names the whole FTRL family ``ftrl-<variant>``,
#: vwmerge has one reduction per variant (their weight columns differ).
RENAMED_EXACT = {"ftrl-Proximal-FTRL": "ftrl", "ftrl-PiSTOL": "pistol", "ftrl-Coin Betting": "coin"}

#: Configurations VW cannot reload from its own file (docs/reductions.md: a trained ``--active``
#: file has 0 section bytes, VW's loader wants 8). Their VW stack is taken from the workspace
#: built with the training options instead (the same options the file stores, plus ``extra``).
VW_CANNOT_RELOAD = frozenset({"--active --simulation"})

#: Configurations beyond the other modules': label types that drop count_label or add
#: shared_feature_merger, wildcard interactions (generate_interactions, not under automl), links.
EXTRA: tuple[str, ...] = (
    "--wap_ldf m",
    "--csoaa_ldf mc",
    "-q ::",
    "--interactions a:",
    "--cubic a::",
    "-q \\x3a\\x3a",
    "--experimental_full_name_interactions a|:",
    "--experimental_full_name_interactions a|b",
    "--cb_explore_adf -q ::",
    "--cb_explore_adf --automl 2 -q ::",
    "--ccb_explore_adf --automl 2",
    "--link logistic --loss_function logistic",
    "--binary --loss_function logistic",
    "--bootstrap 3 --binary",
    "--oaa 3 --binary",
    "--cbify 3 --cbify_reg --cb_discrete --min_value 0 --max_value 10",
)


def vwmerge_name(learner: str) -> str:
    """vwmerge's name for one of VW's learners."""
    if learner in RENAMED_EXACT:
        return RENAMED_EXACT[learner]
    base = learner.split("-", 1)[0]
    return RENAMED.get(base, base)


def vw_stack(workspace_args: str) -> list[str]:
    """VW's learners (bottom first), normalized to vwmerge's names."""
    ws = vowpalwabbit.Workspace(f"{workspace_args} --quiet", enable_logging=False)
    try:
        return [vwmerge_name(n) for n in ws.get_enabled_learners()]
    finally:
        ws.finish()


def our_stack(path: Path, vw_options: str = "") -> list[str]:
    # allow_nonfinite: VW's svrg diverges on this data (NaN weights); only the stack matters here.
    return [e.name for e in reversed(vwmerge.load(path, vw_options=vw_options or None, allow_nonfinite=True).stack)]


def _passes(cfg: Cfg, path: Path) -> str:
    # bfgs/svrg refuse to set up without passes (and a cache to run them from), even to load.
    return f"--passes 2 -c -k --cache_file {path.with_suffix('.cache')}" if cfg.train == "passes" else ""


@pytest.fixture(scope="session")
def stack_zoo(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """The bottom-learner tests' trainer; its learn-trained files are the shared ``models`` ones."""
    return Zoo(models, tmp_path_factory.mktemp("stack"))


def _cfg(args: str) -> Cfg:
    return Cfg(args, (), ())


ALL: list[Cfg] = [
    *(_cfg(c.args) for c in ROUNDTRIP_CONFIGS),
    *(_cfg(c.args) for c in CASES),
    *BOTTOM_CONFIGS,
]


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c.args or "default")
def test_stack_is_vws(stack_zoo: Zoo, cfg: Cfg) -> None:
    path = stack_zoo.model(cfg, 0)
    if cfg.args in VW_CANNOT_RELOAD:
        vw = vw_stack(f"{cfg.args} {cfg.extra}")
    else:
        vw = vw_stack(f"-i {path} {cfg.extra} {_passes(cfg, path)}")
    assert our_stack(path, cfg.vw_options) == vw


@pytest.mark.parametrize("args", EXTRA)
def test_stack_is_vws_for_label_and_interaction_rules(models: Models, args: str) -> None:
    """Also a round trip: the reductions added or dropped here write nothing, so the file still
    parses to its end through vwmerge's stack."""
    path = models.train(args, INPUT_SEEDS[0], INPUT_SIZES[0])
    assert our_stack(path) == vw_stack(f"-i {path}")
    assert vwmerge.load(path).to_bytes() == path.read_bytes()


#: Options VW's driver adds to ``get_arguments()`` that configure no reduction.
DRIVER_OPTIONS = frozenset({"no_stdin", "quiet"})


@pytest.mark.parametrize(
    "args",
    [
        # Neither option is kept in a model file, but both decide count_label at training time.
        "--cbify 3 --cbify_reg --cb_discrete --min_value 0 --max_value 10",
        "--dont_output_best_constant",
        "--oaa 3 --dont_output_best_constant",
        "--oaa 3",
        "--cbify 3",
    ],
)
def test_stack_rules_follow_vw_for_options_a_file_does_not_keep(args: str) -> None:
    """The rules are on the options, not on files: given every option VW set up with (its
    ``get_arguments()``, including the ones it inserts and the ones it does not save), vwmerge's
    stack is VW's."""
    ws = vowpalwabbit.Workspace(f"{args} --quiet", enable_logging=False)
    try:
        vw = [vwmerge_name(n) for n in ws.get_enabled_learners()]
        options = Options.parse(ws.get_arguments())
    finally:
        ws.finish()
    options = Options(tuple(i for i in options.items if i[0] not in DRIVER_OPTIONS))
    stack = default_registry().derive_stack(options, args)
    assert [e.name for e in reversed(stack)] == vw
