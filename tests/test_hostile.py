"""Hostile inputs (issue 8, item 4): every one gives a VWMergeError from the library and, from the
CLI, exit 1 with one ``Error:`` line naming the file, promptly and in bounded memory.

Each case starts from a real VW 9.11.9 model and damages it the way a fuzzing campaign found
(tests/fuzz/): option values that are not finite integers, sizes that would be allocated before
being checked, non-finite rows, counters that overflow, tree links that form a cycle, numbers too
large to print, and files that are not regular files or cannot be opened or mapped.
"""

from __future__ import annotations

import errno
import math
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import attrs
import numpy as np
import pytest
import vwmerge
from helpers.cli import assert_one_error, run_cli
from helpers.configs import BOTTOM_CONFIGS
from helpers.models import Models
from helpers.zoo import train_file
from vwmerge.cli.render import fmt_value, jsonable, render_inspect, to_json
from vwmerge.format.binio import Reader, Writer
from vwmerge.format.header import Header
from vwmerge.model.files import os_error

BY_ARGS = {c.args: c for c in BOTTOM_CONFIGS}

#: What loading a small hostile file may allocate, at most (the claims run to gigabytes).
MAX_ALLOCATION = 4 << 20


def rewrite_header(path: Path, out: Path, **changes: object) -> Path:
    """``path`` with header fields changed (``options=`` text, or Header fields); the checksum
    is recomputed, so only the changed field is wrong."""
    data = path.read_bytes()
    r = Reader(data)
    header = Header.read(r)
    if "options" in changes:
        changes["options_raw"] = str(changes.pop("options")).encode() + b"\0"
    out.write_bytes(attrs.evolve(header, **changes).to_bytes() + data[r.pos :])  # type: ignore[arg-type]
    return out


def with_option(path: Path, out: Path, name: str, value: str) -> Path:
    """``path`` with option ``--name`` set to ``value`` (replaced if present, else appended)."""
    ws = vwmerge.load(path)
    items = [(n, v) for n, v in ws.options if n != name] + [(name, value)]
    return rewrite_header(path, out, options=vwmerge.Options(tuple(items)).to_text())


def load_error(source: Path | bytes, *needles: str) -> str:
    """Loading fails with a VWMergeError naming each needle, allocating little on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(vwmerge.VWMergeError) as info:
            vwmerge.load(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_ALLOCATION, peak
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def cli_errors(path: Path, partner: Path, tmp_path: Path, *needles: str) -> None:
    """inspect, check and merge each exit 1 with one line naming ``path`` (and the needles)."""
    out = tmp_path / "merged.model"
    for args in (["inspect", path], ["check", path, partner], ["merge", "-o", out, path, partner]):
        assert_one_error(run_cli(*args), str(path), *needles)
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# Option values
@pytest.mark.parametrize(
    ("args", "option", "value", "problem"),
    [
        ("--oaa 3", "oaa", "inf", "is not an integer"),
        ("--oaa 3", "oaa", "nan", "is not an integer"),
        ("--oaa 3", "oaa", "-1", "is out of range"),
        ("--oaa 3", "oaa", "99999999999999999999", "is out of range"),
        ("", "random_seed", "inf", "is not an integer"),
        ("--rank 2 -q ab -b 10", "rank", "1e9", "is not an integer"),
        ("--recall_tree 4", "max_depth", "1e12", "is not an integer"),
        ("--recall_tree 4", "max_depth", "100000", "is out of range"),
        ("--ftrl", "ftrl_alpha", "inf", "is not a finite number"),
        ("--ftrl", "ftrl_alpha", "0", "is 0"),
        ("--lrq ab2", "lrq", "ab" + "9" * 5000, "has a rank above"),
    ],
)
def test_option_values_that_are_not_finite_integers_are_refused(
    models: Models, tmp_path: Path, args: str, option: str, value: str, problem: str
) -> None:
    src, partner = models.inputs(args, 2)
    bad = with_option(src, tmp_path / "bad.model", option, value)
    if option == "ftrl_alpha":  # read when the merge fits the FTRL constants
        twin = tmp_path / "twin.model"
        twin.write_bytes(bad.read_bytes())
        with pytest.raises(vwmerge.VWMergeError, match=problem) as info:
            vwmerge.merge([vwmerge.load(bad), vwmerge.load(twin)])
        assert str(info.value).startswith(f"{bad}: option --ftrl_alpha")
        for args in (["check", bad, twin], ["merge", "-o", tmp_path / "o.model", bad, twin]):
            assert_one_error(run_cli(*args), str(bad), "--ftrl_alpha", problem)
        return
    message = load_error(bad, str(bad), f"--{option}", problem)
    assert len(message.splitlines()) == 1
    cli_errors(bad, partner, tmp_path, f"--{option}")


def test_a_rank_larger_than_the_rows_is_refused_before_allocating(models: Models, tmp_path: Path) -> None:
    """--rank 1000000000 is an integer, but its rows (8 GB each) cannot be in the file."""
    src, partner = models.inputs("--rank 2 -q ab -b 10", 2)
    bad = with_option(src, tmp_path / "bad.model", "rank", "1000000000")
    load_error(bad, str(bad), "--rank 1000000000 means rows of 2000000001 floats")
    cli_errors(bad, partner, tmp_path, "rows of 2000000001 floats")


def test_lda_header_field_0xffffffff_is_refused_before_allocating(models: Models, tmp_path: Path) -> None:
    cfg = BY_ARGS["--lda 3 -b 8"]
    src = train_file(cfg, 5, 30, tmp_path / "lda.model")
    partner = train_file(cfg, 6, 30, tmp_path / "lda2.model")
    bad = rewrite_header(src, tmp_path / "bad.model", lda=0xFFFF_FFFF)
    load_error(bad, str(bad), "the header's lda field means rows of 4294967295 floats")
    cli_errors(bad, partner, tmp_path, "lda field")


# --------------------------------------------------------------------------------------------
# Non-finite weights
def _poison(path: Path, out: Path, value: float, row: int = 1) -> tuple[Path, int]:
    """``path`` with the ``row``-th stored row's first float set to ``value``; returns its index."""
    ws = vwmerge.load(path)
    table = ws.states[-1].table
    values = np.array(table.values)
    values[row, 0] = value
    poisoned = attrs.evolve(ws.states[-1], table=attrs.evolve(table, values=values))
    out.write_bytes(attrs.evolve(ws, states=(*ws.states[:-1], poisoned)).to_bytes())
    return out, int(table.index[row])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_weight_is_refused_naming_file_and_row(models: Models, tmp_path: Path, value: float) -> None:
    src, partner = models.inputs("", 2)
    bad, row = _poison(src, tmp_path / "bad.model", value)
    load_error(bad, str(bad), f"row {row} holds {value}", "column 'w'", "allow_nonfinite")
    out = tmp_path / "merged.model"
    for args in (["inspect", bad], ["merge", "-o", out, bad, partner], ["merge", "-o", out, partner, bad]):
        assert_one_error(run_cli(*args), str(bad), f"row {row}")
    assert not out.exists()
    # A dry run reads no weight rows (that is what makes it fast), so it cannot see the value.
    assert run_cli("check", bad, partner).returncode == 0
    # Allowed on request, the value is taken as it is (and spreads into the merge).
    ws = vwmerge.load(bad, allow_nonfinite=True)
    kept = ws.states[-1].table.values[1, 0]
    assert (math.isnan(kept) and math.isnan(value)) or kept == value
    assert run_cli("inspect", "--allow-nonfinite", bad).returncode == 0
    run = run_cli("merge", "--allow-nonfinite", "--weights", "1,1", "-o", out, bad, partner)
    assert run.returncode == 0, run.stderr
    merged = vwmerge.load(out, allow_nonfinite=True).states[-1].table
    assert not np.isfinite(merged.values[merged.index == row, 0]).any()


def test_a_model_vw_trained_into_nan_is_refused(models: Models, tmp_path: Path) -> None:
    """VW 9.11.9 trained with an absurd learning rate writes a file whose every weight is non-finite."""
    args = "--sgd -l 1e38 --power_t 0"
    diverged, other = models.train(args, 11, 30), models.train(args, 12, 37)
    assert not np.isfinite(vwmerge.load(diverged, allow_nonfinite=True).states[-1].table.values).any()
    load_error(diverged, str(diverged), "non-finite weight: row", "in column 'w'")
    assert_one_error(run_cli("inspect", diverged), str(diverged), "non-finite weight")
    assert_one_error(run_cli("merge", "-o", tmp_path / "o.model", diverged, other), str(diverged), "non-finite")


def test_ftrl_fit_survives_non_finite_rows_when_they_are_allowed(models: Models, tmp_path: Path) -> None:
    """ftrl's least-squares fit of its constants once failed (SVD did not converge) on an inf row."""
    src, other = models.inputs("--ftrl", 2)
    bad, _ = _poison(src, tmp_path / "bad.model", math.inf, row=0)
    load_error(bad, str(bad), "holds inf")
    a, b = vwmerge.load(bad, allow_nonfinite=True), vwmerge.load(other)
    merged = vwmerge.merge([a, b])
    assert vwmerge.load(merged.to_bytes(), allow_nonfinite=True).stack == merged.stack


# --------------------------------------------------------------------------------------------
# Counters, trees, numbers
def test_u64_counters_that_overflow_when_summed_wrap_and_stay_writable(models: Models, tmp_path: Path) -> None:
    src = models.inputs("--cb_explore_adf --squarecb", 1)[0]
    ws = vwmerge.load(src)
    k = next(i for i, e in enumerate(ws.stack) if e.name == "cb_explore_adf_squarecb")
    full = attrs.evolve(ws.states[k], value=2**64 - 1)
    big = attrs.evolve(ws, states=(*ws.states[:k], full, *ws.states[k + 1 :]))
    paths = []
    for i in range(2):
        p = tmp_path / f"big{i}.model"
        p.write_bytes(big.to_bytes())
        paths.append(p)
    out = tmp_path / "merged.model"
    run = run_cli("merge", "-o", out, *paths)
    assert run.returncode == 0, run.stderr
    assert vwmerge.load(out).states[k].value == (2 * (2**64 - 1)) % 2**64  # VW's uint64 arithmetic


def test_writer_wraps_integers_and_saturates_floats_as_vw_stores_them() -> None:
    w = Writer()
    w.u64(2**64 + 5)
    w.u32(-1)
    w.i32(2**31)
    w.f32(1e39)
    assert w.getvalue() == struct.pack("<QIif", 5, 2**32 - 1, -(2**31), math.inf)


def test_log_multi_links_that_form_a_cycle_are_refused(models: Models, tmp_path: Path) -> None:
    src, partner = models.inputs("--log_multi 3", 2)
    ws = vwmerge.load(src)
    k = next(i for i, e in enumerate(ws.stack) if e.name == "log_multi")
    tree = ws.states[k]
    internal = [i for i, nd in enumerate(tree.nodes) if nd.internal]
    assert internal, "the trained tree has no internal node"
    nodes = list(tree.nodes)
    nodes[internal[0]] = attrs.evolve(nodes[internal[0]], left=0)  # a child link back to the root
    cyclic = attrs.evolve(ws, states=(*ws.states[:k], attrs.evolve(tree, nodes=tuple(nodes)), *ws.states[k + 1 :]))
    bad = tmp_path / "bad.model"
    bad.write_bytes(cyclic.to_bytes())
    load_error(bad, str(bad), "log_multi tree", "cycle")
    cli_errors(bad, partner, tmp_path, "cycle")


def test_log_multi_deep_tree_merges_without_recursion(models: Models) -> None:
    """A chain of internal nodes deeper than Python's recursion limit settles iteratively."""
    ws = vwmerge.load(models.inputs("--log_multi 3", 1)[0])
    k = next(i for i, e in enumerate(ws.stack) if e.name == "log_multi")
    tree = ws.states[k]
    leaf = next(nd for nd in tree.nodes if not nd.internal)
    inner = next(nd for nd in tree.nodes if nd.internal)
    depth = sys.getrecursionlimit() + 100
    nodes = [attrs.evolve(inner, parent=max(i - 1, 0), left=i + 1, right=depth + 1 + i) for i in range(depth)]
    nodes.append(attrs.evolve(leaf, parent=depth - 1, min_count=7))
    nodes += [attrs.evolve(leaf, parent=i, min_count=100 + i) for i in range(depth)]
    deep = attrs.evolve(ws, states=(*ws.states[:k], attrs.evolve(tree, nodes=tuple(nodes)), *ws.states[k + 1 :]))
    again = vwmerge.load(deep.to_bytes())
    merged = vwmerge.merge([again, again])
    out = merged.states[k].nodes
    assert out[depth].min_count == 14  # the deepest leaf's count, summed over the two copies
    assert all(nd.min_count == 14 for nd in out[:depth])  # ...is every ancestor's minimum


def test_recall_tree_counts_that_are_not_finite_merge_without_math_errors(models: Models) -> None:
    ws = vwmerge.load(models.inputs("--recall_tree 4", 1)[0])
    k = next(i for i, e in enumerate(ws.stack) if e.name == "recall_tree")
    tree = ws.states[k]
    nodes = [attrs.evolve(nd, n=math.inf if i % 2 else 1e308, preds=((1, 1e-300), (2, 5.0))) for i, nd in
             enumerate(tree.nodes)]  # fmt: skip
    odd = attrs.evolve(ws, states=(*ws.states[:k], attrs.evolve(tree, nodes=tuple(nodes)), *ws.states[k + 1 :]))
    merged = vwmerge.merge([odd, odd])
    assert all(math.isfinite(nd.entropy) for nd in merged.states[k].nodes)
    vwmerge.load(merged.to_bytes())


def test_any_number_renders(models: Models) -> None:
    huge = 10**20000
    assert fmt_value(huge) == "~2^66438"
    assert fmt_value(10**25) == "1e+25"
    assert fmt_value(-(10**400)).startswith("-~2^")
    assert jsonable({"x": huge})["x"] == "~2^66438"
    from vwmerge.engine.pipeline import inspect_model

    doc = inspect_model(str(models.inputs("--oaa 3", 1)[0]))
    doc["stack"][0]["width"] = huge
    doc["counters"] = {"example_number": huge}
    for item in doc["stack"]:
        if isinstance(item["state"], dict) and "online" in item["state"]:
            item["state"]["online"]["example_number"] = huge
    assert "~2^66438" in render_inspect(doc)
    assert "~2^66438" in to_json(doc)


# --------------------------------------------------------------------------------------------
# Files that are not regular files, or cannot be opened or mapped
def _prompt(args: list[object], *needles: str) -> None:
    start = time.monotonic()
    run = run_cli(*args)
    assert time.monotonic() - start < 60
    assert_one_error(run, *needles)


def test_a_fifo_is_refused_without_blocking(models: Models, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.model"
    os.mkfifo(fifo)
    partner = models.inputs("", 1)[0]
    for args in (["inspect", fifo], ["check", fifo, partner], ["merge", "-o", tmp_path / "o", fifo, partner]):
        _prompt(args, str(fifo), "FIFO", "not a regular file")
    with pytest.raises(vwmerge.VWMergeError, match="FIFO"):
        vwmerge.load(fifo)


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "character device"), ("/dev/null", "character device")])
def test_a_device_is_not_a_regular_file(models: Models, path: str, kind: str) -> None:
    partner = models.inputs("", 1)[0]
    _prompt(["inspect", path], path, kind, "not a regular file")
    _prompt(["check", path, partner], path, kind)


def test_a_directory_and_a_socket_are_refused(models: Models, tmp_path: Path) -> None:
    partner = models.inputs("", 1)[0]
    _prompt(["check", tmp_path, partner], str(tmp_path), "directory")
    sock_path = tmp_path / "s.model"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        _prompt(["inspect", sock_path], str(sock_path), "socket")


def test_a_symlink_loop_names_the_file(models: Models, tmp_path: Path) -> None:
    loop = tmp_path / "loop.model"
    loop.symlink_to(tmp_path / "loop.model")
    partner = models.inputs("", 1)[0]
    for args in (["inspect", loop], ["check", loop, partner], ["merge", "-o", tmp_path / "o", loop, partner]):
        _prompt(args, str(loop), "symbolic links")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_names_the_file(models: Models, tmp_path: Path) -> None:
    locked = tmp_path / "locked.model"
    locked.write_bytes(models.inputs("", 1)[0].read_bytes())
    locked.chmod(0)
    _prompt(["inspect", locked], str(locked), "permission denied")


def test_os_errors_become_one_line_naming_the_file() -> None:
    for code, words in ((errno.EACCES, "permission denied"), (errno.ENOMEM, "not enough memory to map"),
                        (errno.ELOOP, "symbolic links"), (errno.EIO, "cannot read the file")):  # fmt: skip
        e = os_error(OSError(code, os.strerror(code), "/x/m.model"), "m.model")
        assert str(e).startswith("m.model: ") and words in str(e), str(e)


def test_a_file_that_cannot_be_mapped_under_an_address_space_limit_names_the_file(
    models: Models, tmp_path: Path
) -> None:
    """A (sparse) 8 GiB model under a 2 GiB address-space limit: mmap fails with ENOMEM."""
    src = models.inputs("", 1)[0]
    big = tmp_path / "big.model"
    big.write_bytes(src.read_bytes())
    with big.open("r+b") as f:
        f.truncate(8 << 30)
    limit = 2 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "vwmerge", "inspect", str(big)], capture_output=True, text=True, timeout=120,
        preexec_fn=cap, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"Error: {big}: not enough memory to map the file" in proc.stderr


# --------------------------------------------------------------------------------------------
# Optional dependencies
def _without(module: str, *args: object) -> subprocess.CompletedProcess[str]:
    """The CLI in a process where ``module`` cannot be imported (as if the extra were missing)."""
    code = f"import sys; sys.modules[{module!r}] = None; from vwmerge.cli.commands import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_dask_executor_without_dask_names_the_extra(models: Models, tmp_path: Path) -> None:
    a, b = models.inputs("", 2)
    out = tmp_path / "o.model"
    proc = _without("distributed", "merge", "--executor", "dask", "-o", out, a, b)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert errors == ["Error: --executor dask: needs dask.distributed, which is not installed: "
                      "pip install 'vwmerge[dask]'"], proc.stderr  # fmt: skip
    assert not out.exists()


def test_urls_without_fsspec_name_the_extra(models: Models, tmp_path: Path) -> None:
    a = models.inputs("", 1)[0]
    proc = _without("fsspec", "inspect", f"file://{a}")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"Error: file://{a}: reading or writing URLs needs fsspec: pip install 'vwmerge[dask]'" in proc.stderr
