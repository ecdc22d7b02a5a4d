"""The shortcuts that keep a merge's Python work per model small (docs/scale.md, "Each model")
give what the long way gives: the scan's byte count, a re-read that skips a known header, and
the header checksum remembered by its bytes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import attrs
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
    """A base learner that streams (gd): the scan parses each small input's header and sections
    and passes over its rows, keeping nothing but what the plan needs; the merge reads it again,
    whole, and parses its rows once (the first input's are kept from the scan, which read them
    to learn that the learner streams). One that does not (ftrl): the scan keeps every state,
    rows included, and nothing is read again."""
    paths = _small_models(tmp_path, args)
    expected = vwmerge.merge([load(p) for p in paths]).to_bytes()
    with_rows = _counting_loads(monkeypatch, rows=True)
    report = merge_files(paths, tmp_path / "merged.model", progress=False)
    assert (tmp_path / "merged.model").read_bytes() == expected
    assert sorted(with_rows) == sorted(str(p) for p in paths)  # rows parsed once each, whatever the passes
    merge = {p.name: p for p in report.phases}["merge"]
    streams = args != "--ftrl"
    assert merge.bytes_read == (sum(p.stat().st_size for p in paths[1:]) if streams else 0)
    assert merge.bytes_reread == 0


def test_a_cache_budget_too_small_reads_the_rest_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A base learner that does not stream (ftrl) is merged from states the scan keeps, within
    the cache's budget; the others are parsed again when the merge reads them."""
    paths = _small_models(tmp_path, "--ftrl")
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


def test_memory_per_small_model_stays_small(tmp_path: Path) -> None:
    """Peak memory of merging 200 and 2,000 copies of a small model (subprocesses): what each
    further model costs is a few small records and, within the cache budget, its parsed state."""
    model = _small_models(tmp_path, k=1)[0]
    copies = tmp_path / "copies"
    copies.mkdir()
    lists = {}
    for n in (200, 2000):
        names = []
        for i in range(n):
            target = copies / f"c{i}.model"
            if not target.exists():
                shutil.copyfile(model, target)
            names.append(str(target))
        lists[n] = tmp_path / f"list{n}.txt"
        lists[n].write_text("\n".join(names) + "\n")
    small, large = (_peak_rss(lists[n], tmp_path / f"out{n}.model") for n in (200, 2000))
    per_model = (large - small) / 1800
    size = model.stat().st_size
    # a kept state costs about its file's bytes plus CACHED_STATE_OVERHEAD; records a little more
    assert per_model < size + executors.CACHED_STATE_OVERHEAD + 2048, f"{per_model:.0f} bytes per model"


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
