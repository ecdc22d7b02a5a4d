"""The ``vwmerge`` script and ``python -m vwmerge``: :func:`main`.

It answers ``vwmerge --version`` before importing click (or anything else), and hands every other
command line to the click group :func:`vwmerge.cli.commands.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line (``vwmerge`` and ``python -m vwmerge``)."""
    if sys.argv[1:] == ["--version"]:  # the one answer that needs nothing but the version
        from .. import __version__

        sys.stdout.write(f"vwmerge {__version__}\n")
        return
    from .commands import main as group

    group(prog_name="vwmerge")
