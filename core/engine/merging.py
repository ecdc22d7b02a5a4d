"""Merging workspaces: compatibility checks, per-model weights, walking the stack.

The core knows nothing about any reduction's state; it checks that the models can be merged,
decides each model's weight, then asks each reduction's plugin to merge (top of stack first, as
VW does) and assembles the output workspace.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import structlog

from ..contract.context import MergeContext, ModelWeights
from ..contract.registry import Registry
from ..contract.stack import ModelInfo, StackEntry
from ..errors import IncompatibleModelsError, MergeError, PluginError
from ..format.header import READER_CHANGES, Header
from ..format.options import Options
from ..model.workspace import Workspace, implied_options
from .partial import merge_in_memory, supports_partial

log = structlog.get_logger("vwmerge")


def _check_compatible(first: Workspace, other: Workspace) -> None:
    def bad(what: str) -> IncompatibleModelsError:
        return IncompatibleModelsError(f"cannot be merged with {first.source}: {what}", source=other.source)

    older, newer = sorted((first.header.version, other.header.version))
    changes = [c for c in READER_CHANGES if older < c <= newer]
    if changes:
        at = ", ".join(_version_text(c) for c in changes[:3]) + (", ..." if len(changes) > 3 else "")
        raise bad(
            f"written by VW {other.header.version_text} here and {first.header.version_text} there, which "
            f"VW reads differently (its reading changes at {at}) and a merged file has one layout; "
            "re-save both with the same VW first (vw -i MODEL -f NEW)"
        )
    if other.header.bits != first.header.bits:
        raise bad(f"bits differ ({other.header.bits} here, {first.header.bits} there)")
    if other.options.configuration() != first.options.configuration():
        raise bad(f"options differ ({first.options.diff(other.options)})")
    if other.header.lda != first.header.lda:
        raise bad(f"lda topics differ ({other.header.lda} vs {first.header.lda})")
    if (other.header.ngrams, other.header.skips) != (first.header.ngrams, first.header.skips):
        raise bad("--ngram/--skips differ")
    mine, theirs = other.header.layout_fields(), first.header.layout_fields()
    for field in (f for f in mine if mine[f] != theirs[f]):
        raise bad(f"the header's {field} differ ({_field_text(mine[field])} here, {_field_text(theirs[field])} there)")
    if [e.name for e in other.stack] != [e.name for e in first.stack]:
        raise bad(
            "reduction stacks differ ("
            + " > ".join(e.name for e in other.stack)
            + " vs "
            + " > ".join(e.name for e in first.stack)
            + ")"
        )
    if [e.width for e in other.stack] != [e.width for e in first.stack]:
        raise bad("reduction widths differ")


def _field_text(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + " ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in value) + "]"
    return str(value)


def _version_text(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def _vw_count_weights(counts: Sequence[float]) -> np.ndarray:
    """VW's p_i = f32(c_i / S), with c_i = f32(count) and S summed in float32 in input order."""
    c = np.array(counts, dtype=np.float64).astype(np.float32)
    s = np.float32(0.0)
    for ci in c:
        s = np.float32(s + ci)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (c / s).astype(np.float32)


def model_weights(
    registry: Registry,
    models: Sequence[Workspace],
    bottom_states: Sequence[Any],
    weights: Sequence[float] | None,
    normalize: bool,
) -> ModelWeights:
    n = len(models)
    if weights is not None:
        w = np.array([float(x) for x in weights], dtype=np.float64)
        if len(w) != n:
            raise MergeError(f"{len(w)} weights given for {n} models; give exactly one weight per model")
        bad = [i for i, x in enumerate(w) if not math.isfinite(x)]
        if bad:
            raise MergeError(f"weight {w[bad[0]]} for {models[bad[0]].source} is not a finite number")
        total = float(w.sum())
        if total <= 0:
            raise MergeError(f"the weights sum to {total:g}; their sum must be positive")
        vals = w / total if normalize else w
        return ModelWeights(vals, True, vals.astype(np.float32), tuple(w.tolist()))

    entry = models[0].bottom
    counts: list[float | None] = [registry.call("vwmerge_example_count", entry, state=st) for st in bottom_states]
    if any(c is None for c in counts):
        missing = [m.source for m, c in zip(models, counts, strict=True) if c is None]
        log.warning(
            "model records no example count (predict-only?); weighting the models equally "
            "(VW would merge them into an all-zero model)",
            models=missing,
        )
        eq = np.full(n, 1.0 / n)
        return ModelWeights(eq, False, eq.astype(np.float32), tuple(counts), equal_fallback=True)
    known = [float(c) for c in counts if c is not None]
    if not all(math.isfinite(c) for c in known) or sum(known) <= 0:
        log.warning(
            "the models' example counts sum to zero (untrained, or counters were reset on load); "
            "weighting the models equally (VW would produce NaN weights)",
            counts=known,
        )
        eq = np.full(n, 1.0 / n)
        return ModelWeights(eq, False, eq.astype(np.float32), tuple(counts), equal_fallback=True)
    vw = _vw_count_weights(known)
    vals = np.array(known) / sum(known)
    if not normalize:
        vals = np.array(known)
    return ModelWeights(vals, False, vw, tuple(counts))


def _output_header(models: Sequence[Workspace], base: Workspace | None, options: Options) -> Header:
    first = models[0].header
    everyone = [m.header for m in models] + ([base.header] if base is not None else [])
    ids = {h.id_raw for h in everyone}
    if len(ids) > 1:
        log.warning(
            "models have different --id values; the merged model gets none",
            ids=sorted(h.id for h in everyone),
        )
    id_raw = first.id_raw if len(ids) == 1 else b"\0"
    options_raw = first.options_raw
    # From the header itself: ``options`` is already de-duplicated and may hold load-time extras.
    stored = Options.parse(first.options_text)
    # The RNG state VW appends as --random_seed is state, not configuration: take the largest of
    # the inputs' so the result does not depend on input order (k copies keep their state).
    seeds = {int(s) for m in models if (s := Options.parse(m.header.options_text).random_seed()) is not None}
    top = str(max(seeds)) if seeds else None
    if stored.random_seed() != top or stored.has_duplicates():
        items = tuple((n, v) for n, v in stored.deduplicated().items if n != "random_seed")
        options_raw = Options(items + ((("random_seed", top),) if top else ())).to_text().encode() + b"\0"
    return attrs.evolve(
        first,
        id_raw=id_raw,
        min_label=float(np.float32(min(h.min_label for h in everyone))),
        max_label=float(np.float32(max(h.max_label for h in everyone))),
        options_raw=options_raw,
    )


@attrs.frozen(eq=False)
class PreparedMerge:
    """A merge with every decision taken and nothing merged yet.

    Split from :func:`merge` so that the streaming merger (:mod:`vwmerge.engine.streaming`) makes the
    same checks and decisions from models loaded without their weight rows, then streams only
    the bottom learner's rows. ``states[k]`` are reduction k's input states in input order
    (deltas from the base where the reduction is additive, ``additive[k]``).
    """

    models: tuple[Workspace, ...]
    base: Workspace | None
    header: Header
    stack: tuple[StackEntry, ...]
    states: tuple[tuple[Any, ...], ...]
    additive: tuple[bool, ...]
    context: MergeContext


#: Merges reduction ``k`` (``entry``) given the base's state of it (None without a base or when
#: the core merges deltas); returns the merged state, or None to decline.
EntryMerger = Callable[[int, StackEntry, Any], Any]


def prepare_merge(
    models: Sequence[Workspace],
    *,
    weights: Sequence[float] | None = None,
    normalize: bool = True,
    base: Workspace | None = None,
    registry: Registry | None = None,
) -> PreparedMerge:
    """Check the models, build the output header, take deltas (base mode) and decide the weights."""
    models = list(models)
    if base is None and len(models) < 2:
        raise MergeError("at least two models are needed to merge (or one model and a base model)")
    if not models:
        raise MergeError("no models to merge")
    reg = registry or models[0].registry
    first = models[0]
    for m in models[1:] + ([base] if base is not None else []):
        _check_compatible(first, m)
    options = first.options.deduplicated() if first.options.has_duplicates() else first.options
    header = _output_header(models, base, options)
    stack = first.stack
    out_info = ModelInfo(header, implied_options(header, Options.parse(header.options_text)), stack, "<merged>")

    # Base mode: turn every additive state into a delta first (the weights come from deltas).
    additive = tuple(
        reg.implements("vwmerge_subtract", entry) and reg.implements("vwmerge_add", entry) for entry in stack
    )
    per_entry: list[list[Any]] = [[m.states[k] for m in models] for k in range(len(stack))]
    provisional = MergeContext(
        tuple(m.info for m in models), base.info if base else None, out_info,
        ModelWeights(np.zeros(0), False, np.zeros(0, np.float32), ()), reg,
    )  # fmt: skip
    if base is not None:
        flags = list(additive)
        for k, entry in enumerate(stack):
            if entry.section and additive[k]:
                deltas = [
                    reg.call("vwmerge_subtract", entry, state=s, base=base.states[k], context=provisional)
                    for s in per_entry[k]
                ]
                # A plugin with several reductions may subtract only some of them: None declines.
                if any(d is None for d in deltas):
                    flags[k] = False
                else:
                    per_entry[k] = deltas
        additive = tuple(flags)
    mw = model_weights(reg, models, per_entry[-1], weights, normalize)
    ctx = attrs.evolve(provisional, weights=mw)
    states = tuple(tuple(states) for states in per_entry)
    return PreparedMerge(tuple(models), base, header, stack, states, additive, ctx)


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


def finish_merge(
    prep: PreparedMerge, merge_entry: EntryMerger | None = None, *, base: Workspace | None = None
) -> Workspace:
    """Merge reduction by reduction, top of stack first, as VW does, and assemble the output.

    ``merge_entry`` merges one reduction (default: the owning plugin's ``vwmerge_merge`` over
    ``prep.states[k]``). ``base`` replaces ``prep.base`` where a base state is kept or added
    back (the streaming merger prepares from a base without rows, then adds the full one).
    """
    reg = prep.context.registry
    ctx = prep.context
    base = base if base is not None else prep.base
    first = prep.models[0]
    merge_entry = merge_entry or functools.partial(merge_states, prep)
    out_states: list[Any] = []
    for k, entry in enumerate(prep.stack):
        if not entry.section:
            out_states.append(None)
            continue
        base_state = base.states[k] if base is not None else None
        delta_mode = base is not None and prep.additive[k]
        merged = merge_entry(k, entry, None if delta_mode else base_state)
        if merged is None:
            if entry.bottom:
                raise PluginError(
                    f"base learner '{entry.name}' has no merge (plugin '{entry.plugin}'); the weights cannot be merged"
                )
            keep_from = base if base is not None else first
            log.warning(
                "reduction has state but no merge; keeping one model's state unchanged",
                reduction=entry.name, plugin=entry.plugin, kept_from=keep_from.source,
            )  # fmt: skip
            out_states.append(keep_from.states[k])
            continue
        if delta_mode:
            merged = reg.call("vwmerge_add", entry, base=base_state, delta=merged, context=ctx)
        out_states.append(merged)
    return Workspace(prep.header, ctx.output.options, prep.stack, tuple(out_states), "<merged>", reg)


def merge(
    models: Sequence[Workspace],
    *,
    weights: Sequence[float] | None = None,
    normalize: bool = True,
    base: Workspace | None = None,
    registry: Registry | None = None,
) -> Workspace:
    """Merge models into one workspace.

    Default weighting follows VW (example counts, and per-parameter adaptive weighting where the
    model stores adaptive sums). ``weights`` gives explicit per-model weights: every parameter is
    then exactly Σ wᵢθᵢ (normalized to sum 1 unless ``normalize=False``). With ``base``, each
    model's difference from the base is merged and added back (VW's base-model mode).
    """
    prep = prepare_merge(models, weights=weights, normalize=normalize, base=base, registry=registry)
    return finish_merge(prep)
