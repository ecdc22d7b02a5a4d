"""The model file header: version, id, labels, bits, ngram/skip fields, options, checksum.

Strings are kept as the raw length-prefixed payloads (NUL and any tail included) so that a
read-then-write gives back the same bytes; the checksum is always recomputed on write and
verified on read.
"""

from __future__ import annotations

import re

import attrs

from .binio import Reader, Writer
from .murmur import chained_checksum, murmur3_32

#: Version strings are LP blobs of at most this many bytes (VW's reader buffer).
MAX_VERSION_LEN = 512
#: VW's read-side sanity limit on the options string.
MAX_OPTIONS_LEN = 104_857_600
#: VW allocates 2^bits rows x stride floats; more than 2^64 rows cannot exist on any machine.
MAX_BITS = 64

MIN_SUPPORTED = (8, 0, 3)


def parse_version(raw: bytes) -> tuple[int, int, int]:
    text = raw.split(b"\0", 1)[0].decode("ascii", "replace")
    m = re.match(r"^\s*(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def lp_string(text: str) -> bytes:
    """The raw payload VW writes for a string: its bytes plus a trailing NUL."""
    return text.encode("utf-8") + b"\0"


@attrs.frozen
class Header:
    """Everything before the first reduction section."""

    version_raw: bytes
    id_raw: bytes
    min_label: float
    max_label: float
    bits: int
    lda: int
    ngrams: tuple[bytes, ...]
    skips: tuple[bytes, ...]
    options_raw: bytes

    @property
    def version(self) -> tuple[int, int, int]:
        return parse_version(self.version_raw)

    @property
    def version_text(self) -> str:
        return _cstr(self.version_raw)

    @property
    def id(self) -> str:
        return _cstr(self.id_raw)

    @property
    def options_text(self) -> str:
        return _cstr(self.options_raw)

    def _checksum_chunks(self) -> list[bytes]:
        w = Writer()
        chunks: list[bytes] = []

        def add(kind: str, value: object) -> None:
            w.parts.clear()
            w.scalar(kind, value)
            chunks.append(w.getvalue())

        add("u32", len(self.id_raw))
        chunks.append(self.id_raw)
        chunks.append(b"m")
        add("f32", self.min_label)
        add("f32", self.max_label)
        add("u32", self.bits)
        add("u32", self.lda)
        add("u32", len(self.ngrams))
        chunks.extend(self.ngrams)
        add("u32", len(self.skips))
        chunks.extend(self.skips)
        add("u32", len(self.options_raw))
        chunks.append(self.options_raw)
        return chunks

    def checksum(self) -> int:
        return chained_checksum(self._checksum_chunks())

    def write(self, w: Writer) -> None:
        w.u32(len(self.version_raw))
        w.bytes(self.version_raw)
        for chunk in self._checksum_chunks():
            w.bytes(chunk)
        w.u32(4)
        w.u32(self.checksum())

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def read(cls, r: Reader) -> Header:
        n = r.u32("version string length")
        if n == 0 or n > MAX_VERSION_LEN:
            raise r.fail(f"not a VW model file: version string length {n} is out of range")
        version_raw = r.bytes(n, "version string")
        try:
            version = parse_version(version_raw)
        except ValueError:
            raise r.fail(f"not a VW model file: bad version string {version_raw[:40]!r}") from None
        vtext = _cstr(version_raw)
        if version < MIN_SUPPORTED:
            raise r.fail(
                f"model version {vtext} is not supported (vwmerge reads files written by VW 8.0.3 "
                "and later; re-save the model with a current VW)"
            )
        if version >= (10, 0, 0):
            raise r.fail(f"model version {vtext} is newer than the 9.x format vwmerge understands")
        id_len = r.u32("id length")
        if id_len > MAX_VERSION_LEN:
            raise r.fail(f"corrupt header: id length {id_len} exceeds VW's limit of 512")
        id_raw = r.bytes(id_len, "id")
        marker = r.bytes(1, "model marker")
        if marker != b"m":
            raise r.fail("not a VW model file (model marker 'm' missing)")
        min_label = r.f32("min_label")
        max_label = r.f32("max_label")
        bits = r.u32("bits")
        if bits == 0 or bits > MAX_BITS:
            raise r.fail(f"corrupt header: bits = {bits} is out of range 1..{MAX_BITS}")
        lda = r.u32("lda")
        ngrams = tuple(r.bytes(3, "ngram") for _ in range(r.count("ngram", 3)))
        skips = tuple(r.bytes(3, "skip") for _ in range(r.count("skip", 3)))
        opt_len = r.count("options string", 1)
        if opt_len > MAX_OPTIONS_LEN:
            raise r.fail(f"corrupt header: options string length {opt_len} exceeds 100 MiB")
        options_raw = r.bytes(opt_len, "options string")
        header = cls(version_raw, id_raw, min_label, max_label, bits, lda, ngrams, skips, options_raw)
        if version >= (8, 0, 1):
            ck_len = r.u32("checksum length")
            if ck_len != 4:
                raise r.fail(f"corrupt header: checksum length {ck_len}, expected 4")
            stored = r.u32("checksum")
            if version == (8, 0, 1):
                raise r.fail("model version 8.0.1 (non-chained checksum) is not supported")
            if stored != header.checksum():
                raise r.fail(
                    f"bad header checksum: stored {stored}, computed {header.checksum()} "
                    "(the file is corrupted or was edited)"
                )
        return header


__all__ = ["MAX_BITS", "Header", "lp_string", "murmur3_32", "parse_version"]
