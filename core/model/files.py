"""Where models live: local paths, or any fsspec URL (``file://``, ``s3://``, ``memory://``...).

Local files are memory-mapped, so reading a model costs only the pages touched and re-reading
it costs no memory. Other URLs go through fsspec, which is imported only when such a URL is
given (it comes with the ``dask`` extra): a model is downloaded into an anonymous temporary file
and mapped, so remote inputs also never sit in memory as a whole. Outputs are written through a
temporary name and renamed, so a failed merge never leaves a partial model behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from ..errors import MergeError, ModelFormatError, VWMergeError
from ..format.binio import Writer

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
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # unknown protocol, or its package is not installed
        raise VWMergeError(f"cannot open this URL: {e}", source=url) from None
    return fs, path


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
    except OSError as e:
        raise os_error(e, target) from None


#: Linux: map a file with its pages already faulted in. Every row of an input is read, and one
#: batched fault is about twice as fast as faulting page by page as numpy walks the rows.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)

#: What :func:`open_source` reads: a path, the bytes themselves, or a binary file object.
Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


_OS_PROBLEMS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?)",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOMEM: "not enough memory to map the file (is an address-space limit, ulimit -v, set?)",
    errno.EISDIR: "is a directory, not a model file",
}


def os_error(e: OSError, label: str) -> VWMergeError:
    """An OS error on a model file as one line naming the file (ENOENT, EACCES, ELOOP, ENOMEM...)."""
    problem = _OS_PROBLEMS.get(e.errno or 0) or f"cannot read the file: {e.strerror or e}"
    return VWMergeError(problem, source=label)


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def _refuse_irregular(mode: int, label: str) -> None:
    if stat.S_ISREG(mode):  # (every model file: one test, not six)
        return
    kind = _file_kind(mode)
    if kind == "a directory":
        raise VWMergeError("is a directory, not a model file", source=label)
    if kind is not None:
        raise VWMergeError(f"is {kind}, not a regular file; only regular files are read as models", source=label)


@contextlib.contextmanager
def _opened(path: str, label: str) -> Iterator[tuple[int, int]]:
    """A regular, non-empty local file opened read-only: (descriptor, size), closed on exit.

    FIFOs, devices, directories and sockets are refused from their ``stat`` before anything
    could block on them; the file is opened non-blocking and checked again by ``fstat`` (it
    could have been replaced in between). Every problem is one :class:`VWMergeError` naming
    ``label``.
    """
    try:
        _refuse_irregular(os.stat(path).st_mode, label)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise os_error(e, label) from None
    try:
        try:
            st = os.fstat(fd)
        except OSError as e:
            raise os_error(e, label) from None
        _refuse_irregular(st.st_mode, label)
        if st.st_size == 0:
            raise ModelFormatError("empty file, not a VW model", source=label)
        yield fd, st.st_size
    finally:
        os.close(fd)


class FileMap(mmap.mmap):
    """A model file mapped read-only and shared (never anonymous memory): its pages may be
    released from the process and read back from the page cache (:mod:`vwmerge.engine.pages`)."""


def map_file(path: str, label: str, *, populate: bool = False) -> memoryview:
    """The one way vwmerge opens a local model file: mapped read-only, never read into memory.

    ``populate`` (Linux) faults every page in at once, for files that are read whole. Only
    regular files are opened: FIFOs, devices, directories and sockets are refused from their
    ``stat`` before anything could block on them, and the file is opened non-blocking and
    checked again by ``fstat`` (it could have been replaced in between). Every problem is one
    :class:`VWMergeError` naming ``label`` (what the user gave): no such file, permission
    denied, a symlink loop, not a regular file, empty, no address space left to map it.
    """
    with _opened(path, label) as (fd, _):
        try:
            mm = FileMap(fd, 0, flags=mmap.MAP_SHARED | (_POPULATE if populate else 0), prot=mmap.PROT_READ)
        except OSError as e:
            raise os_error(e, label) from None
    return memoryview(mm)


def read_whole(target: str, limit: int) -> bytes | None:
    """The bytes of ``target`` when it is a local regular file of at most ``limit`` bytes, else
    None (a remote or larger file: the caller maps it). One open, one ``fstat``, one read: for a
    small model that costs about its size, where mapping costs a page table entry, a page and
    more system calls. The same checks and errors as :func:`map_file` (the file's ``stat`` is
    taken before it is opened, so nothing can block on a FIFO or a device)."""
    path = local_path(target) if limit > 0 else None
    if path is None:
        return None
    label = target
    with _opened(path, label) as (fd, size):
        if size > limit:
            return None
        chunks = []
        left = size
        try:
            while left > 0:  # a file that shrinks as it is read ends early: the parse names what is cut
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as e:
            raise os_error(e, label) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def open_source(source: Source, name: str | None = None) -> tuple[memoryview, str]:
    """The bytes of a model (a mapped file, or the bytes given) and the label errors name."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return memoryview(source).cast("B"), name or "<bytes>"
    if hasattr(source, "read"):
        data = source.read()
        return memoryview(data).cast("B"), name or str(getattr(source, "name", "<stream>"))
    path = os.fspath(source)
    return map_file(path, name or path), name or path


@contextlib.contextmanager
def mapped(target: str) -> Iterator[memoryview]:
    """Something :func:`vwmerge.load` reads without holding the file in memory.

    A local file is mapped with its pages in place (:func:`map_file`). A remote file is copied
    into an anonymous temporary file (gone when the mapping goes) and mapped.
    """
    local = local_path(target)
    if local is not None:
        yield map_file(local, target, populate=True)
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
        mm = FileMap(tmp.fileno(), 0, access=mmap.ACCESS_READ)
    yield memoryview(mm)


def remote_head(target: str, head: int, total: int) -> memoryview:
    """A buffer of a remote file's full size (``total``) holding its first ``head`` bytes; the
    pages past the head are anonymous memory never touched, so they cost nothing."""
    fs, path = _fsspec(target)
    buf = mmap.mmap(-1, max(total, 1))
    buf[:head] = fs.cat_file(path, start=0, end=head)
    if head < total:  # and the last row, whose index the scan checks against 2^bits
        tail = min(total - head, 4096)
        buf[total - tail : total] = fs.cat_file(path, start=total - tail, end=total)
    return memoryview(buf)


@attrs.frozen
class Digest:
    """A file's size and SHA-256 (hex), taken from the bytes as they were read or written."""

    size: int
    sha256: str


def digest(data: bytes | bytearray | memoryview) -> Digest:
    """The digest of bytes already in memory (a mapped model as it is read: no second read)."""
    view = memoryview(data).cast("B")
    return Digest(len(view), hashlib.sha256(view).hexdigest())


def digest_file(target: str) -> Digest:
    """Read ``target`` (a path or a URL) once, in chunks, and digest it (``vwmerge verify``)."""
    h = hashlib.sha256()
    n = 0
    local = local_path(target)
    try:
        f = open(local, "rb") if local is not None else _fsspec(target)[0].open(_fsspec(target)[1], "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise VWMergeError("no such file", source=target) from None
    except IsADirectoryError:
        raise VWMergeError("is a directory, not a file", source=target) from None
    except PermissionError:
        raise VWMergeError("permission denied", source=target) from None
    with f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            n += len(chunk)
    return Digest(n, h.hexdigest())


class _FileSink(list[bytes]):
    """The ``parts`` of a :class:`StreamWriter`: bytes go to the file instead of a list."""

    def __init__(self, f: IO[bytes], hashing: bool = False) -> None:
        super().__init__()
        self.file = f
        self.written = 0
        self.hash = hashlib.sha256() if hashing else None

    def append(self, data: bytes) -> None:
        self.file.write(data)
        self.written += len(data)
        if self.hash is not None:
            self.hash.update(data)


class StreamWriter(Writer):
    """A :class:`vwmerge.format.binio.Writer` that writes through to a file as sections are saved.

    ``hashing``: also take the SHA-256 of the bytes as they are written (:attr:`digest`).
    """

    def __init__(self, f: IO[bytes], *, hashing: bool = False) -> None:
        super().__init__()
        self._sink = _FileSink(f, hashing)
        self.parts = self._sink

    @property
    def written(self) -> int:
        return self._sink.written

    @property
    def digest(self) -> Digest | None:
        h = self._sink.hash
        return Digest(self._sink.written, h.hexdigest()) if h is not None else None


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
