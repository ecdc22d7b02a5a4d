"""A loaded model: header, derived stack, one state per reduction. Loading, scanning and saving."""

from __future__ import annotations

import os
from typing import Any

import attrs

from ..contract.registry import Registry, default_registry
from ..contract.sectionio import SectionIO
from ..contract.stack import ModelInfo, StackEntry
from ..errors import ModelFormatError
from ..format.binio import Reader, Writer
from ..format.header import Header
from ..format.options import Options
from . import files
from .files import Source


@attrs.frozen(eq=False)
class Workspace:
    """An in-memory VW model. ``states[i]`` belongs to ``stack[i]`` (top of stack first)."""

    header: Header
    options: Options
    stack: tuple[StackEntry, ...]
    states: tuple[Any, ...]
    source: str = "<memory>"
    registry: Registry = attrs.field(factory=default_registry, repr=False)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.header, self.options, self.stack, self.source)

    @property
    def bottom(self) -> StackEntry:
        return self.stack[-1]

    def state(self, name: str) -> Any:
        for entry, st in zip(self.stack, self.states, strict=True):
            if entry.name == name:
                return st
        raise KeyError(name)

    def entry(self, name: str) -> StackEntry:
        for entry in self.stack:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def write_to(self, w: Writer) -> None:
        """Write the file (header, then each section) to ``w``; a streaming writer sends it to disk."""
        self.header.write(w)
        io = SectionIO(self.info, writer=w, registry=self.registry)
        for entry, st in zip(self.stack, self.states, strict=True):
            if entry.section:
                self.registry.call("vwmerge_save_load", entry, io=io, state=st)

    def to_parts(self) -> list[bytes]:
        """The file as a list of byte strings (header, then each section), to stream to disk."""
        w = Writer()
        self.write_to(w)
        return w.parts

    def to_bytes(self) -> bytes:
        return b"".join(self.to_parts())

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write atomically (:func:`write_workspace`: a temporary file beside ``path``, fsynced,
        then renamed; rows streamed in chunks). Returns the bytes written."""
        return write_workspace(os.fspath(path), self)

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for entry, st in zip(self.stack, self.states, strict=True):
            d = self.registry.call("vwmerge_describe", entry, state=st) if st is not None else None
            out.append(
                {
                    "reduction": entry.name,
                    "plugin": entry.plugin,
                    "distribution": self.registry.distribution(entry.plugin)[0],
                    "section": entry.section,
                    "bottom": entry.bottom,
                    "width": entry.width,
                    "mergeable": self.registry.implements("vwmerge_merge", entry),
                    "state": d,
                }
            )
        return out


#: From this version on VW maps --cb/--cb_explore/--cbify onto cb_adf; for older files it
#: inserts --cb_force_legacy (VERSION_FILE_WITH_CB_TO_CBADF, cb_to_cb_adf.cc).
CB_TO_CBADF_SINCE = (8, 11, 0)


def implied_options(header: Header, options: Options) -> Options:
    """``options`` plus what VW 9.11.9 adds when it loads a file of ``header``'s version.

    Up to 7.8.0 a non-zero header rank becomes ``--rank``; before 8.11.0 ``--cb``,
    ``--cb_explore`` and ``--cbify`` keep the legacy (non-adf) learners (``--cb_force_legacy``).
    These only steer the derived stack; they are never written to the file.
    """
    extra: list[tuple[str, str | None]] = []
    if header.rank and "rank" not in options:
        extra.append(("rank", str(header.rank)))
    if (
        header.version < CB_TO_CBADF_SINCE
        and options.has_any("cb", "cb_explore", "cbify")
        and not options.has_any("eval", "cb_force_legacy")
    ):
        extra.append(("cb_force_legacy", None))
    return Options(options.items + tuple(extra)) if extra else options


def load(
    source: Source,
    *,
    registry: Registry | None = None,
    load_weights: bool = True,
    name: str | None = None,
    vw_options: str | Options | None = None,
    allow_nonfinite: bool = False,
    defer_nonfinite: bool = False,
) -> Workspace:
    """Read a VW model from a path, bytes or a binary file object.

    The stack is derived from the header's options; each reduction's section is read by the
    plugin that owns it; the bottom learner must consume the file exactly to its end.
    With ``load_weights=False`` (dry runs) the bottom learner validates but does not parse rows.
    ``vw_options`` supplies settings that change the layout but that VW does not record in the
    file (marginal ``--compete``, active ``--simulation``, ...): they are added to the options the
    stack is derived from, never written to the file. A weight row holding NaN or ±inf is refused
    (a :class:`ModelFormatError` naming the row) unless ``allow_nonfinite``; with
    ``defer_nonfinite`` the caller takes that check on the merged rows instead (the streaming
    merge does: a non-finite input value always makes a non-finite merged value), and the
    rows that would not carry it there are still checked here.
    """
    return _load(
        source, registry=registry, load_weights=load_weights, name=name, vw_options=vw_options,
        allow_nonfinite=allow_nonfinite, defer_nonfinite=defer_nonfinite,
    )[0]  # fmt: skip


def reload(
    source: Source,
    known: tuple[bytes, Header, Options] | KnownHeads,
    *,
    registry: Registry | None = None,
    name: str | None = None,
    vw_options: str | Options | None = None,
    allow_nonfinite: bool = False,
    defer_nonfinite: bool = False,
) -> Workspace:
    """:func:`load` (with the weights) a model whose header an earlier read parsed: ``known`` is
    (the header's bytes, the header, the options its stack was derived from, ``vw_options``
    included), as :func:`scan` found them, or a :class:`KnownHeads` of several. While the file
    starts with the same bytes, its header is neither parsed nor verified again (a merge may
    read an input more than once); otherwise it is read exactly as :func:`load` reads it."""
    return _load(
        source, registry=registry, load_weights=True, name=name, vw_options=vw_options, known=known,
        allow_nonfinite=allow_nonfinite, defer_nonfinite=defer_nonfinite,
    )[0]  # fmt: skip


class KnownHeads:
    """Headers read before, by their exact bytes: a file that starts with the same bytes has
    the same header and options (with the same ``vw_options``), so they are neither parsed nor
    verified again, and the models of a fleet share one :class:`Header` and one :class:`Options`
    object (and so one derived stack) instead of a copy each. Keeps the ``limit`` most recently
    found; the options name the file they were first read from."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._heads: list[tuple[bytes, Header, Options]] = []

    def find(self, buf: memoryview) -> tuple[bytes, Header, Options] | None:
        for i, known in enumerate(self._heads):
            if buf[: len(known[0])] == known[0]:
                if i:  # most recently found first
                    self._heads.insert(0, self._heads.pop(i))
                return known
        return None

    def entries(self) -> list[tuple[bytes, Header, Options]]:
        return list(self._heads)

    def add(self, head: bytes, header: Header, options: Options) -> tuple[bytes, Header, Options]:
        known = (head, header, options)
        self._heads.insert(0, known)
        del self._heads[self.limit :]
        return known


def _load(
    source: Source,
    *,
    registry: Registry | None,
    load_weights: bool,
    name: str | None,
    vw_options: str | Options | None,
    known: tuple[bytes, Header, Options] | KnownHeads | None = None,
    allow_nonfinite: bool = False,
    defer_nonfinite: bool = False,
) -> tuple[Workspace, int]:
    """:func:`load`, and the bytes it parsed (the file's size less the rows it skipped)."""
    reg = registry or default_registry()
    buf, label = files.open_source(source, name)
    r = Reader(buf, label, allow_nonfinite=allow_nonfinite, defer_nonfinite=defer_nonfinite)
    heads = known if isinstance(known, KnownHeads) else None
    found = heads.find(buf) if heads is not None else known if isinstance(known, tuple) else None
    if found is not None and buf[: len(found[0])] == found[0]:
        r.pos = len(found[0])  # the same bytes as before: the same header, already verified
        header, options = found[1], found[2]
    else:
        header = Header.read(r)
        options = implied_options(header, Options.parse(header.options_text))
        if vw_options:
            extra = vw_options if isinstance(vw_options, Options) else Options.parse(vw_options)
            options = Options(options.items + tuple(i for i in extra.items if i not in options.items), source=label)
        options = attrs.evolve(options, source=label)  # named by the validated accessors' errors
        # VW's RNG state (a u64; merges compare it): a forged value must not reach int() there.
        options.get_int("random_seed", 0, low=-(2**63), high=2**64 - 1)
        if heads is not None:
            heads.add(bytes(buf[: r.pos]), header, options)
    stack = reg.derive_stack(options, label)
    info = ModelInfo(header, options, stack, label)
    io = SectionIO(info, reader=r, load_weights=load_weights, registry=reg)
    states: list[Any] = []
    for entry in stack:
        if not entry.section:
            states.append(None)
            continue
        st = reg.call("vwmerge_save_load", entry, io=io, state=None)
        if st is None:
            raise ModelFormatError(
                f"plugin '{entry.plugin}' did not read the section of reduction '{entry.name}'",
                source=label,
            )
        states.append(st)
        if entry.bottom and load_weights and not r.at_end():
            raise ModelFormatError(
                f"{r.remaining} unexpected bytes after the {entry.name} section (offset {r.pos})",
                source=label,
            )
    if not stack[-1].section and not r.at_end():
        raise ModelFormatError(f"{r.remaining} unexpected bytes after the header", source=label)
    return Workspace(header, options, stack, tuple(states), label, reg), r.pos - r.skipped


@attrs.frozen(eq=False)
class Scanned:
    """What :func:`scan_or_load` found: the workspace, the bytes its parse used, the file's
    size, and the file's bytes when it was read whole (its workspace then holds every row)."""

    workspace: Workspace
    used: int
    size: int
    data: bytes | None = None


def scan_or_load(
    target: str,
    *,
    whole_up_to: int = 0,
    vw_options: str | None = None,
    registry: Registry | None = None,
    known: KnownHeads | None = None,
    allow_nonfinite: bool = False,
    defer_nonfinite: bool = False,
    rows_up_to: int | None = None,
) -> Scanned:
    """A local file of at most ``whole_up_to`` bytes read whole (one open, one read, no mapping:
    a small model costs its size, not a mapped page) and loaded with its rows, as :func:`load`
    loads it, if it has at most ``rows_up_to`` bytes (default ``whole_up_to``), else parsed as
    :func:`scan` parses it, its rows passed over; any other file as :func:`scan` reads it.
    ``known``: headers read before (shared)."""
    data = files.read_whole(target, whole_up_to)
    if data is None:
        ws, used, size = _scan(target, vw_options, registry, known)
        return Scanned(ws, used, size)
    rows = len(data) <= (whole_up_to if rows_up_to is None else rows_up_to)
    ws, used = _load(
        data, load_weights=rows, vw_options=vw_options, registry=registry, name=target, known=known,
        allow_nonfinite=allow_nonfinite, defer_nonfinite=defer_nonfinite,
    )  # fmt: skip
    return Scanned(ws, used, len(data), data)


def scan(target: str, *, vw_options: str | None = None, registry: Registry | None = None) -> tuple[Workspace, int]:
    """Load a model (a path or an fsspec URL) without its weight rows, reading only what that needs.

    Returns the workspace and the number of bytes its header and sections take. Locally that
    is a mapped file and only the first pages are ever touched. Remotely the first
    :data:`vwmerge.model.files.HEAD_BYTES` are fetched into a buffer of the file's full size
    whose other pages are never touched; if the sections turn out to be longer, a larger head
    is fetched.
    """
    ws, used, _ = _scan(target, vw_options, registry, None)
    return ws, used


def _scan(
    target: str, vw_options: str | None, registry: Registry | None, known: KnownHeads | None
) -> tuple[Workspace, int, int]:
    """:func:`scan`, and the file's size."""
    local = files.local_path(target)
    if local is not None:
        buf = files.map_file(local, target)
        ws, used = _load(buf, load_weights=False, vw_options=vw_options, registry=registry, name=target, known=known)
        return ws, used, len(buf)
    total = files.size(target)
    head = min(total, files.HEAD_BYTES)
    while True:
        buf = files.remote_head(target, head, total)
        try:
            ws, used = _load(
                buf, load_weights=False, vw_options=vw_options, registry=registry, name=target, known=known
            )
        except ModelFormatError:
            if head >= total:
                raise
            head = min(total, head * 16)  # the parse ran into the zeros past the head
            continue
        # ``used``: what the parse consumed; within the head, it never saw a zero
        if used <= head:
            return ws, used, total
        head = min(total, head * 16)


def write_workspace(target: str, ws: Workspace) -> int:
    """Save ``ws`` to ``target`` (a path or an fsspec URL) atomically and streaming (rows in
    chunks, never a second copy); returns the bytes written."""
    return write_workspace_hashed(target, ws, hashing=False).size


class NonFiniteOutput(Exception):
    """Raised by :func:`write_workspace_hashed` with ``check_finite`` when a weight row it wrote
    holds NaN or ±inf (the output is not left behind); the caller finds the input to blame."""


def write_workspace_hashed(
    target: str, ws: Workspace, *, hashing: bool = True, check_finite: bool = False
) -> files.Digest:
    """:func:`write_workspace`, and the SHA-256 of the bytes as they are written (no read back;
    an empty ``sha256`` when ``hashing`` is off). ``check_finite``: raise
    :class:`NonFiniteOutput`, leaving no file, if a weight row holds NaN or ±inf."""
    with files.open_output(target) as f:
        w = files.StreamWriter(f, hashing=hashing)
        w.watch_finite = check_finite
        ws.write_to(w)
        if w.nonfinite:
            raise NonFiniteOutput(target)
    d = w.digest
    return d if d is not None else files.Digest(w.written, "")
