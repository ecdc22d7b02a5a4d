"""The shortcuts that keep a merge's Python work per model small (docs/scale.md, "Each model")
give what the long way gives: the scan's byte count, a re-read that skips a known header, and
the header checksum remembered by its bytes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import vwmerge
from helpers.cli import run_cli
from helpers.vwtrain import train
from vwmerge.engine import executors
from vwmerge.engine.streaming import merge_files
from vwmerge.format.binio import Writer
from vwmerge.format.header import Header
from vwmerge.format.murmur import chained_checksum
from vwmerge.model import workspace
from vwmerge.model.workspace import load, reload, scan
from vwmerge.plugins import gd

CONFIGS = ["", "--sgd", "--normalized", "--cb_explore_adf", "--oaa 3", "--ftrl", "--nn 2"]


@pytest.mark.parametrize("args", CONFIGS)
def test_scan_counts_the_bytes_its_parse_consumed(tmp_path: Path, args: str) -> None:
    path = train(f"-b 10 {args}", 3, tmp_path / "m.model")
    ws, used = scan(str(path))
    assert used == len(ws.to_bytes())  # the header and sections, without the rows
    assert used < path.stat().st_size or not load(path).bottom.section


@pytest.mark.parametrize("args", CONFIGS[:4])
def test_reload_of_a_known_header_equals_load(tmp_path: Path, args: str) -> None:
    path = train(f"-b 10 {args}", 4, tmp_path / "m.model")
    scanned, _ = scan(str(path))
    known = (scanned.header.to_bytes(), scanned.header, scanned.options)
    again = reload(str(path), known)
    assert again.to_bytes() == load(path).to_bytes() == path.read_bytes()
    assert again.header is scanned.header  # not parsed again

    # the file changed under the same name: read like load, and the header says so
    other = train(f"-b 11 {args}", 5, tmp_path / "other.model")
    shutil.copyfile(other, path)
    changed = reload(str(path), known)
    assert changed.header != scanned.header
    assert changed.to_bytes() == load(path).to_bytes() == other.read_bytes()


def _uncached_checksum(h: Header) -> int:
    """VW's chained checksum over the header's writes, each encoded by the Writer."""
    chunks: list[bytes] = []

    def put(kind: str, value: object) -> None:
        w = Writer()
        w.scalar(kind, value)
        chunks.append(w.getvalue())

    put("u32", len(h.id_raw))
    chunks += [h.id_raw, b"m"]
    for kind, value in [("f32", h.min_label), ("f32", h.max_label), ("u32", h.bits), ("u32", h.lda)]:
        put(kind, value)
    put("u32", len(h.ngrams))
    chunks += h.ngrams
    put("u32", len(h.skips))
    chunks += h.skips
    put("u32", len(h.options_raw))
    chunks.append(h.options_raw)
    return chained_checksum(chunks)


def test_the_checksum_is_remembered_by_bytes_not_by_equal_values(tmp_path: Path) -> None:
    header = load(train("-b 10", 6, tmp_path / "m.model")).header
    zero, minus_zero = attrs.evolve(header, min_label=0.0), attrs.evolve(header, min_label=-0.0)
    assert zero == minus_zero  # equal values ...
    assert zero.checksum() != minus_zero.checksum()  # ... different bytes, different checksums
    for h in (header, zero, minus_zero, zero, header):
        assert h.checksum() == _uncached_checksum(h)


# --------------------------------------------------------------------------------------------
# A merge of small models parses each of them once (the scan keeps their states for every pass).
def _small_models(tmp_path: Path, args: str = "--cb_explore_adf", k: int = 6) -> list[Path]:
    return [train(f"-b 10 {args}", 20 + i, tmp_path / f"m{i}.model", n=30 + 7 * i) for i in range(k)]


def _counting_loads(monkeypatch: pytest.MonkeyPatch, *, rows: bool = False) -> list[str]:
    """The sources every real parse of a model file reads (scan, load and reload all go through
    ``workspace._load``), recorded as the merge runs; ``rows``: only the parses that read rows."""
    seen: list[str] = []
    real = workspace._load

    def counting(source: Any, **kwargs: Any) -> Any:
        if kwargs.get("load_weights") or not rows:
            seen.append(str(kwargs.get("name") or source))
        return real(source, **kwargs)

    monkeypatch.setattr(workspace, "_load", counting)
    return seen


@pytest.mark.parametrize("args", ["--cb_explore_adf", "", "--oaa 3", "--ftrl"])
def test_each_small_input_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: str) -> None:
    paths = _small_models(tmp_path, args)
    expected = vwmerge.merge([load(p) for p in paths]).to_bytes()
    seen = _counting_loads(monkeypatch)
    report = merge_files(paths, tmp_path / "merged.model", progress=False)
    assert (tmp_path / "merged.model").read_bytes() == expected
    assert sorted(seen) == sorted(str(p) for p in paths)  # one parse each, whatever the passes
    merge = {p.name: p for p in report.phases}["merge"]
    assert merge.bytes_read == merge.bytes_reread == 0


def test_a_cache_budget_too_small_reads_the_rest_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _small_models(tmp_path)
    expected = vwmerge.merge([load(p) for p in paths]).to_bytes()
    seen = _counting_loads(monkeypatch)
    two = paths[0].stat().st_size + paths[1].stat().st_size + 2 * executors.CACHED_STATE_OVERHEAD
    outputs = {}
    for budget in (0, two, None):
        seen.clear()
        report = merge_files(paths, tmp_path / f"{budget}.model", progress=False, cache_bytes=budget)
        outputs[budget] = (tmp_path / f"{budget}.model").read_bytes()
        passes = 1 + {p.name: p for p in report.phases}["merge"].bytes_reread // max(
            1, sum(p.stat().st_size for p in paths[(2 if budget else 0) :])
        )
        kept = 0 if budget == 0 else 2 if budget else len(paths)
        # the scan parses every input; the ones not kept are parsed again in every pass
        assert len(seen) == len(paths) + (len(paths) - kept) * passes, (budget, seen)
        assert all(seen.count(str(p)) == 1 for p in paths[:kept])
    assert outputs[0] == outputs[two] == outputs[None] == expected


@pytest.mark.parametrize("jobs", [1, 2])
def test_kept_states_give_the_bytes_and_digests_of_reading_again(tmp_path: Path, jobs: int) -> None:
    paths = _small_models(tmp_path, k=5)
    kept = merge_files(paths, tmp_path / "kept.model", progress=False, provenance=True, jobs=jobs)
    read = merge_files(paths, tmp_path / "read.model", progress=False, provenance=True, jobs=jobs, cache_bytes=0)
    assert (tmp_path / "kept.model").read_bytes() == (tmp_path / "read.model").read_bytes()
    assert kept.input_digests == read.input_digests
    assert [d.sha256 for d in kept.input_digests] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_past_the_cache_budget_the_scan_keeps_no_rows_and_the_merge_parses_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without room in the cache (``cache_bytes=0``, or a fleet past its budget) a streamed base
    learner's small input is read whole by the scan, which passes over its rows and keeps only
    its example count; the merge reads it again and parses its rows once. Same bytes."""
    paths = _small_models(tmp_path, "")
    expected = vwmerge.merge([load(p) for p in paths]).to_bytes()
    with_rows = _counting_loads(monkeypatch, rows=True)
    report = merge_files(paths, tmp_path / "merged.model", progress=False, cache_bytes=0)
    assert (tmp_path / "merged.model").read_bytes() == expected
    assert sorted(with_rows) == sorted(str(p) for p in paths)  # rows parsed once each
    load_phase, merge = report.phases[0], report.phases[1]
    sizes = [p.stat().st_size for p in paths]
    # the first is mapped by the scan (before it knows the learner streams): its head there, its
    # rows in the merge; the others are read whole twice
    assert load_phase.bytes_read + merge.bytes_read == sum(sizes) + sum(sizes[1:])
    assert merge.bytes_reread == 0


def test_small_packed_inputs_and_mapped_ones_merge_in_input_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inputs read whole (rows packed in memory) and inputs mapped (rows viewing the file),
    mixed: the walk takes them in input order, so the bytes are the in-memory merge's."""
    paths = [train("-b 12", 40 + i, tmp_path / f"m{i}.model", n=10 + 20 * i) for i in range(7)]
    mapped = {str(p) for p in paths[1::3]} | {str(paths[5])}
    real = executors._read

    @contextlib.contextmanager
    def reading(source: str) -> Iterator[Any]:
        if source in mapped:  # as a model larger than CACHED_FILE_MAX is read
            with executors.files.mapped(source) as buf:
                yield buf
        else:
            with real(source) as data:
                yield data

    monkeypatch.setattr(executors, "_read", reading)
    expected = vwmerge.merge([load(p) for p in paths]).to_bytes()
    for budget in (0, None):
        out = tmp_path / f"merged-{budget}.model"
        merge_files(paths, out, progress=False, cache_bytes=budget)
        assert out.read_bytes() == expected, budget


def test_packed_rows_are_copied_once_and_pickle_as_their_rows() -> None:
    rows = [(np.array([1, 5, 9], np.uint32), np.arange(9, dtype=np.float32).reshape(3, 3)),
            (np.array([2, 5], np.uint32), np.ones((2, 3), np.float32)),
            (np.array([7], np.uint64), np.full((1, 3), 2.0, np.float32))]  # fmt: skip
    acc = gd.Packed.of(0, rows[0])
    for i, r in enumerate(rows[1:], 1):
        acc = acc + gd.Packed.of(i, r)
    branch = gd.Packed.of(0, rows[0]) + gd.Packed.of(1, rows[1])
    assert (branch + gd.Packed.of(9, rows[2])).count == 3  # (a copy: branch's store is another's)
    for packed in (acc, pickle.loads(pickle.dumps(acc))):
        items = list(packed.items())
        assert [i for i, _ in items] == [0, 1, 2] and packed.count == 3 and packed.rows == 6
        for (_, (idx, vals)), (ridx, rvals) in zip(items, rows, strict=True):
            assert idx.tolist() == ridx.tolist() and vals.tobytes() == rvals.tobytes()


def test_a_small_input_with_a_broken_row_is_named_by_the_scan(tmp_path: Path) -> None:
    paths = _small_models(tmp_path, "", k=3)
    data = bytearray(paths[1].read_bytes())
    paths[1].write_bytes(bytes(data[:-3]))  # the last row cut
    with pytest.raises(vwmerge.ModelFormatError, match=str(paths[1])):
        merge_files(paths, tmp_path / "merged.model", progress=False)
    assert not (tmp_path / "merged.model").exists()


def _peak_rss(list_file: Path, out: Path) -> int:
    run = run_cli("merge", "--json", "--models-from", list_file, "-o", out, timeout=600)
    assert run.returncode == 0, run.stderr
    return int(json.loads(run.stdout)["peak_rss_bytes"])


def test_memory_per_small_model_is_flat_past_the_cache_budget(tmp_path: Path) -> None:
    """Peak memory of merging 2,000 and 6,000 copies of a small model (subprocesses, both past
    the ~1,500 models whose parsed states the 4 MiB cache keeps): each further model costs its
    record (name, size, count, weight: about 0.6 KiB with Python's objects) and its packed rows,
    not its parsed state (about 3.4 KiB, which the merge cost for every model before) nor its
    file's bytes."""
    model = train("-b 18", 5, tmp_path / "m.model", n=10)
    rows = len(load(model).state("gd").table)
    copies = tmp_path / "copies"
    copies.mkdir()
    lists = {}
    for n in (2000, 6000):
        names = []
        for i in range(n):
            target = copies / f"c{i}.model"
            if not target.exists():
                shutil.copyfile(model, target)
            names.append(str(target))
        lists[n] = tmp_path / f"list{n}.txt"
        lists[n].write_text("\n".join(names) + "\n")
    small, large = (_peak_rss(lists[n], tmp_path / f"out{n}.model") for n in (2000, 6000))
    per_model = (large - small) / 4000
    assert per_model < 1024 + 16 * rows + 768, f"{per_model:.0f} bytes per model ({rows} rows)"


def test_models_with_the_same_header_bytes_share_one_parsed_header(tmp_path: Path) -> None:
    """KnownHeads: a file that starts with header bytes read before gets that header and options
    (the same objects), another file is parsed; either way the workspace is what load gives."""
    a, b = _small_models(tmp_path, k=2)  # same options, different files
    other = train("-b 11 --cb_explore_adf", 9, tmp_path / "other.model")
    known = workspace.KnownHeads(limit=2)
    seen = {}
    for path in (a, other, b, a, other):
        found = workspace.scan_or_load(str(path), whole_up_to=1 << 20, known=known)
        assert found.data is not None and found.used == found.size == path.stat().st_size
        assert found.workspace.to_bytes() == load(path).to_bytes() == path.read_bytes()
        header = found.workspace.header
        seen.setdefault(header.to_bytes(), []).append((header, found.workspace.options))
    for versions in seen.values():
        assert all(h is versions[0][0] and o is versions[0][1] for h, o in versions)
    assert len(seen) == 2  # a and b share their header bytes; other does not
    # a file that is not small is scanned (its rows skipped), with the same shared header
    found = workspace.scan_or_load(str(a), whole_up_to=10, known=known)
    assert found.data is None and found.used < found.size
    assert found.workspace.header is seen[load(a).header.to_bytes()][0][0]
