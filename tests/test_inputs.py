"""Inputs at scale: glob patterns (local paths, ``file://`` and ``memory://`` URLs) and
``--models-from`` lists, expanded by vwmerge in one place for the CLI and the library.

The CLI runs for real in a subprocess; every merged file is compared with the library's merge of
the files the expansion should have produced, in the order it should have produced them (explicit
unequal weights make the order matter).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import vwmerge
from helpers.cli import Run, assert_one_error, run_cli
from helpers.models import Models
from vwmerge.engine.streaming import merge_files


def library_merge(paths: list[Path], weights: list[float] | None = None, base: Path | None = None) -> bytes:
    return vwmerge.merge(
        [vwmerge.load(p) for p in paths], weights=weights, base=vwmerge.load(base) if base else None
    ).to_bytes()


def plan_models(run: Run) -> list[str]:
    assert run.returncode == 0, run.stderr
    return [m["path"] for m in json.loads(run.stdout)["models"]]


@pytest.fixture
def days(models: Models, tmp_path: Path) -> Path:
    """day1, day2, day3 (three different models) and day10 (a copy of day1) in one directory,
    plus what a pattern must not match: a hidden file and a directory whose name fits."""
    d = tmp_path / "data"
    d.mkdir()
    sources = [*models.inputs("", 3), models.inputs("", 1)[0]]
    for name, src in zip(["day1", "day2", "day3", "day10"], sources, strict=True):
        shutil.copyfile(src, d / f"{name}.model")
    shutil.copyfile(d / "day2.model", d / ".day9.model")
    (d / "day7.model").mkdir()
    return d


#: Plain string order of the full path: day10 sorts before day2.
ORDER = ["day1", "day10", "day2", "day3"]
WEIGHTS = [1.0, 2.0, 3.0, 4.0]


def in_order(d: Path, names: list[str] = ORDER) -> list[Path]:
    return [d / f"{n}.model" for n in names]


# --------------------------------------------------------------------------------------------
# Globs on the command line
@pytest.mark.parametrize("form", ["path", "relative", "file-url"])
def test_a_quoted_pattern_is_expanded_sorted_files_only(days: Path, tmp_path: Path, form: str) -> None:
    pattern = {
        "path": str(days / "day*.model"),
        "relative": "data/day*.model",
        "file-url": f"file://{days}/day*.model",
    }[form]
    out = tmp_path / "out.model"
    run = run_cli("merge", "-o", out, "--weights", "1,2,3,4", pattern, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == library_merge(in_order(days), WEIGHTS)
    plan = run_cli("check", "--json", pattern, cwd=tmp_path)
    expected = [str(p) for p in in_order(days)]
    if form == "relative":
        expected = [f"data/{n}.model" for n in ORDER]
    elif form == "file-url":
        expected = [f"file://{p}" for p in expected]
    assert plan_models(plan) == expected


def test_a_pattern_matching_nothing_is_one_error_naming_it(days: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.model"
    for pattern in [str(days / "week*.model"), f"file://{days}/week*.model"]:
        run = run_cli("merge", "-o", out, str(days / "day1.model"), pattern)
        assert_one_error(run, pattern, "no file matches")
        assert not out.exists()
    assert_one_error(run_cli("check", str(days / "day1.model"), str(days / "week?.model")), "week?.model")


def test_a_literal_name_with_magic_wins_over_the_pattern(days: Path, tmp_path: Path) -> None:
    # "day[1].model" as a pattern would match day1.model; the file literally named so is taken.
    literal = days / "day[1].model"
    shutil.copyfile(days / "day3.model", literal)
    out = tmp_path / "out.model"
    run = run_cli("merge", "-o", out, "--weights", "1,3", literal, days / "day2.model")
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == library_merge([literal, days / "day2.model"], [1, 3])
    assert plan_models(run_cli("check", "--json", literal, days / "day2.model"))[0] == str(literal)
    literal.unlink()  # now it is a pattern again, and matches day1.model
    assert plan_models(run_cli("check", "--json", literal, days / "day2.model"))[0] == str(days / "day1.model")


def test_the_output_is_a_name_never_a_pattern(days: Path) -> None:
    out = days / "merged[1]*.model"
    run = run_cli("merge", "-o", out, days / "day1.model", days / "day2.model")
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == library_merge([days / "day1.model", days / "day2.model"])


def test_weights_must_match_the_expanded_count(days: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.model"
    run = run_cli("merge", "-o", out, "--weights", "1,2", str(days / "day*.model"))
    line = assert_one_error(run, "--weights", "2 weights given for 4 models", "day1.model")
    assert "after expanding patterns" in line
    assert not out.exists()


def test_base_may_be_a_pattern_matching_exactly_one(models: Models, tmp_path: Path) -> None:
    base, resumed = models.resumed("")
    d = tmp_path / "round"
    d.mkdir()
    shutil.copyfile(base, d / "base-0.model")
    for i, p in enumerate(resumed):
        shutil.copyfile(p, d / f"client-{i}.model")
    out = tmp_path / "out.model"
    run = run_cli("merge", "-o", out, "--base", d / "base-*.model", d / "client-*.model")
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == library_merge([d / "client-0.model", d / "client-1.model"], base=d / "base-0.model")
    run = run_cli("merge", "-o", out, "--base", d / "client-*.model", d / "base-0.model")
    assert_one_error(run, "client-*.model", "matches 2 files", "--base takes exactly one")
    assert_one_error(run_cli("check", "--base", d / "none-*.model", d / "client-0.model"), "none-*.model", "no file")


# --------------------------------------------------------------------------------------------
# --models-from
def test_models_from_a_file_with_comments_blank_lines_and_patterns(days: Path, tmp_path: Path) -> None:
    hashed = days / "day#5.model"  # a '#' inside a name is part of it
    shutil.copyfile(days / "day2.model", hashed)
    listing = tmp_path / "round.txt"
    listing.write_text(
        f"# round 7: clients\n\n   {days / 'day3.model'}   \n  # an indented comment\n{hashed}\n"
        f"{days / 'day1*.model'}\r\n\n",
        encoding="utf-8",
    )
    expected = [days / "day2.model", days / "day3.model", hashed, days / "day1.model", days / "day10.model"]
    # MODEL arguments first, then the list's entries in order, a pattern expanded where it stands.
    plan = run_cli("check", "--json", "--models-from", listing, days / "day2.model")
    assert plan_models(plan) == [str(p) for p in expected]
    out = tmp_path / "out.model"
    weights = [5.0, 1.0, 2.0, 3.0, 4.0]
    run = run_cli("merge", "-o", out, "--weights", "5,1,2,3,4", "--models-from", listing, days / "day2.model")
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == library_merge(expected, weights)
    dry = run_cli("merge", "--dry-run", "--json", "--models-from", listing, days / "day2.model")
    assert plan_models(dry) == [str(p) for p in expected]


def test_models_from_standard_input_and_several_lists(days: Path, tmp_path: Path) -> None:
    second = tmp_path / "second.txt"
    second.write_text(f"file://{days}/day3.model\n", encoding="utf-8")
    out = tmp_path / "out.model"
    stdin = f"{days / 'day2.model'}\n# nothing else\n"
    run = run_cli("merge", "-o", out, "--weights", "1,2,3", "--models-from", "-", "--models-from", second,
              days / "day1.model", stdin=stdin)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == library_merge([days / "day1.model", days / "day2.model", days / "day3.model"], [1, 2, 3])
    # Only a list: no MODEL argument is needed.
    plan = run_cli("check", "--json", "--models-from", "-", stdin=f"{days / 'day*.model'}\n")
    assert plan_models(plan) == [str(p) for p in in_order(days)]


def test_models_from_errors(days: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.model"
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n", encoding="utf-8")
    assert_one_error(
        run_cli("merge", "-o", out, "--models-from", empty, days / "day1.model"), str(empty), "lists no model"
    )
    missing = tmp_path / "missing.txt"
    assert_one_error(run_cli("merge", "-o", out, "--models-from", missing), str(missing), "no such file")
    listing = tmp_path / "bad.txt"
    listing.write_text(f"{days / 'day1.model'}\n{days / 'nope*.model'}\n", encoding="utf-8")
    assert_one_error(run_cli("merge", "-o", out, "--models-from", listing), "nope*.model", "no file matches")
    missing_model = tmp_path / "missing-model.txt"
    missing_model.write_text(f"{days / 'day1.model'}\n{days / 'gone.model'}\n", encoding="utf-8")
    assert_one_error(run_cli("merge", "-o", out, "--models-from", missing_model), "gone.model", "no such file")
    assert not out.exists()
    run = run_cli("merge", "-o", out)  # neither MODEL nor --models-from: a usage error
    assert run.returncode == 2
    assert "--models-from" in run.stderr


# --------------------------------------------------------------------------------------------
# The library API
def test_library_expand_inputs_local(days: Path) -> None:
    assert vwmerge.expand_inputs([days / "day*.model"]) == [str(p) for p in in_order(days)]
    assert vwmerge.expand_inputs([days / ".day*.model"]) == [str(days / ".day9.model")]
    listing = days / "list.txt"
    listing.write_text(f"#\n{days / 'day3.model'}\n", encoding="utf-8")
    assert vwmerge.expand_inputs([days / "day2.model"], models_from=listing) == [
        str(days / "day2.model"),
        str(days / "day3.model"),
    ]
    with pytest.raises(vwmerge.VWMergeError, match="no file matches"):
        vwmerge.expand_inputs([days / "x*"])


def test_recursive_patterns_and_hidden_names_agree_across_file_systems(tmp_path: Path) -> None:
    """``**`` spans directories; a name starting with "." matches only a pattern that spells the
    dot; directories never match. The same for a local path, a ``file://`` URL and ``memory://``."""
    fsspec = pytest.importorskip("fsspec")
    names = ["a.model", "sub/b.model", "sub/deeper/c.model", ".hid/h.model", "sub/.x.model", ".hid/.y.model"]
    names += [".top.model", "dir.model/inside"]
    memory = fsspec.filesystem("memory")
    root = "/vwmerge-inputs-recursive"
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
        memory.pipe(f"{root}/{name}", b"x")
    try:
        for pattern, expected in [
            ("**/*.model", ["a.model", "sub/b.model", "sub/deeper/c.model"]),
            ("**/.*.model", [".top.model", "sub/.x.model"]),
            ("*/*.model", ["sub/b.model"]),
            (".*/*.model", [".hid/h.model"]),
            ("*/.*.model", ["sub/.x.model"]),
            ("*", ["a.model"]),
        ]:
            assert vwmerge.expand_inputs([f"{tmp_path}/{pattern}"]) == [f"{tmp_path}/{e}" for e in expected]
            assert vwmerge.expand_inputs([f"file://{tmp_path}/{pattern}"]) == [
                f"file://{tmp_path}/{e}" for e in expected
            ]
            assert vwmerge.expand_inputs([f"memory://{root}/{pattern}"]) == [f"memory://{root}/{e}" for e in expected]
    finally:
        memory.rm(root, recursive=True)


def test_library_memory_urls(days: Path, tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    root = "/vwmerge-inputs-test"
    try:
        for name in [*ORDER, ".day9"]:
            memory.pipe(f"{root}/{name}.model", (days / f"{name}.model").read_bytes())
        memory.mkdir(f"{root}/day7.model")
        memory.pipe(f"{root}/day7.model/inside", b"not a model")
        urls = vwmerge.expand_inputs([f"memory://{root}/day*.model"])
        assert urls == [f"memory://{root}/{n}.model" for n in ORDER]
        assert vwmerge.expand_inputs([f"memory://{root}/.day*"]) == [f"memory://{root}/.day9.model"]
        memory.pipe(f"{root}/list.txt", f"# round\n\nmemory://{root}/day3.model\n".encode())
        report = merge_files(
            [f"memory://{root}/day1*.model"], tmp_path / "out.model",
            models_from=[f"memory://{root}/list.txt"], weights=[1, 2, 3], progress=False,
        )  # fmt: skip
        assert report.models == 3
        expected = library_merge(in_order(days, ["day1", "day10", "day3"]), [1, 2, 3])
        assert (tmp_path / "out.model").read_bytes() == expected
        with pytest.raises(vwmerge.VWMergeError, match="no file matches") as e:
            merge_files([f"memory://{root}/week*.model"], tmp_path / "never.model", progress=False)
        assert str(e.value).startswith(f"memory://{root}/week*.model")
        assert not (tmp_path / "never.model").exists()
    finally:
        memory.rm(root, recursive=True)


# --------------------------------------------------------------------------------------------
# Many models
def test_two_thousand_models_from_a_list(models: Models, tmp_path: Path) -> None:
    sources = models.inputs("", 3)
    d = tmp_path / "fleet"
    d.mkdir()
    paths = []
    for i in range(2000):
        p = d / f"client-{i:04d}.model"
        shutil.copyfile(sources[i % 3], p)
        paths.append(p)
    listing = tmp_path / "fleet.txt"
    listing.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
    out = tmp_path / "out.model"
    run = run_cli("--log-format", "json", "merge", "-q", "-o", out, "--models-from", listing)
    assert run.returncode == 0, run.stderr
    merged = [e for e in run.log_events() if e["event"] == "merged"]
    assert merged[0]["models"] == 2000
    # The library merges the same 2000 models to the same bytes (VW's rule: 2000 inputs' counts).
    assert out.read_bytes() == library_merge(paths)
