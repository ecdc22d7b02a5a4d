"""Executing a merge plan in memory: preparing the states, walking the stack, assembling the output.

The core knows nothing about any reduction's state. :func:`prepare_merge` takes the plan
(:mod:`vwmerge.engine.plan`: compatibility, weights, each reduction's action) and the states it
needs; :func:`execute` carries it out, asking each reduction's plugin to merge (top of stack
first, as VW does), and records each step's outcome.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .._log import log
from ..contract.context import MergeContext
from ..contract.registry import Registry
from ..contract.stack import StackEntry
from ..errors import MergeError, PluginError
from ..format.header import Header
from ..model.workspace import Workspace
from .partial import merge_in_memory, supports_partial
from .plan import MergePlan, Outcome, decide


@attrs.frozen(eq=False)
class PreparedMerge:
    """A merge with its plan decided (:func:`vwmerge.engine.plan.decide`) and nothing merged yet.

    Split from :func:`merge` so that the streaming merger (:mod:`vwmerge.engine.streaming`)
    decides from models loaded without their weight rows, then streams only the bottom
    learner's rows. ``states[k]`` are reduction k's input states in input order (deltas from
    the base where the plan merges deltas, ``additive[k]``).
    """

    models: tuple[Workspace, ...]
    base: Workspace | None
    header: Header
    stack: tuple[StackEntry, ...]
    states: tuple[tuple[Any, ...], ...]
    additive: tuple[bool, ...]
    context: MergeContext
    plan: MergePlan


@attrs.frozen(eq=False)
class Executed:
    """A plan carried out: the merged workspace and what each step did."""

    workspace: Workspace
    outcomes: tuple[Outcome, ...]


#: Merges reduction ``k`` (``entry``) given the base's state of it (None without a base or when
#: the core merges deltas); returns the merged state, or None to decline.
EntryMerger = Callable[[int, StackEntry, Any], Any]


def prepare(
    models: Sequence[Workspace],
    *,
    weights: Sequence[float] | None = None,
    normalize: bool = True,
    base: Workspace | None = None,
    registry: Registry | None = None,
    streaming: bool = False,
    sizes: Sequence[int | None] | None = None,
    base_size: int | None = None,
    scale: float | None = None,
    force: bool = False,
) -> tuple[MergePlan, PreparedMerge | None]:
    """The plan, and the prepared merge when the plan can run (else None; ``plan.error`` says why)."""
    models = list(models)
    d = decide(
        models, weights=weights, normalize=normalize, base=base, registry=registry or (models[0].registry if models
        else None), streaming=streaming, sizes=sizes, base_size=base_size, scale=scale, force=force,
    )  # fmt: skip
    if not d.plan.ok or d.header is None or d.context is None:
        return d.plan, None
    prep = PreparedMerge(tuple(models), base, d.header, models[0].stack, d.states, d.additive, d.context, d.plan)
    return d.plan, prep


def prepare_merge(
    models: Sequence[Workspace],
    *,
    weights: Sequence[float] | None = None,
    normalize: bool = True,
    base: Workspace | None = None,
    registry: Registry | None = None,
    streaming: bool = False,
    sizes: Sequence[int | None] | None = None,
    base_size: int | None = None,
    scale: float | None = None,
    force: bool = False,
) -> PreparedMerge:
    """:func:`prepare`, raising the plan's error when it cannot run."""
    if not models:
        raise MergeError("no models to merge")
    plan, prep = prepare(
        models, weights=weights, normalize=normalize, base=base, registry=registry, streaming=streaming,
        sizes=sizes, base_size=base_size, scale=scale, force=force,
    )  # fmt: skip
    if prep is None:
        assert plan.error is not None
        raise plan.error
    return prep


def log_warnings(plan: MergePlan) -> None:
    """Give the plan's warnings (stderr, through structlog)."""
    for w in plan.warnings:
        log.warning(w.event, **w.fields)


def merge_states(prep: PreparedMerge, k: int, entry: StackEntry, base_state: Any) -> Any:
    """Reduction ``k`` merged from ``prep.states[k]`` in memory (:func:`finish_merge`'s default).

    The owning plugin's ``vwmerge_merge``, or else, for the base learner, its partial-result
    hooks folded in input order (they see no base state, so not for a non-additive base learner
    in base mode). The partial hooks serve the base learner only: it is what a streaming merge
    streams; every other reduction is small and merged whole by ``vwmerge_merge``.
    """
    reg, ctx = prep.context.registry, prep.context
    if reg.implements("vwmerge_merge", entry):
        return reg.call(
            "vwmerge_merge", entry, states=list(prep.states[k]), weights=ctx.weights, base=base_state, context=ctx
        )
    if entry.bottom and base_state is None and supports_partial(reg, entry):
        return merge_in_memory(reg, entry, list(prep.states[k]), ctx)
    return None


def scale_delta(ctx: MergeContext, entry: StackEntry, delta: Any) -> Any:
    """``λ·delta`` through the plugin's ``vwmerge_scale`` (``--scale``), before ``vwmerge_add``.

    A reduction whose plugin lacks the hook is added unscaled (the plan warned); one whose hook
    declines (returns None) too, with a warning; a base learner that declines fails the merge
    (its weights are what ``--scale`` scales; the plan already refused one without the hook).
    """
    if ctx.scale == 1 or not ctx.registry.implements("vwmerge_scale", entry):
        return delta
    scaled = ctx.registry.call("vwmerge_scale", entry, delta=delta, scale=ctx.scale, context=ctx)
    if scaled is not None:
        return scaled
    if entry.bottom:
        raise PluginError(
            f"base learner '{entry.name}' (plugin '{entry.plugin}') declined to scale its merged delta; "
            "--scale cannot be applied"
        )
    ctx.warn(entry, "reduction's plugin declined to scale its delta; adding it to the base unscaled", scale=ctx.scale)
    return delta


def execute(prep: PreparedMerge, merge_entry: EntryMerger | None = None, *, base: Workspace | None = None) -> Executed:
    """Carry out ``prep.plan`` reduction by reduction, top of stack first, as VW does.

    ``merge_entry`` merges one reduction (default :func:`merge_states`). ``base`` replaces
    ``prep.base`` where a base state is kept or added back (the streaming merger plans from a
    base without rows, then adds the full one). The plan's warnings are logged first. A merge
    hook that declines (returns None) is the one thing the plan cannot know: the first model's
    state (the base's in base mode) is kept with a warning and the outcome says so; a base
    learner that declines fails the merge.
    """
    reg = prep.context.registry
    ctx = prep.context
    plan = prep.plan
    base = base if base is not None else prep.base
    first = prep.models[0]
    merge_entry = merge_entry or functools.partial(merge_states, prep)
    log_warnings(plan)
    out_states: list[Any] = []
    outcomes: list[Outcome] = []
    for k, (entry, step) in enumerate(zip(prep.stack, plan.steps, strict=True)):
        if step.action == "none":
            out_states.append(None)
            outcomes.append(Outcome(entry.name, "none"))
            continue
        keep_from = base if base is not None else first
        if step.action == "keep":
            out_states.append(keep_from.states[k])
            outcomes.append(Outcome(entry.name, "kept", keep_from.source, "its plugin has no merge hooks"))
            continue
        if step.action not in ("merge", "merge deltas"):
            raise plan.error or PluginError(f"reduction '{entry.name}' cannot be merged ({step.why})")
        base_state = base.states[k] if base is not None else None
        delta_mode = step.action == "merge deltas"
        merged = merge_entry(k, entry, None if delta_mode else base_state)
        if merged is None:
            if entry.bottom:
                raise PluginError(
                    f"base learner '{entry.name}' has no merge (plugin '{entry.plugin}'); the weights cannot be merged"
                )
            log.warning(
                "reduction has state but no merge; keeping one model's state unchanged",
                reduction=entry.name, plugin=entry.plugin, kept_from=keep_from.source,
            )  # fmt: skip
            out_states.append(keep_from.states[k])
            outcomes.append(Outcome(entry.name, "kept", keep_from.source, "its plugin declined (returned None)"))
            continue
        kept = None
        if not delta_mode:
            candidates = [*zip(prep.states[k], (m.source for m in prep.models), strict=True)]
            if base is not None:
                candidates.append((base_state, base.source))
            kept = next((src for st, src in candidates if st is merged), None)
        if delta_mode:
            merged = scale_delta(ctx, entry, merged)
            merged = reg.call("vwmerge_add", entry, base=base_state, delta=merged, context=ctx)
        out_states.append(merged)
        if kept is not None:
            outcomes.append(Outcome(entry.name, "kept", kept, "its plugin returned this model's state unchanged"))
        else:
            outcomes.append(Outcome(entry.name, "merged deltas" if delta_mode else "merged"))
    said: dict[Any, list[dict[str, Any]]] = {}
    for w in ctx.warnings:
        said.setdefault(w.get("reduction"), []).append(w)
    outcomes = [attrs.evolve(o, warnings=tuple(said.get(o.reduction, ()))) for o in outcomes]
    ws = Workspace(prep.header, ctx.output.options, prep.stack, tuple(out_states), "<merged>", reg)
    return Executed(ws, tuple(outcomes))


def finish_merge(
    prep: PreparedMerge, merge_entry: EntryMerger | None = None, *, base: Workspace | None = None
) -> Workspace:
    """:func:`execute`, the merged workspace only."""
    return execute(prep, merge_entry, base=base).workspace


def merge(
    models: Sequence[Workspace],
    *,
    weights: Sequence[float] | None = None,
    normalize: bool = True,
    base: Workspace | None = None,
    registry: Registry | None = None,
    scale: float | None = None,
    force: bool = False,
) -> Workspace:
    """Merge models into one workspace.

    Default weighting follows VW (example counts, and per-parameter adaptive weighting where the
    model stores adaptive sums). ``weights`` gives explicit per-model weights: every parameter is
    then exactly Σ wᵢθᵢ (normalized to sum 1 unless ``normalize=False``). With ``base``, each
    model's difference from the base is merged and added back (VW's base-model mode); every
    model must have at least the base's example count (it continued training from the base),
    else :class:`vwmerge.MergeError`, or with ``force=True`` a warning. ``scale`` (base mode
    only, finite, > 0; None = 1) is the server step size λ: the result is
    ``base + λ·(merged delta)`` for the learned parameters, counters and optimizer statistics
    unscaled (docs/merge-semantics.md); λ = 1 is plain base mode, bit for bit.
    """
    prep = prepare_merge(
        models, weights=weights, normalize=normalize, base=base, registry=registry, scale=scale, force=force
    )
    return finish_merge(prep)
