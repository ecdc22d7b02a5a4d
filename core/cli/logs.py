"""Logging for the command line: structlog, always to stderr.

The library only ever logs to ``structlog.get_logger("vwmerge")`` (through :mod:`vwmerge._log`,
which imports structlog at the first event); configuring where and how events are rendered is the
job of the entry point, so this module is called by the CLI and by nobody
else. stderr carries the log so that stdout stays clean for command output (``inspect``,
``plugins``, ``--json``) that people pipe into other tools.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Literal, TextIO

from .._log import defer, ensure

if TYPE_CHECKING:
    import structlog

LogFormat = Literal["auto", "console", "json"]

# the standard library's logging levels (logging.DEBUG, ...), spelled out so that importing this
# module (the command line does, for --log-level's choices) imports neither logging nor structlog
LEVELS: dict[str, int] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
}


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def configure(level: str = "info", fmt: LogFormat = "auto", *, stream: TextIO | None = None) -> None:
    """Render events as readable lines for a person at a terminal, as JSON lines otherwise.

    ``auto`` picks the console renderer only when ``stream`` (stderr by default) is a TTY, so a
    pipeline or a CI log gets machine-readable JSON without asking. Events below ``level`` are
    dropped before any processor runs (structlog's filtering bound logger), so debug events cost
    next to nothing. Applied when the first event is logged (or now, if structlog is imported
    already): a command that logs nothing does not import structlog (:mod:`vwmerge._log`).
    """
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; choose one of {', '.join(LEVELS)}")
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"unknown log format {fmt!r}; choose auto, console or json")
    defer(partial(_apply, level, fmt, stream if stream is not None else sys.stderr))


def _apply(level: str, fmt: LogFormat, out: TextIO) -> None:
    import structlog  # here, not at the top: `vwmerge --version` and `--help` never log

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    renderer: list[structlog.typing.Processor]
    if fmt == "console" or (fmt == "auto" and _is_tty(out)):
        renderer = [structlog.dev.ConsoleRenderer(colors=_is_tty(out), sort_keys=False)]
    else:
        renderer = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger() -> structlog.typing.FilteringBoundLogger:
    """The one logger vwmerge writes user-visible events to."""
    ensure()
    import structlog

    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("vwmerge")
    return logger
