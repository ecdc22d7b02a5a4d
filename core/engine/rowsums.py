"""Row sums: the partial result of a weight-row merge, and the memory it lives in.

:class:`RowSums` holds per-row sums over the union of some inputs' rows, sparse or dense,
whichever costs less; :func:`allocate` gives the large accumulators memory that follows the rows
written (and, in a ``--jobs`` worker, a file the parent maps instead of copying).
"""

from __future__ import annotations

import functools
import mmap
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs
import numpy as np

from ..format.weights import WeightTable, row_dtype, union_sorted
from .pages import buffer_owner

T = TypeVar("T")
R = TypeVar("R")

#: Dense accumulators once the rows cover 1/DENSE_FRACTION of 2^bits: a dense column then costs
#: at most DENSE_FRACTION times the sparse one's values, saves its 8-byte index, and is indexed
#: by row number directly (no union, no binary search).
DENSE_FRACTION = 4

#: Rows per block in the row loops. Temporaries of a block stay below glibc's mmap threshold
#: (32 MiB), so malloc reuses them instead of mapping fresh pages that the kernel must zero-fill
#: for every input: on virtual machines those page faults cost as much as the arithmetic.
BLOCK = 1 << 20


@functools.cache
def _threads() -> ThreadPoolExecutor | None:
    """Threads for the blocks of one input (numpy releases the GIL in the row loops)."""
    count = min(os.cpu_count() or 1, 4)
    return ThreadPoolExecutor(count, thread_name_prefix="vwmerge") if count > 1 else None


def _map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]``, side by side on the block threads when there are several."""
    pool = _threads()
    if pool is None or len(items) < 2:
        return [fn(x) for x in items]
    return list(pool.map(fn, items))


if hasattr(os, "register_at_fork"):  # a forked --jobs worker has none of its parent's threads
    os.register_at_fork(after_in_child=_threads.cache_clear)


#: Linux: anonymous memory mapped with its pages in place. Filling a large array page fault by
#: page fault is several times slower on virtual machines (and numpy's huge-page advice makes
#: each first touch wait for the kernel to compact memory).
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


class _SharedFile(mmap.mmap):
    """Memory backed by a file in a RAM file system (``path``): an accumulator a ``--jobs`` worker
    builds there reaches the parent process as that path, not as a copy of its bytes."""

    path = ""


#: Set in ``--jobs`` worker processes (:func:`share_large_arrays`): (directory, name prefix).
_SHARED: tuple[str, str] | None = None


def share_large_arrays(directory: str, prefix: str) -> None:
    """In this process, put large new arrays in files ``directory/prefix*`` (see RowSums pickling)."""
    global _SHARED
    _SHARED = (directory, prefix)


def allocate(shape: int | tuple[int, ...], dtype: Any, *, populate: bool = True) -> np.ndarray:
    """A new zero-filled array for the large accumulators and results.

    On Linux, from 16 MiB on, anonymous memory: mapped at once (``populate``), or page by page
    as it is first written, but without the huge-page compaction stalls numpy's own allocations
    can hit; either way only the pages written count towards the process's memory. In a
    ``--jobs`` worker, a file in a RAM file system instead (:func:`share_large_arrays`).
    """
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    if not _POPULATE or nbytes < 1 << 24:
        return np.zeros(shape, dt)
    populate_flag = _POPULATE if populate else 0
    if _SHARED is not None:
        fd, path = tempfile.mkstemp(prefix=_SHARED[1], dir=_SHARED[0])
        try:
            os.ftruncate(fd, nbytes)  # a new file reads as zeros
            shared = _SharedFile(fd, nbytes, flags=mmap.MAP_SHARED | populate_flag)
        finally:
            os.close(fd)
        shared.path = path
        return np.frombuffer(shared, dt).reshape(shape)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate_flag  # zero-filled pages
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), dt).reshape(shape)


def _shared_file(array: np.ndarray) -> _SharedFile | None:
    owner = buffer_owner(array)
    if isinstance(owner, _SharedFile) and array.flags.c_contiguous and array.nbytes == len(owner):
        return owner
    return None


def _attach(path: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The array a worker left in ``path``, mapped (not copied); the file goes once mapped."""
    try:
        with open(path, "r+b") as f:
            shared = mmap.mmap(f.fileno(), 0)
    finally:
        os.unlink(path)
    return np.frombuffer(shared, np.dtype(dtype)).reshape(shape)


def _row_sums_from_file(bits: int, index: np.ndarray | None, path: str, shape: tuple[int, ...], dtype: str) -> RowSums:
    return RowSums(bits, index, _attach(path, shape, dtype))


def dense_pays(bits: int, rows: int) -> bool:
    """Whether rows covering ``rows`` of 2^bits positions are better kept dense."""
    return bits < 48 and rows * DENSE_FRACTION >= (1 << bits)


def _positions(index: np.ndarray) -> np.ndarray:
    """Row numbers as array positions; uint64 rows (< 2^63) are reinterpreted, not copied."""
    index = np.asarray(index)
    if index.dtype == np.uint64 and np.dtype(np.intp).itemsize == 8:
        return index.view(np.intp)
    return index.astype(np.intp)


def add_at(target: np.ndarray, positions: np.ndarray, values: np.ndarray) -> None:
    """``target[positions] += values`` for unique ``positions``.

    Each element gets one float addition either way, but ``np.add.at`` (numpy >= 1.25) does it
    in one pass, about twice as fast as the gather, add and scatter of a fancy-indexed ``+=`` --
    on aligned, contiguous operands of the target's dtype only: given a column of a mapped file
    (strided, often unaligned) it is fifty times slower, so such operands are copied first.
    """
    if values.dtype != target.dtype:  # mixed types: keep numpy's casting rules of ``+=``
        target[positions] += values
        return
    np.add.at(target, np.ascontiguousarray(positions), np.ascontiguousarray(values))


#: ``contribution(rows, values, positions)``: a block's additions (see :meth:`RowSums.accumulate`).
Contribution = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


@attrs.frozen(eq=False)
class RowSums:
    """Per-row accumulators over the union of some inputs' weight rows.

    ``sums[j]`` is accumulator j (one per column, or per statistic such as Σaᵢwᵢ). Sparse when
    ``index`` holds the sorted unique row numbers (``sums[j][p]`` belongs to row ``index[p]``),
    dense when ``index`` is None (position = row number): one input's rows are always sparse,
    an accumulator turns dense once :func:`dense_pays`, so memory follows the rows present,
    never N and never 2^bits for sparse models. Each element is summed in the order the partials
    are combined, in the accumulator's dtype: float32 accumulators fold exactly like VW's merge,
    which starts every sum at +0.0 (so :meth:`finish` turns a -0.0 into +0.0, the one way that
    starting from the first value can differ).
    """

    bits: int
    index: np.ndarray | None
    sums: np.ndarray

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled sums that live in a shared file (a ``--jobs`` worker's) travel as its path."""
        shared = _shared_file(self.sums)
        if shared is not None:
            return (_row_sums_from_file, (self.bits, self.index, shared.path, self.sums.shape, self.sums.dtype.str))
        return (RowSums, (self.bits, self.index, self.sums))

    @property
    def dense(self) -> bool:
        return self.index is None

    @property
    def rows(self) -> int:
        """Rows covered (dense: every row of 2^bits)."""
        return int(self.sums.shape[1])

    @classmethod
    def from_rows(cls, bits: int, index: np.ndarray, columns: np.ndarray | Sequence[np.ndarray], dtype: Any) -> RowSums:
        """Accumulators for rows ``index`` (sorted, unique, uint32 or uint64) holding ``columns``.

        ``index`` and a C-contiguous 2-D ``columns`` array (m × rows) of ``dtype`` are taken over
        as they are (the caller gives them up); other columns are copied.
        """
        dt = np.dtype(dtype)
        if isinstance(columns, np.ndarray) and columns.ndim == 2 and columns.dtype == dt and columns.flags.c_contiguous:
            sums = columns
        else:
            sums = np.empty((len(columns), len(index)), dt)
            for j, col in enumerate(columns):
                sums[j] = col
        return cls(bits, np.asarray(index), sums)

    @classmethod
    def empty(cls, bits: int, m: int, dtype: Any) -> RowSums:
        """``m`` accumulators over no rows yet."""
        return cls(bits, np.zeros(0, np.uint64), np.zeros((m, 0), dtype))

    def accumulate(
        self,
        index: np.ndarray,
        values: np.ndarray,
        contribution: Contribution,
        *,
        in_place: bool = False,
    ) -> RowSums:
        """``self`` plus one input's contribution at its rows ``index`` (sorted, unique).

        ``contribution(rows, values, positions)`` returns the m × len(rows) additions for a block
        of rows and their values; ``positions`` is ``rows`` as array positions when the sums are
        dense, None when they are sparse. Dense sums call it a :data:`BLOCK` of rows at a time,
        so no temporary grows with the input; ``index``/``values`` are only read (they may be
        views of a mapped file).
        """
        if self.index is not None and dense_pays(self.bits, max(len(self.index), len(index))):
            return self._densified().accumulate(index, values, contribution, in_place=True)
        if self.index is None:
            out = self if in_place else RowSums(self.bits, None, self.sums.copy())

            def add_block(start: int) -> None:  # blocks hit disjoint rows: safe side by side
                rows = index[start : start + BLOCK]
                pos = _positions(rows)
                for j, col in enumerate(contribution(rows, values[start : start + BLOCK], pos)):
                    add_at(out.sums[j], pos, col)

            _map(add_block, range(0, len(index), BLOCK))
            return out
        added = np.ascontiguousarray(contribution(index, values, None), dtype=self.sums.dtype)
        return self.combine(RowSums(self.bits, np.array(index), added), in_place=in_place)

    def lookup(self, index: np.ndarray, j: int = 0, positions: np.ndarray | None = None) -> np.ndarray:
        """Accumulator ``j`` at rows ``index`` (sorted, unique), which must all be covered;
        ``positions``: the same rows as array positions, if already at hand."""
        if self.index is None:
            at: np.ndarray = self.sums[j][_positions(index) if positions is None else positions]
        else:
            at = self.sums[j][np.searchsorted(self.index, np.asarray(index).astype(np.uint64, copy=False))]
        return at

    def _densified(self) -> RowSums:
        assert self.index is not None
        sums = allocate((len(self.sums), 1 << self.bits), self.sums.dtype)
        for start in range(0, len(self.index), BLOCK):
            pos = _positions(self.index[start : start + BLOCK])
            for j, col in enumerate(self.sums):
                sums[j][pos] = col[start : start + BLOCK]
        return RowSums(self.bits, None, sums)

    def combine(self, other: RowSums, *, in_place: bool = False) -> RowSums:
        """``self + other`` row by row (each element: self's sum, then other's added).

        With ``in_place`` self's arrays may be reused; ``other`` is never modified.
        """
        if self.bits != other.bits or len(self.sums) != len(other.sums):
            raise ValueError("partial row sums of different shapes cannot be combined")
        if self.index is None:
            out = self if in_place else RowSums(self.bits, None, self.sums.copy())
            if other.index is None:
                out.sums[...] += other.sums  # (a frozen attribute: add in place, never rebind)
                return out
            for start in range(0, len(other.index), BLOCK):
                pos = _positions(other.index[start : start + BLOCK])
                for j, col in enumerate(other.sums):
                    add_at(out.sums[j], pos, col[start : start + BLOCK])
            return out
        if other.index is None:
            # Float addition is commutative, so other + self gives the same bits as self + other.
            return RowSums(other.bits, None, other.sums.copy()).combine(self, in_place=True)
        if dense_pays(self.bits, max(len(self.index), len(other.index))):  # the union would be too
            return self._densified().combine(other, in_place=True)
        union = union_sorted([self.index, other.index])
        if len(union) == len(self.index):
            out = self if in_place else RowSums(self.bits, self.index, self.sums.copy())
            pos = np.searchsorted(self.index, other.index)
            for j, col in enumerate(other.sums):
                add_at(out.sums[j], pos, col)
            return out
        if dense_pays(self.bits, len(union)):
            return self._densified().combine(other, in_place=True)
        sums = np.zeros((len(self.sums), len(union)), self.sums.dtype)
        mine, theirs = np.searchsorted(union, self.index), np.searchsorted(union, other.index)
        for j in range(len(sums)):
            sums[j][mine] = self.sums[j]
            sums[j][theirs] += other.sums[j]
        return RowSums(self.bits, union, sums)

    def finish(
        self, final: Callable[[np.ndarray], np.ndarray], columns: tuple[str, ...], *, chunk: int = BLOCK
    ) -> WeightTable:
        """The merged rows: ``final`` maps accumulators (m × c) to float32 values (k × c).

        Keeps the rows with at least one value != 0 (NaN counts), the rows VW would write, in
        ascending order, laid out as in the file (so writing them is a plain copy). Two passes over
        chunks: which rows are kept (a bit per row), then the rows copied into a result of exactly
        that size, chunks side by side (each knows where its rows go). ``final`` runs twice per
        chunk, which costs less than holding every chunk's values until the size is known.
        """
        n = self.rows
        starts = range(0, n, chunk)

        def values(start: int) -> np.ndarray:
            return np.asarray(final(self.sums[:, start : start + chunk]))

        def kept(start: int) -> np.ndarray:
            vals = values(start)
            present: np.ndarray = vals[0] != 0
            for j in range(1, len(vals)):
                present |= vals[j] != 0
            return present

        masks = _map(kept, starts)
        counts = [int(np.count_nonzero(m)) for m in masks]
        offsets = np.concatenate(([0], np.cumsum(counts, dtype=np.int64))).tolist()
        records = allocate(offsets[-1], row_dtype(self.bits, len(columns)), populate=False)

        def fill(c: int) -> None:
            keep = None if counts[c] == len(masks[c]) else np.flatnonzero(masks[c])
            vals, lo, hi = values(starts[c]), offsets[c], offsets[c + 1]
            positions = np.arange(starts[c], starts[c] + len(masks[c])) if keep is None else keep + starts[c]
            records["i"][lo:hi] = positions if self.index is None else self.index[positions]
            out = records["v"][lo:hi]
            for j in range(len(columns)):
                col = vals[j] if keep is None else vals[j][keep]
                np.add(col, np.float32(0), out=out[:, j], dtype=np.float32)  # -0 → +0, and to float32

        _map(fill, range(len(starts)))
        return WeightTable(records["i"], records["v"], self.bits, columns, ascending=True)
