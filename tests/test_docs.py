"""Every hook is documented with its exact signature (datasette's test_plugin_hooks_are_documented)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from vwmerge.contract import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS = sorted(n for n, f in vars(hookspecs).items() if n.startswith("vwmerge_") and inspect.isfunction(f))


def test_there_are_hooks() -> None:
    assert {"vwmerge_reductions", "vwmerge_save_load", "vwmerge_merge"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_signature(name: str) -> None:
    text = (DOCS / "hooks.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert re.search(rf"^### {name}\({re.escape(params)}\)$", text, re.M), f"docs/hooks.md lacks '### {name}({params})'"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_docstring(name: str) -> None:
    assert (getattr(hookspecs, name).__doc__ or "").strip()
