"""vwmerge: read, merge and write Vowpal Wabbit 9.x binary model files.

Library API::

    import vwmerge
    a, b = vwmerge.load("a.model"), vwmerge.load("b.model")
    merged = vwmerge.merge([a, b])              # VW's semantics (example-count weighting)
    merged = vwmerge.merge([a, b], weights=[3, 1])   # θ = 0.75·θa + 0.25·θb
    merged.save("merged.model")

    paths = vwmerge.expand_inputs(["day*.model"], models_from=["more.txt"])  # as the CLI does

The public names are loaded on first use (PEP 562): ``import vwmerge`` alone imports neither
numpy nor the plugins, so ``vwmerge --version`` starts as fast as the interpreter does.
"""

from __future__ import annotations

from ._version import __version__
from .errors import IncompatibleModelsError, MergeError, ModelFormatError, PluginError, ReportError, VWMergeError

# `typing` costs as much to import as the rest of `import vwmerge`: the constant mypy knows
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .contract.context import MergeContext, ModelWeights
    from .contract.registry import Registry, default_registry, hookimpl, make_plugin_manager
    from .contract.sectionio import SectionIO
    from .contract.stack import ModelInfo, ReductionSpec, StackEntry, rank_of
    from .engine.merging import merge
    from .engine.report import verify
    from .format.header import Header
    from .format.options import Options
    from .format.weights import WeightTable
    from .model.inputs import expand_inputs, read_model_list
    from .model.workspace import Workspace, load
del TYPE_CHECKING

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "MergeContext": ".contract.context",
    "ModelWeights": ".contract.context",
    "Registry": ".contract.registry",
    "default_registry": ".contract.registry",
    "hookimpl": ".contract.registry",
    "make_plugin_manager": ".contract.registry",
    "SectionIO": ".contract.sectionio",
    "ModelInfo": ".contract.stack",
    "ReductionSpec": ".contract.stack",
    "StackEntry": ".contract.stack",
    "rank_of": ".contract.stack",
    "merge": ".engine.merging",
    "verify": ".engine.report",
    "Header": ".format.header",
    "Options": ".format.options",
    "WeightTable": ".format.weights",
    "expand_inputs": ".model.inputs",
    "read_model_list": ".model.inputs",
    "Workspace": ".model.workspace",
    "load": ".model.workspace",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
