"""Only for running these tests inside vwmerge's own suite.

vwmerge's tests/conftest.py blocks this plugin's entry point (``VWMERGE_BLOCK_PLUGINS``) so that
the rest of its suite exercises the built-in squarecb plugin; here the block is lifted, so the
``vwmerge`` subprocesses see the plugin as any installation does. A plugin's own repository
needs no such file.
"""

from __future__ import annotations

import os

import pytest

BLOCK_ENV = "VWMERGE_BLOCK_PLUGINS"
ENTRY_POINT = "example_squarecb"


@pytest.fixture(autouse=True)
def _plugin_not_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    rest = [n for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip() and n.strip() != ENTRY_POINT]
    monkeypatch.setenv(BLOCK_ENV, ",".join(rest))
