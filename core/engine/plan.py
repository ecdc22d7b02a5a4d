"""The merge plan: every decision of a merge, taken once, from headers and reduction sections.

:func:`decide` checks that the models can be merged, builds the output header, takes the
base-mode deltas, decides each model's weight and, per reduction, what the merge does with it:

``merge``
    its plugin merges the models' states (``vwmerge_merge``, or the partial-result hooks for a
    base learner);
``merge deltas``
    base mode: each model's difference from the base is merged, then added to the base;
``keep``
    the reduction has state but its plugin has no merge hooks: one model's state is kept (the
    base's in base mode, else the first model's), with a warning;
``none``
    the reduction writes no section: nothing to merge;
``error``
    a base learner without merge hooks: the merge cannot run.

Everything that executes a merge (:func:`vwmerge.merge` in memory, the streaming
:func:`vwmerge.engine.streaming.merge_files`, the dry run) follows this plan; nothing re-derives
it. What the plan cannot know ahead is what a plugin's merge hook does when it runs: it may
decline (return None) or keep one input's state; that is the execution's :class:`Outcome`, and
the plan says only "merge" for such a reduction. ``check``/``--dry-run`` rehearse the execution
on the models without their weight rows, so they show the outcome too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from ..contract.context import MergeContext, ModelWeights
from ..contract.registry import Registry
from ..contract.stack import ModelInfo, StackEntry
from ..errors import IncompatibleModelsError, MergeError, PluginError, VWMergeError
from ..format.header import READER_CHANGES, Header
from ..format.options import Options
from ..model.workspace import Workspace, implied_options
from .partial import supports_partial

#: What a plan can do with one reduction (see the module docstring).
ACTIONS = ("merge", "merge deltas", "keep", "none", "error")


@attrs.frozen
class PlanWarning:
    """A warning the merge gives: its message and the fields logged with it."""

    event: str
    fields: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"level": "warning", "event": self.event, **self.fields}


@attrs.frozen
class ModelPlan:
    """One input (or the base) as the plan sees it."""

    path: str
    size: int | None
    version: str
    bits: int
    examples: float | None = None  #: what the model records (its base learner's example count)
    weight: float | None = None  #: the weight the merge gives it (None for the base)


@attrs.frozen
class Step:
    """What the merge does with one reduction, and why."""

    reduction: str
    plugin: str
    distribution: str
    version: str
    section: bool
    bottom: bool
    action: str  #: one of :data:`ACTIONS`
    why: str
    #: ``keep``: the model whose state is kept.
    kept_from: str | None = None
    #: The base learner in a streaming merge: True streams it through the partial-result hooks
    #: (one input mapped at a time); False maps every input at once. None elsewhere.
    streamed: bool | None = None


@attrs.frozen
class Outcome:
    """What executing one step did (the plan cannot know whether a plugin declines).

    ``result``: ``merged``, ``merged deltas``, ``kept`` or ``none``. ``kept`` comes with
    ``kept_from`` and ``why``: the plan said keep (no merge hooks), the plugin declined (its
    merge hook returned None), or the plugin returned one input's state unchanged.
    ``warnings``: what the plugin said through ``context.warn`` while merging it.
    """

    reduction: str
    result: str
    kept_from: str | None = None
    why: str | None = None
    warnings: tuple[dict[str, Any], ...] = ()


@attrs.frozen(eq=False)
class MergePlan:
    """Every decision of one merge. ``error`` is set when the merge cannot run."""

    models: tuple[ModelPlan, ...]
    base: ModelPlan | None
    steps: tuple[Step, ...]
    weighting: str | None
    warnings: tuple[PlanWarning, ...]
    error: VWMergeError | None
    normalize: bool = True
    streaming: bool = False
    output: str | None = None
    #: Base mode's server step size λ (``--scale``), None when not given.
    scale: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, outcomes: Sequence[Outcome] = ()) -> dict[str, Any]:
        """A JSON-able document; ``outcomes`` (from executing the plan) join their steps."""
        stack, warnings = self.steps_and_warnings(outcomes)
        return {
            "ok": self.ok,
            "error": str(self.error) if self.error else None,
            "output": self.output,
            "normalize": self.normalize,
            "scale": self.scale,
            "weighting": self.weighting,
            "models": [attrs.asdict(m) for m in self.models],
            "base": attrs.asdict(self.base) if self.base else None,
            "stack": stack,
            "warnings": warnings,
        }

    def steps_and_warnings(self, outcomes: Sequence[Outcome] = ()) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """:meth:`to_dict`'s ``stack`` and ``warnings`` (without a record per model)."""
        by_name = {o.reduction: o for o in outcomes}
        stack = []
        for s in self.steps:
            d = attrs.asdict(s)
            if s.reduction in by_name:
                d["outcome"] = attrs.asdict(by_name[s.reduction], filter=lambda a, _: a.name != "reduction")
            stack.append(d)
        warnings = [w.to_dict() for w in self.warnings]
        for o in outcomes:
            warnings += [{"level": "warning", **w} for w in o.warnings if {"level": "warning", **w} not in warnings]
        return stack, warnings


# --------------------------------------------------------------------------------------------
# The decisions
@attrs.frozen
class CountOnly:
    """A base learner's state as a streaming merge's scan keeps it when the learner streams:
    only its example count, which is all the plan needs of it (its rows and the rest are read
    when the merge comes to them), and in base mode its delta from the base's (``vwmerge_subtract``
    taken by the scan), reduced the same way, or None where the plugin declined. A fleet of
    small models then costs the plan a few bytes each, not each one's parsed state
    (docs/scale.md)."""

    count: float | None
    base_mode: bool = False
    delta: CountOnly | None = None

    @classmethod
    def of(cls, registry: Registry, model: Workspace, base: Workspace | None, scale: float | None) -> CountOnly | None:
        """``model``'s base learner's state reduced to its count (and its delta's); None when
        the subtraction fails: the plan then subtracts, and reports the problem, as it would."""
        entry, state = model.bottom, model.states[-1]
        count = example_count(registry, entry, state)
        if base is None:
            return cls(count)
        if not (registry.implements("vwmerge_subtract", entry) and registry.implements("vwmerge_add", entry)):
            return cls(count, True)
        weights = ModelWeights(np.zeros(0), False, np.zeros(0, np.float32), ())
        context = MergeContext(
            (model.info,), base.info, model.info, weights, registry, scale=1.0 if scale is None else float(scale)
        )  # (the one model: a streaming scan subtracts each model as it reads it)
        try:
            delta = registry.call("vwmerge_subtract", entry, state=state, base=base.states[-1], context=context)
        except VWMergeError:
            return None
        return cls(count, True, cls(example_count(registry, entry, delta)) if delta is not None else None)


def example_count(registry: Registry, entry: StackEntry, state: Any) -> float | None:
    """The base learner's weighted example count (``vwmerge_example_count``), or a
    :class:`CountOnly`'s."""
    if isinstance(state, CountOnly):
        return state.count
    count: float | None = registry.call("vwmerge_example_count", entry, state=state)
    return count


def check_compatible(first: Workspace, other: Workspace) -> None:
    def bad(what: str) -> IncompatibleModelsError:
        return IncompatibleModelsError(f"cannot be merged with {first.source}: {what}", source=other.source)

    if other.header is first.header and other.options is first.options and other.stack is first.stack:
        return  # read from the same header bytes (shared, see KnownHeads): nothing can differ
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


def check_scale(scale: float | None, has_base: bool) -> None:
    """``--scale λ``: a finite number > 0, and only in base mode (it scales the merged delta)."""
    if scale is None:
        return
    if not math.isfinite(scale) or scale <= 0:
        raise MergeError(
            f"{scale:g} is not a finite number > 0 (the step size applied to the merged delta)", source="--scale"
        )
    if not has_base:
        raise MergeError("needs --base: it scales the merged difference from the base model", source="--scale")


def check_premise(
    registry: Registry, models: Sequence[Workspace], base: Workspace, force: bool
) -> tuple[PlanWarning, ...]:
    """Base mode's premise: every model continued training from ``base``.

    A model that did saw at least the base's examples: its base learner's weighted example
    count (``vwmerge_example_count``) is at least the base's. A model with fewer cannot have
    continued from it (``--base day3.model day1.model day2.model`` typed by mistake, or trained
    with ``-i BASE`` but without ``--preserve_performance_counters``, which restarts VW's
    counters at 0 so that the deltas' counts are negative): an error naming it, or with
    ``force`` a warning per model. Models that record no count are not checked.
    """
    base_count = example_count(registry, base.bottom, base.states[-1])
    if base_count is None:
        return ()
    warnings = []
    for m in models:
        count = example_count(registry, m.bottom, m.states[-1])
        if count is None or count >= base_count:
            continue
        if not force:
            raise MergeError(
                f"has {count:g} examples, fewer than the base model {base.source} ({base_count:g}): it cannot have "
                "continued training from the base (are the base and the models in the right places? was it "
                "trained with -i BASE --preserve_performance_counters?); --force merges anyway",
                source=m.source,
            )
        warnings.append(
            PlanWarning(
                "model has fewer examples than the base model, so it cannot have continued from it; "
                "merging anyway (--force)",
                {"model": m.source, "examples": count, "base": base.source, "base_examples": base_count},
            )
        )
    return tuple(warnings)


def check_scalable(registry: Registry, stack: Sequence[StackEntry], additive: Sequence[bool]) -> None:
    """``--scale`` must reach the base learner's weights: it must merge a delta it can scale."""
    entry = stack[-1]
    if not additive[-1]:
        raise PluginError(
            f"--scale needs base learner '{entry.name}' to merge deltas from the base (vwmerge_subtract/"
            f"vwmerge_add); plugin '{entry.plugin}' merges it with the base state instead"
        )
    if not registry.implements("vwmerge_scale", entry):
        raise PluginError(
            f"--scale needs base learner '{entry.name}' to scale its merged delta (vwmerge_scale); "
            f"plugin '{entry.plugin}' does not implement it"
        )


def _vw_count_weights(counts: Sequence[float]) -> np.ndarray:
    """VW's p_i = f32(c_i / S), with c_i = f32(count) and S summed in float32 in input order."""
    c = np.array(counts, dtype=np.float64).astype(np.float32)
    s = np.float32(0.0)
    for ci in c:
        s = np.float32(s + ci)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (c / s).astype(np.float32)


def check_weight_values(weights: Sequence[float], names: Sequence[str], option: str) -> None:
    """Every weight finite and their sum positive; the error names ``option`` and the model."""
    for w, name in zip(weights, names, strict=False):
        if not math.isfinite(w):
            raise MergeError(
                f"weight {w} for {name} is not a finite number; give one finite number per model", source=option
            )
    total = math.fsum(weights)
    if not total > 0:
        raise MergeError(
            f"the weights of {', '.join(names)} sum to {total:g}; their sum must be positive", source=option
        )


def model_weights(
    registry: Registry,
    models: Sequence[Workspace],
    bottom_states: Sequence[Any],
    weights: Sequence[float] | None,
    normalize: bool,
) -> tuple[ModelWeights, tuple[PlanWarning, ...]]:
    """Each model's weight, and the warning the choice gives (an equal-weights fallback)."""
    n = len(models)
    if weights is not None:
        w = np.array([float(x) for x in weights], dtype=np.float64)
        if len(w) != n:
            raise MergeError(
                f"{len(w)} weights given for {n} models; give exactly one weight per model", source="weights"
            )
        check_weight_values(w.tolist(), [m.source or f"model {i + 1}" for i, m in enumerate(models)], "weights")
        total = float(w.sum())
        vals = w / total if normalize else w
        return ModelWeights(vals, True, vals.astype(np.float32), tuple(w.tolist())), ()

    entry = models[0].bottom
    counts = [example_count(registry, entry, st) for st in bottom_states]
    eq = np.full(n, 1.0 / n)
    if any(c is None for c in counts):
        missing = [m.source for m, c in zip(models, counts, strict=True) if c is None]
        warning = PlanWarning(
            "model records no example count (predict-only?); weighting the models equally "
            "(VW would merge them into an all-zero model)",
            {"models": missing},
        )
        return ModelWeights(eq, False, eq.astype(np.float32), tuple(counts), equal_fallback=True), (warning,)
    known = [float(c) for c in counts if c is not None]
    if not all(math.isfinite(c) for c in known) or sum(known) <= 0:
        warning = PlanWarning(
            "the models' example counts sum to zero (untrained, or counters were reset on load); "
            "weighting the models equally (VW would produce NaN weights)",
            {"counts": known},
        )
        return ModelWeights(eq, False, eq.astype(np.float32), tuple(counts), equal_fallback=True), (warning,)
    vw = _vw_count_weights(known)
    vals = np.array(known) / sum(known) if normalize else np.array(known)
    return ModelWeights(vals, False, vw, tuple(counts)), ()


def output_header(models: Sequence[Workspace], base: Workspace | None) -> tuple[Header, tuple[PlanWarning, ...]]:
    """The merged model's header, and the warning it gives (the inputs' ids differ)."""
    first = models[0].header
    everyone = [m.header for m in models] + ([base.header] if base is not None else [])
    ids = {h.id_raw for h in everyone}
    warnings: tuple[PlanWarning, ...] = ()
    if len(ids) > 1:
        warnings = (
            PlanWarning(
                "models have different --id values; the merged model gets none", {"ids": sorted(h.id for h in everyone)}
            ),
        )
    id_raw = first.id_raw if len(ids) == 1 else b"\0"
    options_raw = first.options_raw
    # From the header itself: ``options`` is already de-duplicated and may hold load-time extras.
    stored = Options.parse(first.options_text)
    # The RNG state VW appends as --random_seed is state, not configuration: take the largest of
    # the inputs' so the result does not depend on input order (k copies keep their state).
    distinct = {m.header.options_raw: m for m in reversed(models)}  # each text once, from its first model
    parsed = [Options.parse(m.header.options_text, source=m.source) for m in distinct.values()]
    seeds = {o.get_int("random_seed", 0, low=-(2**63), high=2**64 - 1) for o in parsed if o.random_seed() is not None}
    top = str(max(seeds)) if seeds else None
    if stored.random_seed() != top or stored.has_duplicates():
        items = tuple((n, v) for n, v in stored.deduplicated().items if n != "random_seed")
        options_raw = Options(items + ((("random_seed", top),) if top else ())).to_text().encode() + b"\0"
    header = attrs.evolve(
        first,
        id_raw=id_raw,
        min_label=float(np.float32(min(h.min_label for h in everyone))),
        max_label=float(np.float32(max(h.max_label for h in everyone))),
        options_raw=options_raw,
    )
    return header, warnings


def has_merge(registry: Registry, entry: StackEntry, *, base_mode: bool, additive: bool) -> bool:
    """Whether the plugin can merge ``entry``: ``vwmerge_merge``, or for a base learner the partial
    hooks (which see no base state, so not for a non-additive base learner in base mode)."""
    if registry.implements("vwmerge_merge", entry):
        return True
    return entry.bottom and supports_partial(registry, entry) and (not base_mode or additive)


def plan_steps(
    registry: Registry,
    stack: Sequence[StackEntry],
    additive: Sequence[bool],
    *,
    base: str | None,
    first: str,
    streaming: bool,
    scale: float | None = None,
) -> tuple[Step, ...]:
    """The action for each reduction, top of stack first (``scale``: ``--scale``, see the notes)."""
    scaled = base is not None and scale is not None and scale != 1
    out = []
    kept_from = base if base is not None else first
    whose = "the base model's" if base is not None else "the first model's"
    for entry, add in zip(stack, additive, strict=True):
        dist, version = registry.distribution(entry.plugin)
        mergeable = has_merge(registry, entry, base_mode=base is not None, additive=add)
        step = Step(entry.name, entry.plugin, dist, version, entry.section, entry.bottom, "merge", "")
        if not entry.section:
            step = attrs.evolve(step, action="none", why="writes no section to the file; nothing to merge")
        elif entry.bottom and not mergeable:
            why = f"base learner without merge hooks (plugin '{entry.plugin}'): weights cannot merge"
            if registry.implements("vwmerge_merge_partial", entry) and base is not None:
                why = (
                    f"base learner whose plugin ('{entry.plugin}') has only partial-merge hooks, which see no "
                    "base model, and does not subtract it: weights cannot merge in base mode"
                )
            step = attrs.evolve(step, action="error", why=why)
        elif not mergeable:
            why = f"has state but its plugin has no merge hooks: {whose} state is kept (warning)"
            step = attrs.evolve(step, action="keep", why=why, kept_from=kept_from)
        elif base is not None and add:
            why = "each model's difference from the base is merged, then added to the base"
            if scaled:
                why = (
                    f"each model's difference from the base is merged, scaled by --scale {scale:g} (what its "
                    "plugin's vwmerge_scale scales), then added to the base"
                    if registry.implements("vwmerge_scale", entry)
                    else "each model's difference from the base is merged, then added to the base unscaled: its "
                    "plugin has no vwmerge_scale hook (warning)"
                )
            step = attrs.evolve(step, action="merge deltas", why=why)
        else:
            why = "merged by its plugin" + (" (given the base state)" if base is not None else "")
            if scaled:
                why += "; not a delta, so --scale does not apply to it (warning)"
            if entry.bottom:
                why = "weights " + why + ", each model weighted as listed above"
            step = attrs.evolve(step, why=why)
        if entry.bottom and streaming and step.action in ("merge", "merge deltas"):
            streamed = supports_partial(registry, entry) and (base is None or add)
            how = (
                "; streamed, models read one at a time"
                if streamed
                else "; not streamable (no partial-merge hooks, or a base it does not subtract): "
                "every model mapped at once (warning)"
            )
            step = attrs.evolve(step, streamed=streamed, why=step.why + how)
        out.append(step)
    return tuple(out)


def step_warnings(steps: Sequence[Step], registry: Registry | None = None,
                  stack: Sequence[StackEntry] = (), scale: float | None = None) -> tuple[PlanWarning, ...]:  # fmt: skip
    """The warnings the steps give; with ``scale`` ≠ 1, also for each reduction ``--scale`` misses."""
    out = []
    if registry is not None and scale is not None and scale != 1:
        for s, entry in zip(steps, stack, strict=True):
            if s.action == "merge deltas" and not registry.implements("vwmerge_scale", entry):
                out.append(
                    PlanWarning(
                        "reduction's plugin does not scale its delta (no vwmerge_scale hook); adding it to the base "
                        "unscaled",
                        {"reduction": s.reduction, "plugin": s.plugin, "scale": scale},
                    )
                )
            elif s.action == "merge" and s.section:
                out.append(
                    PlanWarning(
                        "reduction is merged with the base state, not as a delta; --scale does not apply to it "
                        "(merged as in plain base mode)",
                        {"reduction": s.reduction, "plugin": s.plugin},
                    )
                )
    for s in steps:
        if s.action == "keep":
            out.append(
                PlanWarning(
                    "reduction has state but no merge; keeping one model's state unchanged",
                    {"reduction": s.reduction, "plugin": s.plugin, "kept_from": s.kept_from},
                )
            )
        if s.streamed is False:
            out.append(
                PlanWarning(
                    "this base learner cannot be streamed (no partial merge hooks, or a base model it does not "
                    "subtract); mapping every model's weights at once",
                    {"reduction": s.reduction, "plugin": s.plugin},
                )
            )
    return tuple(out)


def weighting_text(mw: ModelWeights, *, normalize: bool, base_mode: bool) -> str:
    if mw.explicit:
        text = "explicit (--weights), " + ("normalized to sum 1" if normalize else "used as given")
    elif mw.equal_fallback:
        text = "equal (a model records no example count, or the counts sum to zero)"
    else:
        text = (
            "example counts, VW's rule (a base learner that stores per-parameter adaptive sums, "
            "like gd by default, weights each parameter by them instead)"
        )
    return text + ("; applied to each model's difference from the base" if base_mode else "")


def model_plan(ws: Workspace, size: int | None, weight: float | None = None) -> ModelPlan:
    count = example_count(ws.registry, ws.bottom, ws.states[-1])
    return ModelPlan(ws.source, size, ws.header.version_text, ws.header.bits, count, weight)


def unfinished_plan(
    models: Sequence[Workspace],
    base: Workspace | None,
    registry: Registry | None,
    error: VWMergeError | None,
    *,
    normalize: bool = True,
    streaming: bool = False,
    scale: float | None = None,
) -> MergePlan:
    """What is known of a plan when reading the models stopped at ``error``: the models read so
    far and the first one's stack (each action as its plugin's hooks decide), no weights."""
    steps: tuple[Step, ...] = ()
    if models and registry is not None:
        stack = models[0].stack
        additive = [registry.implements("vwmerge_subtract", e) and registry.implements("vwmerge_add", e) for e in stack]
        steps = plan_steps(
            registry, stack, additive, base=base.source if base is not None else None, first=models[0].source,
            streaming=streaming, scale=scale,
        )  # fmt: skip
    return MergePlan(
        tuple(model_plan(m, None) for m in models), model_plan(base, None) if base is not None else None, steps,
        None, (), error, normalize, streaming, scale=scale,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class Decided:
    """:func:`decide`'s answer: the plan, and what executing it needs (None when it cannot run).

    ``states[k]`` are reduction k's input states in input order (deltas from the base where the
    plan merges deltas).
    """

    plan: MergePlan
    header: Header | None = None
    states: tuple[tuple[Any, ...], ...] = ()
    additive: tuple[bool, ...] = ()
    context: MergeContext | None = None


def decide(
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
) -> Decided:
    """The plan of merging ``models`` (loaded with or without their weight rows).

    A problem with the models or the parameters is the plan's ``error``, not an exception, so a
    dry run can show how far the plan got. ``streaming``: plan for
    :func:`vwmerge.engine.streaming.merge_files` (decides whether the base learner streams).
    ``sizes``: the input files' sizes, for the plan's model list. ``scale``/``force``: base
    mode's step size and premise check (:func:`vwmerge.merge`).
    """
    models = list(models)
    sizes = list(sizes) if sizes is not None else [None] * len(models)
    base_plan = model_plan(base, base_size) if base is not None else None
    if not models:
        return Decided(
            MergePlan((), base_plan, (), None, (), MergeError("no models to merge"), normalize, streaming, scale=scale)
        )
    reg = registry or models[0].registry
    first = models[0]
    stack = first.stack
    static_additive = tuple(
        reg.implements("vwmerge_subtract", entry) and reg.implements("vwmerge_add", entry) for entry in stack
    )

    def steps(additive: Sequence[bool]) -> tuple[Step, ...]:
        return plan_steps(
            reg, stack, additive, base=base.source if base is not None else None, first=first.source,
            streaming=streaming, scale=scale,
        )  # fmt: skip

    warnings: list[PlanWarning] = []
    try:
        check_scale(scale, base is not None)
        if base is None and len(models) < 2:
            raise MergeError("at least two models are needed to merge (or one model and a base model)")
        for m in models[1:] + ([base] if base is not None else []):
            check_compatible(first, m)
        if base is not None:
            warnings += check_premise(reg, models, base, force)
        header, header_warnings = output_header(models, base)
        warnings += header_warnings
        out_info = ModelInfo(header, implied_options(header, Options.parse(header.options_text)), stack, "<merged>")
        per_entry: list[list[Any]] = [[m.states[k] for m in models] for k in range(len(stack))]
        provisional = MergeContext(
            tuple(m.info for m in models), base.info if base else None, out_info,
            ModelWeights(np.zeros(0), False, np.zeros(0, np.float32), ()), reg,
            scale=1.0 if scale is None else float(scale),
        )  # fmt: skip
        additive = list(static_additive)
        if base is not None:  # base mode: every additive state becomes a delta first (weights come from deltas)
            for k, entry in enumerate(stack):
                if entry.section and additive[k]:
                    deltas = [
                        s.delta
                        if isinstance(s, CountOnly)
                        else reg.call("vwmerge_subtract", entry, state=s, base=base.states[k], context=provisional)
                        for s in per_entry[k]
                    ]
                    # A plugin with several reductions may subtract only some of them: None declines.
                    if any(d is None for d in deltas):
                        additive[k] = False
                    else:
                        per_entry[k] = deltas
            if scale is not None and scale != 1:
                check_scalable(reg, stack, additive)
        mw, weight_warnings = model_weights(reg, models, per_entry[-1], weights, normalize)
        warnings += weight_warnings
    except VWMergeError as e:
        plan = MergePlan(
            tuple(model_plan(m, s) for m, s in zip(models, sizes, strict=True)), base_plan, steps(static_additive),
            None, tuple(warnings), e, normalize, streaming, scale=scale,
        )  # fmt: skip
        return Decided(plan)
    planned = steps(additive)
    warnings += step_warnings(planned, reg, stack, scale)
    error: VWMergeError | None = None
    for s in planned:
        if s.action == "error":
            error = PluginError(
                f"base learner '{s.reduction}' has no merge (plugin '{s.plugin}'); the weights cannot be merged"
            )
    plan = MergePlan(
        tuple(model_plan(m, s, float(mw.values[i])) for i, (m, s) in enumerate(zip(models, sizes, strict=True))),
        base_plan, planned, weighting_text(mw, normalize=normalize, base_mode=base is not None), tuple(warnings),
        error, normalize, streaming, scale=scale,
    )  # fmt: skip
    context = attrs.evolve(provisional, weights=mw)
    return Decided(plan, header, tuple(tuple(s) for s in per_entry), tuple(additive), context)
