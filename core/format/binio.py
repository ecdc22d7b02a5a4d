"""Bounds-checked little-endian reading and writing of VW's binary encodings.

VW's own reader trusts every length it finds and reads short files silently. vwmerge checks
every count against the bytes that are really left *before* allocating anything, so a corrupt
or hostile file produces a clear :class:`ModelFormatError`, never a MemoryError.
"""

from __future__ import annotations

import builtins
import math
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

from ..errors import ModelFormatError

_FMT = {
    "u8": "<B",
    "bool": "<B",
    "i32": "<i",
    "u32": "<I",
    "u64": "<Q",
    "i64": "<q",
    "f32": "<f",
    "f64": "<d",
}


#: Rows checked for non-finite values per step once a table's sum says there is one.
_FINITE_CHUNK = 1 << 16

_STRUCT = {kind: struct.Struct(fmt) for kind, fmt in _FMT.items()}


#: Integer kinds: (bits, signed), for wrapping on write.
_WRAP = {"u8": (8, False), "bool": (8, False), "u32": (32, False), "i32": (32, True), "u64": (64, False),
         "i64": (64, True)}  # fmt: skip


class Reader:
    """A cursor over an immutable buffer (bytes or a read-only mmap).

    ``allow_nonfinite``: whether weight rows may hold NaN or ±inf (see :meth:`check_finite`).
    ``defer_nonfinite``: the caller checks the merged rows instead (a streamed merge, where a
    non-finite input value always makes a non-finite merged value): the checks a reader marks
    ``deferrable`` are skipped.
    """

    def __init__(
        self,
        buf: bytes | memoryview | Any,
        source: str = "<bytes>",
        pos: int = 0,
        *,
        allow_nonfinite: bool = False,
        defer_nonfinite: bool = False,
    ) -> None:
        self.buf = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
        self.source = source
        self.pos = pos
        self.allow_nonfinite = allow_nonfinite
        self.defer_nonfinite = defer_nonfinite
        #: bytes passed over without being parsed (the weight rows of a scanned model)
        self.skipped = 0

    def check_finite(
        self, index: np.ndarray, values: np.ndarray, columns: tuple[str, ...], what: str, *, deferrable: bool = False
    ) -> None:
        """Refuse rows holding NaN or ±inf (unless ``allow_nonfinite``), naming the first such row.

        A non-finite value spreads through every average it enters, so a merge would turn one
        diverged model into a damaged merged model. One float64 sum of the rows decides (any
        NaN or inf makes it non-finite; finite float32 values cannot overflow it); only then are
        the rows searched, a chunk at a time. ``deferrable``: rows whose every value reaches the
        merged rows through sums and products, so that with ``defer_nonfinite`` the merged rows
        are checked instead.
        """
        if self.allow_nonfinite or values.size == 0 or (deferrable and self.defer_nonfinite):
            return
        with np.errstate(all="ignore"):
            if math.isfinite(values.sum(dtype=np.float64)):
                return
        flat = values.reshape(len(values), -1)
        for start in range(0, len(flat), _FINITE_CHUNK):
            bad = ~np.isfinite(flat[start : start + _FINITE_CHUNK])
            if bad.any():
                row, col = (int(x) for x in np.argwhere(bad)[0])
                value = float(flat[start + row, col])
                name = columns[col] if col < len(columns) else str(col)
                raise self.fail(
                    f"{what}: row {int(index[start + row])} holds {value} in column '{name}'; a model with "
                    "non-finite values is refused, since merging would spread them (load with "
                    "allow_nonfinite=True, or 'vwmerge merge --allow-nonfinite', to take it as it is)"
                )

    @property
    def size(self) -> int:
        return len(self.buf)

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def fail(self, message: str) -> ModelFormatError:
        return ModelFormatError(message, source=self.source)

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.remaining:
            raise self.fail(
                f"truncated or corrupt: {what} needs {n} bytes at offset {self.pos}, "
                f"but only {self.remaining} remain (file size {self.size})"
            )

    def bytes(self, n: int, what: str = "data") -> bytes:
        self.need(n, what)
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def scalar(self, kind: str, what: str) -> Any:
        unpack = _STRUCT[kind]
        pos = self.pos
        end = pos + unpack.size
        if end > len(self.buf):
            self.need(unpack.size, what)  # raises, naming ``what``
        (value,) = unpack.unpack_from(self.buf, pos)
        self.pos = end
        if kind == "bool":
            return value != 0
        return value

    def u8(self, what: str = "u8") -> int:
        return int(self.scalar("u8", what))

    def boolean(self, what: str = "bool") -> bool:
        return bool(self.scalar("bool", what))

    def u32(self, what: str = "u32") -> int:
        return int(self.scalar("u32", what))

    def i32(self, what: str = "i32") -> int:
        return int(self.scalar("i32", what))

    def u64(self, what: str = "u64") -> int:
        return int(self.scalar("u64", what))

    def f32(self, what: str = "f32") -> float:
        return float(self.scalar("f32", what))

    def f64(self, what: str = "f64") -> float:
        return float(self.scalar("f64", what))

    def array(self, dtype: npt.DTypeLike, count: int, what: str = "array") -> np.ndarray:
        """Read ``count`` items of ``dtype`` as a private copy (size checked before allocating)."""
        dt = np.dtype(dtype)
        self.need(count * dt.itemsize, what)
        out = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos).copy()
        self.pos += count * dt.itemsize
        return out

    def view(self, dtype: npt.DTypeLike, count: int, what: str = "array") -> np.ndarray:
        """Like :meth:`array` but zero-copy (a read-only view into the buffer)."""
        dt = np.dtype(dtype)
        self.need(count * dt.itemsize, what)
        out = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
        self.pos += count * dt.itemsize
        return out

    def rows_to_end(self, dtype: npt.DTypeLike, what: str, layout: str) -> np.ndarray:
        """The rest of the buffer as rows of ``dtype`` (a view), rejecting a partial last row.

        VW reads rows until the file ends, so a cut file shows only as bytes that are not a
        whole number of rows; ``what`` and ``layout`` name them in the error.
        """
        dt = np.dtype(dtype)
        if self.remaining % dt.itemsize:
            raise self.fail(
                f"truncated or corrupt {what}: {self.remaining} bytes after offset {self.pos} is not a "
                f"whole number of {dt.itemsize}-byte rows ({layout}); the file may be truncated, or its "
                "options do not match its rows"
            )
        return self.view(dt, self.remaining // dt.itemsize, what)

    def count(self, what: str, item_size: int, kind: str = "u32") -> int:
        """Read an element count and check that ``count * item_size`` bytes can follow."""
        n = int(self.scalar(kind, f"{what} count"))
        if item_size > 0 and n * item_size > self.remaining:
            raise self.fail(
                f"corrupt: {what} claims {n} items ({n * item_size} bytes) at offset {self.pos}, "
                f"but only {self.remaining} bytes remain"
            )
        return n


class Writer:
    """Accumulates bytes; the symmetric twin of :class:`Reader`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        #: Set ``watch_finite`` to have :meth:`rows_written` note (in ``nonfinite``) whether any
        #: weight row written holds NaN or ±inf (a streamed merge checks its output so).
        self.watch_finite = False
        self.nonfinite = False

    def rows_written(self, values: np.ndarray) -> None:
        """Weight rows' values being written (a chunk); noted when :attr:`watch_finite` is set."""
        if self.watch_finite and not self.nonfinite and values.size:
            with np.errstate(all="ignore"):
                self.nonfinite = not math.isfinite(values.sum(dtype=np.float64))

    def bytes(self, data: bytes | memoryview) -> None:
        self.parts.append(bytes(data))

    def scalar(self, kind: str, value: Any) -> None:
        """Pack ``value`` as VW's C++ would store it: integers wrap to the field's width (a u64
        counter summed past 2^64 wraps, as VW's own arithmetic does), a float beyond float32's
        range becomes ±inf. Every value that reaches the writer is writable."""
        if kind in _WRAP:
            bits, signed = _WRAP[kind]
            v = int(value) % (1 << bits)
            if signed and v >= 1 << (bits - 1):
                v -= 1 << bits
            value = v
        elif kind == "f32":
            with np.errstate(over="ignore"):
                value = float(np.float32(value))
        self.parts.append(_STRUCT[kind].pack(value))

    def u8(self, value: int) -> None:
        self.scalar("u8", value)

    def boolean(self, value: bool) -> None:
        self.scalar("bool", 1 if value else 0)

    def u32(self, value: int) -> None:
        self.scalar("u32", value)

    def i32(self, value: int) -> None:
        self.scalar("i32", value)

    def u64(self, value: int) -> None:
        self.scalar("u64", value)

    def f32(self, value: float) -> None:
        self.scalar("f32", value)

    def f64(self, value: float) -> None:
        self.scalar("f64", value)

    def array(self, arr: np.ndarray, dtype: npt.DTypeLike | None = None) -> None:
        a = np.ascontiguousarray(arr, dtype=dtype) if dtype is not None else np.ascontiguousarray(arr)
        self.parts.append(a.tobytes())

    def getvalue(self) -> builtins.bytes:  # (``bytes`` here is the method above)
        return b"".join(self.parts)
