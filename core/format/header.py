"""The model file header: version, id, labels, bits, ngram/skip fields, options, checksum.

Strings are kept as the raw length-prefixed payloads (NUL and any tail included) so that a
read-then-write gives back the same bytes; the checksum is always recomputed on write and
verified on read.

Which fields a header has depends on its version, exactly as VW 9.11.9's reader decides
(``parse_regressor.cc``, constants of ``vw_versions.h``; see docs/format.md "Old files"):
files of 7.6.0 (the oldest VW loads) up to 8.0.2 have no id, pairs/triples (and, in 7.10.2
only, an interactions list) where later files keep ``-q``/``--cubic`` in the options string,
a rank field up to 7.8.0, no checksum before 8.0.1 and an unchained one in 8.0.1.
"""

from __future__ import annotations

import functools
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

Version = tuple[int, int, int]

#: VW 9.11.9 refuses anything older ("Model has possibly incompatible version!"; its
#: LAST_COMPATIBLE_VERSION).
MIN_SUPPORTED: Version = (7, 6, 0)
#: Up to and including this version the header has a u32 rank after the interactions
#: (VERSION_FILE_WITH_RANK_IN_HEADER; VW compares with <=).
RANK_IN_HEADER_UNTIL: Version = (7, 8, 0)
#: From here to INTERACTIONS_IN_OPTIONS the header also lists general interactions.
INTERACTIONS_LIST_SINCE: Version = (7, 10, 2)
#: From here on -q/--cubic/--interactions live in the options string; before, the header has
#: pairs and triples.
INTERACTIONS_IN_OPTIONS_SINCE: Version = (7, 10, 3)
#: A checksum after the options string: MurmurHash3 of the header bytes (8.0.1), chained over
#: each field from 8.0.2 on.
CHECKSUM_SINCE: Version = (8, 0, 1)
CHAINED_CHECKSUM_SINCE: Version = (8, 0, 2)
#: The --id string after the version.
ID_SINCE: Version = (8, 0, 3)
#: VW reads a header interaction into a 512-byte buffer (a longer one would overflow it).
MAX_INTERACTION_LEN = 512


#: Every version at which VW 9.11.9's reader changes what it reads from a file or how it
#: interprets it (the constants of vw_versions.h it compares against, header and reductions;
#: 7.8.1 stands for "after 7.8.0", VW's ``<=`` test for the header rank). Two files on the same
#: side of every one of them are read alike; a merge requires that (see docs/merge-semantics.md).
READER_CHANGES: tuple[Version, ...] = (
    (7, 8, 1),  # no header rank
    (7, 10, 1),  # gd save_resume: total_weight, old weighted examples, current pass
    (7, 10, 2),  # header interactions list
    (7, 10, 3),  # -q/--cubic/--interactions in the options string
    (8, 0, 1),  # header checksum
    (8, 0, 2),  # chained checksum
    (8, 0, 3),  # header id; lda rows with u64 index
    (8, 3, 2),  # cb_adf section
    (8, 3, 3),  # gd current_pass as u64 (was size_t)
    (8, 9, 0),  # ccb multi-slot flag, cover/synthcover counters
    (8, 11, 0),  # --cb as cb_adf; regcb/squarecb/first sections
    (9, 0, 0),  # gd l1/l2 state; active seen labels
    (9, 4, 0),  # active seen labels reverted
    (9, 6, 0),  # kernel_svm flat example tag
    (9, 7, 0),  # plt layout
    (9, 10, 0),  # active seen labels back; memory_tree layout
)


def reader_epoch(version: Version) -> tuple[Version, Version | None]:
    """The version range [since, until) around ``version`` that VW 9.11.9 reads alike."""
    since: Version = MIN_SUPPORTED
    for change in READER_CHANGES:
        if version < change:
            return since, change
        since = change
    return since, None


@functools.lru_cache(maxsize=256)
def parse_version(raw: bytes) -> Version:
    text = raw.split(b"\0", 1)[0].decode("ascii", "replace")
    m = re.match(r"^\s*(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@functools.lru_cache(maxsize=1024)
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
    #: Before 7.10.3 only: the header's pairs (2 bytes each) and triples (3 bytes each).
    pairs: tuple[bytes, ...] | None = None
    triples: tuple[bytes, ...] | None = None
    #: 7.10.2 only: the header's interactions (raw namespace bytes of each).
    interactions: tuple[bytes, ...] | None = None
    #: Up to 7.8.0 only: the header's rank field (VW adds ``--rank`` when it is not 0).
    rank: int | None = None

    @property
    def version(self) -> Version:
        return parse_version(self.version_raw)

    @property
    def has_id(self) -> bool:
        return self.version >= ID_SINCE

    @property
    def has_checksum(self) -> bool:
        return self.version >= CHECKSUM_SINCE

    def layout_fields(self) -> dict[str, object]:
        """The fields only old layouts have (configuration, like the options string)."""
        return {"pairs": self.pairs, "triples": self.triples, "interactions": self.interactions, "rank": self.rank}

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
        """Every field after the version, one chunk per read/write call VW makes."""
        w = Writer()
        chunks: list[bytes] = []
        version = self.version

        def add(kind: str, value: object) -> None:
            w.parts.clear()
            w.scalar(kind, value)
            chunks.append(w.getvalue())

        if version >= ID_SINCE:
            add("u32", len(self.id_raw))
            chunks.append(self.id_raw)
        chunks.append(b"m")
        add("f32", self.min_label)
        add("f32", self.max_label)
        add("u32", self.bits)
        if version < INTERACTIONS_IN_OPTIONS_SINCE:
            for group in (self.pairs or (), self.triples or ()):
                add("u32", len(group))
                chunks.extend(group)
            if version >= INTERACTIONS_LIST_SINCE:
                add("u32", len(self.interactions or ()))
                for inter in self.interactions or ():
                    add("u32", len(inter))
                    chunks.append(inter)
        if version <= RANK_IN_HEADER_UNTIL:
            add("u32", self.rank or 0)
        add("u32", self.lda)
        add("u32", len(self.ngrams))
        chunks.extend(self.ngrams)
        add("u32", len(self.skips))
        chunks.extend(self.skips)
        add("u32", len(self.options_raw))
        chunks.append(self.options_raw)
        return chunks

    def _unchecked_bytes(self) -> bytes:
        w = Writer()
        w.u32(len(self.version_raw))
        w.bytes(self.version_raw)
        for chunk in self._checksum_chunks():
            w.bytes(chunk)
        return w.getvalue()

    def checksum(self) -> int:
        """The checksum VW 9.11.9 expects for this header (meaningful from 8.0.1 on).

        8.0.1: one MurmurHash3 (seed 0) of every header byte from the version's length to the
        options string (VW hashes its read buffer from its start). 8.0.2 on: chained over the
        fields after the version.
        """
        if self.version < CHAINED_CHECKSUM_SINCE:
            return murmur3_32(self._unchecked_bytes(), 0)
        return _chained_checksum(tuple(self._checksum_chunks()))

    def write(self, w: Writer) -> None:
        w.bytes(self._unchecked_bytes())
        if self.has_checksum:
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
                f"model version {vtext} is not supported: VW 9.11.9 refuses files older than 7.6.0 "
                '("Model has possibly incompatible version!") and so does vwmerge'
            )
        if version >= (10, 0, 0):
            raise r.fail(f"model version {vtext} is newer than the 9.x format vwmerge understands")
        start = r.pos - 4 - n
        id_raw = b""
        if version >= ID_SINCE:
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
        pairs = triples = interactions = None
        rank = None
        if version < INTERACTIONS_IN_OPTIONS_SINCE:
            pairs = tuple(r.bytes(2, "pair") for _ in range(r.count("pair", 2)))
            triples = tuple(r.bytes(3, "triple") for _ in range(r.count("triple", 3)))
            if version >= INTERACTIONS_LIST_SINCE:
                interactions = tuple(_read_interaction(r) for _ in range(r.count("interaction", 4)))
        if version <= RANK_IN_HEADER_UNTIL:
            rank = r.u32("rank")
        lda = r.u32("lda")
        ngrams = tuple(r.bytes(3, "ngram") for _ in range(r.count("ngram", 3)))
        skips = tuple(r.bytes(3, "skip") for _ in range(r.count("skip", 3)))
        opt_len = r.count("options string", 1)
        if opt_len > MAX_OPTIONS_LEN:
            raise r.fail(f"corrupt header: options string length {opt_len} exceeds 100 MiB")
        options_raw = r.bytes(opt_len, "options string")
        header = cls(
            version_raw, id_raw, min_label, max_label, bits, lda, ngrams, skips, options_raw,
            pairs, triples, interactions, rank,
        )  # fmt: skip
        if header.has_checksum:
            end = r.pos
            ck_len = r.u32("checksum length")
            if ck_len != 4:
                raise r.fail(f"corrupt header: checksum length {ck_len}, expected 4")
            stored = r.u32("checksum")
            # 8.0.1: VW hashes its read buffer, i.e. the file's bytes up to the checksum.
            unchained = version < CHAINED_CHECKSUM_SINCE
            computed = murmur3_32(bytes(r.buf[start:end]), 0) if unchained else header.checksum()
            if stored != computed:
                raise r.fail(
                    f"bad header checksum: stored {stored}, computed {computed} (the file is corrupted or was edited)"
                )
        return header


@functools.lru_cache(maxsize=4096)
def _chained_checksum(chunks: tuple[bytes, ...]) -> int:
    """The chained checksum of a header's bytes, remembered (keyed by the exact bytes, never by
    values that compare equal, like -0.0 and 0.0): a merge verifies each input's header when it
    scans it and again when it reads its rows, and the models of one fleet often share a header."""
    return chained_checksum(list(chunks))


def _read_interaction(r: Reader) -> bytes:
    n = r.u32("interaction length")
    if n > MAX_INTERACTION_LEN:
        raise r.fail(f"corrupt header: interaction length {n} exceeds VW's limit of {MAX_INTERACTION_LEN}")
    return r.bytes(n, "interaction")


__all__ = [
    "CHAINED_CHECKSUM_SINCE",
    "CHECKSUM_SINCE",
    "ID_SINCE",
    "INTERACTIONS_IN_OPTIONS_SINCE",
    "INTERACTIONS_LIST_SINCE",
    "MAX_BITS",
    "MIN_SUPPORTED",
    "RANK_IN_HEADER_UNTIL",
    "READER_CHANGES",
    "Header",
    "Version",
    "lp_string",
    "murmur3_32",
    "parse_version",
    "reader_epoch",
]
