"""Build model files of VW 7.6.0–8.0.2 from real VW 9.11.9 models, for the tests.

VW 9.11.9 cannot write old files, so the tests re-encode a freshly trained 9.11.9 model in the
old layout that docs/format.md ("Old files") documents, from VW's reader (parse_regressor.cc,
gd.cc, lda_core.cc, cb_adf.cc). This module is written from that description on its own — it
imports nothing from vwmerge — so a fixture that VW 9.11.9 loads and predicts with like the
original confirms the documented layout independently of vwmerge's reader and writer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs

Version = tuple[int, int, int]


def murmur3(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32 (VW's uniform_hash)."""
    m = 0xFFFFFFFF
    h = seed & m

    def mix(k: int) -> int:
        k = (k * 0xCC9E2D51) & m
        k = ((k << 15) | (k >> 17)) & m
        return (k * 0x1B873593) & m

    full = len(data) // 4 * 4
    for i in range(0, full, 4):
        h ^= mix(int.from_bytes(data[i : i + 4], "little"))
        h = ((h << 13) | (h >> 19)) & m
        h = (h * 5 + 0xE6546B64) & m
    if len(data) > full:
        h ^= mix(int.from_bytes(data[full:], "little"))
    h ^= len(data)
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h ^= h >> shift
        h = (h * mult) & m
    return h ^ (h >> 16)


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def lp(raw: bytes) -> bytes:
    return u32(len(raw)) + raw


@attrs.frozen
class Modern:
    """A VW 9.x file cut into its header fields and the sections after the header."""

    labels: bytes  # f32 min_label, f32 max_label
    bits: int
    lda: int
    ngrams: tuple[bytes, ...]
    skips: tuple[bytes, ...]
    options: str
    body: bytes


def split_modern(data: bytes) -> Modern:
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        out = data[pos : pos + n]
        assert len(out) == n
        pos += n
        return out

    def word() -> int:
        return int(struct.unpack("<I", take(4))[0])

    take(word())  # version
    take(word())  # id
    assert take(1) == b"m"
    labels = take(8)
    bits, lda = word(), word()
    ngrams = tuple(take(3) for _ in range(word()))
    skips = tuple(take(3) for _ in range(word()))
    options = take(word()).split(b"\0", 1)[0].decode()
    assert word() == 4
    take(4)  # checksum
    return Modern(labels, bits, lda, ngrams, skips, options, data[pos:])


def old_header(
    version: Version,
    m: Modern,
    options: str,
    *,
    pairs: tuple[bytes, ...] = (),
    triples: tuple[bytes, ...] = (),
    interactions: tuple[bytes, ...] = (),
    rank: int = 0,
) -> bytes:
    """The header of ``version`` (7.6.0 <= version < 8.0.3), field by field as VW 9.11.9 reads it.

    Each list element is one read call of VW's reader: the 8.0.2 checksum chains over them.
    """
    calls: list[bytes] = [b"m", m.labels[:4], m.labels[4:], u32(m.bits)]
    if version < (7, 10, 3):
        calls += [u32(len(pairs)), *pairs, u32(len(triples)), *triples]
        if version >= (7, 10, 2):
            calls.append(u32(len(interactions)))
            for inter in interactions:
                calls += [u32(len(inter)), inter]
    if version <= (7, 8, 0):
        calls.append(u32(rank))
    calls += [u32(m.lda), u32(len(m.ngrams)), *m.ngrams, u32(len(m.skips)), *m.skips]
    opt = options.encode() + b"\0"
    calls += [u32(len(opt)), opt]
    head = lp(".".join(map(str, version)).encode() + b"\0") + b"".join(calls)
    if version < (8, 0, 1):
        return head
    if version == (8, 0, 1):
        checksum = murmur3(head, 0)  # VW hashes its read buffer from the file's first byte
    else:
        checksum = 0
        for call in calls:
            checksum = murmur3(call, checksum)
    return head + u32(4) + u32(checksum)


# --- the sections whose layout differs ---------------------------------------------------------
GD_ONLINE_FIXED = 1 + 4 + 8 + 24 + 12 + 24 + 16  # resume byte .. total_features, one model


def gd_resume_body(version: Version, body: bytes, offset: int = 0) -> bytes:
    """gd's save_resume state (one per-model state) as written before 9.0.0 / 7.10.1."""
    assert body[offset] == 1, "not a save_resume gd section"
    tw = offset + GD_ONLINE_FIXED  # f64 total_weight, f64 old weighted examples, u64 current pass
    l1l2 = tw + 24  # f64 l1_state, f64 l2_state: 9.0.0 on
    fixed = body[:l1l2] + body[l1l2 + 16 :]
    if version < (7, 10, 1):
        fixed = fixed[:tw] + fixed[tw + 24 :]
    return fixed


def lda_u32_body(topics: int) -> Callable[[Version, bytes], bytes]:
    """lda rows ``u64 index, topics x f32`` become ``u32 index, ...`` before 8.0.3."""

    def convert(version: Version, body: bytes) -> bytes:
        if version >= (8, 0, 3):
            return body
        row = 8 + 4 * topics
        assert len(body) % row == 0
        out = bytearray()
        for i in range(0, len(body), row):
            index = int(struct.unpack_from("<Q", body, i)[0])
            out += u32(index) + body[i + 8 : i + row]
        return bytes(out)

    return convert


def without_cb_adf_counters(version: Version, body: bytes) -> bytes:
    """cb_adf's section (u64 event_sum, u64 action_sum; it is the first) exists from 8.3.2."""
    return body[16:] if version < (8, 3, 2) else body


def with_version(data: bytes, version: Version) -> bytes:
    """A 9.x file relabelled as ``version`` >= 8.0.3 (same header layout; the chained checksum
    does not cover the version string). The caller fixes the sections."""
    assert version >= (8, 0, 3)
    n = int(struct.unpack_from("<I", data, 0)[0])
    return lp(".".join(map(str, version)).encode() + b"\0") + data[4 + n :]


def drop(start: int, size: int, since: Version) -> Callable[[Version, bytes], bytes]:
    """A record of ``size`` bytes at ``start`` of the sections that files before ``since`` lack
    (cb_explore's and cover's u64 counter before 8.9.0, squarecb's before 8.11.0, the ccb flag
    before 8.9.0, cb_adf's 16 bytes of counters before 8.3.2)."""

    def cut(version: Version, body: bytes) -> bytes:
        return body if version >= since else body[:start] + body[start + size :]

    return cut


def zero(start: int, size: int) -> Callable[[bytes], bytes]:
    """The 9.x file with a record zeroed: the state VW 9.11.9 has when an old file lacks it."""

    def clear(modern: bytes) -> bytes:
        body = split_modern(modern).body
        at = len(modern) - len(body) + start
        return modern[:at] + bytes(size) + modern[at + size :]

    return clear
