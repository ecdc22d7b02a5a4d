"""The documentation site (mkdocs.yml) shows every page, and its API reference every hook.

``mkdocs build --strict`` (``make docs``, run by .ci/run) checks links and cross-references, but
it does not notice a page missing from the nav (it only logs it) or a hook filtered out of the
reference. These checks read mkdocs.yml and docs/api.md as text, so they need neither mkdocs
nor the docs extra.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import vwmerge
import vwmerge.plugin

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API = DOCS / "api.md"
HOOKSPECS = ROOT / "core" / "contract" / "hookspecs.py"


def nav_pages(config: str) -> list[str]:
    """The ``*.md`` pages listed under ``nav:`` in an mkdocs.yml (in order)."""
    lines = config.splitlines()
    start = lines.index("nav:")
    pages: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith((" ", "-")):
            break  # the next top-level key
        pages += re.findall(r"([\w./-]+\.md)\s*$", line)
    return pages


def directives(page: str) -> dict[str, dict[str, list[str]]]:
    """``::: identifier`` blocks of a page and their list-valued options (``filters``, ``members``).

    Lists are read in both YAML spellings: ``key: ["a", "b"]`` and ``key:`` followed by ``- a``
    lines."""
    out: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    key: str | None = None
    for line in page.splitlines():
        m = re.match(r"^::: ([\w.]+)\s*$", line)
        if m:
            current = out.setdefault(m.group(1), {})
            key = None
            continue
        if current is None:
            continue
        if line and not line.startswith(" "):
            current = None  # the directive's indented options end here
            continue
        if m := re.match(r"^\s+(\w+):\s*\[(.*)\]\s*$", line):
            current[m.group(1)] = [v.strip().strip("\"'") for v in m.group(2).split(",") if v.strip()]
            key = None
        elif m := re.match(r"^\s+(\w+):\s*$", line):
            key = m.group(1)
            current[key] = []
        elif (m := re.match(r"^\s+- (.+?)\s*$", line)) and key is not None:
            current[key].append(m.group(1).strip("\"'"))
    return out


def kept_by_filters(name: str, filters: list[str]) -> bool:
    """mkdocstrings-python's ``filters`` rule: the last matching filter decides (``!`` excludes);
    a name no filter matches is kept unless every filter is an inclusion."""
    keep: bool | None = None
    for f in filters:
        exclude = f.startswith("!")
        if re.search(f[1:] if exclude else f, name):
            keep = not exclude
    if keep is None:
        return not filters or any(f.startswith("!") for f in filters)
    return keep


def documented(name: str, options: dict[str, list[str]]) -> bool:
    """Whether a directive with these options renders the member ``name``. Without ``filters``
    mkdocstrings' default hides only private names."""
    if "members" in options and name not in options["members"]:
        return False
    return kept_by_filters(name, options.get("filters", ["!^_[^_]"]))


def hookspec_functions() -> dict[str, bool]:
    """Every function in hookspecs.py decorated as a hookspec, and whether it has a docstring."""
    tree = ast.parse(HOOKSPECS.read_text())
    out: dict[str, bool] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
            if any(isinstance(d, ast.Name) and d.id == "hookspec" for d in decorators):
                out[node.name] = bool(ast.get_docstring(node))
    return out


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert re.search(r"^docs_dir: docs$", config, re.M)
    listed = nav_pages(config)
    assert len(listed) == len(set(listed)), f"a page is listed twice: {listed}"
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert sorted(set(pages) - set(listed)) == [], "pages missing from mkdocs.yml's nav (orphans)"
    assert sorted(set(listed) - set(pages)) == [], "nav entries without a page"


def test_the_reference_documents_every_hook() -> None:
    hooks = hookspec_functions()
    assert {"vwmerge_reductions", "vwmerge_merge", "vwmerge_save_load"} <= set(hooks), hooks
    found = directives(API.read_text())
    assert "vwmerge.contract.hookspecs" in found, "docs/api.md has no '::: vwmerge.contract.hookspecs'"
    options = found["vwmerge.contract.hookspecs"]
    hidden = [name for name in hooks if not documented(name, options)]
    assert hidden == [], f"hooks filtered out of the reference: {hidden}"
    undocumented = [name for name, has_doc in hooks.items() if not has_doc]
    assert undocumented == [], f"hooks without a docstring render nothing: {undocumented}"


@pytest.mark.parametrize(
    ("module", "names"), [("vwmerge", vwmerge.__all__), ("vwmerge.plugin", vwmerge.plugin.__all__)]
)
def test_the_reference_documents_the_public_modules(module: str, names: list[str]) -> None:
    found = directives(API.read_text())
    assert module in found, f"docs/api.md has no '::: {module}'"
    members = found[module].get("members")
    if members is not None:  # an explicit list: each must still exist
        assert set(members) <= set(names), f"{module} does not export {sorted(set(members) - set(names))}"
        assert {"load", "merge", "Workspace", "VWMergeError"} <= set(members)
    else:
        assert all(documented(n, found[module]) for n in names if not n.startswith("_"))


def test_the_reference_documents_the_engine_entry_points() -> None:
    found = directives(API.read_text())
    assert "vwmerge.engine.streaming.merge_files" in found


def test_the_checks_can_fail() -> None:
    assert nav_pages("site_name: x\nnav:\n  - A: a.md\n  - B:\n      - b.md\ntheme: x\n  - c.md\n") == ["a.md", "b.md"]
    page = '::: m\n    options:\n      filters: ["^vwmerge_"]\n      members:\n        - vwmerge_add\ntext\n::: n\n'
    found = directives(page)
    assert found == {"m": {"options": [], "filters": ["^vwmerge_"], "members": ["vwmerge_add"]}, "n": {}}
    assert documented("vwmerge_add", found["m"])
    assert not documented("vwmerge_merge", found["m"])  # not in members
    assert not kept_by_filters("hookspec", ["^vwmerge_"])
    assert not kept_by_filters("vwmerge_merge", ["!merge"])
    assert kept_by_filters("vwmerge_merge", ["!^_"])
    assert not documented("_private", {})
