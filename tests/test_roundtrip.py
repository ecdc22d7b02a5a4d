"""Read → write gives back VW's bytes, for every configuration of issue 2 (item 7).

Every file is written by the real VW 9.11.9 at test time. Besides the byte-for-byte round trip,
each file's layout is checked with a small parser written here from the format notes (not
vwmerge's): the reductions that write nothing really write nothing (the gd section starts right
after the header, or right after cb_adf's counters), and the online state found there is
plausible for the data that was learned (example counts, labels).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import vowpalwabbit
import vwmerge
from helpers.configs import ROUNDTRIP_CONFIGS, Config
from helpers.models import INPUT_SIZES, Models
from vwmerge.format.binio import Reader
from vwmerge.format.header import Header
from vwmerge.format.murmur import murmur3_32
from vwmerge.testing import assert_roundtrip

#: Every configuration tested here (the count is reported).
CONFIGS = ROUNDTRIP_CONFIGS


def _bits(args: str) -> int:
    tokens = args.split()
    return int(tokens[tokens.index("-b") + 1]) if "-b" in tokens else 18


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_read_write_gives_back_the_same_bytes(models: Models, config: Config, tmp_path: Path) -> None:
    for path in models.inputs(config.args):
        data = path.read_bytes()
        ws = assert_roundtrip(path)
        out = tmp_path / "resaved.model"
        assert ws.save(out) == len(data)
        assert out.read_bytes() == data


def _online_format(n: int) -> str:
    # initial_t, n×normalized_sum_norm_x, t, sum_loss, sum_loss_since_last_dump, dump_interval,
    # min_label, max_label, weighted_labeled, weighted_labels, weighted_unlabeled,
    # example_number, total_features, n×total_weight, old_weighted_labeled, current_pass, l1, l2
    return f"<f{n}d3d3f3d2Q{n}ddQ2d"


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_sections_are_where_the_format_says(models: Models, config: Config) -> None:
    """Parse each file independently: header, [cb_adf counters], gd section to EOF."""
    bits = _bits(config.args)
    for path, n_examples in zip(models.inputs(config.args), INPUT_SIZES, strict=True):
        data = path.read_bytes()
        ws = vwmerge.load(path)
        r = Reader(data, str(path))
        header = Header.read(r)
        pos = r.pos
        assert header.bits == bits
        assert [e.name for e in ws.stack if e.section] == (["cb_adf"] if config.cb_pairs else []) + ["gd"]

        if config.cb_pairs:
            counters = np.frombuffer(data, "<u8", 2 * config.cb_pairs, pos).reshape(-1, 2)
            pos += counters.nbytes
            expected = [[n_examples, 3 * n_examples]] if config.mtr else [[0, 0]]  # 3 actions each
            assert counters.tolist() == expected * config.cb_pairs
            np.testing.assert_array_equal(ws.state("cb_adf").counters, counters)

        assert data[pos] == int(config.resume)  # the gd section starts exactly here
        pos += 1
        if config.resume:
            fmt = _online_format(config.gd_states)
            fields = struct.unpack_from(fmt, data, pos)
            pos += struct.calcsize(fmt)
            g = config.gd_states
            min_label, max_label = fields[g + 5], fields[g + 6]
            wle, example_number = fields[g + 7], fields[g + 10]
            assert (min_label, max_label) == (
                np.float32(header.min_label),
                np.float32(header.max_label),
            )
            assert wle == n_examples
            assert example_number == n_examples
            l1_state, l2_state = fields[-2:]
            if "--l1" in config.args:  # pending truncation and contraction are saved raw
                assert l1_state > 0.0 and 0.0 < l2_state < 1.0
            else:
                assert (l1_state, l2_state) == (0.0, 1.0)

        index_size = 4 if bits < 31 else 8
        row_size = index_size + 4 * config.k
        assert (len(data) - pos) % row_size == 0
        rows = np.frombuffer(data, [("i", f"<u{index_size}"), ("v", "<f4", (config.k,))], offset=pos)
        assert len(rows) > 0
        assert int(rows["i"].max()) < 2**bits
        table = ws.state("gd").table
        assert table.index.dtype.itemsize == index_size
        np.testing.assert_array_equal(table.index, rows["i"])
        assert table.values.tobytes() == rows["v"].tobytes()


def test_wide_index_path_really_uses_indices_above_30_bits(models: Models) -> None:
    """``-b 31`` rows carry 8-byte indices, and the hashed features land above 2^30."""
    table = vwmerge.load(models.inputs("--sgd --sparse_weights -b 31")[0]).state("gd").table
    assert table.index.dtype == np.dtype("<u8")
    assert int(table.index.max()) >= 2**30


def test_sparse_rows_keep_their_unsorted_order(models: Models) -> None:
    """A sparse writer emits rows in hash-map order; the round trip must not sort them."""
    tables = [vwmerge.load(p).state("gd").table for p in models.inputs("--sparse_weights")]
    assert any(bool(np.any(np.diff(t.index.astype(np.int64)) < 0)) for t in tables)


# --- header checksum, byte level --------------------------------------------------------------


def test_murmur3_test_vector() -> None:
    assert murmur3_32(b"hello", 0) == 613153351


def test_checksum_of_the_annotated_example_file(tmp_path: Path) -> None:
    """The worked example of header-gd.md §8, written by VW now: stored = computed = 228156495."""
    path = tmp_path / "example.model"
    vw = vowpalwabbit.Workspace("--id ab -b 8 -l 0.25 --quiet", enable_logging=False)
    try:
        vw.learn("1 |a x:2")
        vw.learn("0.5 |a x:1")
        vw.save(str(path))
    finally:
        vw.finish()
    data = path.read_bytes()
    assert len(data) == 238
    r = Reader(data)
    header = Header.read(r)
    stored = struct.unpack_from("<I", data, r.pos - 4)[0]
    assert stored == header.checksum() == 228156495
    assert struct.unpack_from("<I", data, r.pos - 8)[0] == 4  # the checksum's own length prefix
    # A hash of the concatenated header bytes is a different number: the chain is per write call.
    assert murmur3_32(data[0x0B : r.pos - 8], 0) != stored
    assert vwmerge.load(data).to_bytes() == data


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_checksum_equals_the_value_vw_stored(models: Models, config: Config) -> None:
    data = models.inputs(config.args)[0].read_bytes()
    r = Reader(data)
    header = Header.read(r)
    assert struct.unpack_from("<I", data, r.pos - 4)[0] == header.checksum()


def test_bytes_path_and_file_object_loads_agree(models: Models) -> None:
    path = models.inputs("--cb_adf --cb_type mtr")[0]
    data = path.read_bytes()
    from_path = vwmerge.load(path)
    from_bytes = vwmerge.load(data)
    with open(path, "rb") as f:
        from_file = vwmerge.load(f)
    assert from_path.source == str(path)
    assert from_file.source == str(path)
    assert from_bytes.source == "<bytes>"
    for ws in (from_bytes, from_file):
        assert ws.to_bytes() == from_path.to_bytes() == data
        assert ws.header == from_path.header
        assert [e.name for e in ws.stack] == [e.name for e in from_path.stack]
        assert ws.describe() == from_path.describe()
