"""Running the real ``vwmerge`` command in a subprocess, and reading what it said.

Every CLI test goes through :func:`run_cli`: the interpreter under test (``python -m vwmerge``,
or the ``vwmerge`` console script installed beside it — never one found on PATH), standard
input closed unless given, stderr a pipe (so ``--log-format auto`` logs JSON lines there, which
:meth:`Run.log_events` parses and :meth:`Run.human_lines` leaves out).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class Run:
    """One finished ``vwmerge`` process."""

    returncode: int
    stdout: str
    stderr: str

    def log_events(self) -> list[dict[str, Any]]:
        """The structured log events (JSON lines) on stderr."""
        return [e for e in map(json_event, self.stderr.splitlines()) if e is not None]

    def human_lines(self) -> list[str]:
        """stderr lines that are not structured log events (click's messages, errors, tracebacks)."""
        return [line for line in self.stderr.splitlines() if line.strip() and json_event(line) is None]


def json_event(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None


def console_script() -> str:
    """The ``vwmerge`` script installed beside the interpreter under test (never one on PATH)."""
    script = shutil.which("vwmerge", path=str(Path(sys.executable).parent))
    assert script is not None, f"no vwmerge console script beside {sys.executable}"
    return script


def run_cli(
    *args: object,
    stdin: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    script: bool = False,
    timeout: float = 300,
) -> Run:
    """``python -m vwmerge ARGS`` (``script``: the installed console script) in a subprocess.

    ``stdin``: text for its standard input (None: closed, so a command waiting on it fails
    instead of hanging the suite).
    """
    exe = [console_script()] if script else [sys.executable, "-m", "vwmerge"]
    proc = subprocess.run(
        [*exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env=dict(env) if env is not None else None,
        **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
    )  # fmt: skip
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_one_error(run: Run, *needles: str) -> str:
    """Exit 1, no traceback, and exactly one human line on stderr, ``Error: ...``, naming each
    needle; returns that line."""
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.human_lines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("Error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
