"""Start-up: a command imports only what it uses (issue 11; docs/scale.md, "Start-up").

The real command line runs in a subprocess under ``python -X importtime``, which names every
module the process imported; ``--version`` and ``--help`` must not import numpy, structlog,
pluggy or the plugins (nor read package metadata), which is what made them slow.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
import vwmerge

HEAVY = ("numpy", "structlog", "pluggy", "attr", "attrs", "vwmerge.plugins", "vwmerge.engine", "importlib.metadata")


def _imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "vwmerge", *args], capture_output=True, text=True, timeout=120
    )
    modules = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    return run, modules


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("merge", "--help"), ("inspect", "-h")])
def test_version_and_help_import_nothing_heavy(args: tuple[str, ...]) -> None:
    run, modules = _imported(*args)
    assert run.returncode == 0, run.stderr
    assert "vwmerge.cli.commands" in modules  # the check sees the imports (not vacuous)
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


def test_a_command_imports_what_it_uses() -> None:
    run, modules = _imported("plugins", "--json")
    assert run.returncode == 0, run.stderr
    assert {"numpy", "pluggy", "structlog", "vwmerge.plugins.gd"} <= modules


def test_the_version_is_the_distributions() -> None:
    assert vwmerge.__version__ == importlib.metadata.version("vwmerge")


def test_the_public_names_load_on_first_use() -> None:
    code = (
        "import sys, vwmerge\n"
        "assert 'numpy' not in sys.modules\n"
        "from vwmerge import *\n"
        "missing = [n for n in vwmerge.__all__ if n not in globals()]\n"
        "assert not missing, missing\n"
        "assert set(vwmerge.__all__) <= set(dir(vwmerge))\n"
        "assert vwmerge.merge is sys.modules['vwmerge.engine.merging'].merge\n"
        "assert vwmerge.Header is sys.modules['vwmerge.format.header'].Header\n"
        "try:\n"
        "    vwmerge.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
