"""Corrupt, truncated, absurd and foreign files: one clear :class:`vwmerge.ModelFormatError` each.

Every case starts from a real VW 9.11.9 file and breaks one thing. The error must name the file
and the problem, and the reader must check every claimed size against the bytes that are really
there *before* allocating: the claims below run to gigabytes, and the test traces the memory the
load allocates (tracemalloc also sees numpy's buffers) and requires it to stay tiny.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import pytest
import vowpalwabbit
import vwmerge
from helpers.models import Models
from vwmerge.format.binio import Reader
from vwmerge.format.header import Header

#: Generous bound on what loading a small corrupt file may allocate (the claims are ≥ 2 GiB).
MAX_ALLOCATION = 1 << 20


@attrs.frozen
class Layout:
    """Offsets in a real default (``-b 18``, 3 floats per row) model."""

    data: bytes
    header: Header
    header_end: int  #: first byte of the gd section (its resume flag)

    @property
    def options_offset(self) -> int:
        """Offset of the options string's u32 length (it ends 8 bytes before the header end)."""
        return self.header_end - 8 - len(self.header.options_raw) - 4

    @property
    def rows_offset(self) -> int:
        return self.header_end + 1 + 128  # resume flag + online state with one per-model pair


def _layout(path: Path) -> Layout:
    data = path.read_bytes()
    r = Reader(data)
    header = Header.read(r)
    return Layout(data, header, r.pos)


@pytest.fixture(scope="module")
def default_model(models: Models) -> Layout:
    return _layout(models.inputs("", 1)[0])


@pytest.fixture(scope="module")
def sgd_model(models: Models) -> Layout:
    return _layout(models.inputs("--sgd", 1)[0])


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _splice(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _with_header(lay: Layout, **changes: object) -> bytes:
    """The same file with header fields changed and a correct checksum for them."""
    return attrs.evolve(lay.header, **changes).to_bytes() + lay.data[lay.header_end :]


def _load_fails(tmp_path: Path, name: str, data: bytes, *problem: str, load_weights: bool = True) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    vwmerge.default_registry()  # plugins are imported once per process: not part of the load
    tracemalloc.start()
    try:
        with pytest.raises(vwmerge.ModelFormatError) as err:
            vwmerge.load(path, load_weights=load_weights)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for text in problem:
        assert text in message, message
    assert peak < MAX_ALLOCATION, f"loading allocated {peak} bytes"
    return message


# --- truncation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("load_weights", [True, False], ids=["load", "dry-run"])
def test_cut_mid_row(default_model: Layout, tmp_path: Path, load_weights: bool) -> None:
    data = default_model.data[:-3]
    _load_fails(tmp_path, "cut-row.model", data, "not a whole number of 16-byte rows", load_weights=load_weights)


def test_payload_not_a_multiple_of_the_row_size(sgd_model: Layout, tmp_path: Path) -> None:
    _load_fails(tmp_path, "extra.model", sgd_model.data + b"\1\2\3\4\5", "not a whole number of 8-byte rows")


def test_cut_mid_header(default_model: Layout, tmp_path: Path) -> None:
    # min_label is the f32 at 0x11..0x15 (after an empty id); cut in its middle.
    _load_fails(tmp_path, "cut-header.model", default_model.data[:0x13], "truncated", "min_label")


def test_cut_mid_online_state(default_model: Layout, tmp_path: Path) -> None:
    # resume flag, initial_t (4), normalized_sum_norm_x (8), t (8), sum_loss (8), then cut 2
    # bytes into sum_loss_since_last_dump.
    cut = default_model.header_end + 1 + 4 + 8 + 8 + 8 + 2
    _load_fails(tmp_path, "cut-state.model", default_model.data[:cut], "truncated", "sum_loss_since_last_dump")


def test_cut_right_after_the_header(default_model: Layout, tmp_path: Path) -> None:
    _load_fails(tmp_path, "no-gd.model", default_model.data[: default_model.header_end], "resume flag")


# --- damaged content ---------------------------------------------------------------------------


def test_bad_checksum(sgd_model: Layout, tmp_path: Path) -> None:
    data = sgd_model.data
    pos = data.index(b" --sgd\0")
    damaged = _splice(data, pos + 5, b"e")  # " --sge": still a plausible options string
    _load_fails(tmp_path, "checksum.model", damaged, "bad header checksum", f"stored {sgd_model.header.checksum()}")


def test_row_index_not_below_2_to_the_bits(default_model: Layout, tmp_path: Path) -> None:
    damaged = _splice(default_model.data, default_model.rows_offset, _u32(1 << 18))
    _load_fails(tmp_path, "index.model", damaged, "row index 262144 is not below 2^18")


def test_wide_row_index_not_below_2_to_the_bits(models: Models, tmp_path: Path) -> None:
    lay = _layout(models.inputs("--sgd --sparse_weights -b 31", 1)[0])
    damaged = _splice(lay.data, lay.rows_offset, struct.pack("<Q", (1 << 31) + 5))
    _load_fails(tmp_path, "index64.model", damaged, f"row index {(1 << 31) + 5} is not below 2^31")


def test_a_duplicate_row_the_later_wins_as_in_vw(default_model: Layout, tmp_path: Path) -> None:
    """A row index written twice (not by VW's dense writer, but VW reads it): VW's reading stores
    each row in place, so the later copy wins; vwmerge's canonical rows must say the same."""
    data = default_model.data
    row = 4 + 3 * 4
    last = data[-row:]
    index = struct.unpack_from("<I", last)[0]
    changed = last[:4] + struct.pack("<3f", 0.5, 2.0, 1.25)
    path = tmp_path / "dup.model"
    path.write_bytes(data + changed)  # the last row again, with other values, after it
    table = vwmerge.load(path).state("gd").table.canonical()
    assert len(np.unique(table.index)) == len(table.index)
    mine = table.values[np.searchsorted(table.index, index)]
    assert mine.tolist() == [0.5, 2.0, 1.25]
    # VW itself: load and save it; its dense writer writes each row once, with what it read last
    resaved = tmp_path / "vw.model"
    vw = vowpalwabbit.Workspace(f"-i {path} --quiet --preserve_performance_counters", enable_logging=False)
    try:
        vw.save(str(resaved))
    finally:
        vw.finish()
    theirs = vwmerge.load(resaved).state("gd").table.canonical()
    assert np.array_equal(theirs.index, table.index) and np.array_equal(theirs.values, table.values)
    merged = vwmerge.merge([vwmerge.load(path), vwmerge.load(path)], weights=[1, 1])
    assert np.array_equal(merged.state("gd").table.canonical().values, table.values)


@pytest.mark.parametrize("bits", [200, 0])
def test_absurd_bits(default_model: Layout, tmp_path: Path, bits: int) -> None:
    _load_fails(tmp_path, f"bits{bits}.model", _with_header(default_model, bits=bits), f"bits = {bits} is out of range")


def test_missing_model_marker(default_model: Layout, tmp_path: Path) -> None:
    damaged = _splice(default_model.data, 0x10, b"x")  # the 'm' after an empty id
    _load_fails(tmp_path, "marker.model", damaged, "model marker 'm' missing")


# --- absurd lengths: checked before anything is allocated -------------------------------------


def _options_length(lay: Layout, n: int) -> bytes:
    return _splice(lay.data, lay.options_offset, _u32(n))


CLAIMS: dict[str, tuple[Callable[[Layout], bytes], tuple[str, ...]]] = {
    "version-2^31": (lambda lay: _splice(lay.data, 0, _u32(1 << 31)), ("version string length 2147483648",)),
    "version-2^32-1": (lambda lay: _splice(lay.data, 0, _u32(2**32 - 1)), ("version string length 4294967295",)),
    "options-2^31-1": (lambda lay: _options_length(lay, 2**31 - 1), ("options string", "2147483647")),
    "options-over-100MiB-but-present": (
        lambda lay: _options_length(lay, 104_857_601),
        ("options string", "104857601"),
    ),
    "id-2^32-1": (lambda lay: _splice(lay.data, 11, _u32(2**32 - 1)), ("id length 4294967295",)),
    "id-513": (lambda lay: _splice(lay.data, 11, _u32(513)), ("id length 513",)),
    "ngrams-2^30": (lambda lay: _splice(lay.data, 0x21, _u32(1 << 30)), ("ngram", str(1 << 30))),
    "skips-2^30": (lambda lay: _splice(lay.data, 0x25, _u32(1 << 30)), ("skip", str(1 << 30))),
    # fewer ngrams than bytes left, but not 3 bytes each: the count is checked in bytes, not items
    "ngrams-one-too-many": (
        lambda lay: _splice(lay.data, 0x21, _u32(_one_too_many(lay))),
        ("ngram claims", "items"),
    ),
}


def _one_too_many(lay: Layout) -> int:
    remaining = len(lay.data) - 0x25
    n = remaining // 3 + 1
    assert n <= remaining < 3 * n
    return n


@pytest.mark.parametrize("case", sorted(CLAIMS))
def test_absurd_lengths_are_refused_before_allocating(default_model: Layout, tmp_path: Path, case: str) -> None:
    make, problem = CLAIMS[case]
    assert default_model.header.id_raw == b"\0"  # the offsets above assume an empty id
    _load_fails(tmp_path, f"{case}.model", make(default_model), *problem)


# --- versions, empty and foreign files ---------------------------------------------------------


@pytest.mark.parametrize(("version", "problem"), [("7.5.9", "is not supported"), ("10.0.0", "newer than")])
def test_unsupported_version_is_named(default_model: Layout, tmp_path: Path, version: str, problem: str) -> None:
    raw = version.encode() + b"\0"
    data = _u32(len(raw)) + raw + default_model.data[4 + len(default_model.header.version_raw) :]
    message = _load_fails(tmp_path, f"v{version}.model", data, f"model version {version}", problem)
    assert "7.6.0" in message or "9.x" in message


def test_empty_file(tmp_path: Path) -> None:
    _load_fails(tmp_path, "empty.model", b"", "empty file")


def test_empty_bytes() -> None:
    with pytest.raises(vwmerge.ModelFormatError, match=r"^<bytes>: .*version string length"):
        vwmerge.load(b"")


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("text.txt", b"hello world, this is not a model\n", "not a VW model file"),
        ("png.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64), "not a VW model file"),
        ("bad-version.bin", _u32(5) + b"abcd\0" + bytes(64), "bad version string"),
        ("short.bin", b"\x07\0", "truncated"),
    ],
)
def test_not_a_model_file(tmp_path: Path, name: str, data: bytes, problem: str) -> None:
    _load_fails(tmp_path, name, data, problem)


def test_a_directory_or_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(vwmerge.VWMergeError, match="no such file"):
        vwmerge.load(tmp_path / "missing.model")
    with pytest.raises(vwmerge.VWMergeError, match="is a directory"):
        vwmerge.load(tmp_path)


# --- exhaustive sweeps over one small file ------------------------------------------------------


def test_every_truncation_is_caught_unless_it_ends_on_a_row_boundary(default_model: Layout) -> None:
    """A file cut at a row boundary is a valid model with fewer rows (VW reads it too); every
    other cut is refused with a ModelFormatError."""
    data, rows = default_model.data, default_model.rows_offset
    for cut in range(len(data)):
        valid = cut >= rows and (cut - rows) % 16 == 0
        if valid:
            assert len(vwmerge.load(data[:cut], name="cut").state("gd").table) == (cut - rows) // 16
            continue
        with pytest.raises(vwmerge.ModelFormatError, match=r"^cut: "):
            vwmerge.load(data[:cut], name="cut")


def test_every_single_byte_corruption_is_handled(default_model: Layout) -> None:
    """Invert each byte in turn: the load succeeds or raises a vwmerge error, never anything
    else; a change anywhere in the checksummed header part (or the checksum) is always refused."""
    data, lay = default_model.data, default_model
    protected = range(4 + len(lay.header.version_raw), lay.header_end)
    for pos in range(len(data)):
        corrupt = _splice(data, pos, bytes([data[pos] ^ 0xFF]))
        try:
            vwmerge.load(corrupt, name="flip")
        except vwmerge.VWMergeError as err:
            assert str(err).startswith("flip: ") and "\n" not in str(err)
        else:
            assert pos not in protected, f"a changed header byte at offset {pos} went unnoticed"
