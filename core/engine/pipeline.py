"""What the ``merge``, ``check`` and ``inspect`` commands do, without click.

A command builds a :class:`MergeRequest` and hands it to one function (:func:`run_merge` or
:func:`plan_merge`), so options that change *how* a merge runs (parallel loading, executors,
progress) are a field on the request and a branch in one place, not a new code path per command.
Everything here raises :class:`vwmerge.VWMergeError` for problems a user can fix; the CLI turns
those into one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog

from ..contract.context import ModelWeights
from ..contract.registry import Registry, default_registry
from ..errors import MergeError, VWMergeError
from ..format.header import Header
from ..model import files
from ..model.inputs import expand_inputs, expand_one, shown
from ..model.workspace import Workspace, load, scan
from .merging import finish_merge, prepare_merge
from .partial import supports_partial
from .report import MergeReport
from .streaming import merge_files


def _inputs_converter(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _weights_converter(value: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in value)


@attrs.frozen
class MergeRequest:
    """One merge as the user asked for it: paths and settings, nothing loaded yet.

    ``inputs`` and ``base`` may be glob patterns and ``models_from`` lists of models (paths,
    URLs or ``-``); :meth:`expanded` turns them into the files (:mod:`vwmerge.model.inputs`).
    """

    inputs: tuple[str, ...] = attrs.field(converter=_inputs_converter)
    output: str | None = None
    base: str | None = None
    weights: tuple[float, ...] | None = attrs.field(default=None, converter=_weights_converter)
    normalize: bool = True
    vw_options: str | None = None
    #: Where the merge runs (see vwmerge.engine.streaming.merge_files): worker processes, "local" or
    #: "dask", the dask scheduler; progress None = a bar when stderr is a terminal.
    jobs: int = 1
    executor: str | None = None
    scheduler: str | None = None
    progress: bool | None = None
    #: Lists of models (``--models-from``), read after ``inputs``; empty once expanded.
    models_from: tuple[str, ...] = attrs.field(default=(), converter=_inputs_converter)

    @property
    def sources(self) -> list[str]:
        return [*self.inputs, *([self.base] if self.base else [])]

    def expanded(self) -> MergeRequest:
        """This request with every pattern and list replaced by the files it stands for.

        The inputs are the MODEL entries, then each list's (``models_from``), each pattern
        replaced by its sorted matches; the base must stand for exactly one file. The output is
        never expanded: it is a name. Reads each list once (standard input included).
        """
        inputs = expand_inputs(self.inputs, models_from=self.models_from)
        base = expand_one(self.base) if self.base is not None else None
        return attrs.evolve(self, inputs=inputs, base=base, models_from=())


def parse_weights(values: Sequence[str]) -> tuple[float, ...] | None:
    """``--weights 3 --weights 1`` and ``--weights 3,1`` (or ``"3 1"``) mean the same.

    Both forms are accepted because VW users write lists either way; each token must be a
    number (``nan``/``inf`` parse, and the merge refuses them with the model they belong to).
    """
    if not values:
        return None
    tokens = [t for v in values for t in re.split(r"[,\s]+", v.strip()) if t]
    if not tokens:
        raise MergeError("no weight given; give one number per model, e.g. --weights 3,1", source="--weights")
    out = []
    for tok in tokens:
        try:
            out.append(float(tok))
        except ValueError:
            raise MergeError(
                f"{tok!r} is not a number; give one number per model, e.g. --weights 3,1", source="--weights"
            ) from None
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Checks that need no model loaded: they fail fast, before any large file is read.
def _same_file(a: str, b: str) -> bool:
    """Same resolved path, or the same inode (a hard link or a bind mount of the input)."""
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
    except (OSError, RuntimeError):
        pass
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(output: str, request: MergeRequest) -> None:
    """Refuse an output that would overwrite an input, or that cannot be written at all."""
    for src in request.inputs:
        if _same_file(output, src):
            raise MergeError(
                f"is also input model {src}; refusing to overwrite an input (choose another -o)", source=output
            )
    if request.base and _same_file(output, request.base):
        raise MergeError("is also the base model; refusing to overwrite an input (choose another -o)", source=output)
    local = files.local_path(output)
    if local is None:
        return  # a remote store (an fsspec URL) says whether it can be written when it is written
    target = Path(local)
    if target.is_dir():
        raise MergeError("is a directory; -o takes the merged model's file name", source=output)
    parent = target.parent
    if not parent.exists():
        raise MergeError(f"cannot write the merged model: directory {parent} does not exist", source=output)
    if not parent.is_dir():
        raise MergeError(f"cannot write the merged model: {parent} is not a directory", source=output)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MergeError(f"cannot write the merged model: directory {parent} is not writable", source=output)


def check_request(request: MergeRequest) -> None:
    if not request.inputs:
        raise MergeError("no models to merge")
    if request.base is None and len(request.inputs) < 2:
        raise MergeError(
            "only one model given; merging needs at least two models (or one model and --base)",
            source=request.inputs[0],
        )
    if request.weights is not None and len(request.weights) != len(request.inputs):
        n, m = len(request.weights), len(request.inputs)
        raise MergeError(
            f"{n} weight{'s' * (n != 1)} given for {m} model{'s' * (m != 1)} (after expanding patterns and "
            f"--models-from lists: {shown(request.inputs)}); give exactly one weight per model, in the same order",
            source="--weights",
        )
    if request.output is not None:
        check_output(request.output, request)


# --------------------------------------------------------------------------------------------
# A real merge.
def run_merge(request: MergeRequest, *, registry: Registry | None = None) -> MergeReport:
    """Merge streaming (:func:`vwmerge.engine.streaming.merge_files`), save atomically.

    Nothing is written unless every step before saving worked.
    """
    request = request.expanded()
    if request.output is None:
        raise MergeError("no output file given (-o/--output)")
    check_request(request)
    return merge_files(
        request.inputs, request.output, weights=request.weights, normalize=request.normalize,
        base=request.base, vw_options=request.vw_options, jobs=request.jobs, executor=request.executor,
        scheduler=request.scheduler, progress=request.progress, registry=registry,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# A dry run: the plan of a merge, from headers and reduction sections only.
@attrs.frozen
class ModelPlan:
    path: str
    size: int
    version: str
    bits: int
    examples: float | None = None  #: what the model records (its base learner's example count)
    weight: float | None = None  #: the weight the merge gives it


@attrs.frozen
class ReductionPlan:
    """What the merge will do with one reduction: merge, merge deltas, keep (warns), none, error."""

    reduction: str
    plugin: str
    distribution: str
    version: str
    section: bool
    bottom: bool
    action: str
    note: str


@attrs.frozen(eq=False)
class MergePlan:
    request: MergeRequest
    models: tuple[ModelPlan, ...]
    base: ModelPlan | None
    stack: tuple[ReductionPlan, ...]
    weighting: str | None
    warnings: tuple[dict[str, Any], ...]
    error: VWMergeError | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": str(self.error) if self.error else None,
            "output": self.request.output,
            "normalize": self.request.normalize,
            "weighting": self.weighting,
            "models": [attrs.asdict(m) for m in self.models],
            "base": attrs.asdict(self.base) if self.base else None,
            "stack": [attrs.asdict(r) for r in self.stack],
            "warnings": list(self.warnings),
        }


def _model_plan(ws: Workspace, path: str) -> ModelPlan:
    count = ws.registry.call("vwmerge_example_count", ws.bottom, state=ws.states[-1])
    return ModelPlan(path, files.size(path), ws.header.version_text, ws.header.bits, count)


def _weighting_text(mw: ModelWeights, request: MergeRequest) -> str:
    if mw.explicit:
        text = "explicit (--weights), " + ("normalized to sum 1" if request.normalize else "used as given")
    elif mw.equal_fallback:
        text = "equal (a model records no example count, or the counts sum to zero)"
    else:
        text = (
            "example counts, VW's rule (a base learner that stores per-parameter adaptive sums, "
            "like gd by default, weights each parameter by them instead)"
        )
    return text + ("; applied to each model's difference from the base" if request.base else "")


def _stack_plan(
    reg: Registry, first: Workspace, request: MergeRequest, declined: set[str]
) -> tuple[ReductionPlan, ...]:
    out = []
    kept_from = "the base model's" if request.base else "the first model's"
    for entry in first.stack:
        dist, version = reg.distribution(entry.plugin)
        has_merge = reg.implements("vwmerge_merge", entry) or (entry.bottom and supports_partial(reg, entry))
        additive = reg.implements("vwmerge_subtract", entry) and reg.implements("vwmerge_add", entry)
        if not entry.section:
            action, note = "none", "writes no section to the file; nothing to merge"
        elif entry.bottom and not has_merge:
            action, note = "error", f"base learner without merge hooks (plugin '{entry.plugin}'): weights cannot merge"
        elif not has_merge:
            action, note = "keep", f"has state but its plugin has no merge hooks: {kept_from} state is kept (warning)"
        elif entry.name in declined:
            action, note = "keep", f"its plugin declined to merge these models: {kept_from} state is kept (warning)"
        elif request.base and additive:
            action, note = "merge deltas", "each model's difference from the base is merged, then added to the base"
        else:
            action, note = "merge", "merged by its plugin" + (" (given the base state)" if request.base else "")
            if entry.bottom:
                note = "weights " + note + ", each model weighted as listed above"
        out.append(ReductionPlan(entry.name, entry.plugin, dist, version, entry.section, entry.bottom, action, note))
    return tuple(out)


#: structlog method names that are not logging level names.
_METHOD_LEVELS = {"warn": logging.WARNING, "exception": logging.ERROR, "fatal": logging.CRITICAL}


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[dict[str, Any]]]:
    """Also keep a copy of every warning or error event while the block runs.

    Events still reach stderr as usual; the copies let the dry run list the warnings a merge
    would give. Like ``structlog.testing``, it edits the configured processor list in place, so
    it is meant for one thread at a time.
    """
    events: list[dict[str, Any]] = []

    def collector(_: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        level = _METHOD_LEVELS.get(method_name) or logging.getLevelName(method_name.upper())
        if isinstance(level, int) and level >= logging.WARNING:
            events.append({"level": logging.getLevelName(level).lower(), **event_dict})
        return event_dict

    processors = structlog.get_config()["processors"]
    processors.insert(0, collector)
    try:
        yield events
    finally:
        processors.remove(collector)


def _plain(event: dict[str, Any]) -> dict[str, Any]:
    """A log event without the renderer's keys, values made printable and JSON-safe."""
    skip = {"timestamp"}
    plain = (str, int, float, bool, type(None))
    return {k: (v if isinstance(v, plain) else repr(v)) for k, v in event.items() if k not in skip}


def plan_merge(request: MergeRequest, *, registry: Registry | None = None) -> MergePlan:
    """Everything a merge would do and decide, reading no weight rows (``load_weights=False``).

    The merge itself runs on the weightless models, so every check a plugin makes on its
    sections and counters (save_resume vs predict-only, per-model state counts, ...) gives the
    same verdict, and the warnings it logs are the ones a real merge would log.
    """
    models: list[Workspace] = []
    base: Workspace | None = None
    mw: ModelWeights | None = None
    error: VWMergeError | None = None
    reg: Registry | None = registry
    with collect_warnings() as events:
        try:
            request = request.expanded()
            check_request(request)
            reg = reg or default_registry()
            for p in request.inputs:  # paths or fsspec URLs, headers and sections only
                models.append(scan(p, vw_options=request.vw_options, registry=reg)[0])
            base = scan(request.base, vw_options=request.vw_options, registry=reg)[0] if request.base else None
            prep = prepare_merge(models, weights=request.weights, normalize=request.normalize, base=base, registry=reg)
            mw = prep.context.weights
            finish_merge(prep)
        except VWMergeError as e:
            error = e
    warnings: list[dict[str, Any]] = []
    for ev in map(_plain, events):
        if ev not in warnings:
            warnings.append(ev)
    declined = {str(ev["reduction"]) for ev in warnings if "kept_from" in ev and "reduction" in ev}
    model_plans = [_model_plan(m, p) for m, p in zip(models, request.inputs, strict=False)]
    if mw is not None:
        model_plans = [attrs.evolve(mp, weight=float(mw.values[i])) for i, mp in enumerate(model_plans)]
    stack = _stack_plan(reg, models[0], request, declined) if models and reg is not None else ()
    return MergePlan(
        request,
        tuple(model_plans),
        _model_plan(base, request.base) if base is not None and request.base else None,
        stack,
        _weighting_text(mw, request) if mw is not None else None,
        tuple(warnings),
        error,
    )


# --------------------------------------------------------------------------------------------
def _decode3(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _old_fields(h: Header) -> dict[str, Any]:
    """The header fields only files before 8.0.3 have (present keys only)."""
    out: dict[str, Any] = {}
    if h.pairs is not None:
        out["pairs"] = [_decode3(p) for p in h.pairs]
    if h.triples is not None:
        out["triples"] = [_decode3(t) for t in h.triples]
    if h.interactions is not None:
        out["interactions"] = [i.decode("utf-8", "replace") for i in h.interactions]
    if h.rank is not None:
        out["rank"] = h.rank
    return out


def inspect_model(path: str, *, vw_options: str | None = None, registry: Registry | None = None) -> dict[str, Any]:
    """One JSON-able document describing a model file: header, stack with states, weights."""
    ws = load(path, vw_options=vw_options, registry=registry)
    h = ws.header
    has_checksum = h.has_checksum
    stack = ws.describe()
    weights = None
    counters = None
    for item in stack:
        state = item.get("state") or {}
        if weights is None and isinstance(state.get("weights"), dict) and "rows" in state["weights"]:
            weights = {"reduction": item["reduction"], **state["weights"]}
        if counters is None and isinstance(state.get("online"), dict):
            counters = {"reduction": item["reduction"], **state["online"]}
    for item in stack:
        item["version"] = ws.registry.distribution(item["plugin"])[1]
    return {
        "file": path,
        "size": os.path.getsize(path),
        "header": {
            "version": h.version_text,
            "id": h.id,
            "bits": h.bits,
            "min_label": h.min_label,
            "max_label": h.max_label,
            "lda": h.lda,
            "ngrams": [_decode3(g) for g in h.ngrams],
            "skips": [_decode3(s) for s in h.skips],
            "options": h.options_text.strip(),
            **_old_fields(h),
            "checksum": {
                "present": has_checksum,
                "ok": True if has_checksum else None,
                "value": h.checksum() if has_checksum else None,
            },
        },
        "options": [[n, v] for n, v in ws.options],
        "stack": stack,
        "counters": counters,
        "weights": weights,
    }
