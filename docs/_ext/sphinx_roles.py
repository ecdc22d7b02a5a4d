"""A griffe extension for the API reference (mkdocs.yml): Sphinx roles in docstrings become links.

vwmerge's docstrings cross-reference with Sphinx roles (``:func:`vwmerge.merge` ``,
``:class:`ReductionSpec` ``), which mkdocstrings does not understand. Each role becomes the
target in code font, linked when the reference shows the target: an *optional* autorefs
reference, so a target the site does not document (a private helper) stays plain code instead
of failing ``mkdocs build --strict``. A relative target is tried against the class, then the
module, the docstring belongs to. A reST literal-block marker (a line ending ``::``) becomes ``:``
(the indented block after it already reads as code in Markdown).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|data|attr|mod|exc|obj):`(~?)([\w.]+)`")
LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.M)


def _identifier(obj: griffe.Object, target: str) -> str:
    if target.startswith("vwmerge.") or target == "vwmerge":
        return target
    scope = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None and not (scope.is_class or scope.is_module):
        scope = scope.parent
    if scope is not None and scope.is_class and "." not in target:
        return f"{scope.path}.{target}"
    return f"{obj.module.path}.{target}"


def convert(obj: griffe.Object, text: str) -> str:
    def link(m: re.Match[str]) -> str:
        tilde, target = m.groups()
        shown = target.rsplit(".", 1)[-1] if tilde else target
        ident = html.escape(_identifier(obj, target), quote=True)
        return f'<autoref identifier="{ident}" optional><code>{html.escape(shown)}</code></autoref>'

    return LITERAL_MARKER.sub(":", ROLE.sub(link, text))


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = convert(obj, obj.docstring.value)
