"""Where models live: local paths, or any fsspec URL (``file://``, ``s3://``, ``memory://``...).

Local files are memory-mapped, so reading a model costs only the pages touched and re-reading
it costs no memory. Other URLs go through fsspec, which is imported only when such a URL is
given (it comes with the ``dask`` extra): a model is downloaded into an anonymous temporary file
and mapped, so remote inputs also never sit in memory as a whole. Outputs are written through a
temporary name and renamed, so a failed merge never leaves a partial model behind.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .binio import Writer
from .errors import MergeError, ModelFormatError, VWMergeError
from .registry import Registry
from .workspace import Workspace, load

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")

#: First read when scanning a remote model's header and sections; grown until they fit.
HEAD_BYTES = 1 << 20


def is_url(target: str) -> bool:
    return bool(_URL.match(target))


def _fsspec(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise VWMergeError("reading or writing URLs needs fsspec: pip install 'vwmerge[dask]'", source=url) from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # unknown protocol, or its package is not installed
        raise VWMergeError(f"cannot open this URL: {e}", source=url) from None


def local_path(target: str) -> str | None:
    """The local file behind ``target`` (a path or a URL of the local file system), else None."""
    if not is_url(target):
        return target
    fs, path = _fsspec(target)
    from fsspec.implementations.local import LocalFileSystem

    return path if isinstance(fs, LocalFileSystem) else None


def size(target: str) -> int:
    """The size of a model file in bytes."""
    local = local_path(target)
    try:
        if local is not None:
            return os.path.getsize(local)
        fs, path = _fsspec(target)
        return int(fs.size(path))
    except FileNotFoundError:
        raise VWMergeError("no such file", source=target) from None


#: Linux: map a file with its pages already faulted in. Every row of an input is read, and one
#: batched fault is about twice as fast as faulting page by page as numpy walks the rows.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _map_populated(path: str, label: str) -> memoryview | str:
    try:
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
    except ValueError:  # an empty file cannot be mapped: let load() say what is wrong with it
        return path
    except FileNotFoundError:
        raise VWMergeError("no such file", source=label) from None
    return memoryview(mm)


@contextlib.contextmanager
def mapped(target: str) -> Iterator[str | memoryview]:
    """Something :func:`vwmerge.load` reads without holding the file in memory.

    A local file is mapped with its pages in place (Linux; elsewhere its path is returned and
    ``load`` maps it). A remote file is copied into an anonymous temporary file (gone when the
    mapping goes) and mapped.
    """
    local = local_path(target)
    if local is not None:
        yield _map_populated(local, target) if _POPULATE else local
        return
    fs, path = _fsspec(target)
    try:
        src = fs.open(path, "rb")
    except FileNotFoundError:
        raise VWMergeError("no such file", source=target) from None
    with src, tempfile.TemporaryFile() as tmp:
        shutil.copyfileobj(src, tmp, 1 << 24)
        tmp.flush()
        if tmp.tell() == 0:
            raise VWMergeError("empty file, not a VW model", source=target)
        mm = mmap.mmap(tmp.fileno(), 0, access=mmap.ACCESS_READ)
    yield memoryview(mm)


def scan(target: str, *, vw_options: str | None = None, registry: Registry | None = None) -> tuple[Workspace, int]:
    """Load a model without its weight rows, reading only what that needs.

    Returns the workspace and the number of bytes its header and sections take. Locally that
    is a mapped file and only the first pages are ever touched. Remotely the first
    :data:`HEAD_BYTES` are fetched into a buffer of the file's full size whose other pages are
    never touched; if the sections turn out to be longer, a larger head is fetched.
    """
    local = local_path(target)
    if local is not None:
        ws = load(local, load_weights=False, vw_options=vw_options, registry=registry, name=target)
        return ws, len(ws.to_bytes())
    fs, path = _fsspec(target)
    total = size(target)
    head = min(total, HEAD_BYTES)
    while True:
        buf = mmap.mmap(-1, max(total, 1))
        buf[:head] = fs.cat_file(path, start=0, end=head)
        try:
            ws = load(memoryview(buf), load_weights=False, vw_options=vw_options, registry=registry, name=target)
        except ModelFormatError:
            if head >= total:
                raise
            head = min(total, head * 16)  # the parse ran into the zeros past the head
            continue
        used = len(ws.to_bytes())  # what the parse consumed: within the head, it never saw a zero
        if used <= head:
            return ws, used
        head = min(total, head * 16)


class _FileSink(list):  # type: ignore[type-arg]
    """The ``parts`` of a :class:`StreamWriter`: bytes go to the file instead of a list."""

    def __init__(self, f: IO[bytes]) -> None:
        super().__init__()
        self.file = f
        self.written = 0

    def append(self, data: bytes) -> None:  # type: ignore[override]
        self.file.write(data)
        self.written += len(data)


class StreamWriter(Writer):
    """A :class:`vwmerge.binio.Writer` that writes through to a file as sections are saved."""

    def __init__(self, f: IO[bytes]) -> None:
        self.parts = _FileSink(f)

    @property
    def written(self) -> int:
        return self.parts.written  # type: ignore[attr-defined,no-any-return]


def _new_file_mode(path: str) -> int:
    """The mode a plain ``open(path, "w")`` would give (the replaced file's, if there is one).

    mkstemp makes its file private (0600); the merged model should be as readable as any file.
    """
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o7777
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def open_output(target: str) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``target`` only if the block completes.

    Locally: a temporary file beside the target, fsynced, then renamed over it. Elsewhere: a
    temporary object beside the target, moved over it.
    """
    local = local_path(target)
    if local is not None:
        directory = Path(local).parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{Path(local).name}.", suffix=".tmp", dir=directory)
        except OSError as e:
            raise MergeError(f"cannot write the merged model: {e.strerror or e}", source=target) from e
        try:
            os.chmod(tmp, _new_file_mode(local))
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, local)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(e, OSError):
                raise MergeError(f"cannot write the merged model: {e.strerror or e}", source=target) from e
            raise
        return
    fs, path = _fsspec(target)
    tmp = f"{path}.vwmerge-tmp"
    try:
        with fs.open(tmp, "wb") as f:
            yield f
        fs.mv(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise


def write_workspace(target: str, ws: Workspace) -> int:
    """Save ``ws`` to ``target`` streaming (rows in chunks, never a second copy); returns bytes."""
    with open_output(target) as f:
        w = StreamWriter(f)
        ws.write_to(w)
    return w.written
