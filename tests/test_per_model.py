"""The shortcuts that keep a merge's Python work per model small (docs/scale.md, "Each model")
give what the long way gives: the scan's byte count, a re-read that skips a known header, and
the header checksum remembered by its bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import pytest
from helpers.vwtrain import train
from vwmerge.format.binio import Writer
from vwmerge.format.header import Header
from vwmerge.format.murmur import chained_checksum
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
