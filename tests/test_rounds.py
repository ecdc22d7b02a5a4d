"""Federated rounds in base mode: ``--scale λ`` (a server step size) and the premise check.

Inputs are real VW models: ``day1`` trained from scratch is the base, ``day2`` and ``day3``
continued training from it (``-i day1 --preserve_performance_counters``). The full round is
plain base mode; ``--scale 0.5`` must land halfway between the base and the full round on the
learned weights, leave the counters and optimizer statistics where the full round puts them,
and load in VW.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import vowpalwabbit
import vwmerge
from helpers import vwtrain
from helpers.cli import Run, assert_one_error, run_cli
from helpers.models import EXAMPLE_PLUGIN_ENTRY_POINT, Models, example_plugin_entry_point
from vwmerge.contract.registry import BLOCK_ENV
from vwmerge.engine.streaming import merge_files

GD_ARGS = "-q ab"  # gd with its default adaptive and normalized columns
SQUARECB_ARGS = "--cb_explore_adf --squarecb"


def cli(*args: str | Path, example_plugin: bool = False) -> Run:
    """``python -m vwmerge ARGS``; ``example_plugin`` unblocks the third-party plugin package
    (tests/conftest.py blocks it for the suite)."""
    env = dict(os.environ)
    if example_plugin:
        blocked = [
            n for n in env.get(BLOCK_ENV, "").split(",") if n.strip() and n.strip() != EXAMPLE_PLUGIN_ENTRY_POINT
        ]
        env[BLOCK_ENV] = ",".join(blocked)
    return run_cli(*args, env=env)


def dense(path: Path) -> np.ndarray:
    """The bottom learner's rows as a dense (2^bits, columns) float32 array."""
    ws = vwmerge.load(path)
    table = ws.states[-1].table
    out = np.zeros((1 << table.bits, table.k), np.float32)
    out[np.asarray(table.index, dtype=np.int64)] = table.values
    return out


def online(path: Path) -> Any:
    return vwmerge.load(path).states[-1].online


@pytest.fixture(scope="module")
def days(models: Models) -> tuple[Path, list[Path]]:
    return models.resumed(GD_ARGS, k=2, base_n=40, more=(25, 35))


@pytest.fixture(scope="module")
def full_round(days: tuple[Path, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    base, resumed = days
    out = tmp_path_factory.mktemp("rounds") / "full.model"
    run = cli("merge", "-o", out, "--base", base, *resumed)
    assert run.returncode == 0, run.stderr
    return out


# --------------------------------------------------------------------------------------------
# --scale
def test_scale_one_is_plain_base_mode_byte_for_byte(
    days: tuple[Path, list[Path]], full_round: Path, tmp_path: Path
) -> None:
    base, resumed = days
    out = tmp_path / "one.model"
    run = cli("merge", "-o", out, "--base", base, "--scale", "1", *resumed)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == full_round.read_bytes()
    library = vwmerge.merge([vwmerge.load(p) for p in resumed], base=vwmerge.load(base), scale=1.0)
    assert library.to_bytes() == full_round.read_bytes()


def test_scale_half_lands_halfway_between_base_and_full_round(
    days: tuple[Path, list[Path]], full_round: Path, tmp_path: Path
) -> None:
    base, resumed = days
    out = tmp_path / "half.model"
    report = tmp_path / "half.report.json"
    run = cli("merge", "-o", out, "--base", base, "--scale", "0.5", "--report", report, *resumed)
    assert run.returncode == 0, run.stderr
    assert not [e for e in run.log_events() if e["level"] == "warning"], run.stderr
    assert json.loads(report.read_text())["settings"]["scale"] == 0.5  # the provenance report records it
    assert [e["scale"] for e in run.log_events() if e["event"] == "merged"] == [0.5]

    b, f, h = dense(base), dense(full_round), dense(out)
    columns = vwmerge.load(out).states[-1].table.columns
    assert columns == ("w", "adaptive", "normalized")
    # The learned weights: base + 0.5·(full − base), within float32 rounding of the three values.
    bw, fw, hw = (x[:, 0].astype(np.float64) for x in (b, f, h))
    moved = np.abs(fw - bw) > 0
    assert moved.sum() >= 9  # the round moved every weight (4 features, 4 products, constant)
    expected = bw + 0.5 * (fw - bw)
    ulp = np.spacing(np.maximum(np.abs(bw), np.abs(fw)).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(hw - expected) <= 2 * ulp)
    assert not np.allclose(hw[moved], fw[moved])  # and not the full round
    # Optimizer statistics (Σg², largest |x|) and every counter: the full round's, unscaled.
    np.testing.assert_array_equal(h[:, 1:], f[:, 1:])
    assert online(out) == online(full_round)

    # The same through the library's in-memory merge, byte for byte.
    library = vwmerge.merge([vwmerge.load(p) for p in resumed], base=vwmerge.load(base), scale=0.5)
    assert library.to_bytes() == out.read_bytes()

    # VW loads it, and predicts (a linear model) halfway between the base and the full round.
    examples = vwtrain.test_examples(GD_ARGS, n=30)
    pb, pf, ph = (np.array(vwtrain.predict(p, examples), dtype=np.float64) for p in (base, full_round, out))
    assert np.all(np.isfinite(ph))
    bounds = online(out)
    inside = [
        i for i in range(len(examples))
        if all(bounds.min_label < p[i] < bounds.max_label for p in (pb, pf, ph))
    ]  # fmt: skip
    assert len(inside) > 10
    np.testing.assert_allclose(ph[inside], (pb[inside] + pf[inside]) / 2, rtol=0, atol=1e-4)


def test_scale_through_merge_files(days: tuple[Path, list[Path]], tmp_path: Path) -> None:
    base, resumed = days
    out = tmp_path / "lib.model"
    merge_files(resumed, out, base=base, scale=1.5)
    library = vwmerge.merge([vwmerge.load(p) for p in resumed], base=vwmerge.load(base), scale=1.5)
    assert out.read_bytes() == library.to_bytes()


@pytest.mark.parametrize(
    ("value", "needle"),
    [("0", "--scale"), ("-0.5", "--scale"), ("nan", "--scale"), ("inf", "--scale"), ("-inf", "--scale")],
)
def test_scale_must_be_finite_and_positive(
    days: tuple[Path, list[Path]], tmp_path: Path, value: str, needle: str
) -> None:
    base, resumed = days
    out = tmp_path / "bad.model"
    line = assert_one_error(cli("merge", "-o", out, "--base", base, f"--scale={value}", *resumed), needle)
    assert "finite number > 0" in line
    assert not out.exists() and not list(tmp_path.iterdir())
    assert_one_error(cli("check", "--base", base, f"--scale={value}", *resumed), "--scale")


def test_scale_needs_base(days: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, resumed = days
    out = tmp_path / "nobase.model"
    assert_one_error(cli("merge", "-o", out, "--scale", "0.5", *resumed), "--scale", "--base")
    assert not out.exists()
    with pytest.raises(vwmerge.MergeError, match=r"--scale.*--base"):
        vwmerge.merge([vwmerge.load(p) for p in resumed], scale=0.5)


def test_scale_is_not_a_number(days: tuple[Path, list[Path]], tmp_path: Path) -> None:
    base, resumed = days
    run = cli("merge", "-o", tmp_path / "x.model", "--base", base, "--scale", "half", *resumed)
    assert run.returncode == 2 and "--scale" in run.stderr


def test_scale_leaves_counters_of_reductions_alone_and_warns_for_a_plugin_without_the_hook(
    models: Models, tmp_path: Path
) -> None:
    """cb_adf's counters (built-in, vwmerge_scale returns them as they are) and the third-party
    SquareCB counter (its plugin has no vwmerge_scale: added unscaled, with a warning)."""
    if example_plugin_entry_point() is None:
        pytest.fail("the example plugin package (tests/plugin_pkg) must be installed")
    base, resumed = models.resumed(SQUARECB_ARGS, k=2, base_n=30, more=(20, 30))
    full, half = tmp_path / "full.model", tmp_path / "half.model"
    assert cli("merge", "-o", full, "--base", base, *resumed, example_plugin=True).returncode == 0
    run = cli("merge", "-o", half, "--base", base, "--scale", "0.5", *resumed, example_plugin=True)
    assert run.returncode == 0, run.stderr
    assert any(e["event"] == "merged by vwmerge-example-plugin" for e in run.log_events()), run.stderr
    warned = [e for e in run.log_events() if e["level"] == "warning"]
    assert [e["reduction"] for e in warned] == ["cb_explore_adf_squarecb"], run.stderr
    assert "vwmerge_scale" in warned[0]["event"] and "unscaled" in warned[0]["event"]

    f, h = vwmerge.load(full), vwmerge.load(half)
    names = [e.name for e in h.stack]
    squarecb, cb_adf = names.index("cb_explore_adf_squarecb"), names.index("cb_adf")
    # (loaded here by the built-in reader: the suite blocks the example plugin in this process)
    assert h.states[squarecb].value == f.states[squarecb].value > 0
    np.testing.assert_array_equal(h.states[cb_adf].counters, f.states[cb_adf].counters)
    assert h.states[cb_adf].counters.sum() > 0
    assert f.states[-1].online == h.states[-1].online
    assert not np.array_equal(f.states[-1].table.values[:, 0], h.states[-1].table.values[:, 0])
    ws = vowpalwabbit.Workspace(f"-i {half} -t --quiet", enable_logging=False)
    ws.finish()

    plan = cli("check", "--json", "--base", base, "--scale", "0.5", *resumed, example_plugin=True)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert doc["scale"] == 0.5
    notes = {r["reduction"]: r["why"] for r in doc["stack"]}
    assert "unscaled" in notes["cb_explore_adf_squarecb"] and "vwmerge_scale" in notes["cb_explore_adf_squarecb"]
    assert "scaled by --scale 0.5" in notes["cb_adf"] and "scaled by --scale 0.5" in notes["gd"]


def test_scale_needs_a_base_learner_that_merges_deltas(models: Models, tmp_path: Path) -> None:
    """ftrl merges with the base state (no subtract/add): --scale cannot reach its weights."""
    base, resumed = models.resumed("--ftrl", k=2, base_n=30, more=(20, 30))
    out = tmp_path / "ftrl.model"
    assert_one_error(cli("merge", "-o", out, "--base", base, "--scale", "0.5", *resumed), "--scale", "ftrl")
    assert not out.exists()
    assert cli("merge", "-o", out, "--base", base, *resumed).returncode == 0


# --------------------------------------------------------------------------------------------
# The premise: every model continued training from the base
def test_a_model_with_fewer_examples_than_the_base_is_an_error(days: tuple[Path, list[Path]], tmp_path: Path) -> None:
    day1, (day2, day3) = days
    n1, n3 = online(day1).weighted_labeled_examples, online(day3).weighted_labeled_examples
    assert n1 < n3
    out = tmp_path / "wrong.model"
    # --base day3 day1 day2, typed by mistake: day1 cannot have continued from day3.
    line = assert_one_error(
        cli("merge", "-o", out, "--base", day3, day1, day2), f"{day1}: ", str(day3), f"{n1:g}", f"{n3:g}"
    )
    assert "--force" in line
    assert not out.exists() and not list(tmp_path.iterdir())
    # The dry run gives the same verdict.
    assert_one_error(cli("check", "--base", day3, day1, day2), str(day1), str(day3))
    assert_one_error(cli("merge", "--dry-run", "--base", day3, day1, day2), str(day1), str(day3))
    with pytest.raises(vwmerge.MergeError, match="fewer than the base"):
        vwmerge.merge([vwmerge.load(day1), vwmerge.load(day2)], base=vwmerge.load(day3))


def test_force_warns_and_merges(days: tuple[Path, list[Path]], tmp_path: Path) -> None:
    day1, (day2, day3) = days
    out = tmp_path / "forced.model"
    run = cli("merge", "-o", out, "--force", "--base", day3, day1, day2)
    assert run.returncode == 0, run.stderr
    premise = [e for e in run.log_events() if e["level"] == "warning" and "fewer examples than the base" in e["event"]]
    assert {e["model"] for e in premise} == {str(day1), str(day2)}
    assert all(e["base"] == str(day3) for e in premise)
    assert out.exists()
    vowpalwabbit.Workspace(f"-i {out} -t --quiet", enable_logging=False).finish()
    check = cli("check", "--force", "--base", day3, day1, day2)
    assert check.returncode == 0, check.stderr
    expected = vwmerge.merge([vwmerge.load(day1), vwmerge.load(day2)], base=vwmerge.load(day3), force=True)
    assert out.read_bytes() == expected.to_bytes()


def test_a_model_continued_without_preserved_counters_is_caught(days: tuple[Path, list[Path]], tmp_path: Path) -> None:
    """``-i BASE`` without --preserve_performance_counters restarts VW's counters at 0."""
    base, (day2, _) = days
    plain = tmp_path / "plain.model"
    ws = vowpalwabbit.Workspace(f"-i {base} --quiet", enable_logging=False)
    for ex in vwtrain._examples(GD_ARGS, random.Random(5), 20):
        ws.learn(ex if isinstance(ex, str) else "\n".join(ex))
    ws.save(str(plain))
    ws.finish()
    assert online(plain).weighted_labeled_examples < online(base).weighted_labeled_examples
    assert_one_error(
        cli("merge", "-o", tmp_path / "o.model", "--base", base, day2, plain),
        str(plain),
        "--preserve_performance_counters",
    )


def test_equal_counts_pass_the_premise(days: tuple[Path, list[Path]], tmp_path: Path) -> None:
    """A model that saw nothing new since the base (itself) is a valid input: its delta is zero."""
    base, resumed = days
    out = tmp_path / "same.model"
    run = cli("merge", "-o", out, "--base", base, base, *resumed)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("cache_bytes", [None, 0], ids=["kept", "row-less"])
def test_a_streaming_scan_that_keeps_only_counts_plans_base_mode_the_same(
    days: tuple[Path, list[Path]], tmp_path: Path, cache_bytes: int | None
) -> None:
    """Past the small-model cache (``cache_bytes=0`` here) the scan keeps of each model only its
    example count and its delta's from the base (``CountOnly``): the same bytes as the merge in
    memory, with and without ``--scale``, the same premise error naming the model, and with
    ``force`` the same warnings."""
    base, resumed = days
    for scale in (None, 0.5):
        expected = vwmerge.merge([vwmerge.load(p) for p in resumed], base=vwmerge.load(base), scale=scale).to_bytes()
        out = tmp_path / f"out-{scale}.model"
        merge_files(resumed, out, base=base, scale=scale, progress=False, cache_bytes=cache_bytes)
        assert out.read_bytes() == expected, scale
    day1, (day2, day3) = base, resumed
    with pytest.raises(vwmerge.MergeError, match="fewer than the base") as refused:
        merge_files([day1, day2], tmp_path / "wrong.model", base=day3, progress=False, cache_bytes=cache_bytes)
    assert str(day1) in str(refused.value) and str(day3) in str(refused.value)
    report = merge_files(
        [day1, day2], tmp_path / "forced.model", base=day3, force=True, progress=False, cache_bytes=cache_bytes
    )
    assert {w.fields["model"] for w in report.plan.warnings if "fewer examples" in w.event} == {str(day1), str(day2)}
