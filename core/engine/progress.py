"""Progress bars on stderr for merges that take a while.

Shown only to a person watching a terminal: when stderr is not a TTY (a pipe, a CI log, a
file) or the user asked for quiet, nothing is drawn, so logs and JSON output stay clean.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

import click

Advance = Callable[[int], None]


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _ignore(_: int) -> None:
    pass


class Progress:
    """Draws byte-counting bars on ``stream`` (stderr), or nothing when disabled."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream) if enabled is None else enabled

    @classmethod
    def resolve(cls, progress: bool | Progress | None) -> Progress:
        """``None``: a bar when stderr is a terminal; ``False``: quiet; ``True``: always."""
        return progress if isinstance(progress, Progress) else cls(progress)

    @contextlib.contextmanager
    def task(self, label: str, total: int) -> Iterator[Advance]:
        """A bar for ``total`` units (bytes); call the yielded function with each step's size."""
        if not self.enabled or total <= 0:
            yield _ignore
            return
        with click.progressbar(length=total, label=label, file=self.stream, width=32) as bar:
            yield bar.update
