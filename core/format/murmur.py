"""MurmurHash3 x86_32, the hash VW chains over its header writes to form the model checksum.

The header is a few hundred bytes, so a plain Python implementation is fast enough and keeps
vwmerge free of compiled dependencies.
"""

from __future__ import annotations

import struct

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_M32 = 0xFFFFFFFF


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """Return MurmurHash3_x86_32 of ``data`` (Appleby's reference algorithm; the rotations are
    written out and the blocks unpacked at once: this runs for every model a merge reads)."""
    h = seed & _M32
    n = len(data)
    nblocks = n // 4
    for block in struct.unpack_from(f"<{nblocks}I", data) if nblocks else ():
        k = (block * _C1) & _M32
        k = ((k << 15) | (k >> 17)) & _M32
        k = (k * _C2) & _M32
        h ^= k
        h = ((h << 13) | (h >> 19)) & _M32
        h = (h * 5 + 0xE6546B64) & _M32
    tail = n & 3
    if tail:
        k = 0
        base = 4 * nblocks
        if tail >= 3:
            k ^= data[base + 2] << 16
        if tail >= 2:
            k ^= data[base + 1] << 8
        k ^= data[base]
        k = (k * _C1) & _M32
        k = ((k << 15) | (k >> 17)) & _M32
        k = (k * _C2) & _M32
        h ^= k
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def chained_checksum(chunks: list[bytes]) -> int:
    """VW >= 8.0.2: the hash of each non-empty write call seeds the next one."""
    h = 0
    for chunk in chunks:
        if chunk:
            h = murmur3_32(chunk, h)
    return h
