"""The plugin contract. Every reduction vwmerge understands, built-in or not, is a pluggy plugin
that implements these hooks and is found through the ``vwmerge`` entry-point group::

    [project.entry-points.vwmerge]
    my_reduction = "my_package.my_module"

A plugin first *declares* its reductions (:func:`vwmerge_reductions`). For every other hook the
core calls only the plugin that owns the reduction at hand, so an implementation never sees a
reduction it did not declare (a plugin with several reductions dispatches on
``reduction.name``). All hooks except :func:`vwmerge_reductions` are ``firstresult``.

If two plugins declare the same reduction name, a plugin from a distribution other than
``vwmerge`` overrides the built-in one (``vwmerge plugins`` lists overrides); two third-party plugins
declaring the same name is an error naming both (block one with ``VWMERGE_BLOCK_PLUGINS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .context import MergeContext, ModelWeights, PartialContext
    from .sectionio import SectionIO
    from .stack import ReductionSpec, StackEntry

hookspec = pluggy.HookspecMarker("vwmerge")


@hookspec
def vwmerge_reductions() -> Sequence[ReductionSpec]:
    """Declare the reductions this plugin provides.

    Return :class:`vwmerge.plugin.ReductionSpec` objects: name, stack rank (use
    :func:`vwmerge.plugin.rank_of`), the options that enable the reduction and the ones it owns,
    whether it writes a model-file section, whether it is a bottom learner, and its feature width.
    The core derives each model's stack from these, like VW does from its setup list.
    """
    raise NotImplementedError  # a specification: pluggy calls the plugins' implementations


@hookspec(firstresult=True)
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: Any) -> Any:
    """Read or write this reduction's section of a model file (VW's ``save_load``).

    One hook for both directions so that the layout is written down once. When ``io.reading``
    is true, ``state`` is None: read the section from ``io.reader`` and return the state object
    (anything; an attrs frozen class is recommended). Otherwise write ``state`` to
    ``io.writer`` and return None. Reading then writing must reproduce the bytes exactly.
    A bottom learner reads to the end of the file (``io.reader.remaining``); ``io.model`` gives
    the header, options and stack; ``io.load_weights`` is false for a dry run, where a bottom
    learner may skip its rows (but should still validate their size).
    """


@hookspec(firstresult=True)
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[Any],
    weights: ModelWeights,
    base: Any | None,
    context: MergeContext,
) -> Any:
    """Merge one reduction's states from all models into the output state.

    ``states`` are in input order; ``weights`` carries the per-model weights (VW's
    example-count weights or the user's explicit ones, normalized or not, see
    :class:`vwmerge.plugin.ModelWeights`). ``base`` is the base model's state when merging in base mode
    and the plugin has no add/subtract hooks (otherwise the core passes deltas and base=None).
    For the bottom learner the state includes the weight table. Return None to decline: the core
    then keeps the first model's (or the base's) state and warns.
    """


@hookspec(firstresult=True)
def vwmerge_merge_partial(reduction: StackEntry, state: Any, weight: float, index: int, context: PartialContext) -> Any:
    """One input's contribution to a merge, as a partial result (streaming and parallel merges).

    Base learners only (``ReductionSpec(bottom=True)``): their weight rows are what a streaming
    merge streams; every other reduction is read whole and merged by :func:`vwmerge_merge`, and
    the core never calls the three partial hooks for it. Implement this with
    :func:`vwmerge_merge_combine` and :func:`vwmerge_merge_finalize` so that ``vwmerge merge``
    never loads every input at once and ``--jobs``/dask can merge groups of inputs anywhere and
    combine the results in any grouping. ``state`` is input
    ``index``'s state (in base mode its delta from the base, unless the plugin implements
    :func:`vwmerge_merge_partial_delta`); ``weight`` is ``context.weights.values[index]``. The
    partial may keep views into ``state`` (gd keeps the mapped rows): an input's file stays
    mapped as long as a partial refers to it, so a partial may hold its input until finalize
    (gd's exact merge holds up to a limit of inputs and walks them in lock step, see
    :func:`vwmerge.plugin.walk_rows`); one that does should release the pages it is done with
    (:func:`vwmerge.plugin.release_pages`) so memory does not grow with the inputs. ``context``
    is a :class:`vwmerge.plugin.PartialContext`: ``exact`` asks for the sequential merge's exact
    rounding (inputs arrive in order and are combined left to right), otherwise combining must be
    associative (float64 sums, say); ``pass_index``/``prior`` are for multi-pass merges (see
    :func:`vwmerge_merge_finalize`). Without these hooks the core falls back to
    :func:`vwmerge_merge`, loading every input's state at once.
    """


@hookspec(firstresult=True)
def vwmerge_merge_partial_delta(
    reduction: StackEntry, state: Any, base: Any, weight: float, index: int, context: PartialContext
) -> Any:
    """Optional, base learners in base mode: the partial result of ``state − base``.

    A streamed base-mode merge calls this hook, when the plugin implements it, with each input's
    state and the base's state (read once for the whole merge), instead of
    :func:`vwmerge_subtract` followed by :func:`vwmerge_merge_partial`: the plugin can then take
    the difference a block of rows at a time rather than build every input's whole delta. The
    result must be the partial :func:`vwmerge_merge_partial` would give for
    ``vwmerge_subtract(state, base)``, combined and finalized by the same hooks (gd does this;
    ``--jobs``/dask workers call it too; every pass of a multi-pass merge does). Arguments as for
    :func:`vwmerge_merge_partial`. The plugin still needs :func:`vwmerge_subtract` and
    :func:`vwmerge_add` (the plan merges deltas only for a reduction that has both).
    """


@hookspec(firstresult=True)
def vwmerge_merge_combine(reduction: StackEntry, left: Any, right: Any, context: PartialContext) -> Any:
    """Combine two partial results; ``left`` covers inputs before ``right``'s.

    Must be associative (within the rounding the plugin documents) when ``context.exact`` is
    false. When ``context.in_place`` is true the core never reads ``left`` again, so it may be
    updated and returned; ``right`` must never be changed.
    """


@hookspec(firstresult=True)
def vwmerge_merge_finalize(reduction: StackEntry, partial: Any, context: PartialContext) -> Any:
    """Turn the combined partial result of all inputs into the merged state.

    Return ``vwmerge.plugin.NextPass(prior)`` to ask for another pass over the inputs: the core
    runs partial/combine/finalize again with ``context.pass_index`` one higher and
    ``context.prior`` set (gd's exact path does this: pass 0 sums the adaptive column that pass 1
    divides by, as VW does in float32).
    """


@hookspec(firstresult=True)
def vwmerge_subtract(reduction: StackEntry, state: Any, base: Any, context: MergeContext) -> Any:
    """Return ``state − base`` for base-model mode (only for additive states).

    Return None to decline for this reduction (a plugin owning several reductions may subtract
    only some): the core then passes the undiffed states and the base to ``vwmerge_merge``.

    For a base learner the plan needs only the delta's example count (the weights come from the
    deltas): a streaming merge's scan calls this on each model's state without its rows, as it
    reads that model, with a ``context`` whose ``models`` is that one model, and keeps the count
    (a fleet then costs the plan a few bytes a model); the rows' deltas are taken later, by
    ``vwmerge_merge_partial_delta`` or this hook again.
    """


@hookspec(firstresult=True)
def vwmerge_add(reduction: StackEntry, base: Any, delta: Any, context: MergeContext) -> Any:
    """Return ``base + delta``: the inverse of :func:`vwmerge_subtract` applied to a merged delta."""


@hookspec(firstresult=True)
def vwmerge_scale(reduction: StackEntry, delta: Any, scale: float, context: MergeContext) -> Any:
    """Return the merged ``delta`` with its learned parameters multiplied by ``scale`` (``--scale``).

    Base mode with a server step size λ (federated averaging's server learning rate): the core
    calls this on the merged delta, only when λ ≠ 1, and passes the result to
    :func:`vwmerge_add`, so the output is ``base + λ·(merged delta)``. Scale what the reduction
    *learned* (gd: the weight column); leave statistics of the data seen unscaled (example
    counters, ``t``, gd's adaptive Σg² and normalized columns): they count real examples, and
    the next training run reads them as such. A reduction whose delta holds only counters
    returns ``delta`` unchanged. Return None to decline.

    A reduction merged as a delta whose plugin does not implement this hook (or declines) gets
    its delta added unscaled, with a warning; for the base learner that is an error, since the
    learned weights are what ``--scale`` is for. ``scale`` is finite and > 0.
    """


@hookspec(firstresult=True)
def vwmerge_example_count(reduction: StackEntry, state: Any) -> float | None:
    """Bottom learners: the model's weighted labeled example count (VW's merge weight).

    Return None when the model does not record it (``--predict_only_model``); the core then
    weights such models equally and warns.
    """


@hookspec(firstresult=True)
def vwmerge_describe(reduction: StackEntry, state: Any) -> dict[str, Any] | None:
    """A small JSON-able summary of the state for ``vwmerge inspect`` (counters, sizes)."""
