"""vwmerge: read, merge and write Vowpal Wabbit 9.x binary model files.

Library API::

    import vwmerge
    a, b = vwmerge.load("a.model"), vwmerge.load("b.model")
    merged = vwmerge.merge([a, b])              # VW's semantics (example-count weighting)
    merged = vwmerge.merge([a, b], weights=[3, 1])   # θ = 0.75·θa + 0.25·θb
    merged.save("merged.model")

    paths = vwmerge.expand_inputs(["day*.model"], models_from=["more.txt"])  # as the CLI does
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .contract.context import MergeContext, ModelWeights
from .contract.registry import Registry, default_registry, hookimpl, make_plugin_manager
from .contract.sectionio import SectionIO
from .contract.stack import ModelInfo, ReductionSpec, StackEntry, rank_of
from .engine.merging import merge
from .engine.report import verify
from .errors import IncompatibleModelsError, MergeError, ModelFormatError, PluginError, ReportError, VWMergeError
from .format.header import Header
from .format.options import Options
from .format.weights import WeightTable
from .model.inputs import expand_inputs, read_model_list
from .model.workspace import Workspace, load

try:
    __version__ = version("vwmerge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Header",
    "IncompatibleModelsError",
    "MergeContext",
    "MergeError",
    "ModelFormatError",
    "ModelInfo",
    "ModelWeights",
    "Options",
    "PluginError",
    "ReductionSpec",
    "Registry",
    "ReportError",
    "SectionIO",
    "StackEntry",
    "VWMergeError",
    "WeightTable",
    "Workspace",
    "__version__",
    "default_registry",
    "expand_inputs",
    "hookimpl",
    "load",
    "make_plugin_manager",
    "merge",
    "rank_of",
    "read_model_list",
    "verify",
]
