"""Merges as partial results: the hook protocol behind streaming, ``--jobs`` and dask merges.

A plugin that implements ``vwmerge_merge_partial``/``_combine``/``_finalize`` never needs all
inputs in memory: the core turns each input into a partial result as it reads it, combines
partials (left to right when merging sequentially, in any grouping in parallel) and finalizes
once, and runs more passes while finalize asks for them (:class:`vwmerge.plugin.NextPass`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ..contract.context import MergeContext, NextPass, PartialContext
from ..contract.registry import Registry
from ..contract.stack import StackEntry

PARTIAL_HOOKS = ("vwmerge_merge_partial", "vwmerge_merge_combine", "vwmerge_merge_finalize")


def supports_partial(registry: Registry, entry: StackEntry) -> bool:
    return all(registry.implements(hook, entry) for hook in PARTIAL_HOOKS)


def fold(
    registry: Registry, entry: StackEntry, context: PartialContext, inputs: Iterable[tuple[int, Any]],
    base: Any = None,
) -> Any:  # fmt: skip
    """Left fold of one pass: each ``(index, state)`` becomes a partial, combined in order.

    With ``base`` (base mode, a plugin with ``vwmerge_merge_partial_delta``) each partial is of
    the state's difference from ``base``, which the plugin takes. A state is dropped as soon as
    its partial exists and a partial as soon as it is combined; what stays alive is what the
    plugin's partials keep (gd's exact merge holds its inputs' mapped rows, pages released, up
    to a limit; see docs/scale.md).
    """
    acc = None
    for index, state in inputs:
        weight = float(context.weights.values[index])
        if base is not None:
            part = registry.call(
                "vwmerge_merge_partial_delta", entry, state=state, base=base, weight=weight, index=index,
                context=context,
            )  # fmt: skip
        else:
            part = registry.call(
                "vwmerge_merge_partial", entry, state=state, weight=weight, index=index, context=context
            )
        del state
        acc = part if acc is None else combine(registry, entry, acc, part, context)
        del part  # combined: its input may go before the next is read
    return acc


def combine(registry: Registry, entry: StackEntry, left: Any, right: Any, context: PartialContext) -> Any:
    return registry.call("vwmerge_merge_combine", entry, left=left, right=right, context=context)


def finalize(registry: Registry, entry: StackEntry, partial: Any, context: PartialContext) -> Any:
    return registry.call("vwmerge_merge_finalize", entry, partial=partial, context=context)


def run_passes(context: PartialContext, one_pass: Callable[[PartialContext], Any]) -> Any:
    """Call ``one_pass`` (partials, combine, finalize) until it yields a state, not a NextPass."""
    prior = None
    for pass_index in itertools.count():
        out = one_pass(attrs.evolve(context, pass_index=pass_index, prior=prior))
        if not isinstance(out, NextPass):
            return out
        prior = out.prior
    raise AssertionError("unreachable")  # pragma: no cover


def merge_in_memory(registry: Registry, entry: StackEntry, states: list[Any], context: MergeContext) -> Any:
    """Merge states that are all in memory through the partial hooks (sequential, exact)."""
    ctx = PartialContext(**attrs.asdict(context, recurse=False), exact=True, in_place=True)

    def one_pass(c: PartialContext) -> Any:
        return finalize(registry, entry, fold(registry, entry, c, enumerate(states)), c)

    return run_passes(ctx, one_pass)
