"""Everything a plugin author needs, from one module.

Every type a hook receives or returns, and the helpers the built-in reductions use, are
importable from here; the modules they live in (``vwmerge.contract``, ``vwmerge.format``,
``vwmerge.engine``) are internal and may move. A plugin module starts::

    from vwmerge.plugin import MergeContext, ReductionSpec, SectionIO, StackEntry, hookimpl, rank_of

See docs/hooks.md for the hooks and docs/plugins.md for a complete plugin.
"""

from __future__ import annotations

from .contract.context import MergeContext, ModelWeights, NextPass, PartialContext
from .contract.registry import Registry, default_registry, hookimpl
from .contract.sectionio import SectionIO
from .contract.stack import VW_SETUP_ORDER, ModelInfo, ReductionSpec, StackEntry, rank_of
from .engine.lockstep import RowBlock, walk_rows
from .engine.pages import in_mapped_file, prefetch_pages, release_pages
from .engine.rowsums import RowSums, add_at, allocate
from .errors import IncompatibleModelsError, MergeError, ModelFormatError, PluginError, VWMergeError
from .format.binio import Reader, Writer
from .format.header import Header
from .format.options import Options
from .format.weights import WeightTable, align, union_sorted

__all__ = [
    "VW_SETUP_ORDER",
    "Header",
    "IncompatibleModelsError",
    "MergeContext",
    "MergeError",
    "ModelFormatError",
    "ModelInfo",
    "ModelWeights",
    "NextPass",
    "Options",
    "PartialContext",
    "PluginError",
    "Reader",
    "ReductionSpec",
    "Registry",
    "RowBlock",
    "RowSums",
    "SectionIO",
    "StackEntry",
    "VWMergeError",
    "WeightTable",
    "Writer",
    "add_at",
    "align",
    "allocate",
    "default_registry",
    "hookimpl",
    "in_mapped_file",
    "prefetch_pages",
    "rank_of",
    "release_pages",
    "union_sorted",
    "walk_rows",
]
