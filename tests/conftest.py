"""Session fixtures: real VW 9.11.9 models trained at test time (cached per session), VW's own
merges of them, and the third-party example plugin package.

The example plugin (``tests/plugin_pkg``) overrides a built-in reduction in every process once it
is installed. So that the suite tests the built-ins, its entry point is blocked here, at import
time, before any registry exists; ``tests/test_plugins.py`` clears the block where it tests the
override.

The suite uses vwmerge's own kit for plugin authors (``vwmerge.testing``: fixtures
``vwmerge_kit``, ``vwmerge_registry``, ``vwmerge_cli``), and pytest's ``pytester`` to run the kit in
isolated pytest runs. ``pytest_plugins`` may only be set in this top-level conftest (pytest
rejects it in a conftest found during collection, such as ``tests/plugin_pkg/tests/conftest.py``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from helpers.models import (
    EXAMPLE_PLUGIN_DIST,
    EXAMPLE_PLUGIN_ENTRY_POINT,
    PLUGIN_PKG,
    Models,
    example_plugin_entry_point,
)
from vwmerge.contract.registry import BLOCK_ENV

pytest_plugins = ["pytester", "vwmerge.testing"]

_blocked = [n for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()]
if EXAMPLE_PLUGIN_ENTRY_POINT not in _blocked:
    os.environ[BLOCK_ENV] = ",".join([*_blocked, EXAMPLE_PLUGIN_ENTRY_POINT])


@pytest.fixture(scope="session", autouse=True)
def example_plugin_installed() -> None:
    """Fallback only: the documented install (``make install``) already installs the package."""
    if example_plugin_entry_point() is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", str(PLUGIN_PKG)], check=True)
        importlib.invalidate_caches()
    assert example_plugin_entry_point() is not None, f"{EXAMPLE_PLUGIN_DIST} is not installed"


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return Models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """structlog events emitted during the test, at every level.

    Resets structlog to its defaults first (and restores the configuration afterwards), so a level
    filter configured by an earlier in-process CLI run cannot hide info events.
    """
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as captured:
            yield captured
    finally:
        structlog.configure(**saved)
