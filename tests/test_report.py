"""Provenance: ``vwmerge merge --report``/``--json`` and ``vwmerge verify``, run for real.

The report's digests are checked against :mod:`hashlib` over the files themselves, its weights
and counts against the models VW trained, its plan against the merged file's stack; ``verify``
must pass on untouched files and name the first file that changed. Hashing must not read any
file once more than the merge does (counted with Python's audit hook on ``open``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import vwmerge
from helpers.cli import assert_one_error as one_error
from helpers.cli import run_cli as cli
from helpers.models import Models
from vwmerge.cli.render import json_chunks, to_json
from vwmerge.engine.pipeline import MergeRequest, run_merge

ARGS = "-q ab"  # gd with adaptive sums: the exact merge reads every input twice (two passes)
SCHEMA = "vwmerge-report/1"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def copies(paths: list[Path], where: Path) -> list[Path]:
    """Private copies of session-cached models, so a test may change them."""
    where.mkdir(exist_ok=True)
    out = []
    for p in paths:
        out.append(where / p.name)
        shutil.copyfile(p, out[-1])
    return out


def count(path: Path) -> float:
    return float(vwmerge.load(path).state("gd").online.weighted_labeled_examples)


def check_record(record: dict[str, Any], path: Path) -> None:
    assert record["size"] == path.stat().st_size
    assert record["sha256"] == sha256(path)


# --------------------------------------------------------------------------------------------
def test_report_records_inputs_plan_and_output_and_json_is_the_same_document(models: Models, tmp_path: Path) -> None:
    paths = copies(models.inputs(ARGS), tmp_path / "in")
    out, report = tmp_path / "merged.model", tmp_path / "merged.report.json"
    before = datetime.datetime.now(datetime.timezone.utc)
    run = cli("merge", "--json", "--report", report, "-o", out, *paths)
    assert run.returncode == 0, run.stderr
    doc = json.loads(report.read_text())
    assert json.loads(run.stdout) == doc  # --json prints the report itself

    assert doc["schema"] == SCHEMA
    assert doc["vwmerge_version"] == vwmerge.__version__
    assert doc["argv"][-len(paths) - 5 :] == ["--json", "--report", str(report), "-o", str(out), *map(str, paths)]
    started = datetime.datetime.fromisoformat(doc["started"].replace("Z", "+00:00"))
    assert started.tzinfo is not None and before - datetime.timedelta(seconds=1) <= started
    assert started <= datetime.datetime.now(datetime.timezone.utc)

    assert [i["url"] for i in doc["inputs"]] == [str(p) for p in paths]
    for record, p in zip(doc["inputs"], paths, strict=True):
        check_record(record, p)
        assert record["examples"] == count(p)
    counts = [count(p) for p in paths]
    assert [i["weight"] for i in doc["inputs"]] == pytest.approx([c / sum(counts) for c in counts])
    assert sum(i["weight"] for i in doc["inputs"]) == pytest.approx(1.0)
    assert doc["base"] is None
    assert doc["output"]["url"] == str(out)
    check_record(doc["output"], out)

    merged = vwmerge.load(out)
    assert [s["reduction"] for s in doc["stack"]] == [e.name for e in merged.stack]
    by_name = {s["reduction"]: s for s in doc["stack"]}
    gd = by_name["gd"]
    assert (gd["plugin"], gd["distribution"], gd["version"]) == ("gd", "vwmerge", vwmerge.__version__)
    assert gd["action"] == "merge" and gd["streamed"] is True and gd["outcome"]["result"] == "merged"
    for s in doc["stack"]:
        assert (s["action"] == "none") == (not s["section"])

    # timings and memory, as the summary log event has them
    assert set(doc["phases"]) == {"load", "merge", "save"}
    assert doc["bytes_written"] == out.stat().st_size
    assert doc["bytes_reread"] == 0  # small inputs: parsed once by the scan, kept for every pass
    assert doc["peak_rss_bytes"] > 0

    ok = cli("verify", report)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: 1 file matches")
    ok = cli("verify", "--inputs", report)
    assert ok.returncode == 0 and ok.stdout.startswith(f"OK: {len(paths) + 1} files match"), ok.stderr
    assert vwmerge.verify(str(report), inputs=True) is None

    flip_byte(paths[1], paths[1].stat().st_size - 3)
    assert cli("verify", report).returncode == 0  # the output alone still matches
    one_error(cli("verify", "--inputs", report), str(paths[1]), "sha256 differs", "input 2")

    flip_byte(out, out.stat().st_size // 2)
    one_error(cli("verify", report), str(out), "sha256 differs", "output")
    with out.open("ab") as f:
        f.write(b"\0")
    one_error(cli("verify", report), str(out), "size differs", "output")
    out.unlink()
    one_error(cli("verify", report), str(out), "no such file")


def test_base_mode_is_recorded_and_verified(models: Models, tmp_path: Path) -> None:
    base_path, resumed = models.resumed(ARGS)
    base, *paths = copies([base_path, *resumed], tmp_path / "in")
    out, report = tmp_path / "merged.model", tmp_path / "r.json"
    run = cli("merge", "--report", report, "--base", base, "-o", out, *paths)
    assert run.returncode == 0, run.stderr
    doc = json.loads(report.read_text())
    assert doc["base"]["url"] == str(base)
    check_record(doc["base"], base)
    assert doc["base"]["examples"] == count(base)
    assert "weight" not in doc["base"]
    for record, p in zip(doc["inputs"], paths, strict=True):
        check_record(record, p)
    deltas = [count(p) - count(base) for p in paths]  # base mode weights each model's delta
    assert [i["weight"] for i in doc["inputs"]] == pytest.approx([d / sum(deltas) for d in deltas])
    assert "difference from the base" in doc["settings"]["weighting"]
    gd = {s["reduction"]: s for s in doc["stack"]}["gd"]
    assert gd["action"] == "merge deltas" and gd["outcome"]["result"] == "merged deltas"
    check_record(doc["output"], out)

    assert cli("verify", "--inputs", report).returncode == 0
    flip_byte(base, 50)
    one_error(cli("verify", "--inputs", report), str(base), "(base)")


def test_relative_paths_verify_from_anywhere(models: Models, tmp_path: Path) -> None:
    work = tmp_path / "work"
    paths = copies(models.inputs(ARGS, 2), work)
    run = cli("merge", "--report", "r.json", "-o", "m.model", *(p.name for p in paths), cwd=work)
    assert run.returncode == 0, run.stderr
    doc = json.loads((work / "r.json").read_text())
    assert [i["url"] for i in doc["inputs"]] == [p.name for p in paths] and doc["cwd"] == str(work)
    assert cli("verify", "--inputs", work / "r.json", cwd=tmp_path).returncode == 0


def test_jobs_workers_hash_what_they_read(models: Models, tmp_path: Path) -> None:
    paths = copies(models.inputs(ARGS), tmp_path / "in")
    run = cli("merge", "--json", "--jobs", "2", "-q", "-o", tmp_path / "m.model", *paths)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["settings"]["executor"] == "processes"
    for record, p in zip(doc["inputs"], paths, strict=True):
        check_record(record, p)
    check_record(doc["output"], tmp_path / "m.model")


def test_bad_reports_are_one_line_errors(models: Models, tmp_path: Path) -> None:
    paths = models.inputs(ARGS, 2)
    one_error(cli("verify", tmp_path / "missing.json"), "missing.json", "no such report file")
    one_error(cli("verify", tmp_path), str(tmp_path), "is a directory")
    (tmp_path / "text.json").write_text("not json {")
    one_error(cli("verify", tmp_path / "text.json"), "text.json", "not a JSON document")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "vwmerge-report/99"}))
    one_error(cli("verify", tmp_path / "other.json"), "unknown report schema 'vwmerge-report/99'")
    (tmp_path / "plain.json").write_text("[1, 2]")
    one_error(cli("verify", tmp_path / "plain.json"), "not a vwmerge report")
    (tmp_path / "partial.json").write_text(json.dumps({"schema": SCHEMA, "output": {"url": "x"}}))
    one_error(cli("verify", tmp_path / "partial.json"), "invalid report", "output")
    # --report may not overwrite a model, and needs a directory that exists
    out = tmp_path / "m.model"
    one_error(cli("merge", "--report", out, "-o", out, *paths), "is also the output")
    one_error(cli("merge", "--report", paths[0], "-o", out, *paths), "is also an input")
    one_error(cli("merge", "--report", tmp_path / "no" / "r.json", "-o", out, *paths), "does not exist")
    assert not out.exists()


def test_library_run_merge_and_verify(models: Models, tmp_path: Path) -> None:
    paths = [str(p) for p in copies(models.inputs(ARGS, 2), tmp_path / "in")]
    out = str(tmp_path / "m.model")
    report = run_merge(MergeRequest(paths, out, weights=(3, 1), provenance=True), argv=["my-pipeline", "round-7"])
    doc = report.to_provenance()
    assert doc["schema"] == SCHEMA and doc["argv"] == ["my-pipeline", "round-7"]
    assert doc["settings"]["weights"] == [3.0, 1.0]
    assert [i["weight"] for i in doc["inputs"]] == [0.75, 0.25]
    assert vwmerge.verify(doc, inputs=True) is None
    flip_byte(Path(paths[0]), 10)
    bad = vwmerge.verify(doc, inputs=True)
    assert bad is not None and bad.url == paths[0] and bad.role == "input 1"
    plain = run_merge(MergeRequest(paths[1:], out, base=paths[1]))
    with pytest.raises(vwmerge.MergeError, match="recorded no provenance"):
        plain.to_provenance()


def test_the_streamed_document_is_the_whole_one(models: Models, tmp_path: Path) -> None:
    """``--report``/``--json`` stream the document (one input's record made at a time, the text
    written in pieces): the same text as the document made whole."""
    paths = [str(p) for p in copies(models.inputs(ARGS, 3), tmp_path / "in")]
    report = run_merge(MergeRequest(paths, str(tmp_path / "m.model"), provenance=True))
    lazy = report.to_provenance(lazy=True)
    assert len(lazy["inputs"]) == 3 and lazy["inputs"]
    streamed = "".join(json_chunks(lazy, size=64))
    assert streamed == to_json(report.to_provenance())
    assert [i["url"] for i in json.loads(streamed)["inputs"]] == paths


# --------------------------------------------------------------------------------------------
# No extra read: every open() of an input, counted by an audit hook in the vwmerge process.
_COUNTING = textwrap.dedent(
    """
    import collections, json, runpy, sys
    opened = collections.Counter()
    def hook(event, args):
        if event == "open" and isinstance(args[0], str):
            opened[args[0]] += 1
    sys.addaudithook(hook)
    sys.argv = ["vwmerge", *sys.argv[1:]]
    try:
        runpy.run_module("vwmerge", run_name="__main__")
    except SystemExit as e:
        assert not e.code, e.code
    finally:
        print(json.dumps(opened), file=sys.stderr)
    """
)


def _opens_and_summary(*args: str | Path) -> tuple[dict[str, int], dict[str, Any]]:
    run = subprocess.run(
        [sys.executable, "-c", _COUNTING, *map(str, args)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    (summary,) = [e for e in lines if e.get("event") == "merged"]
    return lines[-1], summary


@pytest.mark.parametrize("base_mode", [False, True], ids=["plain", "base"])
def test_hashing_reads_no_file_once_more(models: Models, tmp_path: Path, base_mode: bool) -> None:
    if base_mode:
        base_path, resumed = models.resumed(ARGS)
        base, *paths = copies([base_path, *resumed], tmp_path / "in")
        extra: list[str | Path] = ["--base", base]
    else:
        paths = copies(models.inputs(ARGS), tmp_path / "in")
        base, extra = None, []
    watched = [str(p) for p in [*paths, *([base] if base else [])]]
    plain_opens, plain = _opens_and_summary("merge", "-o", tmp_path / "a.model", *extra, *paths)
    report = tmp_path / "r.json"
    hashed_opens, hashed = _opens_and_summary("merge", "--report", report, "-o", tmp_path / "b.model", *extra, *paths)
    assert {p: hashed_opens.get(p, 0) for p in watched} == {p: plain_opens.get(p, 0) for p in watched}
    # a small input is read once, whole, by the scan and kept parsed for every pass; the base is
    # scanned, then read for each pass and once more to add the merged delta to it
    assert all(plain_opens[str(p)] == 1 for p in paths), plain_opens
    assert base is None or plain_opens[str(base)] >= 3, plain_opens
    assert plain["bytes_read"] == hashed["bytes_read"]
    assert plain.get("bytes_reread") == hashed.get("bytes_reread")
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
    doc = json.loads(report.read_text())  # and the digests are right: each file hashed exactly once
    for record, p in zip(doc["inputs"], paths, strict=True):
        check_record(record, p)
    if base is not None:
        check_record(doc["base"], base)


def test_a_streamed_plugin_warning_reaches_the_report(models: Models, tmp_path: Path) -> None:
    """gd's finalize (run by the sequential executor in this process) warns about pending --l1/--l2
    truncation through context.warn: the gd step's outcome carries it, and so do the warnings."""
    paths = copies(models.inputs("--l1 1e-4 --l2 1e-3"), tmp_path / "in")
    run = cli("merge", "--json", "-o", tmp_path / "m.model", *paths)
    assert run.returncode == 0, run.stderr
    logged = [json.loads(line) for line in run.stderr.splitlines() if "truncation" in line]
    doc = json.loads(run.stdout)
    gd = {s["reduction"]: s for s in doc["stack"]}["gd"]
    assert [w["event"] for w in gd["outcome"]["warnings"]] == [e["event"] for e in logged] != []
    assert [w["event"] for w in doc["warnings"]] == [e["event"] for e in logged]


def test_patterns_and_lists_are_recorded_as_the_files_they_stand_for(models: Models, tmp_path: Path) -> None:
    paths = sorted(copies(models.inputs(ARGS), tmp_path / "in"))
    listing = tmp_path / "list.txt"
    listing.write_text(f"# round 7\n{paths[2]}\n")
    report = tmp_path / "r.json"
    run = cli("merge", "--report", report, "-o", tmp_path / "m.model", tmp_path / "in" / "*.model",
              "--models-from", listing)  # fmt: skip
    assert run.returncode == 0, run.stderr
    doc = json.loads(report.read_text())
    assert [i["url"] for i in doc["inputs"]] == [*map(str, paths), str(paths[2])]
    for record, p in zip(doc["inputs"], [*paths, paths[2]], strict=True):
        check_record(record, p)
    one_error(cli("merge", "--report", paths[0], "-o", tmp_path / "n.model", tmp_path / "in" / "*.model"),
              str(paths[0]), "is also an input")  # fmt: skip
