"""Plugins: the real third-party package (``tests/plugin_pkg``) and the registry's policies.

The example package is installed for real and found through the ``vwmerge`` entry-point group.
``tests/conftest.py`` blocks it for the rest of the suite (``VWMERGE_BLOCK_PLUGINS``); the tests
here clear the block, in a fresh in-process registry and in the environment of real ``vwmerge``
subprocesses, to see it override the built-in ``cb_explore_adf_squarecb``.

The policy tests register ad-hoc plugin objects with ``make_plugin_manager(extra=...)``: a
stateful reduction without merge (kept from the first model, with a warning), a base learner
without merge (an error), two third-party plugins for one reduction (an error naming both).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import vowpalwabbit
import vwmerge
import vwmerge.plugins
from helpers import vwtrain
from helpers.models import EXAMPLE_PLUGIN_DIST, EXAMPLE_PLUGIN_ENTRY_POINT, Models, example_plugin_entry_point
from vwmerge import ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of
from vwmerge.cli.render import render_plan
from vwmerge.contract.registry import BLOCK_ENV, BUILTIN_DISTRIBUTION, DEFAULT_PLUGINS, ENTRY_POINT_GROUP
from vwmerge.engine.pipeline import MergeRequest, plan_merge
from vwmerge.engine.streaming import merge_files
from vwmerge.plugins import gd as gd_plugin
from vwmerge.plugins import stateless as stateless_plugin

SQUARECB = "cb_explore_adf_squarecb"
ARGS = "--cb_explore_adf --squarecb"


def _unblocked_env() -> dict[str, str]:
    env = dict(os.environ)
    rest = [n for n in env.get(BLOCK_ENV, "").split(",") if n.strip() and n.strip() != EXAMPLE_PLUGIN_ENTRY_POINT]
    env[BLOCK_ENV] = ",".join(rest)
    return env


@pytest.fixture
def unblocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV, _unblocked_env()[BLOCK_ENV])


@pytest.fixture
def example_registry(unblocked: None) -> vwmerge.Registry:
    """All installed plugins, the example package included (built after the block is cleared)."""
    return vwmerge.Registry(vwmerge.make_plugin_manager())


def _counter(ws: vwmerge.Workspace) -> int:
    return ws.state(SQUARECB).counter


# --- the installed package -----------------------------------------------------------------------


def test_entry_point_is_installed() -> None:
    ep = example_plugin_entry_point()
    assert ep is not None
    assert ep.value == "vwmerge_example_plugin"
    assert ep.dist is not None and ep.dist.name == EXAMPLE_PLUGIN_DIST


def test_registry_lists_the_package_and_its_override(example_registry: vwmerge.Registry) -> None:
    (info,) = [p for p in example_registry.plugins() if p.distribution == EXAMPLE_PLUGIN_DIST]
    assert info.name == EXAMPLE_PLUGIN_ENTRY_POINT
    assert not info.builtin
    assert info.version == "0.1.0"
    assert info.reductions == (SQUARECB,)
    assert {"vwmerge_reductions", "vwmerge_save_load", "vwmerge_merge", "vwmerge_subtract", "vwmerge_add"} <= set(
        info.hooks
    )
    assert example_registry.owner[SQUARECB] == EXAMPLE_PLUGIN_ENTRY_POINT

    # vwmerge has a built-in squarecb plugin: the third-party one overrides it.
    builtin = vwmerge.default_registry().owner[SQUARECB]
    assert vwmerge.default_registry().distribution(builtin)[0] == "vwmerge"
    assert (SQUARECB, EXAMPLE_PLUGIN_ENTRY_POINT, builtin) in example_registry.overrides
    (builtin_info,) = [p for p in example_registry.plugins() if p.name == builtin]
    assert SQUARECB not in builtin_info.reductions


def test_blocking_the_entry_point_hides_the_package() -> None:
    """What conftest does for the rest of the suite: the built-in owns squarecb again."""
    assert EXAMPLE_PLUGIN_ENTRY_POINT in os.environ[BLOCK_ENV].split(",")
    reg = vwmerge.default_registry()
    assert EXAMPLE_PLUGIN_DIST not in {p.distribution for p in reg.plugins()}
    assert not reg.overrides or all(w != EXAMPLE_PLUGIN_ENTRY_POINT for _, w, _ in reg.overrides)


# --- the real command line ------------------------------------------------------------------------


def _vwmerge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = shutil.which("vwmerge", path=str(Path(sys.executable).parent))
    cmd = [script] if script else [sys.executable, "-m", "vwmerge"]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_cli_plugins_lists_the_package() -> None:
    done = _vwmerge("plugins", env=_unblocked_env())
    assert done.returncode == 0, done.stderr
    assert f"{EXAMPLE_PLUGIN_ENTRY_POINT}  ({EXAMPLE_PLUGIN_DIST} 0.1.0, third-party)" in done.stdout
    assert f"{SQUARECB}: plugin '{EXAMPLE_PLUGIN_ENTRY_POINT}' overrides" in done.stdout


def test_cli_plugins_json() -> None:
    done = _vwmerge("plugins", "--json", env=_unblocked_env())
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (entry,) = [p for p in doc["plugins"] if p["distribution"] == EXAMPLE_PLUGIN_DIST]
    assert entry["name"] == EXAMPLE_PLUGIN_ENTRY_POINT
    assert entry["builtin"] is False
    assert entry["reductions"] == [SQUARECB]
    assert "vwmerge_merge" in entry["hooks"]
    (override,) = [o for o in doc["overrides"] if o["reduction"] == SQUARECB]
    assert override["plugin"] == EXAMPLE_PLUGIN_ENTRY_POINT

    blocked = json.loads(_vwmerge("plugins", "--json", env=dict(os.environ)).stdout)
    assert EXAMPLE_PLUGIN_DIST not in {p["distribution"] for p in blocked["plugins"]}


def test_cli_merge_uses_the_package(models: Models, example_registry: vwmerge.Registry, tmp_path: Path) -> None:
    paths = models.inputs(ARGS, 2)
    out = tmp_path / "merged.model"
    done = _vwmerge("--log-level", "info", "merge", "-o", str(out), *map(str, paths), env=_unblocked_env())
    assert done.returncode == 0, done.stderr
    assert f"merged by {EXAMPLE_PLUGIN_DIST}" in done.stderr
    merged = vwmerge.load(out, registry=example_registry)
    assert _counter(merged) == sum(_counter(vwmerge.load(p, registry=example_registry)) for p in paths)
    assert len(vwtrain.predict(out, vwtrain.test_examples(ARGS, n=3))) == 3


# --- merging with the package, in process ---------------------------------------------------------


def _vw_resave(path: Path, out: Path) -> bytes:
    """Load ``path`` in VW (counters preserved) and save it again: VW's reading of the file."""
    vw = vowpalwabbit.Workspace(f"-i {path} --preserve_performance_counters --quiet", enable_logging=False)
    try:
        vw.save(str(out))
    finally:
        vw.finish()
    return out.read_bytes()


def test_merge_uses_the_package_and_vw_loads_the_result(
    models: Models, example_registry: vwmerge.Registry, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    paths = models.inputs(ARGS, 3)
    inputs = [vwmerge.load(p, registry=example_registry) for p in paths]
    assert [_counter(m) for m in inputs] == [30, 37, 45]  # one learn call per example
    merged = vwmerge.merge(inputs)

    state = merged.state(SQUARECB)
    assert type(state).__module__ == "vwmerge_example_plugin"
    assert state.counter == 30 + 37 + 45
    (event,) = [e for e in logs if e["event"] == f"merged by {EXAMPLE_PLUGIN_DIST}"]
    assert event["counters"] == [30, 37, 45]
    (described,) = [d for d in merged.describe() if d["reduction"] == SQUARECB]
    assert described["distribution"] == EXAMPLE_PLUGIN_DIST
    assert described["state"] == {"counter": 112, "plugin": EXAMPLE_PLUGIN_DIST}

    # VW reads the counter where the plugin wrote it: its own load-and-save changes no byte.
    out = tmp_path / "merged.model"
    merged.save(out)
    assert _vw_resave(out, tmp_path / "resaved.model") == out.read_bytes()
    # VW's own merge restarts the schedule (counter 0); the gd weights are the same either way.
    vw = vwmerge.load(models.vw_merged(paths), registry=example_registry)
    assert _counter(vw) == 0
    ours_rows, vw_rows = merged.state("gd").table.canonical(), vw.state("gd").table.canonical()
    assert ours_rows.values.tobytes() == vw_rows.values.tobytes()
    pmfs = vwtrain.predict(out, vwtrain.test_examples(ARGS, n=5))
    assert all(abs(sum(p) - 1) < 1e-5 for p in pmfs)


def test_base_mode_with_the_package(models: Models, example_registry: vwmerge.Registry) -> None:
    base_path, paths = models.resumed(ARGS)
    base = vwmerge.load(base_path, registry=example_registry)
    inputs = [vwmerge.load(p, registry=example_registry) for p in paths]
    merged = vwmerge.merge(inputs, base=base)
    b = _counter(base)
    assert b == 30
    assert _counter(merged) == b + sum(_counter(m) - b for m in inputs) == 30 + 25 + 40
    assert _counter(vwmerge.load(models.vw_merged(paths, base=base_path), registry=example_registry)) == 0


# --- registry policies with ad-hoc plugins --------------------------------------------------------


class CounterSection:
    """An ad-hoc plugin for squarecb's section that can read and write but not merge."""

    @hookimpl
    def vwmerge_reductions(self) -> list[ReductionSpec]:
        return [
            ReductionSpec(
                name=SQUARECB,
                rank=rank_of(SQUARECB),
                triggers=("squarecb",),
                options=("cb_explore_adf", "gamma_scale", "gamma_exponent", "elim", "mellowness", "epsilon"),
                section=True,
                enabled=lambda o: "squarecb" in o,
            )
        ]

    @hookimpl
    def vwmerge_save_load(self, reduction: StackEntry, io: SectionIO, state: Any) -> Any:
        if io.reading:
            return ("counter", io.r.u64("counter"))
        io.w.u64(state[1])
        return None


class DecliningCounterSection(CounterSection):
    """The same, with a merge hook that declines (returns None)."""

    @hookimpl
    def vwmerge_merge(self, reduction: StackEntry, states: Any, weights: Any, base: Any, context: Any) -> None:
        return None


def _registry(*plugins: tuple[object, str, str], autoload: bool = True) -> vwmerge.Registry:
    pm = vwmerge.make_plugin_manager(autoload=autoload, extra=[(obj, name) for obj, name, _ in plugins])
    return vwmerge.Registry(pm, extra_dists={name: dist for _, name, dist in plugins})


@pytest.mark.parametrize("merge_returns_none", [False, True], ids=["no-merge-hook", "merge-returns-None"])
def test_stateful_reduction_without_merge_keeps_the_first_state(
    models: Models, tmp_path: Path, logs: list[dict[str, Any]], merge_returns_none: bool
) -> None:
    plugin = DecliningCounterSection() if merge_returns_none else CounterSection()
    reg = _registry((plugin, "adhoc_squarecb", "adhoc-test-plugins"))
    assert reg.owner[SQUARECB] == "adhoc_squarecb"  # overrides the built-in
    paths = models.inputs(ARGS, 2)
    inputs = [vwmerge.load(p, registry=reg) for p in paths]
    merged = vwmerge.merge(inputs)
    assert merged.state(SQUARECB) is inputs[0].state(SQUARECB)
    assert merged.state(SQUARECB) == ("counter", 30)
    (warning,) = [e for e in logs if e.get("log_level") == "warning" and "no merge" in e["event"]]
    assert warning["reduction"] == SQUARECB
    assert warning["kept_from"] == str(paths[0])
    out = tmp_path / "merged.model"
    merged.save(out)
    assert _vw_resave(out, tmp_path / "resaved.model") == out.read_bytes()

    base_path, resumed = models.resumed(ARGS)
    base = vwmerge.load(base_path, registry=reg)
    in_base_mode = vwmerge.merge([vwmerge.load(p, registry=reg) for p in resumed], base=base)
    assert in_base_mode.state(SQUARECB) is base.state(SQUARECB)


@pytest.mark.parametrize("merge_returns_none", [False, True], ids=["no-merge-hook", "merge-returns-None"])
def test_the_plan_says_keep_and_the_execution_records_a_decline(
    models: Models, tmp_path: Path, merge_returns_none: bool
) -> None:
    """No merge hook: the plan decides "keep". A hook that returns None: the plan says "merge"
    (it cannot know), and executing it (the dry run's rehearsal, the real merge) records the
    decline as the step's outcome, read from the execution, not from the log."""
    plugin = DecliningCounterSection() if merge_returns_none else CounterSection()
    reg = _registry((plugin, "adhoc_squarecb", "adhoc-test-plugins"))
    paths = [str(p) for p in models.inputs(ARGS, 2)]
    dry = plan_merge(MergeRequest(paths), registry=reg)
    assert dry.ok, dry.error
    step = {s.reduction: s for s in dry.plan.steps}[SQUARECB]
    assert (step.plugin, step.distribution) == ("adhoc_squarecb", "adhoc-test-plugins")
    outcome = {o.reduction: o for o in dry.outcomes}[SQUARECB]
    assert (outcome.result, outcome.kept_from) == ("kept", paths[0])
    if merge_returns_none:
        assert step.action == "merge" and step.kept_from is None
        assert outcome.why == "its plugin declined (returned None)"
        assert f"rehearsal: kept {paths[0]}: its plugin declined" in render_plan(dry)
    else:
        assert step.action == "keep" and step.kept_from == paths[0]
        assert outcome.why == "its plugin has no merge hooks"
        assert any(w.fields.get("reduction") == SQUARECB for w in dry.plan.warnings)
    report = merge_files(paths, tmp_path / "m.model", registry=reg, progress=False, provenance=True)
    assert report.outcomes == dry.outcomes  # the merge executed the plan the dry run showed
    doc = {s["reduction"]: s for s in report.to_provenance()["stack"]}[SQUARECB]
    assert doc["action"] == step.action and doc["outcome"]["why"] == outcome.why


class BottomWithoutMerge:
    """An ad-hoc base learner for ``--ftrl`` files that reads and writes but cannot merge."""

    @hookimpl
    def vwmerge_reductions(self) -> list[ReductionSpec]:
        return [ReductionSpec(name="ftrl", rank=rank_of("ftrl"), triggers=("ftrl",), section=True, bottom=True)]

    @hookimpl
    def vwmerge_save_load(self, reduction: StackEntry, io: SectionIO, state: Any) -> Any:
        if io.reading:
            return gd_plugin.read_gd_like(io, reduction, lambda o, resume: ("w", "z", "n") if resume else ("w",))
        gd_plugin.write_gd_like(io, state)
        return None


def test_bottom_learner_without_merge_is_an_error(models: Models) -> None:
    reg = _registry(
        (gd_plugin, "gd", "vwmerge"),
        (stateless_plugin, "stateless", "vwmerge"),
        (BottomWithoutMerge(), "adhoc_ftrl", "adhoc-test-plugins"),
        autoload=False,
    )
    paths = models.inputs("--ftrl", 2)
    inputs = [vwmerge.load(p, registry=reg) for p in paths]
    assert [e.name for e in inputs[0].stack][-1] == "ftrl"
    assert inputs[0].to_bytes() == paths[0].read_bytes()
    with pytest.raises(vwmerge.PluginError, match=r"base learner 'ftrl' has no merge \(plugin 'adhoc_ftrl'\)"):
        vwmerge.merge(inputs)


def test_unknown_option_names_the_option(models: Models) -> None:
    only_gd = _registry((gd_plugin, "gd", "vwmerge"), autoload=False)
    with pytest.raises(vwmerge.PluginError, match=r"uses option --oaa, which no installed vwmerge plugin"):
        vwmerge.load(models.inputs("--oaa 3", 1)[0], registry=only_gd)

    # The same with every installed plugin, for an option VW does not have: the header is
    # rewritten (with a correct checksum) so that only the option is wrong.
    ws = vwmerge.load(models.inputs("", 1)[0])
    header = attrs.evolve(ws.header, options_raw=b" --frobnicate 3\0")
    data = header.to_bytes() + ws.to_bytes()[len(ws.header.to_bytes()) :]
    with pytest.raises(vwmerge.PluginError, match=r"^x\.model: the model uses option --frobnicate"):
        vwmerge.load(data, name="x.model")


class Declares:
    """An ad-hoc plugin that only declares a reduction."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def vwmerge_reductions(self) -> list[ReductionSpec]:
        return [ReductionSpec(name=self.name, rank=rank_of("cb_adf") + 0.5, triggers=("my_reduction",))]


def test_two_third_party_plugins_for_one_reduction_is_an_error() -> None:
    with pytest.raises(vwmerge.PluginError) as err:
        _registry(
            (Declares("my_reduction"), "first_plugin", "dist-one"),
            (Declares("my_reduction"), "second_plugin", "dist-two"),
        )
    message = str(err.value)
    for text in ("'my_reduction'", "first_plugin", "dist-one", "second_plugin", "dist-two", BLOCK_ENV):
        assert text in message


def test_third_party_conflict_with_the_installed_package(unblocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example package and another third-party plugin both claim squarecb: an error naming
    both; blocking one entry point (what the message suggests) resolves it."""
    with pytest.raises(vwmerge.PluginError, match=rf"{EXAMPLE_PLUGIN_ENTRY_POINT}.*{EXAMPLE_PLUGIN_DIST}") as err:
        _registry((Declares(SQUARECB), "other_squarecb", "other-dist"))
    assert "other_squarecb" in str(err.value) and "other-dist" in str(err.value)

    monkeypatch.setenv(BLOCK_ENV, EXAMPLE_PLUGIN_ENTRY_POINT)
    assert _registry((Declares(SQUARECB), "other_squarecb", "other-dist")).owner[SQUARECB] == "other_squarecb"


@pytest.fixture(autouse=True)
def _no_leaked_registries() -> Iterator[None]:
    """Registries built here must not replace the process-wide default one."""
    before = vwmerge.default_registry()
    yield
    assert vwmerge.default_registry() is before


# --------------------------------------------------------------------------------------------
# Built-ins: entry points when vwmerge's metadata is installed, DEFAULT_PLUGINS when it is not.
def test_default_plugins_are_the_builtin_entry_points() -> None:
    """The code list and the pyproject entry points name the same modules (docs/plugins.md)."""
    eps = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION
    }
    assert eps == {name: f"vwmerge.plugins.{name}" for name in DEFAULT_PLUGINS}
    plugin_modules = {p.stem for p in Path(vwmerge.plugins.__file__).parent.glob("*.py")}
    helpers = {"__init__", "confidence_sequence"}  # modules the plugins share, with no hooks
    assert plugin_modules - helpers == set(DEFAULT_PLUGINS)


def _source_tree_without_metadata(tmp_path: Path) -> dict[str, str]:
    """vwmerge as a bare source tree (core/ as vwmerge/, plugins/ inside it) and its runtime
    dependencies, with no package metadata for any of them; the environment to run it with."""
    root = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"
    shutil.copytree(root / "core", src / "vwmerge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "plugins", src / "vwmerge" / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    deps = tmp_path / "deps"
    deps.mkdir()
    for name in ("numpy", "pluggy", "attr", "attrs", "click", "structlog"):
        package = Path(importlib.import_module(name).__file__ or "").parent
        (deps / name).symlink_to(package)
        libs = package.parent / f"{name}.libs"  # manylinux wheels keep shared libraries beside
        if libs.is_dir():
            (deps / libs.name).symlink_to(libs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(deps)])
    return env


def test_a_source_tree_without_metadata_has_its_builtins(models: Models, tmp_path: Path) -> None:
    env = _source_tree_without_metadata(tmp_path)
    a, b = models.inputs("--cb_explore_adf --epsilon 0.1", 2)
    out = tmp_path / "merged.model"
    script = (
        "import importlib.metadata as md, sys, vwmerge\n"
        "assert vwmerge.__file__.startswith(sys.argv[1]), vwmerge.__file__\n"
        "assert not list(md.entry_points(group='vwmerge'))\n"
        "vwmerge.merge([vwmerge.load(sys.argv[2]), vwmerge.load(sys.argv[3])]).save(sys.argv[4])\n"
    )
    cmd = [sys.executable, "-S", "-c", script, str(tmp_path / "src"), str(a), str(b), str(out)]
    subprocess.run(cmd, env=env, check=True, cwd=tmp_path, timeout=120)
    assert out.read_bytes() == vwmerge.merge([vwmerge.load(a), vwmerge.load(b)]).to_bytes()

    listing = subprocess.run(
        [sys.executable, "-S", "-m", "vwmerge", "plugins", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    plugins = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}
    assert set(plugins) == set(DEFAULT_PLUGINS)
    assert {(p["distribution"], p["version"], p["builtin"]) for p in plugins.values()} == {("vwmerge", "0.0.0", True)}


def test_blocked_builtins_stay_blocked_without_metadata(models: Models, tmp_path: Path) -> None:
    env = _source_tree_without_metadata(tmp_path)
    env[BLOCK_ENV] = "gd"
    (path,) = models.inputs("", 1)
    run = subprocess.run(
        [sys.executable, "-S", "-m", "vwmerge", "inspect", str(path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    assert "no plugin provides a base learner" in run.stderr


# --- a third-party plugin that fails to import ----------------------------------------------------

BROKEN_DIST, BROKEN_EP = "vwmerge-broken-plugin", "broken_ccb"


@pytest.fixture(scope="module")
def broken_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real installed distribution (dist-info with its ``vwmerge`` entry point, found through
    ``sys.path``) whose module raises on import, as a package with a missing dependency does."""
    root = tmp_path_factory.mktemp("broken_plugin")
    info = root / "vwmerge_broken_plugin-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {BROKEN_DIST}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[vwmerge]\n{BROKEN_EP} = vwmerge_broken_plugin\n")
    (root / "vwmerge_broken_plugin.py").write_text("import vwmerge\nimport a_dependency_that_is_not_installed\n")
    return root


def _broken_env(root: Path, *, block: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    env[BLOCK_ENV] = ",".join(filter(None, [env.get(BLOCK_ENV, ""), block]))
    return env


def _human_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("{")]


def _events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_broken_plugin_is_listed_and_warned_once(broken_plugin_dir: Path) -> None:
    done = _vwmerge("plugins", env=_broken_env(broken_plugin_dir))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert _human_lines(done.stderr) == []
    (warning,) = [e for e in _events(done.stderr) if e["event"] == "plugin_not_loaded"]
    assert warning["level"] == "warning"
    assert warning["entry_point"] == f"{BROKEN_EP} = vwmerge_broken_plugin"
    assert warning["distribution"] == f"{BROKEN_DIST} 0.3.0"
    assert "a_dependency_that_is_not_installed" in warning["error"]
    # the others are all still there, the broken one is marked
    healthy = json.loads(_vwmerge("plugins", "--json", env=dict(os.environ)).stdout)
    assert done.stdout.startswith(f"{len(healthy['plugins'])} plugins loaded from the 'vwmerge' entry-point group, 1 ")
    assert f"{BROKEN_EP}  ({BROKEN_DIST} 0.3.0, third-party, NOT LOADED)" in done.stdout
    for p in healthy["plugins"]:
        assert f"\n{p['name']}  (" in done.stdout
    # docs/cli.md shows this listing (a text block: the broken package is made here, not there)
    cli_md = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    shown = cli_md.split(f"```text\n{BROKEN_EP}  (", 1)[1].split("```", 1)[0]
    assert f"{BROKEN_EP}  ({shown}" in done.stdout
    head = done.stdout.splitlines()[0]
    assert f"`{head}`" in " ".join(cli_md.split())
    doc = json.loads(_vwmerge("plugins", "--json", env=_broken_env(broken_plugin_dir)).stdout)
    assert [p["name"] for p in doc["plugins"]] == [p["name"] for p in healthy["plugins"]]
    (entry,) = doc["broken"]
    assert entry["name"] == BROKEN_EP and entry["distribution"] == BROKEN_DIST and entry["version"] == "0.3.0"
    assert entry["error"].startswith("ModuleNotFoundError: ")


def test_merge_that_does_not_need_the_broken_plugin_works(
    models: Models, broken_plugin_dir: Path, tmp_path: Path
) -> None:
    paths = models.inputs(ARGS, 2)
    out = tmp_path / "merged.model"
    done = _vwmerge("merge", "-o", str(out), *map(str, paths), env=_broken_env(broken_plugin_dir))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [e["event"] for e in _events(done.stderr) if e["level"] == "warning"] == ["plugin_not_loaded"]
    assert out.read_bytes() == vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()


def test_merge_that_needs_the_broken_plugin_names_it(models: Models, broken_plugin_dir: Path, tmp_path: Path) -> None:
    """The built-in ``ccb`` plugin is blocked, so the broken package is the only candidate left."""
    paths = models.inputs("--ccb_explore_adf", 2)
    for command in (["merge", "-o", str(tmp_path / "m.model")], ["check"]):
        done = _vwmerge(*command, *map(str, paths), env=_broken_env(broken_plugin_dir, block="ccb"))
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        (line,) = _human_lines(done.stderr)
        assert line.startswith(f"Error: {paths[0]}: the model uses option --"), line
        assert f"plugin '{BROKEN_EP}' ({BROKEN_DIST} 0.3.0" in line and "ModuleNotFoundError" in line
    assert list(tmp_path.iterdir()) == []
