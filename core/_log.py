"""The logger vwmerge's own modules write their events to: structlog, imported on the first event.

Importing structlog imports asyncio and the standard library's ``logging`` too: a sixth of the
start-up of a small ``vwmerge check`` or ``inspect``, which usually log nothing. So the library's
modules log through :data:`log`, which imports structlog when an event is logged, and the command
line's configuration (:func:`vwmerge.cli.logs.configure`) is applied then (:func:`ensure`), or at
once when structlog is imported already. A plugin that imports structlog itself gets the
configuration as soon as the registry has imported it (:func:`ensure_if_imported`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Callable

    from structlog.typing import FilteringBoundLogger

_pending: list[Callable[[], None]] = []  # the configuration to apply before the first event


def defer(configure: Callable[[], None]) -> None:
    """Apply ``configure`` (which imports structlog) before the first event, or now if structlog
    is imported already (someone may be holding a logger)."""
    _pending[:] = [configure]
    ensure_if_imported()


def ensure() -> None:
    """Apply the deferred configuration, if any: before anything logs through structlog."""
    while _pending:
        _pending.pop()()


def ensure_if_imported() -> None:
    """:func:`ensure`, if structlog has been imported (by a plugin, say)."""
    if "structlog" in sys.modules:
        ensure()


class _Logger:
    """``structlog.get_logger("vwmerge")``, imported (and configured) on the first call."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        ensure()
        import structlog

        return getattr(structlog.get_logger("vwmerge"), name)


log = cast("FilteringBoundLogger", _Logger())
