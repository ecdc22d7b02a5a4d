"""Walking the weight rows of many inputs at once, a block of row numbers at a time.

A merge whose every output row depends on every input's same row (gd's adaptive path divides by
the sum of all inputs' adaptive column) needs all inputs at each row. :func:`walk_rows` cuts the
row numbers into blocks and hands each block, with every input's rows in it, to a function that
returns the block's merged values; blocks run side by side on the block threads (numpy releases
the GIL), so each row is still computed in input order by one thread. The rows kept (at least one
value != 0, as VW writes them) go straight into the output in the file's layout, and each block's
pages of the inputs are released from the process as soon as the block is done
(:func:`vwmerge.engine.pages.release_pages`): resident memory stays at a few blocks whatever the
inputs' total size, and every input byte is read once.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Sequence

import attrs
import numpy as np

from ..format.weights import WeightTable, row_dtype, union_sorted
from .pages import in_mapped_file, release_pages
from .rowsums import BLOCK, _map, allocate, dense_pays

#: Rows of one input in memory: (sorted unique row numbers, float32 values rows × k), usually
#: views of a mapped file.
Rows = tuple[np.ndarray, np.ndarray]


@attrs.frozen(eq=False)
class RowBlock:
    """One block of a lock-step walk: the rows ``[lo, hi)`` of every source.

    The block's accumulators have :attr:`size` positions: dense (``union`` None) position =
    row - lo; sparse: position p holds row ``union[p]``, the union of the sources' rows in the
    block. :meth:`rows` gives source i's rows in the block, :meth:`positions` where they go.
    """

    lo: int
    hi: int
    sources: tuple[Rows, ...] = attrs.field(repr=False)
    cuts: tuple[tuple[int, int], ...]
    union: np.ndarray | None

    @property
    def size(self) -> int:
        return self.hi - self.lo if self.union is None else len(self.union)

    def rows(self, i: int) -> Rows:
        start, stop = self.cuts[i]
        index, values = self.sources[i]
        return index[start:stop], values[start:stop]

    def positions(self, i: int) -> np.ndarray:
        start, stop = self.cuts[i]
        index = self.sources[i][0][start:stop]
        if self.union is None:
            pos = index.astype(np.intp)
            pos -= self.lo
            return pos
        return np.searchsorted(self.union, index.astype(np.uint64, copy=False)).astype(np.intp, copy=False)

    def row_numbers(self, positions: np.ndarray) -> np.ndarray:
        """The row numbers at accumulator ``positions``."""
        rows: np.ndarray = positions + self.lo if self.union is None else self.union[positions]
        return rows


#: ``merge_block(block)`` -> values (columns × block.size) of the block's rows, any float dtype;
#: rows whose values are all 0 are left out of the result.
MergeBlock = Callable[[RowBlock], np.ndarray]


def _bounds(sources: Sequence[Rows], bits: int, span: int) -> tuple[np.ndarray, bool]:
    """Block boundaries (row numbers) and whether blocks are dense."""
    top = max((int(idx[-1]) + 1 for idx, _ in sources if len(idx)), default=0)
    if dense_pays(bits, max(len(idx) for idx, _ in sources)):
        return np.array([*range(0, top, span), top], np.uint64), True
    # Sparse: boundaries sampled from every source, so no source has more than ``span`` rows
    # in a block (each source's own samples are boundaries).
    samples = [np.asarray(idx[span::span]).astype(np.uint64) for idx, _ in sources if len(idx) > span]
    inner = np.unique(np.concatenate(samples)) if samples else np.zeros(0, np.uint64)
    return np.concatenate(([0], inner, [top])).astype(np.uint64), False


def _search(index: np.ndarray, bounds: np.ndarray) -> list[int]:
    """``np.searchsorted(index, bounds)`` (side left) reading only the rows the search visits.

    numpy copies a strided or unaligned array (a column of a mapped file) before searching or
    gathering from it, which touches every page of the file; this bisects element by element
    (about log2(len(index)) reads per bound, each bound starting where the last one ended).
    """
    if index.flags.c_contiguous and index.flags.aligned:
        found: list[int] = np.searchsorted(index, bounds.astype(index.dtype)).tolist()
        return found
    out, lo = [], 0
    for target in bounds.tolist():
        lo = bisect.bisect_left(index, target, lo)
        out.append(int(lo))
    return out


def block_span(count: int) -> int:
    """Rows per block for ``count`` sources: a block of all sources holds about ``BLOCK`` rows,
    so its temporaries (and the inputs' pages it maps) stay the same size whatever the number
    of inputs."""
    return max(1 << 12, min(BLOCK, BLOCK // max(count, 1)))


def walk_rows(
    sources: Sequence[Rows],
    bits: int,
    columns: tuple[str, ...],
    merge_block: MergeBlock,
    *,
    release: bool = True,
    signed_zeros: bool = False,
) -> WeightTable:
    """The merged rows of ``sources`` (each sorted, unique), a block of row numbers at a time.

    ``merge_block`` gets each :class:`RowBlock` and returns its values (len(columns) × size);
    blocks may run on several threads at once, each in one call. The kept rows (a value != 0,
    NaN counts) are written to the result in ascending order, laid out as in the file, values
    rounded to float32 (a -0 becomes +0, as VW's merge writes it, unless ``signed_zeros``: then
    the values are only cast, as an elementwise sum writes them). With ``release`` each block's
    pages of the sources are released from the process when it is done (see
    :func:`vwmerge.engine.pages.release_pages`; a source in memory is left as it is).
    """
    dt = row_dtype(bits, len(columns))
    total = sum(len(idx) for idx, _ in sources)
    if total == 0:
        empty = np.zeros(0, dt)
        return WeightTable(empty["i"], empty["v"], bits, columns, ascending=True)
    bounds, dense = _bounds(sources, bits, block_span(len(sources)))
    cuts = []
    mapped = [release and in_mapped_file(idx, vals) for idx, vals in sources]  # the rest is in memory
    for (idx, vals), m in zip(sources, mapped, strict=True):
        cuts.append(_search(idx, bounds))
        if m:  # the kernel maps whole folios around each page the search reads
            release_pages(idx, vals)
    top = int(bounds[-1])
    records = allocate(min(total, top), dt, populate=False)  # only the pages written count
    srcs = tuple(sources)

    def merged(b: int) -> tuple[RowBlock, np.ndarray, np.ndarray]:
        lo, hi = int(bounds[b]), int(bounds[b + 1])
        block_cuts = tuple((c[b], c[b + 1]) for c in cuts)
        union = None
        if not dense:
            union = union_sorted([srcs[i][0][s:e] for i, (s, e) in enumerate(block_cuts)])
        block = RowBlock(lo, hi, srcs, block_cuts, union)
        values = merge_block(block) if block.size else np.zeros((len(columns), 0), np.float32)
        present: np.ndarray = values[0] != 0
        for j in range(1, len(values)):
            present |= values[j] != 0
        for i, m in enumerate(mapped):
            if m:
                release_pages(*block.rows(i))
        return block, values, np.flatnonzero(present)

    def fill(item: tuple[RowBlock, np.ndarray, np.ndarray, int]) -> None:
        block, values, keep, lo = item
        hi = lo + len(keep)
        records["i"][lo:hi] = block.row_numbers(keep)
        out = records["v"][lo:hi]
        for j in range(len(columns)):
            if signed_zeros:
                out[:, j] = values[j][keep]
            else:
                np.add(values[j][keep], np.float32(0), out=out[:, j], dtype=np.float32)  # -0 → +0, to f32

    filled = 0
    wave = max(1, min(os.cpu_count() or 1, 4))  # blocks in flight at once (bounded memory)
    for first in range(0, len(bounds) - 1, wave):
        placed = []
        for block, values, keep in _map(merged, range(first, min(first + wave, len(bounds) - 1))):
            placed.append((block, values, keep, filled))
            filled += len(keep)
        _map(fill, placed)
        del placed
    kept = records[:filled]
    return WeightTable(kept["i"], kept["v"], bits, columns, ascending=True)
