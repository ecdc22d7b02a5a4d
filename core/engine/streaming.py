"""Merging model files with memory that follows the rows, not the number of models.

VW's merge holds every input densely in memory, twice. :func:`merge_files` first reads each
model's header and reduction sections only (the weight rows stay on disk), takes every check and
decision of :func:`vwmerge.merge` from those, merges the small reductions in memory, then
streams the bottom learner's rows through the partial-result hooks: one input mapped at a time,
folded into a running partial result the size of the output. The output is written in row
chunks. Sequentially the file is byte for byte what :func:`vwmerge.merge` writes; ``jobs`` and
``executor`` spread the inputs over processes or a dask cluster (equal within float32 rounding,
see docs/scale.md).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs

from ..contract.registry import Registry, default_registry
from ..contract.stack import StackEntry
from ..errors import MergeError
from ..model import files
from ..model.inputs import expand_inputs, expand_one
from ..model.workspace import KnownHeads, NonFiniteOutput, Workspace, load, scan_or_load, write_workspace_hashed
from .executors import (
    CACHED_FILE_MAX,
    Digests,
    Executor,
    ProcessExecutor,
    StateCache,
    StreamPlan,
    cache_scope,
    header_bytes,
    quiet_arithmetic,
    resolve,
)
from .merging import PreparedMerge, execute, merge_states, prepare_merge
from .partial import supports_partial
from .plan import CountOnly
from .progress import Progress
from .report import MergeReport, Phase, peak_rss_bytes, workers_peak_rss_bytes

PathLike = str | os.PathLike[str]


@attrs.frozen(eq=False)
class _Inputs:
    """The models as scanned (no weight rows, except the small ones the cache keeps), their
    sizes, the bytes the scan parsed, the headers it found and the states it kept."""

    sources: tuple[str, ...]
    sizes: tuple[int, ...]
    base_size: int
    heads: int
    prep: PreparedMerge
    known: KnownHeads
    cache: StateCache
    #: Bytes of the inputs the scan read whole without keeping their rows: the merge reads
    #: them again (once, whole) when it streams their rows.
    again: int = 0

    @property
    def total(self) -> int:
        return sum(self.sizes) + self.base_size


def _scan(
    sources: Sequence[str],
    base: str | None,
    weights: Sequence[float] | None,
    normalize: bool,
    vw_options: str | None,
    registry: Registry,
    progress: Progress,
    scale: float | None = None,
    force: bool = False,
    *,
    cache: StateCache | None = None,
    provenance: bool = False,
    allow_nonfinite: bool = False,
) -> _Inputs:
    """Every input's header and sections. A small local input is read whole (one read, no
    mapping) and, while ``cache`` has room, parsed with its rows, its base learner's state kept
    for the merge, which then never reads the file again. Past the cache's budget, when the
    base learner streams (it has partial-result hooks), a small input's rows are passed over and
    the scan keeps of its base learner's state only its example count (:class:`CountOnly`,
    and in base mode its delta's, the base being scanned first) and, with ``provenance``, its
    digest; the merge reads it again when it streams its rows: memory stays flat in the number
    of inputs (docs/scale.md)."""
    cache = cache if cache is not None else StateCache(budget=0)
    known = KnownHeads()
    scanned = []
    sizes = []
    streams = False  # until the first model shows a base learner that streams
    again = 0  # bytes of inputs read whole here whose rows the merge reads again
    base_scan = scan_or_load(base, vw_options=vw_options, registry=registry, known=known) if base is not None else None
    base_ws = base_scan.workspace if base_scan is not None else None
    with progress.task(f"reading {len(sources)} models", len(sources)) as advance:
        for i, source in enumerate(sources):
            room = cache.room()
            found = scan_or_load(
                source, whole_up_to=CACHED_FILE_MAX if streams else room, rows_up_to=room, vw_options=vw_options,
                registry=registry, known=known, allow_nonfinite=allow_nonfinite,
            )  # fmt: skip
            ws = found.workspace
            if i == 0:
                streams = supports_partial(registry, ws.bottom)
            kept = found.data is not None and found.size <= room
            # All the plan needs of a streamed base learner: the count (and in base mode its delta's,
            # also for a kept state: the plan would otherwise hold a whole delta table of each).
            if streams and (not kept or base_ws is not None):
                count = CountOnly.of(registry, ws, base_ws, scale)
                if count is not None:
                    ws = attrs.evolve(ws, states=(*ws.states[:-1], count))
            used = found.used
            if found.data is not None:  # read whole: every byte read, and parsed or passed over
                used = found.size
                digest = files.digest(found.data) if provenance else None
                if kept:
                    cache.put(i, found.workspace.states[-1], found.size, digest)
                else:
                    cache.note(i, digest)
                    again += found.size
            scanned.append((ws, used))
            sizes.append(found.size)
            advance(1)
    base_size = base_scan.size if base_scan is not None else 0
    prep = prepare_merge(
        [ws for ws, _ in scanned], weights=weights, normalize=normalize,
        base=base_scan.workspace if base_scan else None, registry=registry, streaming=True,
        sizes=sizes, base_size=base_size if base else None, scale=scale, force=force,
    )  # fmt: skip
    heads = sum(n for _, n in scanned) + (base_scan.used if base_scan else 0)
    return _Inputs(tuple(sources), tuple(sizes), base_size, heads, prep, known, cache, again)


def _all_at_once(
    inputs: _Inputs, k: int, entry: StackEntry, base_state: Any, full_base: Workspace | None,
    vw_options: str | None, stack: contextlib.ExitStack, digests: Digests | None,
    allow_nonfinite: bool = False,
) -> Any:  # fmt: skip
    """A bottom learner the plan does not stream: every input in memory (mapped, or the state
    the scan kept), merged there."""
    prep = inputs.prep
    reg = prep.context.registry
    cache = inputs.cache
    states = []
    for i, source in enumerate(inputs.sources):
        if i in cache.states:
            st = cache.states[i]
            if digests is not None and i in cache.digests:
                digests[i] = cache.digests[i]
        else:
            buf = stack.enter_context(files.mapped(source))
            if digests is not None:
                digests[i] = files.digest(buf)
            ws = load(buf, vw_options=vw_options, registry=reg, name=source, allow_nonfinite=allow_nonfinite)
            st = ws.states[k]
        if full_base is not None and prep.additive[k]:
            st = reg.call("vwmerge_subtract", entry, state=st, base=full_base.states[k], context=prep.context)
        states.append(st)
    full = attrs.evolve(prep, states=(*prep.states[:k], tuple(states), *prep.states[k + 1 :]))
    return merge_states(full, k, entry, base_state)


def _write(
    target: str, merged: Workspace, inputs: _Inputs, vw_options: str | None, reg: Registry, provenance: bool,
    allow_nonfinite: bool,
) -> files.Digest:  # fmt: skip
    """Write the merged model, checking its weight rows for NaN/±inf instead of every input's
    (unless ``allow_nonfinite``): a non-finite input value makes a non-finite merged value
    (sums and products carry it; every weight, 0 included, multiplies it), so only a non-finite
    output sends the merge back to the inputs, in order, to name the first offending file, row
    and column exactly as reading it would. If none holds one, the merge's own arithmetic
    overflowed and the output is written as it is, as before."""
    try:
        return write_workspace_hashed(target, merged, hashing=provenance, check_finite=not allow_nonfinite)
    except NonFiniteOutput:
        for source in inputs.sources:
            with files.mapped(source) as buf:
                load(buf, vw_options=vw_options, registry=reg, name=source)  # raises, naming the row
        return write_workspace_hashed(target, merged, hashing=provenance)


def merge_files(
    paths: Sequence[PathLike],
    output: PathLike,
    *,
    weights: Sequence[float] | None = None,
    normalize: bool = True,
    base: PathLike | None = None,
    vw_options: str | None = None,
    jobs: int = 1,
    executor: str | Executor | None = None,
    scheduler: Any = None,
    progress: bool | Progress | None = None,
    registry: Registry | None = None,
    models_from: Sequence[PathLike] = (),
    provenance: bool = False,
    argv: Sequence[str] | None = None,
    allow_nonfinite: bool = False,
    scale: float | None = None,
    force: bool = False,
    cache_bytes: int | None = None,
) -> MergeReport:
    """Merge model files (paths or fsspec URLs) into ``output`` without loading them whole.

    ``paths`` may hold glob patterns and ``models_from`` lists of models (one path or URL a
    line), expanded as the CLI expands them (:func:`vwmerge.expand_inputs`); ``base`` may be a
    pattern matching exactly one file; ``output`` is a name, never a pattern.
    The semantics and the other arguments (``scale``, ``force`` too) are :func:`vwmerge.merge`'s.
    ``jobs`` > 1 folds groups of inputs in that many processes; ``executor="dask"`` runs on a dask cluster
    (``scheduler``: an address, a ``distributed.Client`` or a cluster; none starts a local
    one); an :class:`vwmerge.engine.executors.Executor` instance is used as is. ``progress``: None
    draws a bar when stderr is a terminal, False never. Returns the phases' times, bytes and
    the peak memory, and with ``provenance`` what :meth:`MergeReport.to_provenance` reports:
    the SHA-256 of every input, the base and the output, each taken from the bytes as the merge
    reads or writes them (no extra pass over any file), the plan and what each step did.
    ``argv``: the command line to record (default ``sys.argv``). ``allow_nonfinite`` takes
    weight rows holding NaN/±inf as they are (by default such an input is refused, see
    :func:`vwmerge.load`). ``cache_bytes``: how many bytes of small inputs the merge may keep
    parsed from its first read of them, so that it never reads them again (default
    :data:`vwmerge.engine.executors.STATE_CACHE_BYTES`; 0 reads every input again in every pass).
    """
    started = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    sources = expand_inputs(paths, models_from=models_from)
    target = os.fspath(output)
    base_source = expand_one(base) if base is not None else None
    reg = registry or default_registry()
    ex = resolve(executor, jobs=jobs, scheduler=scheduler)
    if ex.parallel and reg is not default_registry():
        raise MergeError("a custom plugin registry works only with the sequential local executor")
    bar = Progress.resolve(progress)

    with cache_scope(StateCache(cache_bytes)) as cache:
        return _merge_files(
            sources, target, base_source, reg, ex, bar, cache, started, weights=weights, normalize=normalize,
            vw_options=vw_options, provenance=provenance, argv=argv, allow_nonfinite=allow_nonfinite,
            scale=scale, force=force,
        )  # fmt: skip


def _merge_files(
    sources: Sequence[str], target: str, base_source: str | None, reg: Registry, ex: Executor, bar: Progress,
    cache: StateCache, started: str, *, weights: Sequence[float] | None, normalize: bool, vw_options: str | None,
    provenance: bool, argv: Sequence[str] | None, allow_nonfinite: bool, scale: float | None, force: bool,
) -> MergeReport:  # fmt: skip
    start = time.perf_counter()
    inputs = _scan(
        sources, base_source, weights, normalize, vw_options, reg, bar, scale, force, cache=cache,
        provenance=provenance, allow_nonfinite=allow_nonfinite,
    )  # fmt: skip
    prep = inputs.prep
    load_phase = Phase("load", time.perf_counter() - start, bytes_read=inputs.heads)

    start = time.perf_counter()
    passes = 1
    digests: Digests | None = {} if provenance else None
    base_digest = None
    with contextlib.ExitStack() as stack:
        full_base = None
        if base_source is not None:
            buf = stack.enter_context(files.mapped(base_source))
            base_digest = files.digest(buf) if provenance else None
            full_base = load(
                buf, vw_options=vw_options, registry=reg, name=base_source, allow_nonfinite=allow_nonfinite
            )

        def merge_entry(k: int, entry: StackEntry, base_state: Any) -> Any:
            nonlocal passes
            if not entry.bottom:  # small, and read whole by the scan
                return merge_states(prep, k, entry, base_state)
            if not prep.plan.steps[k].streamed:
                return _all_at_once(
                    inputs, k, entry, base_state, full_base, vw_options, stack, digests, allow_nonfinite
                )
            plan = StreamPlan(
                prep.context.models, inputs.sizes, prep.context.base,
                prep.header, prep.context.weights, k, exact=not ex.parallel, vw_options=vw_options,
                digest=provenance, allow_nonfinite=allow_nonfinite, defer_nonfinite=not allow_nonfinite,
                cache=cache.key, heads=header_bytes([*prep.models, *([prep.base] if prep.base else [])], inputs.known),
            )  # fmt: skip
            with quiet_arithmetic(plan):
                streamed = ex.merge(plan, reg, bar)
            passes = streamed.passes
            if digests is not None:
                digests.update(streamed.digests)
            prep.context.warnings.extend(streamed.warnings)  # into this step's outcome
            return streamed.state

        executed = execute(prep, merge_entry, base=full_base)
        merged = executed.workspace
        # A second pass reads every input again but the ones kept from the scan (and, in --jobs
        # and dask workers, the base; this process reads it once for every pass).
        again = sum(inputs.sizes) - cache.cached_bytes + (inputs.base_size if ex.parallel else 0)
        merge_phase = Phase(  # kept inputs: read whole by the scan, never again; streamed ones: once more
            "merge", time.perf_counter() - start, bytes_read=inputs.total - inputs.heads + inputs.again,
            bytes_reread=(passes - 1) * again,
        )  # fmt: skip
        if digests is not None:  # a file whose rows no step read (none do today): one pass to hash it
            for i, source in enumerate(sources):
                if i not in digests:
                    with files.mapped(source) as buf:
                        digests[i] = files.digest(buf)
        start = time.perf_counter()
        written = _write(target, merged, inputs, vw_options, reg, provenance, allow_nonfinite)
    save_phase = Phase("save", time.perf_counter() - start, bytes_written=written.size)
    return MergeReport(
        target, len(sources), base_source, (load_phase, merge_phase, save_phase),
        peak_rss_bytes(), workers_peak_rss_bytes() if isinstance(ex, ProcessExecutor) else 0,
        started=started, argv=tuple(sys.argv if argv is None else argv), cwd=os.getcwd(), plan=prep.plan,
        outcomes=executed.outcomes,
        input_digests=tuple(digests[i] for i in range(len(sources))) if digests is not None else (),
        base_digest=base_digest, output_digest=written if provenance else None, executor=ex.name,
        weights_given=tuple(float(w) for w in weights) if weights is not None else None, vw_options=vw_options,
    )  # fmt: skip
