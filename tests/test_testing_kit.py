"""The kit for plugin authors (``vwmerge.testing``) works, and can fail.

A third-party plugin's test file runs in an isolated pytest run (pytest's ``pytester``) with
``-p vwmerge.testing`` and passes; the same file against a plugin whose merge breaks
``merge(m, …, m) == m`` fails with a message naming the property, the reduction and both states.
In process, deliberately broken plugins (registered ad hoc) fail each assertion. The models the
kit builds are real: VW loads one and predicts with its weights.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import vowpalwabbit
import vwmerge
import vwmerge.plugins
import vwmerge.testing
from helpers.models import Models
from vwmerge.plugin import MergeContext, ModelWeights, ReductionSpec, SectionIO, StackEntry, hookimpl
from vwmerge.testing import Kit, plugin_registry, run_cli

# --------------------------------------------------------------------------------------------
# A tiny third-party plugin, as its author would write it: ``--scale_by`` keeps one float32
# merged as the weighted mean (base mode: base + Σ wᵢ(sᵢ − base)).
PLUGIN = """
from __future__ import annotations

import attrs
from vwmerge.plugin import ReductionSpec, hookimpl


@attrs.frozen
class Scale:
    value: float


@hookimpl
def vwmerge_reductions():
    return [ReductionSpec("scale_by", rank=50.0, triggers=("scale_by",), section=True)]


@hookimpl
def vwmerge_save_load(reduction, io, state):
    if io.reading:
        return Scale(io.r.f32("scale"))
    io.w.f32(state.value)


@hookimpl
def vwmerge_merge(reduction, states, weights, base, context):
    return Scale(MERGED)


@hookimpl
def vwmerge_subtract(reduction, state, base, context):
    return Scale(state.value - base.value)


@hookimpl
def vwmerge_add(reduction, base, delta, context):
    return Scale(base.value + delta.value)
"""
GOOD_MERGE = "sum(float(w) * s.value for w, s in zip(weights.values, states))"
#: Sums instead of averaging: two copies of a model give twice its value.
BROKEN_MERGE = "sum(s.value for s in states)"

TESTS = """
import pytest
import scale_plugin
from scale_plugin import Scale


@pytest.fixture
def kit(vwmerge_kit):
    return vwmerge_kit(scale_plugin)


def model(kit, value, examples=1.0):
    return kit.make_model("--scale_by 2", {"scale_by": Scale(value)}, examples=examples)


def test_round_trip(kit):
    kit.assert_roundtrip(model(kit, 0.75))


def test_merge_properties(kit):
    models = [model(kit, v, e) for v, e in ((0.5, 1.0), (1.25, 3.0), (-2.0, 2.0))]
    kit.assert_merge_properties(models, "scale_by", base=model(kit, 0.25, 0.5))


def test_cli_runs(vwmerge_cli):
    assert vwmerge_cli("--version").check().stdout.strip()
"""


def _run(pytester: pytest.Pytester, merge_expr: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(scale_plugin=PLUGIN.replace("MERGED", merge_expr), test_scale=TESTS)
    return pytester.runpytest_subprocess(*args)


def test_a_third_party_plugin_passes_with_the_kit(pytester: pytest.Pytester) -> None:
    result = _run(pytester, GOOD_MERGE, "-p", "vwmerge.testing")
    result.assert_outcomes(passed=3)


def test_the_kit_catches_a_merge_that_changes_k_copies(pytester: pytest.Pytester) -> None:
    result = _run(pytester, BROKEN_MERGE, "-p", "vwmerge.testing")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_merge_properties*",
            "E*AssertionError: merging 2 copies of one model (VW's weighting): "
            "reduction 'scale_by' (plugin 'scale_plugin') writes different bytes",
            "E*got  Scale(value=1.0)",
            "E*want Scale(value=0.5)",
        ]
    )


def test_the_kit_is_opt_in(pytester: pytest.Pytester) -> None:
    result = _run(pytester, GOOD_MERGE)
    result.assert_outcomes(passed=0, errors=3)
    result.stdout.fnmatch_lines(["*fixture 'vwmerge_kit' not found*"])


DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def doc_files() -> dict[str, str]:
    """The ``python`` blocks of docs/plugins.md whose first line names a file: ``# NAME.py``."""
    found = re.findall(r"^```python\n# (\w+\.py)\n(.*?)^```$", DOCS.read_text(encoding="utf-8"), re.M | re.S)
    return {name: f"# {name}\n{body}" for name, body in found}


def test_the_documented_plugin_and_its_tests_pass(pytester: pytest.Pytester) -> None:
    """docs/plugins.md's complete plugin and its tests, the plugin installed the way pip does
    (a dist-info with its ``vwmerge`` entry point), so the command-line test runs too."""
    files = doc_files()
    assert set(files) == {"my_plugin.py", "test_my_plugin.py"}
    pytester.makepyfile(**{name.removesuffix(".py"): text for name, text in files.items()})
    info = pytester.mkdir("my_plugin-0.1.0.dist-info")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[vwmerge]\nmy_reduction = my_plugin\n")
    result = pytester.runpytest_subprocess("-p", "vwmerge.testing", "-rs")
    result.assert_outcomes(passed=3)


# --------------------------------------------------------------------------------------------
# Broken plugins, in process: each assertion fails on the plugin that breaks its property.
@attrs.frozen
class Value:
    value: float


class ScalePlugin:
    """The plugin above as a class (datasette's style for ad-hoc test plugins)."""

    def spec(self) -> ReductionSpec:
        return ReductionSpec("scale_by", rank=50.0, triggers=("scale_by",), section=True)

    @hookimpl
    def vwmerge_reductions(self) -> list[ReductionSpec]:
        return [self.spec()]

    @hookimpl
    def vwmerge_save_load(self, reduction: StackEntry, io: SectionIO, state: Value | None) -> Value | None:
        if io.reading:
            return Value(io.r.f32("scale"))
        assert state is not None
        io.w.f32(state.value)
        return None

    @hookimpl
    def vwmerge_merge(
        self,
        reduction: StackEntry,
        states: Sequence[Value],
        weights: ModelWeights,
        base: Value | None,
        context: MergeContext,
    ) -> Value:
        return Value(sum(float(w) * s.value for w, s in zip(weights.values, states, strict=True)))

    @hookimpl
    def vwmerge_subtract(self, reduction: StackEntry, state: Value, base: Value, context: MergeContext) -> Value:
        return Value(state.value - base.value)

    @hookimpl
    def vwmerge_add(self, reduction: StackEntry, base: Value, delta: Value, context: MergeContext) -> Value:
        return Value(base.value + delta.value)


class FirstWins(ScalePlugin):
    """Keeps the first input's value: k copies still hold, input order and weights do not."""

    @hookimpl
    def vwmerge_merge(
        self,
        reduction: StackEntry,
        states: Sequence[Value],
        weights: ModelWeights,
        base: Value | None,
        context: MergeContext,
    ) -> Value:
        return states[0]


class ForgetsTheBase(ScalePlugin):
    """add() ignores the base: the delta alone comes back."""

    @hookimpl
    def vwmerge_add(self, reduction: StackEntry, base: Value, delta: Value, context: MergeContext) -> Value:
        return delta


class WritesItsOwnValue(ScalePlugin):
    """Writes a value the reader does not give back."""

    @hookimpl
    def vwmerge_save_load(self, reduction: StackEntry, io: SectionIO, state: Value | None) -> Value | None:
        if io.reading:
            return Value(io.r.f32("scale"))
        assert state is not None
        io.w.f32(state.value + 1.0)
        return None


def _models(kit: Kit) -> list[bytes]:
    return [kit.make_model("--scale_by 2", {"scale_by": Value(v)}, examples=e) for v, e in ((0.5, 1.0), (1.5, 3.0))]


def test_the_class_plugin_has_every_property(vwmerge_kit: Callable[..., Kit]) -> None:
    kit = vwmerge_kit(ScalePlugin())
    models = _models(kit)
    for m in models:
        kit.assert_roundtrip(m)
    kit.assert_merge_properties(models, "scale_by", base=kit.make_model("--scale_by 2", {"scale_by": Value(0.25)}))


def test_input_order_and_one_hot_weights_catch_first_wins(vwmerge_kit: Callable[..., Kit]) -> None:
    kit = vwmerge_kit(FirstWins())
    a, b = _models(kit)
    kit.assert_k_copies(a, "scale_by")
    with pytest.raises(AssertionError, match=r"merging the models in order \[1, 0\] instead of \[0, 1\]"):
        kit.assert_permutation_invariant([a, b], "scale_by")
    with pytest.raises(AssertionError, match=r"one-hot weights \[0\.0, 1\.0\](.|\n)*got  Value\(value=0\.5\)"):
        kit.assert_one_hot([a, b], "scale_by")


def test_the_base_inverse_catches_an_add_that_forgets_the_base(vwmerge_kit: Callable[..., Kit]) -> None:
    kit = vwmerge_kit(ForgetsTheBase())
    m = kit.make_model("--scale_by 2", {"scale_by": Value(0.75)}, examples=2.0)
    base = kit.make_model("--scale_by 2", {"scale_by": Value(0.25)})
    with pytest.raises(AssertionError, match=r"add\(base, subtract\(m, base\)\)(.|\n)*got  Value\(value=0\.5\)"):
        kit.assert_base_inverse(m, base, "scale_by")


def test_the_round_trip_names_the_section_that_changed(vwmerge_kit: Callable[..., Kit]) -> None:
    kit = vwmerge_kit(WritesItsOwnValue())
    with pytest.raises(AssertionError, match=r"first difference at offset \d+ \(section of 'scale_by'"):
        kit.assert_roundtrip(kit.make_model("--scale_by 2", {"scale_by": Value(0.5)}))


def test_a_reduction_without_merge_is_reported(vwmerge_kit: Callable[..., Kit]) -> None:
    class NoMerge:
        @hookimpl
        def vwmerge_reductions(self) -> list[ReductionSpec]:
            return ScalePlugin().vwmerge_reductions()

        @hookimpl
        def vwmerge_save_load(self, reduction: StackEntry, io: SectionIO, state: Value | None) -> Value | None:
            return ScalePlugin().vwmerge_save_load(reduction, io, state)

    kit = vwmerge_kit(NoMerge())
    with pytest.raises(AssertionError, match="implements no vwmerge_merge"):
        kit.assert_k_copies(_models(kit)[0], "scale_by")


# --------------------------------------------------------------------------------------------
# The model builder
def test_a_built_model_loads_in_vw_and_predicts_with_its_weights(tmp_path: Path) -> None:
    """The constant feature lives at row 11650396 mod 2^bits: VW predicts that row's weight for
    an example without features. Independent of vwmerge: VW reads the file."""
    for bits, resume in ((18, True), (10, False)):
        path = tmp_path / f"b{bits}.model"
        path.write_bytes(vwmerge.testing.make_model(bits=bits, weights={11650396 % 2**bits: 0.625}, save_resume=resume))
        vw = vowpalwabbit.Workspace(f"-i {path} --quiet", enable_logging=False)
        try:
            assert vw.predict("| ") == 0.625
        finally:
            vw.finish()


def test_the_builder_writes_the_rows_and_counts_given() -> None:
    kit = Kit()
    ws = kit.assert_roundtrip(kit.make_model("--sgd", weights={3: 0.5, 7: [-1.0]}, examples=4.0, bits=12))
    table = ws.states[-1].table
    assert table.columns == ("w",) and table.index.tolist() == [3, 7] and table.values[:, 0].tolist() == [0.5, -1.0]
    assert ws.header.bits == 12 and ws.states[-1].online.weighted_labeled_examples == 4.0


def test_the_builder_says_what_is_missing_or_wrong() -> None:
    kit = Kit()
    with pytest.raises(ValueError, match=r"reduction 'cb_adf' \(enabled by the options\) writes a section"):
        kit.make_model("--cb_adf")
    with pytest.raises(ValueError, match=r"states given for \['nope'\], which the options '--sgd' do not enable"):
        kit.make_model("--sgd", {"nope": 1})
    with pytest.raises(ValueError, match="row 4096 is not below 2"):
        kit.make_model(bits=12, weights={4096: 1.0})


def test_raw_section_bytes_stand_for_a_state(models: Models) -> None:
    """A built-in's section can be given as bytes (here cb_adf's, from a model VW trained)."""
    trained = vwmerge.load(models.inputs("--cb_adf", 1)[0])
    kit = Kit()
    raw = kit.section(trained, "cb_adf")
    built = kit.assert_roundtrip(kit.make_model(trained.options.to_text(), {"cb_adf": raw}))
    assert kit.section(built, "cb_adf") == raw


def test_the_kit_reads_vw_trained_models(models: Models) -> None:
    for path in models.inputs("--cb_explore_adf --squarecb", 2):
        vwmerge.testing.assert_roundtrip(path)
        vwmerge.testing.assert_roundtrip(vwmerge.load(path))


# --------------------------------------------------------------------------------------------
# Registry and command line
def test_ad_hoc_plugins_are_unregistered_at_the_end() -> None:
    plugin = ScalePlugin()
    with pytest.raises(RuntimeError), plugin_registry(plugin) as reg:
        assert reg.pm.is_registered(plugin)
        assert reg.owner["scale_by"] == reg.pm.get_name(plugin)
        raise RuntimeError
    assert not reg.pm.is_registered(plugin)
    assert "scale_by" not in vwmerge.default_registry().specs


def test_run_cli_reports_exit_code_and_output(tmp_path: Path) -> None:
    ok = run_cli("--version")
    assert ok.ok and vwmerge.__version__ in ok.stdout
    bad = run_cli("inspect", tmp_path / "missing.model")
    assert bad.returncode == 1 and "missing.model" in bad.stderr
    with pytest.raises(AssertionError, match=r"vwmerge inspect .*missing\.model exited 1"):
        bad.check()


# --------------------------------------------------------------------------------------------
# pytest stays out of vwmerge
def test_importing_vwmerge_does_not_import_pytest() -> None:
    """Every runtime module and built-in plugin loaded; the same check run after importing the kit
    sees pytest (the check can fail)."""
    code = (
        "import sys, vwmerge, vwmerge.plugin, vwmerge.cli.commands, vwmerge.engine.pipeline; "
        "[__import__(f'vwmerge.plugins.{n}') for n in vwmerge.contract.registry.DEFAULT_PLUGINS]; "
        "vwmerge.default_registry(); {extra}"
        "sys.exit(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest'))) or None)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code.replace("{extra}", "")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"importing vwmerge imported {done.stderr}"
    kit = subprocess.run(
        [sys.executable, "-c", code.replace("{extra}", "import vwmerge.testing; ")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert kit.returncode == 1 and "pytest" in kit.stderr.split()


def test_only_vwmerge_testing_imports_pytest() -> None:
    package = Path(vwmerge.__file__).resolve().parent
    plugins = Path(vwmerge.plugins.__file__).resolve().parent
    importers = set()
    for path in [*package.rglob("*.py"), *plugins.glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[Any] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n.split(".")[0] in ("pytest", "_pytest") for n in names):
                importers.add(path.relative_to(package.parent).as_posix())
    assert importers == {f"{package.name}/testing.py"}


def test_pytest_is_not_a_runtime_dependency() -> None:
    requires = vwmerge_requires()
    assert requires, "vwmerge's metadata lists its dependencies"
    assert not [r for r in requires if r.split(";")[0].strip().lower().startswith("pytest") and "extra" not in r]


def vwmerge_requires() -> list[str]:
    import importlib.metadata

    return list(importlib.metadata.requires("vwmerge") or [])
