"""The object a plugin's ``vwmerge_save_load`` receives: one direction at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..format.binio import Reader, Writer
from .stack import ModelInfo

if TYPE_CHECKING:
    from .registry import Registry


@attrs.define
class SectionIO:
    """Either a :class:`Reader` (``reading``) or a :class:`Writer`, plus the model context."""

    model: ModelInfo
    reader: Reader | None = None
    writer: Writer | None = None
    load_weights: bool = True
    #: The registry dispatching this load/save, for plugins that must parse sections below
    #: their own (e.g. to tell which of two layouts lets the rest of the file parse).
    registry: Registry | None = None

    @property
    def reading(self) -> bool:
        return self.reader is not None

    @property
    def r(self) -> Reader:
        assert self.reader is not None, "section is being written, not read"
        return self.reader

    @property
    def w(self) -> Writer:
        assert self.writer is not None, "section is being read, not written"
        return self.writer
