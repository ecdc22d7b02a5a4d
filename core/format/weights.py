"""Weight rows: ``index (u32, or u64 when bits >= 31), k x f32`` repeated to the end of the file.

A :class:`WeightTable` is the sparse form VW writes: only rows with a non-zero value are present,
so memory follows the non-zero weights, never 2^bits. Parsing and writing go through numpy
structured dtypes (no per-row Python).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs
import numpy as np

from .binio import Reader, Writer


def index_dtype(bits: int) -> np.dtype:
    """VW's rule: 4-byte row indices below 31 bits, 8-byte from 31 on."""
    return np.dtype("<u4") if bits < 31 else np.dtype("<u8")


@functools.lru_cache(maxsize=256)
def row_dtype(bits: int, k: int) -> np.dtype:
    return np.dtype([("i", index_dtype(bits)), ("v", "<f4", (k,))])


@attrs.frozen(eq=False)
class WeightTable:
    """Rows of a weight table, in file order (duplicates and order kept for round trips)."""

    index: np.ndarray  #: row numbers (uint32 or uint64)
    values: np.ndarray  #: float32, shape (rows, k)
    bits: int
    columns: tuple[str, ...]
    #: True when ``index`` is known to be strictly ascending (checked while reading, where the
    #: check also gives the largest index for free); False: unknown, check when it matters.
    ascending: bool = attrs.field(default=False, kw_only=True)

    @property
    def k(self) -> int:
        return len(self.columns)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def nbytes(self) -> int:
        return len(self) * row_dtype(self.bits, self.k).itemsize

    @classmethod
    def empty(cls, bits: int, columns: tuple[str, ...]) -> WeightTable:
        return cls(np.zeros(0, np.uint64), np.zeros((0, len(columns)), np.float32), bits, columns)

    @classmethod
    def read(
        cls, r: Reader, bits: int, columns: tuple[str, ...], *, check: bool = True, deferrable: bool = False
    ) -> WeightTable:
        """Read rows to the end of the buffer, rejecting a partial row or an index >= 2^bits.

        Rows holding NaN or ±inf are refused (:meth:`Reader.check_finite`); ``deferrable``: the
        reader may leave that to a check of the merged rows (see ``defer_nonfinite``)."""
        rows = _rows_to_end(r, bits, columns)
        index = rows["i"]
        ascending = _strictly_ascending(index)  # VW's dense writer writes rows in order
        table = cls(index, rows["v"], bits, columns, ascending=ascending)
        r.check_finite(index, table.values, columns, "non-finite weight", deferrable=deferrable)
        if check and len(table):
            _check_top(r, int(index[-1] if ascending else index.max()), bits)
        return table

    @classmethod
    def skip(cls, r: Reader, bits: int, columns: tuple[str, ...]) -> WeightTable:
        """Pass over the rows to the end of the buffer without reading them (a model scanned for
        its header and sections), still rejecting a partial row; an empty table stands for them.

        The empty table is shared by every model scanned with the same bits and columns (a merge
        of thousands of models keeps every scanned model; its arrays are read-only and hold
        nothing). The last row's index is checked against 2^bits: VW writes rows in ascending
        order, so in a file VW wrote it is the largest, and reading it touches only the file's
        last page."""
        start = r.pos
        rows = _rows_to_end(r, bits, columns)
        r.skipped += r.pos - start
        if len(rows):
            _check_top(r, int(rows["i"][-1]), bits)
        return _empty_shared(bits, columns)

    def write(self, w: Writer, chunk_rows: int = 1 << 20) -> None:
        """Rows in chunks, so a writer that streams to a file never holds a second full copy.

        Rows that already lie in the file's layout (a mapped file's rows, or the fields of one
        :func:`row_dtype` array) are written as they are; others are assembled a chunk at a time.
        """
        dt = row_dtype(self.bits, self.k)
        rows = self._as_records(dt)
        for start in range(0, len(self), chunk_rows):
            stop = min(start + chunk_rows, len(self))
            w.rows_written(self.values[start:stop])
            if rows is not None:
                w.array(rows[start:stop])
                continue
            out = np.empty(stop - start, dt)
            out["i"] = self.index[start:stop]
            out["v"] = self.values[start:stop]
            w.array(out)

    def _as_records(self, dt: np.dtype) -> np.ndarray | None:
        """The rows as one record array of dtype ``dt``, if index and values are its fields."""
        idx, vals = self.index, self.values
        base = idx.base
        fields = dt.fields
        if (
            base is None
            or fields is None
            or vals.base is not base
            or idx.dtype != dt["i"]
            or vals.dtype != dt["v"].base
            or idx.strides != (dt.itemsize,)
            or vals.strides != (dt.itemsize, vals.itemsize)
            or vals.ctypes.data - idx.ctypes.data != fields["v"][1]
        ):
            return None
        memory = np.frombuffer(base, np.uint8)
        offset = idx.ctypes.data - memory.ctypes.data
        if offset < 0 or offset + len(self) * dt.itemsize > memory.nbytes:
            return None
        return np.ndarray((len(self),), dt, buffer=memory, offset=offset)

    def is_ascending(self) -> bool:
        """Whether the rows are in strictly ascending order (known from reading, or checked)."""
        return self.ascending or _strictly_ascending(self.index)

    def canonical(self) -> WeightTable:
        """Ascending unique indices; for a duplicate index the later row wins (as in VW)."""
        idx = self.index
        if self.is_ascending():
            return WeightTable(idx.astype(np.uint64), np.asarray(self.values), self.bits, self.columns, ascending=True)
        rev = idx[::-1]
        uniq, first = np.unique(rev, return_index=True)
        return WeightTable(uniq.astype(np.uint64), self.values[::-1][first], self.bits, self.columns, ascending=True)

    def nonzero(self) -> WeightTable:
        """Only the rows VW would write: at least one value != 0 (NaN counts as non-zero)."""
        keep = np.any(self.values != 0, axis=1)
        if bool(np.all(keep)):
            return self
        return WeightTable(self.index[keep], self.values[keep], self.bits, self.columns)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]

    def with_values(self, values: np.ndarray) -> WeightTable:
        return WeightTable(self.index, values.astype(np.float32, copy=False), self.bits, self.columns)

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {"rows": len(self), "bytes": self.nbytes, "columns": list(self.columns)}
        if len(self):
            for j, name in enumerate(self.columns):
                col = self.values[:, j].astype(np.float64)
                fin = col[np.isfinite(col)]
                out[name] = {
                    "nonzero": int(np.count_nonzero(col)),
                    "min": float(fin.min()) if fin.size else None,
                    "max": float(fin.max()) if fin.size else None,
                    "mean": float(fin.mean()) if fin.size else None,
                    "l2": float(np.sqrt(np.square(fin).sum())) if fin.size else None,
                    "nonfinite": int(col.size - fin.size),
                }
        return out


def _rows_to_end(r: Reader, bits: int, columns: tuple[str, ...]) -> np.ndarray:
    layout = f"{len(columns)} float column(s) {', '.join(columns)}"
    return r.rows_to_end(row_dtype(bits, len(columns)), "weights", layout)


def _check_top(r: Reader, top: int, bits: int) -> None:
    """Reject a row index (the largest, or the last) that does not fit in ``bits``."""
    if bits < 64 and top >= (1 << bits):
        raise r.fail(
            f"corrupt weights: row index {top} is not below 2^{bits} = {1 << bits} "
            "(wrong bits in the header, or a damaged file)"
        )


def _strictly_ascending(index: np.ndarray) -> bool:
    return len(index) < 2 or bool((index[1:] > index[:-1]).all())


def union_sorted(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The sorted union (uint64) of arrays that are each sorted and unique: a k-way merge.

    Concatenated sorted runs are merged by numpy's stable sort (timsort finds the runs) in
    near-linear time; ``np.union1d`` sorts from scratch and is many times slower in numpy 2.
    """
    parts = [np.asarray(a).astype(np.uint64, copy=False) for a in arrays if len(a)]
    if not parts:
        return np.zeros(0, np.uint64)
    if len(parts) == 1:
        return parts[0]
    merged = np.concatenate(parts)
    merged.sort(kind="stable")
    keep = np.empty(len(merged), bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


def align(tables: list[WeightTable]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Union of the tables' (canonical) indices, and each table's positions in that union."""
    union = union_sorted([t.index for t in tables])
    positions = [np.searchsorted(union, t.index.astype(np.uint64, copy=False)) for t in tables]
    return union, positions


@functools.lru_cache(maxsize=64)
def _empty_shared(bits: int, columns: tuple[str, ...]) -> WeightTable:
    table = WeightTable.empty(bits, columns)
    table.index.flags.writeable = False
    table.values.flags.writeable = False
    return table
