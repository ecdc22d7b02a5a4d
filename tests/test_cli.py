"""The ``vwmerge`` command line, run for real: a subprocess per invocation, on models VW trains.

Every error path must end with exit status 1 and one ``Error:`` line on stderr that names the file
and the problem, no traceback (unless ``--debug``), no output or temporary file left behind and the
inputs untouched. Successful merges must give files VW loads and predicts with, and exactly the
bytes the library writes for the same request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import pytest
import vwmerge
from helpers import vwtrain
from helpers.cli import assert_one_error, json_event, run_cli
from helpers.models import Models

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("day*.model"))
ARGS = "-q ab"


# --------------------------------------------------------------------------------------------
# Running the CLI
def snapshot(paths: list[Path]) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


# --------------------------------------------------------------------------------------------
# Models
@attrs.frozen
class CliModels:
    a: Path
    b: Path
    c: Path
    bits17: Path
    other_options: Path
    truncated: Path
    bad_checksum: Path
    directory: Path
    high_row: Path

    @property
    def inputs(self) -> list[Path]:
        return [self.a, self.b, self.c]

    @property
    def all_files(self) -> list[Path]:
        return [
            *(self.a, self.b, self.c, self.bits17, self.other_options, self.truncated, self.bad_checksum),
            self.high_row,
        ]


@pytest.fixture(scope="session")
def cli_models(models: Models, tmp_path_factory: pytest.TempPathFactory) -> CliModels:
    root = tmp_path_factory.mktemp("cli")
    a, b, c = models.inputs(ARGS)
    bits17 = models.train(f"{ARGS} -b 17", 21, 30)
    other = models.train("--noconstant", 22, 30)
    data = a.read_bytes()
    truncated = root / "truncated.model"
    truncated.write_bytes(data[:-7])  # cuts into the last weight row
    header_len = len(vwmerge.load(a).header.to_bytes())
    corrupt = bytearray(data)
    corrupt[header_len - 1] ^= 0xFF  # the stored checksum's last byte
    bad_checksum = root / "bad_checksum.model"
    bad_checksum.write_bytes(bytes(corrupt))
    directory = root / "a_directory.model"
    directory.mkdir()
    # An 18-bit model whose last row (VW writes rows in ascending order) has index 2^20.
    table = gd_table(a)
    row = table.values.shape[1] * 4 + 4
    assert table.bits == 18 and data[-row : -row + 4] == int(table.index[-1]).to_bytes(4, "little")
    high_row = root / "high_row.model"
    high_row.write_bytes(data[:-row] + (1 << 20).to_bytes(4, "little") + data[-row + 4 :])
    return CliModels(a, b, c, bits17, other, truncated, bad_checksum, directory, high_row)


def gd_table(path: Path) -> vwmerge.WeightTable:
    return vwmerge.load(path).state("gd").table.canonical()


def example_count(path: Path) -> float:
    return vwmerge.load(path).state("gd").online.weighted_labeled_examples


# --------------------------------------------------------------------------------------------
# merge
def test_merge_console_script_writes_a_model_vw_loads(cli_models: CliModels, models: Models, tmp_path: Path) -> None:
    out = tmp_path / "merged.model"
    run = run_cli("merge", "-o", out, *cli_models.inputs, script=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # stdout is for command output; the summary is a log event
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.model"]  # no temp file left

    library = vwmerge.merge([vwmerge.load(p) for p in cli_models.inputs]).to_bytes()
    assert out.read_bytes() == library

    held_out = vwtrain.test_examples(ARGS)
    ours = vwtrain.predict(out, held_out)
    theirs = vwtrain.predict(models.vw_merged(cli_models.inputs), held_out)
    assert np.allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float), rtol=1e-5, atol=1e-6)

    (summary,) = [e for e in run.log_events() if e["event"] == "merged"]
    assert summary["level"] == "info"
    assert summary["models"] == 3
    assert summary["bytes_read"] == sum(p.stat().st_size for p in cli_models.inputs)
    assert summary["bytes_written"] == out.stat().st_size
    assert summary["peak_rss_mib"] > 0
    for phase in ("load_s", "merge_s", "save_s"):
        assert summary[phase] >= 0


def test_merge_json_report_and_overwrite_of_an_existing_output(cli_models: CliModels, tmp_path: Path) -> None:
    out = tmp_path / "merged.model"
    out.write_bytes(b"an older file")
    run = run_cli("merge", "--json", "-o", out, cli_models.a, cli_models.b)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report["phases"]) == {"load", "merge", "save"}
    assert report["bytes_written"] == out.stat().st_size == report["phases"]["save"]["bytes_written"]
    assert report["bytes_read"] == cli_models.a.stat().st_size + cli_models.b.stat().st_size
    vwmerge.load(out)  # replaced by a complete model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.model"]


def test_weights_forms_agree_and_weight_the_parameters(cli_models: CliModels, tmp_path: Path) -> None:
    a, b = cli_models.a, cli_models.b
    forms = {
        "comma": ["--weights", "3,1"],
        "space": ["--weights", "3 1"],
        "repeated": ["--weights", "3", "--weights", "1"],
        "reversed": ["--weights", "1,3"],
    }
    outputs = {}
    for name, opts in forms.items():
        out = tmp_path / f"{name}.model"
        run = run_cli("merge", "-o", out, *opts, a, b)
        assert run.returncode == 0, run.stderr
        outputs[name] = out.read_bytes()
    assert outputs["comma"] == outputs["space"] == outputs["repeated"]
    assert outputs["reversed"] != outputs["comma"]

    merged, ta, tb = gd_table(tmp_path / "comma.model"), gd_table(a), gd_table(b)
    union = np.union1d(ta.index, tb.index)
    dense = np.zeros((2, len(union), ta.k))
    dense[0][np.searchsorted(union, ta.index)] = ta.values
    dense[1][np.searchsorted(union, tb.index)] = tb.values
    expected = 0.75 * dense[0] + 0.25 * dense[1]
    keep = np.any(expected.astype(np.float32) != 0, axis=1)
    assert np.array_equal(merged.index, union[keep])
    assert np.allclose(merged.values, expected[keep], rtol=1e-6, atol=1e-7)


def test_no_normalize_uses_the_weights_as_given(cli_models: CliModels, tmp_path: Path) -> None:
    out = tmp_path / "sum.model"
    run = run_cli("merge", "--no-normalize", "--weights", "1,1", "-o", out, cli_models.a, cli_models.b)
    assert run.returncode == 0, run.stderr
    ta, tb, merged = gd_table(cli_models.a), gd_table(cli_models.b), gd_table(out)
    w_a = dict(zip(ta.index.tolist(), ta.column("w").tolist(), strict=True))
    w_b = dict(zip(tb.index.tolist(), tb.column("w").tolist(), strict=True))
    got = dict(zip(merged.index.tolist(), merged.column("w").tolist(), strict=True))
    for row in set(w_a) & set(w_b):
        assert got[row] == pytest.approx(w_a[row] + w_b[row], rel=1e-6)


def test_base_mode_matches_the_library(models: Models, tmp_path: Path) -> None:
    base, resumed = models.resumed(ARGS)
    out = tmp_path / "based.model"
    run = run_cli("merge", "-o", out, "-b", base, *resumed)  # -b: vw-merge's short --base
    assert run.returncode == 0, run.stderr
    expected = vwmerge.merge([vwmerge.load(p) for p in resumed], base=vwmerge.load(base)).to_bytes()
    assert out.read_bytes() == expected
    predictions = vwtrain.predict(out, vwtrain.test_examples(ARGS))
    assert all(np.isfinite(predictions))

    # One model and a base is a valid merge too.
    single = tmp_path / "single.model"
    assert run_cli("merge", "-o", single, "--base", base, resumed[0]).returncode == 0
    assert single.exists()


# --------------------------------------------------------------------------------------------
# dry run / check
def test_dry_run_text_plan(cli_models: CliModels, tmp_path: Path) -> None:
    out = tmp_path / "never.model"
    run = run_cli("merge", "--dry-run", "-o", out, *cli_models.inputs)
    assert run.returncode == 0, run.stderr
    assert not out.exists() and not any(tmp_path.iterdir())
    text = run.stdout
    assert "merge plan" in text and "result: OK" in text
    for p in cli_models.inputs:
        assert str(p) in text
    stack = [e.name for e in vwmerge.load(cli_models.a).stack]
    positions = [text.index(f"\n  {name}") for name in stack]
    assert positions == sorted(positions)  # listed top to bottom, as the model's stack
    gd_line = next(line for line in text.splitlines() if line.lstrip().startswith("gd (base learner)"))
    assert " merge " in gd_line
    counts = [example_count(p) for p in cli_models.inputs]
    for p, c in zip(cli_models.inputs, counts, strict=True):
        row = next(line for line in text.splitlines() if str(p) in line)
        assert f"{c / sum(counts):.6g}" in row.split()


def test_check_json_plan(cli_models: CliModels) -> None:
    run = run_cli("check", "--json", "--weights", "2,1,1", *cli_models.inputs)
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan["ok"] is True and plan["error"] is None
    assert [m["path"] for m in plan["models"]] == [str(p) for p in cli_models.inputs]
    assert [m["weight"] for m in plan["models"]] == pytest.approx([0.5, 0.25, 0.25])
    assert [m["examples"] for m in plan["models"]] == [example_count(p) for p in cli_models.inputs]
    ws = vwmerge.load(cli_models.a)
    assert [r["reduction"] for r in plan["stack"]] == [e.name for e in ws.stack]
    by_name = {r["reduction"]: r for r in plan["stack"]}
    assert by_name["gd"]["action"] == "merge" and by_name["gd"]["plugin"] == "gd"
    assert all(r["action"] == "none" for r in plan["stack"] if not r["section"])


def test_check_incompatible_models_exits_1_with_the_plan(cli_models: CliModels) -> None:
    run = run_cli("check", cli_models.a, cli_models.bits17)
    assert_one_error(run, str(cli_models.bits17), "bits differ")
    assert "result: ERROR" in run.stdout

    run = run_cli("merge", "--dry-run", "--json", cli_models.a, cli_models.other_options)
    assert_one_error(run, str(cli_models.other_options), "options differ")
    plan = json.loads(run.stdout)
    assert plan["ok"] is False and "options differ" in plan["error"]


# --------------------------------------------------------------------------------------------
# inspect, plugins, version, help
def test_inspect_text(cli_models: CliModels) -> None:
    run = run_cli("inspect", cli_models.a)
    assert run.returncode == 0, run.stderr
    ws = vwmerge.load(cli_models.a)
    text = run.stdout
    assert str(cli_models.a) in text
    assert f"version   {ws.header.version_text}" in text
    assert f"bits      {ws.header.bits} " in text
    assert "checksum  ok" in text
    for entry in ws.stack:
        assert entry.name in text
    rows = len(ws.state("gd").table)
    assert f"{rows:,} rows stored" in text
    assert f"weighted_labeled_examples      {ws.state('gd').online.weighted_labeled_examples:,.0f}" in text


def test_inspect_json(cli_models: CliModels) -> None:
    run = run_cli("inspect", "--json", cli_models.b)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    ws = vwmerge.load(cli_models.b)
    assert doc["header"]["bits"] == ws.header.bits
    assert doc["header"]["checksum"] == {"present": True, "ok": True, "value": ws.header.checksum()}
    assert [s["reduction"] for s in doc["stack"]] == [e.name for e in ws.stack]
    table = ws.state("gd").table
    assert doc["weights"]["rows"] == len(table)
    assert doc["weights"]["w"]["max"] == pytest.approx(float(table.column("w").max()))
    assert doc["counters"]["weighted_labeled_examples"] == ws.state("gd").online.weighted_labeled_examples


def test_plugins_text_and_json() -> None:
    run = run_cli("plugins", "--json")
    registry = vwmerge.Registry(vwmerge.make_plugin_manager())  # fresh: what the subprocess found
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert [p["name"] for p in doc["plugins"]] == [p.name for p in registry.plugins()]
    gd = next(p for p in doc["plugins"] if p["name"] == "gd")
    assert gd["distribution"] == "vwmerge" and gd["builtin"] is True
    assert "gd" in gd["reductions"] and "vwmerge_merge" in gd["hooks"]

    text = run_cli("plugins")
    assert text.returncode == 0
    assert "overrides" in text.stdout
    for p in registry.plugins():
        assert f"{p.name}  ({p.distribution}" in text.stdout


def test_version() -> None:
    run = run_cli("--version")
    assert run.returncode == 0
    assert run.stdout.strip() == f"vwmerge {vwmerge.__version__}"


@pytest.mark.parametrize("command", ["", "merge", "check", "inspect", "plugins"])
def test_help_teaches(command: str) -> None:
    run = run_cli(*([command] if command else []), "--help")
    assert run.returncode == 0 and run.stderr == ""
    assert "Usage: vwmerge" in run.stdout
    assert "\n    vwmerge " in run.stdout  # an example invocation
    if command in ("merge", "check"):
        assert "Default weighting" in run.stdout
    if command == "":
        assert "By default models are weighted" in run.stdout


def test_usage_errors_exit_2(cli_models: CliModels) -> None:
    run = run_cli("merge", cli_models.a, cli_models.b)  # no -o
    assert run.returncode == 2 and "--output" in run.stderr
    assert run_cli("merge", "--frobnicate", "-o", "x", cli_models.a).returncode == 2


# --------------------------------------------------------------------------------------------
# Error paths
ErrorCase = Callable[[CliModels, Path], tuple[list[str | Path], list[str]]]

ERRORS: dict[str, ErrorCase] = {
    "missing file": lambda m, out: (
        ["merge", "-o", out, m.a, m.a.parent / "no_such.model"],
        ["no_such.model", "no such file"],
    ),
    "directory": lambda m, out: (["merge", "-o", out, m.a, m.directory], [m.directory.name, "is a directory"]),
    "truncated": lambda m, out: (["merge", "-o", out, m.a, m.truncated], [m.truncated.name, "truncated"]),
    "bad checksum": lambda m, out: (["merge", "-o", out, m.bad_checksum, m.a], [m.bad_checksum.name, "checksum"]),
    "incompatible bits": lambda m, out: (["merge", "-o", out, m.a, m.bits17], [m.bits17.name, "bits differ"]),
    "incompatible options": lambda m, out: (
        ["merge", "-o", out, m.a, m.other_options],
        [m.other_options.name, "options differ"],
    ),
    "one model only": lambda m, out: (["merge", "-o", out, m.a], [m.a.name, "at least two models"]),
    "bad weights": lambda m, out: (["merge", "-o", out, "--weights", "1,x", m.a, m.b], ["--weights", "'x'"]),
    "weight count": lambda m, out: (
        ["merge", "-o", out, "--weights", "1,2,3", m.a, m.b],
        ["--weights", "3 weights", "2 models"],
    ),
    "non-finite weight": lambda m, out: (
        ["merge", "-o", out, "--weights", "inf,1", m.a, m.b],
        ["--weights: ", m.a.name, "finite"],
    ),
    "nan weight": lambda m, out: (
        ["merge", "-o", out, "--weights", "1,nan", m.a, m.b],
        ["--weights: ", m.b.name, "nan"],
    ),
    "weights sum to zero": lambda m, out: (
        ["merge", "-o", out, "--weights", "0,0", m.a, m.b],
        ["--weights: ", m.a.name, m.b.name, "sum to 0"],
    ),
    "row index beyond bits": lambda m, out: (
        ["merge", "-o", out, m.a, m.high_row],
        [m.high_row.name, f"row index {1 << 20} is not below 2^18"],
    ),
    "output is an input": lambda m, out: (["merge", "-o", m.b, m.a, m.b], [m.b.name, "refusing to overwrite"]),
    "output is the base": lambda m, out: (
        ["merge", "-o", m.a, "--base", m.a, m.b],
        [m.a.name, "base model", "refusing"],
    ),
    "output dir missing": lambda m, out: (
        ["merge", "-o", out.parent / "nowhere" / "x.model", m.a, m.b],
        ["nowhere", "does not exist"],
    ),
    "output is a directory": lambda m, out: (["merge", "-o", out.parent, m.a, m.b], [out.parent.name, "directory"]),
    "inspect missing": lambda m, out: (["inspect", m.a.parent / "gone.model"], ["gone.model", "no such file"]),
    "inspect truncated": lambda m, out: (["inspect", m.truncated], [m.truncated.name, "truncated"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_is_one_line_and_leaves_nothing(case: str, cli_models: CliModels, tmp_path: Path) -> None:
    before = snapshot(cli_models.all_files)
    args, needles = ERRORS[case](cli_models, tmp_path / "out.model")
    run = run_cli(*args)
    assert_one_error(run, *map(str, needles))
    assert run.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file
    assert snapshot(cli_models.all_files) == before  # inputs untouched (bytes and mtime)


@pytest.mark.parametrize("case", [c for c in ERRORS if not c.startswith("inspect")])
def test_check_fails_exactly_like_the_merge(case: str, cli_models: CliModels, tmp_path: Path) -> None:
    """docs/cli.md: the exit status of check is the one the merge would have, with its Error line."""
    args, needles = ERRORS[case](cli_models, tmp_path / "out.model")
    assert args[0] == "merge"
    merged = assert_one_error(run_cli(*args), *map(str, needles))
    for dry in (["check", *args[1:]], [*args, "--dry-run"]):
        run = run_cli(*dry)
        assert assert_one_error(run, *map(str, needles)) == merged
        assert f"result: ERROR: {merged.removeprefix('Error: ')}" in run.stdout or run.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_output_hard_linked_to_an_input_is_refused(cli_models: CliModels, tmp_path: Path) -> None:
    link = tmp_path / "alias.model"
    os.link(cli_models.b, link)
    before = snapshot([cli_models.b])
    assert_one_error(run_cli("merge", "-o", link, cli_models.a, cli_models.b), "alias.model", "refusing")
    assert snapshot([cli_models.b]) == before
    assert [p.name for p in tmp_path.iterdir()] == ["alias.model"]


def test_same_file_under_other_names_is_refused(cli_models: CliModels, tmp_path: Path) -> None:
    """An input reached through a symlinked directory is the input (checked by inode, one stat per
    input); a report and an output that do not exist yet are the same file under two spellings."""
    (tmp_path / "via").symlink_to(cli_models.b.parent, target_is_directory=True)
    alias = tmp_path / "via" / cli_models.b.name
    before = snapshot([cli_models.b])
    assert_one_error(run_cli("merge", "-o", alias, cli_models.a, cli_models.b), cli_models.b.name, "refusing")
    assert snapshot([cli_models.b]) == before
    out = tmp_path / "out.model"
    run = run_cli("merge", "-o", out, "--report", f"{tmp_path}/./out.model", cli_models.a, cli_models.b)
    assert_one_error(run, "out.model", "is also the output")
    assert not out.exists()


def test_unwritable_output_directory(cli_models: CliModels, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        target = tmp_path / "locked"
        target.mkdir()
        target.chmod(0o500)
    else:  # root writes anywhere permissions allow nothing; sysfs still refuses new files
        target = Path("/sys")
        probe = run_cli("merge", "-o", target / "probe.model", "--dry-run", cli_models.a, cli_models.b)
        if probe.returncode != 0 or not os.access(target, os.W_OK):
            pytest.skip("no directory that refuses writes is available")
    try:
        run = run_cli("merge", "-o", target / "out.model", cli_models.a, cli_models.b)
        assert_one_error(run, str(target / "out.model"), "cannot write")
        assert not any(p.name.startswith((".out.model", "out.model")) for p in target.iterdir())
    finally:
        if target != Path("/sys"):
            target.chmod(0o700)


def test_failed_merge_keeps_an_existing_output(cli_models: CliModels, tmp_path: Path) -> None:
    out = tmp_path / "out.model"
    out.write_bytes(b"yesterday's model")
    assert_one_error(run_cli("merge", "-o", out, cli_models.a, cli_models.bits17), "bits differ")
    assert out.read_bytes() == b"yesterday's model"
    assert [p.name for p in tmp_path.iterdir()] == ["out.model"]


def test_debug_shows_the_traceback(cli_models: CliModels, tmp_path: Path) -> None:
    run = run_cli("--debug", "merge", "-o", tmp_path / "o.model", cli_models.a, cli_models.truncated)
    assert run.returncode == 1
    assert "Traceback (most recent call last)" in run.stderr
    assert "ModelFormatError" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(f"Error: {cli_models.truncated}")
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# Logging
def test_log_format_json_lines_on_stderr(cli_models: CliModels, tmp_path: Path) -> None:
    run = run_cli("--log-format", "json", "merge", "-o", tmp_path / "o.model", cli_models.a, cli_models.b)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines and all(json_event(line) is not None for line in lines)
    events = [json.loads(line) for line in lines]
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)
    assert "merged" in [e["event"] for e in events]


def test_log_format_console_and_level(cli_models: CliModels, tmp_path: Path) -> None:
    run = run_cli("--log-format", "console", "merge", "-o", tmp_path / "o.model", cli_models.a, cli_models.b)
    assert run.returncode == 0
    assert "merged" in run.stderr and all(json_event(line) is None for line in run.stderr.splitlines())
    quiet = run_cli("--log-level", "warning", "merge", "-o", tmp_path / "p.model", cli_models.a, cli_models.b)
    assert quiet.returncode == 0 and "merged" not in quiet.stderr


def test_warnings_from_the_core_pass_through(models: Models, tmp_path: Path) -> None:
    """Predict-only models record no example count: the core warns and weights them equally."""
    a, b = (models.train(f"{ARGS} --predict_only_model", s, 30) for s in (31, 32))
    run = run_cli("merge", "-o", tmp_path / "o.model", a, b)
    assert run.returncode == 0, run.stderr
    warnings = [e for e in run.log_events() if e["level"] == "warning"]
    assert warnings and any("equally" in e["event"] for e in warnings)
    plan = json.loads(run_cli("check", "--json", a, b).stdout)
    assert [w["event"] for w in plan["warnings"]] == [w["event"] for w in warnings]
    assert [m["weight"] for m in plan["models"]] == [0.5, 0.5]


# --------------------------------------------------------------------------------------------
# The shipped examples and the README's quick start
def test_examples_are_small_compatible_models() -> None:
    assert [p.name for p in EXAMPLES] == ["day1.model", "day2.model", "day3.model"]
    loaded = [vwmerge.load(p) for p in EXAMPLES]
    assert all(p.stat().st_size < 16_384 for p in EXAMPLES)
    assert len({ws.options.configuration() for ws in loaded}) == 1
    assert len({example_count(p) for p in EXAMPLES}) == 3  # different days, different traffic
    assert sum(1 for e in loaded[0].stack if e.section) >= 2  # a reduction with state besides gd


def test_readme_quick_start(tmp_path: Path) -> None:
    merged = tmp_path / "merged.model"
    run = run_cli("merge", "-o", "merged.model", *EXAMPLES, script=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    shown = run_cli("inspect", "merged.model", script=True, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    events = sum(int(vwmerge.load(p).state("cb_adf").counters[:, 0].sum()) for p in EXAMPLES)
    assert f"event_sum={events:,}" in shown.stdout
    assert "gd (base learner)" in shown.stdout and "checksum  ok" in shown.stdout
    adf = "shared |User time=morning device=mobile\n|Article topic=sports\n|Article topic=politics\n|Article topic=tech"
    (pmf,) = vwtrain.predict(merged, [adf])
    assert len(pmf) == 3 and sum(pmf) == pytest.approx(1.0, abs=1e-5)
