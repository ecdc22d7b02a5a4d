"""A loaded model: header, derived stack, one state per reduction. Loading and saving."""

from __future__ import annotations

import mmap
import os
from typing import IO, Any

import attrs

from .binio import Reader, Writer
from .errors import ModelFormatError, VWMergeError
from .header import Header
from .io import SectionIO
from .options import Options
from .registry import Registry, default_registry
from .stack import ModelInfo, StackEntry

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


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
        """Write atomically (:func:`vwmerge.fs.write_workspace`: a temporary file beside ``path``,
        fsynced, then renamed; rows streamed in chunks). Returns the bytes written."""
        from .fs import write_workspace  # fs builds on this module

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


def _open(source: Source, name: str | None) -> tuple[Any, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return memoryview(source).cast("B"), name or "<bytes>"
    if hasattr(source, "read"):
        data = source.read()  # type: ignore[union-attr]
        return memoryview(data).cast("B"), name or getattr(source, "name", "<stream>")
    path = os.fspath(source)  # type: ignore[arg-type]
    label = name or path
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ModelFormatError("empty file, not a VW model", source=label)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise VWMergeError("no such file", source=label) from None
    except IsADirectoryError:
        raise VWMergeError("is a directory, not a model file", source=label) from None
    except PermissionError:
        raise VWMergeError("permission denied", source=label) from None
    return memoryview(mm), label


def load(
    source: Source,
    *,
    registry: Registry | None = None,
    load_weights: bool = True,
    name: str | None = None,
    vw_options: str | Options | None = None,
) -> Workspace:
    """Read a VW model from a path, bytes or a binary file object.

    The stack is derived from the header's options; each reduction's section is read by the
    plugin that owns it; the bottom learner must consume the file exactly to its end.
    With ``load_weights=False`` (dry runs) the bottom learner validates but does not parse rows.
    ``vw_options`` supplies settings that change the layout but that VW does not record in the
    file (marginal ``--compete``, active ``--simulation``, ...): they are added to the options the
    stack is derived from, never written to the file.
    """
    reg = registry or default_registry()
    buf, label = _open(source, name)
    r = Reader(buf, label)
    header = Header.read(r)
    options = Options.parse(header.options_text)
    if vw_options:
        extra = vw_options if isinstance(vw_options, Options) else Options.parse(vw_options)
        options = Options(options.items + tuple(i for i in extra.items if i not in options.items))
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
    return Workspace(header, options, stack, tuple(states), label, reg)
