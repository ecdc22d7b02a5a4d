"""What the ``merge``, ``check`` and ``inspect`` commands do, without click.

A command builds a :class:`MergeRequest` and hands it to one function (:func:`run_merge` or
:func:`plan_merge`), so options that change *how* a merge runs (parallel loading, executors,
progress) are a field on the request and a branch in one place, not a new code path per command.
Everything here raises :class:`vwmerge.VWMergeError` for problems a user can fix; the CLI turns
those into one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..contract.registry import Registry, default_registry
from ..errors import MergeError, VWMergeError
from ..format.header import Header
from ..model import files
from ..model.inputs import expand_inputs, expand_one, shown
from ..model.workspace import Workspace, load, scan
from .merging import execute, log_warnings, prepare
from .plan import MergePlan, Outcome, check_scale, check_weight_values, unfinished_plan
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
    #: Take weight rows holding NaN/±inf as they are instead of refusing the file.
    allow_nonfinite: bool = False
    #: Where the merge runs (see vwmerge.engine.streaming.merge_files): worker processes, "local" or
    #: "dask", the dask scheduler; progress None = a bar when stderr is a terminal.
    jobs: int = 1
    executor: str | None = None
    scheduler: str | None = None
    progress: bool | None = None
    #: Lists of models (``--models-from``), read after ``inputs``; empty once expanded.
    models_from: tuple[str, ...] = attrs.field(default=(), converter=_inputs_converter)
    #: Record the provenance report (SHA-256 of every file as it is read and written).
    provenance: bool = False
    #: Base mode: the server step size λ applied to the merged delta (``--scale``; None = 1), and
    #: whether a model with fewer examples than the base only warns (``--force``).
    scale: float | None = None
    force: bool = False

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


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of an existing file, else None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


class _SameFileAs:
    """``same(path)``: whether ``path`` is the file ``target`` (see :func:`_same_file`), for
    comparing one target with thousands of inputs: one ``stat`` each, not a path resolution.
    An existing file is never a target that does not exist yet; two names neither of which
    exists are compared by :func:`_same_file`."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.identity = _identity(target)

    def __call__(self, path: str) -> bool:
        if path == self.target:
            return True
        found = _identity(path)
        if self.identity is not None:
            return found == self.identity
        return found is None and _same_file(self.target, path)


def check_output(output: str, request: MergeRequest) -> None:
    """Refuse an output that would overwrite an input, or that cannot be written at all."""
    same = _SameFileAs(output)
    for src in request.inputs:
        if same(src):
            raise MergeError(
                f"is also input model {src}; refusing to overwrite an input (choose another -o)", source=output
            )
    if request.base and same(request.base):
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
    check_scale(request.scale, request.base is not None)
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
    if request.weights is not None:
        check_weight_values(request.weights, request.inputs, "--weights")
    if request.output is not None:
        check_output(request.output, request)


def check_report_path(report: str, request: MergeRequest) -> None:
    """Refuse a report path that is a model of the merge, or that cannot be written."""
    same = _SameFileAs(report)
    for role, path in (("the output", request.output), *(("an input", p) for p in request.sources)):
        if path is not None and same(path):
            raise MergeError(f"is also {role}; the report needs a file of its own", source=report)
    target = Path(report)
    if target.is_dir():
        raise MergeError("is a directory; --report takes the report's file name", source=report)
    if not target.parent.is_dir():
        raise MergeError(f"cannot write the report: directory {target.parent} does not exist", source=report)
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise MergeError(f"cannot write the report: directory {target.parent} is not writable", source=report)


def write_text(path: str, text: str | Iterable[str]) -> None:
    """Write ``text`` (or its pieces, in order) to ``path`` through a temporary file renamed
    over it (never half a file)."""
    with files.open_output(path) as f:
        for piece in [text] if isinstance(text, str) else text:
            f.write(piece.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# A real merge.
def run_merge(
    request: MergeRequest, *, registry: Registry | None = None, argv: Sequence[str] | None = None
) -> MergeReport:
    """Merge streaming (:func:`vwmerge.engine.streaming.merge_files`), save atomically.

    Nothing is written unless every step before saving worked. With ``request.provenance`` the
    report's :meth:`~vwmerge.engine.report.MergeReport.to_provenance` is the document
    ``vwmerge merge --report`` writes (``argv``: the command line it records).
    """
    request = request.expanded()
    if request.output is None:
        raise MergeError("no output file given (-o/--output)")
    check_request(request)
    return merge_files(
        request.inputs, request.output, weights=request.weights, normalize=request.normalize,
        base=request.base, vw_options=request.vw_options, jobs=request.jobs, executor=request.executor,
        allow_nonfinite=request.allow_nonfinite,
        scheduler=request.scheduler, progress=request.progress, registry=registry,
        provenance=request.provenance, argv=argv, scale=request.scale, force=request.force,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# A dry run: the plan of a merge, from headers and reduction sections only.
@attrs.frozen(eq=False)
class DryRun:
    """The plan of a merge, and its rehearsal on the models without their weight rows.

    ``outcomes`` are what executing the plan did in the rehearsal (a plugin that declines shows
    there); ``error`` is the plan's, or the first error the rehearsal met.
    """

    request: MergeRequest
    plan: MergePlan
    outcomes: tuple[Outcome, ...]
    error: VWMergeError | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        doc = self.plan.to_dict(self.outcomes)
        doc.update(ok=self.ok, error=str(self.error) if self.error else None, output=self.request.output)
        return doc


def plan_merge(request: MergeRequest, *, registry: Registry | None = None) -> DryRun:
    """Everything a merge would do and decide, reading no weight rows.

    The plan (:func:`vwmerge.engine.plan.decide`) is the one the streaming merge executes; it is
    then rehearsed on the weightless models, so every check a plugin makes on its sections and
    counters (save_resume vs predict-only, per-model state counts, ...) gives the same verdict,
    and the warnings are the ones a real merge gives.
    """
    models: list[Workspace] = []
    base: Workspace | None = None
    plan: MergePlan | None = None
    outcomes: tuple[Outcome, ...] = ()
    error: VWMergeError | None = None
    reg = registry
    try:
        request = request.expanded()
        check_request(request)
        reg = reg or default_registry()
        for p in request.inputs:  # paths or fsspec URLs, headers and sections only
            models.append(scan(p, vw_options=request.vw_options, registry=reg)[0])
        base = scan(request.base, vw_options=request.vw_options, registry=reg)[0] if request.base else None
        plan, prep = prepare(
            models, weights=request.weights, normalize=request.normalize, base=base, registry=reg, streaming=True,
            sizes=[files.size(p) for p in request.inputs], base_size=files.size(request.base) if request.base else None,
            scale=request.scale, force=request.force,
        )  # fmt: skip
        if prep is None:
            log_warnings(plan)
            error = plan.error
        else:
            outcomes = execute(prep).outcomes
    except VWMergeError as e:
        error = e
    if plan is None:  # stopped before the plan: what is known of it
        plan = unfinished_plan(
            models, base, reg, error, normalize=request.normalize, streaming=True, scale=request.scale
        )
    return DryRun(request, attrs.evolve(plan, output=request.output), outcomes, error)


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


def inspect_model(
    path: str, *, vw_options: str | None = None, registry: Registry | None = None, allow_nonfinite: bool = False
) -> dict[str, Any]:
    """One JSON-able document describing a model file (a path or an fsspec URL): header, stack
    with states, weights."""
    with files.mapped(path) as source:
        ws = load(source, vw_options=vw_options, registry=registry, name=path, allow_nonfinite=allow_nonfinite)
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
        "size": files.size(path),
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
