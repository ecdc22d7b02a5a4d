"""The pages of mapped model files: what a walk over many inputs at once brings in and lets go.

A model's weight rows are views of its file mapped read-only (:func:`vwmerge.model.files.map_file`):
holding many inputs costs address space, not memory, until their pages are touched. A walk over
row blocks of N inputs in lock step (gd's one-pass merge) touches each block once; releasing a
block's pages when it is done keeps the process's resident memory at a few blocks, whatever the
inputs' total size. The bytes stay in the page cache (they belong to the file, not the process),
so a page touched again after its release is mapped back from there, not read from disk.

Both helpers act only on arrays that view a file mapped by vwmerge (:class:`FileMap`); anything
else (arrays in memory, anonymous mappings, which releasing would zero) is left alone, so they
are always safe to call.
"""

from __future__ import annotations

import contextlib
import mmap
import sys

import numpy as np
from numpy.lib.array_utils import byte_bounds

from ..model.files import FileMap

PAGE = mmap.PAGESIZE

#: Linux 5.14+: map a range's pages at once (one batched fault instead of one per page touched).
_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22 if sys.platform.startswith("linux") else None)
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


def buffer_owner(array: np.ndarray) -> object:
    """The object whose memory ``array`` views (a mapping, bytes, ...), or the array itself when
    it owns its memory: the ``base`` chain followed to its end, through the memoryview
    ``np.frombuffer`` keeps."""
    owner: object = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    if isinstance(owner, memoryview):
        owner = owner.obj
    return owner


def _mapping(array: np.ndarray) -> FileMap | None:
    owner = buffer_owner(array)
    return owner if isinstance(owner, FileMap) and not owner.closed else None


def in_mapped_file(*arrays: np.ndarray) -> bool:
    """Whether any of ``arrays`` views a model file vwmerge mapped (holding it keeps the file's
    descriptor open); arrays in memory (copies, or views of bytes read whole) do not."""
    return any(_mapping(a) is not None for a in arrays)


def _advise(advice: int | None, arrays: tuple[np.ndarray, ...]) -> None:
    if advice is None:
        return
    for array in arrays:
        mm = _mapping(array)
        if mm is None or array.size == 0:
            continue
        start = np.frombuffer(mm, np.uint8).ctypes.data
        lo, hi = byte_bounds(array)
        lo = max(lo - start, 0) // PAGE * PAGE
        hi = min(-(-(hi - start) // PAGE) * PAGE, len(mm))
        if hi > lo:
            with contextlib.suppress(OSError, ValueError):  # an older kernel: advice unknown, skip it
                mm.madvise(advice, lo, hi - lo)


def release_pages(*arrays: np.ndarray) -> None:
    """Drop the pages behind ``arrays`` (views of mapped model files) from this process.

    Only the process's mapping of them goes (``MADV_DONTNEED``): the file's bytes stay in the
    page cache and reading the arrays again still gives the same values. Pages shared with a
    neighbouring range are released too; whoever reads them next maps them back.
    """
    _advise(_DONTNEED, arrays)


def prefetch_pages(*arrays: np.ndarray) -> None:
    """Map the pages behind ``arrays`` (views of mapped model files) in one batch before they
    are read (``MADV_POPULATE_READ``; a no-op where the kernel lacks it)."""
    _advise(_POPULATE_READ, arrays)
