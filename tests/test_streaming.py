"""The streaming merge (``vwmerge.engine.streaming.merge_files``) on models VW trains at test time.

Sequentially it must write exactly the bytes ``vwmerge.merge`` writes (which test_merge_vw
holds to VW's own merge); with ``--jobs`` it must agree within the float32 bound of
docs/scale.md; and the inputs it holds at a time stay bounded (gd's exact merge: up to a limit,
pages released as the rows are walked).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import vwmerge
from helpers import vwtrain
from helpers.models import Models
from helpers.streamcheck import assert_within_rounding
from vwmerge import hookimpl
from vwmerge.contract.registry import Registry, make_plugin_manager
from vwmerge.engine import executors, rowsums
from vwmerge.engine.progress import Progress
from vwmerge.engine.rowsums import DENSE_FRACTION, RowSums, add_at, allocate
from vwmerge.engine.streaming import merge_files
from vwmerge.format.binio import Writer
from vwmerge.format.weights import row_dtype
from vwmerge.plugins import cb_adf, gd

#: Five inputs with different data and example counts, so weights and rows differ.
SEEDS = (21, 22, 23, 24, 25)
SIZES = (40, 55, 33, 61, 47)

CONFIGS = {
    "default": "",  # adaptive path: two passes, float32 totals
    "sgd": "--sgd",  # simple path: example-count weights
    "normalized": "--normalized",
    "adaptive": "--adaptive",
    "cb_explore_adf": "--cb_explore_adf",  # cb_adf counters merged beside the streamed rows
    "oaa_pmsl": "--oaa 3 --per_model_save_load",
    "l1_l2": "--l1 1e-4 --l2 1e-3",  # pending truncation applied per input
    "dense": "-b 4",  # rows cover 2^bits: dense accumulators
    "sparse_unsorted": "--sparse_weights",  # rows in hash-map order
    "b31": "-b 31 --sparse_weights",  # 8-byte row indices
    "b32": "-b 32 --sparse_weights",
    "initial_weight": "--initial_weight 0.5 -b 12",  # rows with A = 0 in every input: their average
    "new_mf": "--new_mf 2 -q ab -b 12",  # random initial rows
}


def _vw_options(args: str) -> str | None:
    return "--sparse_weights" if "--sparse_weights" in args else None


def _inputs(models: Models, args: str, k: int = 5) -> list[Path]:
    return [models.train(args, s, n) for s, n in zip(SEEDS[:k], SIZES[:k], strict=True)]


@pytest.mark.parametrize("weights", [None, (3.0, 1.0, 2.0, 0.5, 1.5)], ids=["counts", "explicit"])
@pytest.mark.parametrize("args", list(CONFIGS.values()), ids=list(CONFIGS))
def test_sequential_stream_writes_the_in_memory_merge_bytes(
    models: Models, tmp_path: Path, args: str, weights: tuple[float, ...] | None
) -> None:
    paths = _inputs(models, args)
    opts = _vw_options(args)
    expected = vwmerge.merge([vwmerge.load(p, vw_options=opts) for p in paths], weights=weights).to_bytes()
    out = tmp_path / "merged.model"
    report = merge_files(paths, out, weights=weights, vw_options=opts, progress=False)
    assert out.read_bytes() == expected
    assert report.bytes_written == len(expected)
    assert report.bytes_read == sum(p.stat().st_size for p in paths)


def test_output_is_as_readable_as_any_new_file_and_keeps_a_replaced_files_mode(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "", 2)
    out = tmp_path / "merged.model"
    umask = os.umask(0o022)
    os.umask(umask)
    merge_files(paths, out, progress=False)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    out.chmod(0o640)
    merge_files(paths, out, progress=False)
    assert out.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    "args",
    ["", "--sgd", "--cb_explore_adf", "--initial_weight 0.5 -b 12"],
    ids=["default", "sgd", "cb_explore_adf", "initial_weight"],
)
def test_base_mode_streams_deltas_to_the_same_bytes(models: Models, tmp_path: Path, args: str) -> None:
    base, inputs = models.resumed(args)
    expected = vwmerge.merge([vwmerge.load(p) for p in inputs], base=vwmerge.load(base)).to_bytes()
    merge_files(inputs, tmp_path / "merged.model", base=base, progress=False)
    assert (tmp_path / "merged.model").read_bytes() == expected


@pytest.mark.parametrize("weights", [None, (3.0, 1.0, 2.0, 0.5, 1.5)], ids=["counts", "explicit"])
@pytest.mark.parametrize(
    "args", ["", "--sgd", "--normalized", "--cb_explore_adf", "-b 31 --sparse_weights", "--initial_weight 0.5 -b 12"]
)
def test_jobs_equal_the_sequential_merge_within_float32_rounding(
    models: Models, tmp_path: Path, args: str, weights: tuple[float, ...] | None
) -> None:
    paths = _inputs(models, args)
    opts = _vw_options(args)
    merge_files(paths, tmp_path / "seq.model", weights=weights, vw_options=opts, progress=False)
    report = merge_files(paths, tmp_path / "par.model", weights=weights, vw_options=opts, jobs=2, progress=False)
    assert report.worker_peak_rss_bytes > 0
    assert_within_rounding(tmp_path / "seq.model", tmp_path / "par.model", paths, weights=weights, vw_options=opts)


def test_jobs_in_base_mode_agree_within_rounding(models: Models, tmp_path: Path) -> None:
    base, inputs = models.resumed("")
    merge_files(inputs, tmp_path / "seq.model", base=base, progress=False)
    merge_files(inputs, tmp_path / "par.model", base=base, jobs=2, progress=False)
    assert_within_rounding(tmp_path / "seq.model", tmp_path / "par.model", inputs, base=base)


@pytest.mark.parametrize("bits", [31, 32])
def test_high_bit_sparse_merges_load_in_vw(models: Models, tmp_path: Path, bits: int) -> None:
    args = f"-b {bits} --sparse_weights"
    paths = _inputs(models, args, 3)
    out = tmp_path / "merged.model"
    merge_files(paths, out, vw_options="--sparse_weights", progress=False)
    merged = vwmerge.load(out, vw_options="--sparse_weights")
    assert merged.header.bits == bits
    assert int(merged.states[-1].table.index.max()) >= 1 << 30  # rows beyond 2^30: 8-byte indices
    held_out = vwtrain.test_examples(args)
    ours = np.array(vwtrain.predict(out, held_out, extra="--sparse_weights"), dtype=float)
    theirs = np.array(vwtrain.predict(paths[0], held_out, extra="--sparse_weights"), dtype=float)
    assert np.all(np.isfinite(ours)) and not np.allclose(ours, 0)
    assert np.corrcoef(ours, theirs)[0, 1] > 0.5  # a merge of models of the same task predicts alike


@pytest.mark.parametrize("limit", [None, 2])
def test_streaming_reads_each_input_once_and_holds_at_most_the_limit(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """Structural memory check: count the inputs whose rows are alive while the merge runs.

    gd's exact merge holds its inputs and walks them in lock step when it finalizes: each input
    is read once. These are small: read whole, their rows are copied into the merge's packed
    rows and the parsed input goes at once (a mapped input would stay mapped, pages released).
    Past the holding limits (``HOLD_MAX_INPUTS`` mapped, ``HOLD_MAX_MEMORY`` in memory) it sums
    what it holds and goes on input by input, with the second pass of the adaptive path: then at
    most the limit plus the input being combined are alive, whatever N. Same bytes either way.
    """
    paths = _inputs(models, "")
    live: set[int] = set()
    peak = 0
    loads = 0

    def instrumented(real_load: Any) -> Any:
        def counting(*args: Any, **kwargs: Any) -> vwmerge.Workspace:
            nonlocal peak, loads
            ws = real_load(*args, **kwargs)
            key = loads = loads + 1
            live.add(key)
            peak = max(peak, len(live))
            weakref.finalize(ws.states[-1].table.values, live.discard, key)
            return ws

        return counting

    if limit is not None:
        monkeypatch.setattr(gd, "HOLD_MAX_INPUTS", limit)
        monkeypatch.setattr(gd, "HOLD_MAX_MEMORY", 0)
    # an input's rows are read by load, or by reload when its header is known from the scan
    monkeypatch.setattr(executors, "load", instrumented(executors.load))
    monkeypatch.setattr(executors, "reload", instrumented(executors.reload))
    # no parsed state kept from the scan (cache_bytes=0): every input's rows are read while streaming
    report = merge_files(paths, tmp_path / "merged.model", progress=False, cache_bytes=0)
    assert (tmp_path / "merged.model").read_bytes() == vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()
    reread = report.phases[1].bytes_reread
    if limit is None:
        assert loads == len(paths) and reread == 0  # one pass
        assert peak <= 2, f"{peak} parsed inputs were alive at once"  # rows packed as each is read
    else:
        assert loads == 2 * len(paths) and reread == sum(p.stat().st_size for p in paths)  # spilled: two passes
        assert peak <= limit + 1, f"{peak} inputs were alive at once"


def test_a_base_learner_without_partial_hooks_falls_back_to_merging_in_memory(
    models: Models, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    paths = _inputs(models, "--ftrl", 3)
    expected = vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()
    merge_files(paths, tmp_path / "merged.model", progress=False)
    assert (tmp_path / "merged.model").read_bytes() == expected
    assert any("cannot be streamed" in e["event"] for e in logs)


class PartialOnlyCbAdf:
    """cb_adf as a plugin that implements the partial hooks but not vwmerge_merge."""

    vwmerge_reductions = staticmethod(cb_adf.vwmerge_reductions)
    vwmerge_save_load = staticmethod(cb_adf.vwmerge_save_load)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def vwmerge_merge_partial(self, reduction: Any, state: Any, weight: float, index: int, context: Any) -> Any:
        self.calls.append("partial")
        return state

    def vwmerge_merge_combine(self, reduction: Any, left: Any, right: Any, context: Any) -> Any:
        self.calls.append("combine")
        return cb_adf.CbAdfState(left.counters + right.counters)

    def vwmerge_merge_finalize(self, reduction: Any, partial: Any, context: Any) -> Any:
        self.calls.append("finalize")
        return partial


def test_partial_hooks_serve_only_the_base_learner(models: Models, tmp_path: Path, logs: list[dict[str, Any]]) -> None:
    """docs/hooks.md: a reduction above the base learner merges through vwmerge_merge only; one
    with only the partial hooks keeps the first model's state (with the usual warning)."""
    for name in ("vwmerge_reductions", "vwmerge_save_load"):
        hookimpl(getattr(PartialOnlyCbAdf, name))
    for h in ("partial", "combine", "finalize"):
        hookimpl(getattr(PartialOnlyCbAdf, f"vwmerge_merge_{h}"))
    plugin = PartialOnlyCbAdf()
    registry = Registry(make_plugin_manager(extra=[(plugin, "partial_only_cb_adf")]))
    assert registry.owner["cb_adf"] == "partial_only_cb_adf"
    paths = _inputs(models, "--cb_explore_adf", 3)
    loaded = [vwmerge.load(p, registry=registry) for p in paths]
    merged = vwmerge.merge(loaded, registry=registry)
    first = loaded[0].state("cb_adf")
    assert np.array_equal(merged.state("cb_adf").counters, first.counters)
    assert not np.array_equal(
        first.counters, sum((ws.state("cb_adf").counters for ws in loaded), np.zeros_like(first.counters))
    )  # (the counters of a real merge would differ)
    merge_files(paths, tmp_path / "merged.model", registry=registry, progress=False)
    assert (tmp_path / "merged.model").read_bytes() == merged.to_bytes()
    assert plugin.calls == []
    assert any(e.get("reduction") == "cb_adf" and "kept_from" in e for e in logs)


# RowSums, the partial result of a weight-row merge, against a dense float32 reference.
def _random_rows(rng: np.random.Generator, bits: int, count: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.sort(rng.choice(1 << bits, size=count, replace=False)).astype(np.uint64)
    values = rng.normal(size=(m, count)).astype(np.float32)
    values[:, rng.random(count) < 0.1] = -0.0  # -0.0 must come out as +0.0 (a sum starts at 0)
    return index, values


@pytest.mark.parametrize("bits, counts", [(6, (3, 20, 5, 40)), (20, (30, 500, 7, 90)), (10, (300, 20, 260, 9))])
@pytest.mark.parametrize("in_place", [True, False])
def test_row_sums_fold_like_a_dense_float32_sum_in_order(bits: int, counts: tuple[int, ...], in_place: bool) -> None:
    rng = np.random.default_rng(bits)
    parts = [_random_rows(rng, bits, c, 2) for c in counts]
    reference = np.zeros((2, 1 << bits), np.float32)
    acc = None
    for index, values in parts:
        reference[:, index.astype(np.intp)] += values
        part = RowSums.from_rows(bits, index, values, np.float32)
        before = part.sums.copy()
        acc = part if acc is None else acc.combine(part, in_place=in_place)
        assert np.array_equal(part.sums, before)  # the right operand is never changed
    assert acc is not None
    got = acc.finish(np.asarray, ("w", "a"), chunk=7)
    keep = np.flatnonzero(np.any(reference != 0, axis=0))
    assert np.array_equal(got.index, keep)
    assert np.ascontiguousarray(got.values).tobytes() == np.ascontiguousarray(reference[:, keep].T).tobytes()
    assert acc.dense == (len(keep) * DENSE_FRACTION >= 1 << bits) or acc.dense


def test_sparse_partials_with_shared_and_own_rows() -> None:
    """Two sparse partials, each with rows the other lacks and rows both have (what groups of
    different models give under --jobs): the union keeps every row and adds the shared ones."""
    bits, rng = 20, np.random.default_rng(7)
    reference = np.zeros((2, 1 << bits), np.float32)
    acc = None
    for count in (1000, 1500, 800):
        index = np.sort(rng.choice(3000, size=count, replace=False)).astype(np.uint64)  # overlapping
        values = rng.normal(size=(2, count)).astype(np.float32)
        reference[:, index.astype(np.intp)] += values
        part = RowSums.from_rows(bits, index, values, np.float32)
        acc = part if acc is None else acc.combine(part)
    assert acc is not None and not acc.dense
    got = acc.finish(np.asarray, ("w", "a"))
    keep = np.flatnonzero(np.any(reference != 0, axis=0))
    assert np.array_equal(got.index, keep)
    assert np.ascontiguousarray(got.values).tobytes() == np.ascontiguousarray(reference[:, keep].T).tobytes()


def _rows_as_in_a_file(index: np.ndarray, values: np.ndarray, offset: int) -> np.ndarray:
    """Rows laid out like a mapped model file's: u32 index + float32 columns, ``offset`` bytes
    into a buffer (after VW's header the rows are usually not 4-byte aligned)."""
    dt = np.dtype([("i", "<u4"), ("v", "<f4", (values.shape[0],))])
    raw = np.zeros(offset + len(index) * dt.itemsize, np.uint8)
    rows = np.ndarray((len(index),), dt, buffer=raw, offset=offset)
    rows["i"], rows["v"] = index, values.T
    return rows


@pytest.mark.parametrize("offset", [0, 7])
def test_accumulating_rows_of_a_file_layout_adds_like_fancy_indexing(offset: int) -> None:
    rng = np.random.default_rng(offset)
    bits = 21  # several blocks of rows per input, and a dense accumulator
    acc = RowSums.empty(bits, 3, np.float32)
    reference = np.zeros((3, 1 << bits), np.float32)
    for count in (1_500_000, 900_000, 1_200_000):
        index, values = _random_rows(rng, bits, count, 3)
        rows = _rows_as_in_a_file(index, values, offset)
        assert rows["v"].flags.aligned == (offset == 0)
        acc = acc.accumulate(rows["i"], rows["v"], lambda _, v, __: v.T, in_place=True)
        reference[:, index.astype(np.intp)] += values
    assert acc.dense
    assert acc.sums.tobytes() == reference.tobytes()


@pytest.mark.parametrize("target, values", [(np.float32, np.float64), (np.float64, np.float32)])
def test_adding_at_rows_in_mixed_precision_follows_numpy_casting(target: type, values: type) -> None:
    rng = np.random.default_rng(3)
    pos = np.sort(rng.choice(5000, 3000, replace=False))
    base = rng.normal(size=5000).astype(target)
    add = (rng.normal(size=3000) * 1e-3).astype(values)
    got, expected = base.copy(), base.copy()
    add_at(got, pos, add)
    expected[pos] += add
    assert got.tobytes() == expected.tobytes()


def test_row_sums_combine_in_any_grouping_within_float64_rounding() -> None:
    rng = np.random.default_rng(5)
    parts = [RowSums.from_rows(16, *_random_rows(rng, 16, c, 1), np.float64) for c in (900, 40000, 3, 20000)]
    left = parts[0].combine(parts[1]).combine(parts[2]).combine(parts[3])
    tree = parts[0].combine(parts[1]).combine(parts[2].combine(parts[3]))
    a, b = left.finish(np.asarray, ("w",)), tree.finish(np.asarray, ("w",))
    assert np.array_equal(a.index, b.index)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# The command line.
def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vwmerge", *map(str, args)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_cli_jobs_and_quiet(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "--cb_explore_adf", 4)
    run = _cli("merge", "--json", "-o", tmp_path / "seq.model", *paths)
    assert run.returncode == 0, run.stderr
    assert "merging" not in run.stderr  # stderr is a pipe: no progress bar
    report = json.loads(run.stdout)
    # small inputs are read whole and parsed once by the scan, then never read again
    assert report["phases"]["load"]["bytes_read"] == sum(p.stat().st_size for p in paths)
    assert report["phases"]["merge"]["bytes_read"] == report["phases"]["merge"]["bytes_reread"] == 0
    assert (tmp_path / "seq.model").read_bytes() == vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()

    run = _cli("merge", "--quiet", "--jobs", "2", "-o", tmp_path / "par.model", *paths)
    assert run.returncode == 0, run.stderr
    (summary,) = [json.loads(line) for line in run.stderr.splitlines() if '"merged"' in line]
    assert summary["worker_peak_rss_mib"] > 0
    assert_within_rounding(tmp_path / "seq.model", tmp_path / "par.model", paths)


def test_cli_refuses_a_scheduler_without_dask(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "", 2)
    run = _cli("merge", "--executor", "local", "--scheduler", "tcp://127.0.0.1:1", "-o", tmp_path / "m", *paths)
    assert run.returncode == 1
    assert "--scheduler needs --executor dask" in run.stderr
    assert not (tmp_path / "m").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_never_when_quiet() -> None:
    for stream, enabled, shown in (
        (_Terminal(), None, True),
        (io.StringIO(), None, False),
        (_Terminal(), False, False),
    ):
        progress = Progress(enabled, stream)
        with progress.task("merging 2 models", 100) as advance:
            advance(60)
            advance(40)
        assert ("merging 2 models" in stream.getvalue()) == shown
        assert ("100%" in stream.getvalue()) == shown


def test_large_results_are_mapped_at_once_and_written_as_they_lie() -> None:
    """The >= 16 MiB paths of ``allocate`` (zero-filled, writable) and the straight write of its rows."""
    dt = row_dtype(24, 3)
    zeros = allocate((2, 1 << 22), np.float32)
    assert zeros.shape == (2, 1 << 22) and not zeros.any() and zeros.flags.writeable
    records = allocate(1 << 21, dt, populate=False)
    records["i"] = np.arange(1 << 21)
    records["v"] = np.arange(3 << 21, dtype=np.float32).reshape(-1, 3)
    table = vwmerge.WeightTable(records["i"][5:], records["v"][5:], 24, ("w", "adaptive", "normalized"))
    straight, assembled = Writer(), Writer()
    table.write(straight)
    vwmerge.WeightTable(np.array(table.index), np.array(table.values), 24, table.columns).write(assembled)
    assert straight.getvalue() == assembled.getvalue() == records[5:].tobytes()


def test_jobs_after_a_sequential_merge_in_the_same_process(models: Models, tmp_path: Path) -> None:
    """Models of more than one block of rows: the forked workers use threads of their own
    (threads do not survive fork), here after this process has used its own."""
    template = vwmerge.load(models.train("-b 21", 41, 30))
    state = template.states[-1]
    paths = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        index = np.flatnonzero(rng.random(1 << 21) < 0.6)
        values = np.stack(
            [rng.normal(0, 0.1, len(index)), rng.exponential(4.0, len(index)) + 0.01, rng.uniform(0.5, 2, len(index))],
            axis=1,
        ).astype(np.float32)
        table = vwmerge.WeightTable(index.astype(np.uint32), values, 21, state.table.columns)
        ws = attrs.evolve(template, states=(*template.states[:-1], attrs.evolve(state, table=table)))
        paths.append(tmp_path / f"big{seed}.model")
        ws.save(paths[-1])
    merge_files(paths, tmp_path / "seq.model", progress=False)
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    merge_files(paths, tmp_path / "par.model", jobs=2, progress=False)
    assert_within_rounding(tmp_path / "seq.model", tmp_path / "par.model", paths)
    if os.path.isdir("/dev/shm"):  # the workers' shared partial results are all gone
        assert not [f for f in set(os.listdir("/dev/shm")) - before if f.startswith("vwmerge-")]
    assert (tmp_path / "seq.model").read_bytes() == vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()


def test_a_workers_large_sums_reach_the_parent_as_a_shared_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pickled, row sums built in a RAM-file-backed array are the file's name; unpickled, the
    file is mapped (same values, no copy made) and removed."""
    monkeypatch.setattr(rowsums, "_SHARED", (str(tmp_path), "vwmerge-test-"))
    sums = allocate((2, 1 << 22), np.float64)
    sums[1, 12345] = 2.5
    data = pickle.dumps(RowSums(22, None, sums))
    assert len(data) < 4096 and len(os.listdir(tmp_path)) == 1
    monkeypatch.setattr(rowsums, "_SHARED", None)
    back = pickle.loads(data)
    assert back.sums.shape == (2, 1 << 22) and back.sums[1, 12345] == 2.5 and back.sums.sum() == 2.5
    assert os.listdir(tmp_path) == []
    small = pickle.loads(pickle.dumps(RowSums(4, None, np.ones((1, 16)))))  # ordinary memory: the bytes
    assert small.sums.sum() == 16
