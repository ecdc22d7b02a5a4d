"""Where a streamed merge runs: this process, a local process pool, or a dask cluster.

Every executor does the same thing for one reduction (the bottom learner, whose weight rows are
the bulk of every file): turn each input into a partial result, combine the partials, finalize,
and repeat if the plugin asks for another pass. They differ in where:

* :class:`LocalExecutor` folds the inputs one at a time, in order, in this process, so a plugin
  reproduces the all-at-once merge bit for bit (``context.exact``);
* :class:`ProcessExecutor` (``--jobs N``) folds N contiguous groups of inputs in N processes
  and combines the group results here;
* :class:`DaskExecutor` (``--executor dask``) folds groups on a dask.distributed cluster and
  combines them there in a tree; only the finalized state comes back.

The parallel executors combine float64 partials in a different grouping than the sequential
fold, so their results equal the sequential merge within float32 rounding (docs/scale.md).
A :class:`StreamPlan` carries what a worker needs; it holds no registry (plugins are loaded in
each worker from the installed entry points) and no open file.
"""

from __future__ import annotations

import contextlib
import glob
import operator
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, cast

import attrs
import numpy as np

from ..contract.context import ModelWeights, PartialContext
from ..contract.registry import Registry, default_registry
from ..contract.stack import ModelInfo, StackEntry
from ..errors import MergeError, VWMergeError
from ..format.header import Header
from ..format.options import Options
from ..model import files
from ..model.workspace import KnownHeads, Workspace, implied_options, load, reload
from .partial import combine, finalize, fold, run_passes
from .progress import Advance, Progress
from .rowsums import share_large_arrays

T = TypeVar("T")

#: Input index -> the digest of that input's bytes as the merge read them.
Digests = dict[int, files.Digest]


#: The bytes of input files whose parsed states one merge keeps from its first read (their
#: rows included), so that a small model is read and parsed once however many passes the merge
#: makes. Inputs beyond it are read again in every pass (a streamed base learner's: once more,
#: whole, when the merge streams their rows; the scan keeps only what the plan needs of them).
#: A bound, not an allocation: small, so that a fleet of models merges in memory flat in their
#: number (a kept state costs about 3.4 KiB of memory for a 600-byte model; about 1,500 such
#: models are kept, and each further one costs its record and its rows, docs/scale.md).
STATE_CACHE_BYTES = 4 << 20
#: Only files up to this size are read whole and kept (larger ones are mapped when their rows
#: are needed, as before: their pages are the page cache's, not this process's).
CACHED_FILE_MAX = 1 << 20
#: What a kept state costs beyond its file's bytes (its Python objects and array headers),
#: counted against :data:`STATE_CACHE_BYTES`.
CACHED_STATE_OVERHEAD = 2048


class StateCache:
    """Input index -> the streamed reduction's state, parsed when the merge first read the file.

    Filled by the scan, read by :meth:`StreamPlan.states` in this process and in ``--jobs``
    workers (forked: they inherit it without a copy); a dask worker finds none and reads the
    files. Registered under :attr:`key` while the merge runs (:func:`cache_scope`).
    """

    def __init__(self, budget: int | None = None, file_max: int = CACHED_FILE_MAX) -> None:
        self.key = uuid.uuid4().hex
        self.budget = STATE_CACHE_BYTES if budget is None else budget
        self.file_max = file_max
        self.used = 0
        self.states: dict[int, Any] = {}
        self.digests: dict[int, files.Digest] = {}

    def room(self) -> int:
        """The largest file that may still be kept."""
        return max(0, min(self.file_max, self.budget - self.used - CACHED_STATE_OVERHEAD))

    def put(self, index: int, state: Any, size: int, digest: files.Digest | None = None) -> None:
        """Keep ``state`` (and the digest of the file's bytes it was read from)."""
        self.states[index] = state
        self.used += size + CACHED_STATE_OVERHEAD
        self.note(index, digest)

    def note(self, index: int, digest: files.Digest | None) -> None:
        """Keep the digest of input ``index``'s bytes, taken when the scan read them whole (a
        streamed merge reads them again and hashes nothing)."""
        if digest is not None:
            self.digests[index] = digest

    @property
    def cached_bytes(self) -> int:
        return self.used - CACHED_STATE_OVERHEAD * len(self.states)


_CACHES: dict[str, StateCache] = {}


@contextlib.contextmanager
def cache_scope(cache: StateCache) -> Iterator[StateCache]:
    """``cache`` findable by its key (by :class:`StreamPlan`) while the block runs."""
    _CACHES[cache.key] = cache
    try:
        yield cache
    finally:
        _CACHES.pop(cache.key, None)


@attrs.frozen(eq=False)
class StreamPlan:
    """One reduction's streamed merge, described so that any process can take part in it."""

    #: The inputs as the plan saw them (the merge context's own tuple: no object per input more).
    inputs: tuple[ModelInfo, ...]
    sizes: tuple[int, ...]  #: bytes of each input file
    base: ModelInfo | None  #: the base model, when inputs are merged as deltas from it
    output_header: Header
    weights: ModelWeights
    entry: int  #: the reduction's position in the stack
    exact: bool
    vw_options: str | None = None
    #: Take each input's SHA-256 from the mapped bytes as the first pass reads them (provenance).
    digest: bool = False
    allow_nonfinite: bool = False
    #: Leave the NaN/±inf check of the inputs' rows to a check of the merged rows (see
    #: :func:`vwmerge.load`'s ``defer_nonfinite``).
    defer_nonfinite: bool = False
    #: The key of the merge's :class:`StateCache` (states parsed by the scan), if any.
    cache: str = ""
    #: The bytes of the inputs' and the base's distinct headers (:func:`header_bytes`: a read
    #: that finds them again skips parsing the header).
    heads: tuple[tuple[Header, bytes], ...] = ()

    @property
    def count(self) -> int:
        return len(self.inputs)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (for ``--jobs`` and dask workers) without the inputs' stacks, which hold the
        plugins' objects: a worker derives them from its own plugins (:meth:`context`)."""
        fields = attrs.asdict(self, recurse=False)
        fields["inputs"] = tuple(attrs.evolve(m, stack=()) for m in self.inputs)
        fields["base"] = attrs.evolve(self.base, stack=()) if self.base is not None else None
        return (_stream_plan, (fields,))

    @property
    def read_ahead(self) -> bool:
        """Whether reading the next input in the background pays: only for inputs large enough
        that reading one takes longer than handing it between threads."""
        return sum(self.sizes) >= READ_AHEAD_MIN_BYTES * max(1, len(self.sizes))

    def context(
        self, registry: Registry, *, pass_index: int = 0, prior: Any = None, in_place: bool = False
    ) -> PartialContext:
        stacks: dict[Options, tuple[StackEntry, ...]] = {}  # models share their options: derive once

        def derived(m: ModelInfo) -> ModelInfo:
            """``m`` with the stack this process's plugins derive (a pickled plan has none)."""
            if m.options not in stacks:
                stacks[m.options] = registry.derive_stack(m.options, m.source)
            return m if m.stack == stacks[m.options] else attrs.evolve(m, stack=stacks[m.options])

        distinct = {m.options: m for m in self.inputs}.values()
        same = all(derived(m) is m for m in distinct)  # (always here; in a worker, never)
        models = self.inputs if same else tuple(derived(m) for m in self.inputs)
        output = ModelInfo(
            self.output_header,
            implied_options(self.output_header, Options.parse(self.output_header.options_text)),
            models[0].stack,
            "<merged>",
        )
        base = derived(self.base) if self.base is not None else None
        return PartialContext(
            models, base, output, self.weights, registry,
            exact=self.exact, pass_index=pass_index, prior=prior, in_place=in_place,
        )  # fmt: skip

    def stack_entry(self, context: PartialContext) -> StackEntry:
        return context.output.stack[self.entry]

    def _state(self, ref: ModelInfo, registry: Registry, digests: Digests | None = None, index: int = -1) -> Any:
        cache = _CACHES.get(self.cache) if self.cache and index >= 0 else None
        if cache is not None and digests is not None and index in cache.digests:
            digests[index] = cache.digests[index]
            digests = None  # (the scan hashed the bytes it read)
        if cache is not None and index in cache.states:
            return cache.states[index]
        with _read(ref.source) as source:
            if digests is not None:
                digests[index] = files.digest(source)  # the bytes this read reads anyway
            head = next((b for h, b in self.heads if h is ref.header), b"")
            known = (head, ref.header, ref.options) if head else None
            if known is not None:
                ws = reload(
                    source, known, vw_options=self.vw_options, registry=registry, name=ref.source,
                    allow_nonfinite=self.allow_nonfinite, defer_nonfinite=self.defer_nonfinite,
                )  # fmt: skip
            else:
                ws = load(
                    source, vw_options=self.vw_options, registry=registry, name=ref.source,
                    allow_nonfinite=self.allow_nonfinite, defer_nonfinite=self.defer_nonfinite,
                )  # fmt: skip
        if ws.header != ref.header:
            raise VWMergeError("the file changed while it was being merged", source=ref.source)
        return ws.states[self.entry]

    def deltas_in_partials(self, registry: Registry, context: PartialContext) -> bool:
        """Base mode with a plugin that takes each input's delta itself
        (``vwmerge_merge_partial_delta``): the inputs go to it as they are, with the base."""
        return self.base is not None and registry.implements("vwmerge_merge_partial_delta", self.stack_entry(context))

    def base_state(self, registry: Registry) -> Any:
        """The base model's state of this reduction (its rows mapped), None without a base."""
        return self._state(self.base, registry) if self.base is not None else None

    def states(
        self,
        registry: Registry,
        indices: Iterable[int],
        context: PartialContext,
        advance: Advance | None = None,
        digests: Digests | None = None,
        *,
        base: Any = None,
    ) -> Iterator[tuple[int, Any]]:
        """Input states one at a time, each read when asked for (this generator keeps no state it
        has handed out once the next is asked for). In base mode each is its delta from the base
        (``vwmerge_subtract``; the base read here, or ``base`` if given) unless
        :meth:`deltas_in_partials`: then the states as they are.

        With :attr:`digest` and ``digests``, the first pass records each input's digest there
        (later passes read the same bytes again and hash nothing).
        """
        entry = self.stack_entry(context)
        subtract = self.base is not None and not self.deltas_in_partials(registry, context)
        if subtract and base is None:
            base = self.base_state(registry)
        record = digests if self.digest and context.pass_index == 0 else None
        for i in indices:
            state = self._state(self.inputs[i], registry, record, i)
            if subtract:
                state = registry.call("vwmerge_subtract", entry, state=state, base=base, context=context)
            yield i, state
            del state
            if advance is not None:
                advance(self.sizes[i])

    def fold(
        self, registry: Registry, indices: Iterable[int], context: PartialContext,
        advance: Advance | None = None, digests: Digests | None = None, *, base: Any = None,
    ) -> Any:  # fmt: skip
        """The inputs ``indices`` folded in order into one partial result (:func:`fold`), read in
        the background when that pays; ``base``: the base's state, if already read."""
        if self.base is not None and base is None:
            base = self.base_state(registry)
        states = self.states(registry, indices, context, advance, digests, base=base)
        partial_base = base if self.deltas_in_partials(registry, context) else None
        return fold(registry, self.stack_entry(context), context, read_ahead(states, enabled=self.read_ahead),
                    base=partial_base)  # fmt: skip


@contextlib.contextmanager
def _read(source: str) -> Iterator[bytes | memoryview]:
    """A model's bytes for one read of its rows: a small local file read whole (one read; its
    rows are then in memory, which a merge holds without a file descriptor), else mapped."""
    data = files.read_whole(source, CACHED_FILE_MAX)
    if data is not None:
        yield data
        return
    with files.mapped(source) as buf:
        yield buf


def _stream_plan(fields: dict[str, Any]) -> StreamPlan:
    return StreamPlan(**fields)


def header_bytes(models: Iterable[Workspace], heads: KnownHeads) -> tuple[tuple[Header, bytes], ...]:
    """Each distinct header object of ``models`` with its bytes: the bytes object ``heads``
    holds for it (shared by every model with that header), else the header written out."""
    known = {id(h): b for b, h, _ in heads.entries()}
    distinct = {id(m.header): m.header for m in models}
    return tuple((h, known.get(key) or h.to_bytes()) for key, h in distinct.items())


_END = object()

#: Inputs smaller than this on average are read in the thread that folds them: for a small
#: model the hand-over between threads costs more than the reading it would overlap.
READ_AHEAD_MIN_BYTES = 1 << 20


def read_ahead(items: Iterable[T], start: int = 2, *, enabled: bool = True) -> Iterator[T]:
    """``items``, reading the next one in a background thread while the current one is used.

    Reading (mapping, parsing and checking a model) then overlaps the arithmetic. It starts with
    the ``start``-th item: a fold keeps its first partial, with its input, until the second has
    arrived, and reading a third then would hold three inputs at once. ``enabled=False``: the
    items as they come, in this thread.
    """
    if not enabled:
        yield from items
        return
    source = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="vwmerge-read") as reader:
        pending: Future[Any] | None = None
        handed = 0
        while True:
            item = pending.result() if pending is not None else next(source, _END)
            if item is _END:
                return
            handed += 1
            pending = reader.submit(next, source, _END) if handed > start else None
            yield cast(T, item)  # not _END: an item of ``items``
            del item


def split(count: int, groups: int) -> list[tuple[int, ...]]:
    """``range(count)`` cut into at most ``groups`` contiguous runs of nearly equal length."""
    groups = max(1, min(groups, count))
    bounds = [count * g // groups for g in range(groups + 1)]
    return [tuple(range(bounds[g], bounds[g + 1])) for g in range(groups)]


def quiet_arithmetic(plan: StreamPlan) -> contextlib.AbstractContextManager[Any]:
    """numpy's floating-point warnings off while inputs whose NaN/±inf check is deferred are
    merged: such a value is refused afterwards, naming its file, row and column, not warned of."""
    return np.errstate(all="ignore") if plan.defer_nonfinite else contextlib.nullcontext()


# --------------------------------------------------------------------------------------------
# What workers run. Module-level functions so that both process pools and dask can ship them.
def fold_group(plan: StreamPlan, indices: Sequence[int], pass_index: int, prior: Any) -> tuple[Any, Digests]:
    """The partial result of a contiguous group of inputs, folded in order, and the inputs'
    digests when the plan takes them (first pass only)."""
    registry = default_registry()
    ctx = plan.context(registry, pass_index=pass_index, prior=prior, in_place=True)
    digests: Digests = {}
    with quiet_arithmetic(plan):
        return plan.fold(registry, indices, ctx, digests=digests), digests


def fold_group_sharing(
    plan: StreamPlan, indices: Sequence[int], pass_index: int, prior: Any, prefix: str
) -> tuple[Any, Digests]:
    """:func:`fold_group` in a ``--jobs`` worker process: its large arrays live in files in a RAM
    file system, so its result reaches the parent as file names (a pipe copies many times slower)."""
    share_large_arrays(_SHARE_DIR, prefix)
    return fold_group(plan, indices, pass_index, prior)


#: A RAM file system for the partial results --jobs workers hand over.
_SHARE_DIR = "/dev/shm"


def combine_pair(plan: StreamPlan, left: Any, right: Any, pass_index: int, prior: Any) -> Any:
    """Two partial results combined; never in place (a dask result may be read again)."""
    registry = default_registry()
    ctx = plan.context(registry, pass_index=pass_index, prior=prior)
    with quiet_arithmetic(plan):
        return combine(registry, plan.stack_entry(ctx), left, right, ctx)


def finalize_partial(plan: StreamPlan, partial: Any, pass_index: int, prior: Any) -> Any:
    registry = default_registry()
    ctx = plan.context(registry, pass_index=pass_index, prior=prior)
    with quiet_arithmetic(plan):
        return finalize(registry, plan.stack_entry(ctx), partial, ctx)


# --------------------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class Streamed:
    """An executor's result: the merged state and how many passes over the inputs it took."""

    state: Any
    passes: int
    #: Input index -> digest, when the plan takes digests.
    digests: Digests = attrs.field(factory=dict)
    #: What the plugin said through ``context.warn`` in this process (combine, finalize; the
    #: sequential executor: every hook). Warnings given in workers are logged there only.
    warnings: tuple[dict[str, Any], ...] = ()


class Executor(Protocol):
    name: str
    #: False: inputs are folded one by one in input order (exact); True: any grouping.
    parallel: bool

    def merge(self, plan: StreamPlan, registry: Registry, progress: Progress) -> Streamed: ...


def _label(plan: StreamPlan, ctx: PartialContext) -> str:
    return f"merging {plan.count} models" + (f" (pass {ctx.pass_index + 1})" if ctx.pass_index else "")


def _counted_passes(ctx: PartialContext, one_pass: Callable[[PartialContext], Any], digests: Digests) -> Streamed:
    passes = 0

    def counted(c: PartialContext) -> Any:
        nonlocal passes
        passes += 1
        return one_pass(c)

    state = run_passes(ctx, counted)
    return Streamed(state, passes, digests, tuple(ctx.warnings))


class LocalExecutor:
    """Sequential, in this process, inputs in order: the exact merge. The inputs mapped at once
    are what the plugin's partials hold (gd: up to a limit, their pages released as they are
    walked); the base model is read once for every pass."""

    name = "local"
    parallel = False

    def merge(self, plan: StreamPlan, registry: Registry, progress: Progress) -> Streamed:
        ctx = plan.context(registry, in_place=True)
        entry = plan.stack_entry(ctx)
        digests: Digests = {}
        base = plan.base_state(registry)

        def one_pass(c: PartialContext) -> Any:
            with progress.task(_label(plan, c), sum(plan.sizes)) as advance:
                acc = plan.fold(registry, range(plan.count), c, advance, digests, base=base)
            return finalize(registry, entry, acc, c)

        return _counted_passes(ctx, one_pass, digests)


def _mp_context() -> Any:
    # fork keeps the parent's logging configuration and loaded plugins, and starts in no time.
    import multiprocessing  # here: only --jobs needs it (start-up, docs/scale.md)

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class ProcessExecutor:
    """``--jobs N``: N worker processes each fold a contiguous group of inputs; combined here."""

    name = "processes"
    parallel = True

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise MergeError(f"--jobs must be at least 1, not {jobs}")
        self.jobs = jobs

    def merge(self, plan: StreamPlan, registry: Registry, progress: Progress) -> Streamed:
        from concurrent.futures import ProcessPoolExecutor  # (imports multiprocessing: --jobs only)

        ctx = plan.context(registry, in_place=True)
        entry = plan.stack_entry(ctx)
        groups = split(plan.count, self.jobs)
        shared = os.access(_SHARE_DIR, os.W_OK)
        prefix = f"vwmerge-{os.getpid()}-{uuid.uuid4().hex[:8]}-"
        digests: Digests = {}

        def one_pass(c: PartialContext) -> Any:
            acc = None
            with (
                progress.task(_label(plan, c), sum(plan.sizes)) as advance,
                ProcessPoolExecutor(max_workers=len(groups), mp_context=_mp_context()) as pool,
            ):
                args = (c.pass_index, c.prior, prefix)
                futures = [pool.submit(fold_group_sharing, plan, g, *args) if shared else
                           pool.submit(fold_group, plan, g, *args[:2]) for g in groups]  # fmt: skip
                for group, future in zip(groups, futures, strict=True):
                    part, group_digests = future.result()
                    digests.update(group_digests)
                    advance(sum(plan.sizes[i] for i in group))
                    acc = part if acc is None else combine(registry, entry, acc, part, c)
            return finalize(registry, entry, acc, c)

        try:
            return _counted_passes(ctx, one_pass, digests)
        finally:  # files a failed worker or an error left behind
            for leftover in glob.glob(os.path.join(_SHARE_DIR, glob.escape(prefix) + "*")):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)


class DaskExecutor:
    """``--executor dask``: groups folded on a dask.distributed cluster, combined there in a tree.

    ``scheduler`` is a scheduler address (``tcp://host:8786``), a ``distributed.Client`` or a
    cluster object; None starts a local cluster of ``workers`` processes for the merge. Inputs
    and output must be reachable from the workers (shared paths or fsspec URLs).
    """

    name = "dask"
    parallel = True

    def __init__(self, scheduler: Any = None, *, workers: int | None = None) -> None:
        self.scheduler = scheduler
        self.workers = workers

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        distributed = _distributed()
        if isinstance(self.scheduler, distributed.Client):
            yield self.scheduler
            return
        if self.scheduler is None:
            cluster = distributed.LocalCluster(
                n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1, host="127.0.0.1",
                dashboard_address=":0",
            )  # fmt: skip
            with cluster, distributed.Client(cluster) as client:
                yield client
            return
        try:
            client = distributed.Client(self.scheduler)  # dask's connect timeout (config), 30 s by default
        except OSError as e:
            raise MergeError(f"cannot reach the dask scheduler: {e}", source=str(self.scheduler)) from None
        with client:
            yield client

    def merge(self, plan: StreamPlan, registry: Registry, progress: Progress) -> Streamed:
        distributed = _distributed()
        ctx = plan.context(registry)
        with self._client() as client:
            threads = sum(client.nthreads().values()) or 1
            groups = split(plan.count, threads)
            shared = client.scatter(plan, broadcast=True)
            digests: Digests = {}

            def one_pass(c: PartialContext) -> Any:
                args = (c.pass_index, c.prior)
                folded = [client.submit(fold_group, shared, g, *args, pure=False) for g in groups]
                level = [client.submit(operator.itemgetter(0), f, pure=False) for f in folded]
                with progress.task(_label(plan, c), sum(plan.sizes)) as advance:
                    sizes = {f.key: sum(plan.sizes[i] for i in g) for f, g in zip(level, groups, strict=True)}
                    for done in distributed.as_completed(level):
                        if done.status == "error":
                            done.result()  # raises the worker's error here, with its message
                        advance(sizes[done.key])  # (the partials themselves stay on the cluster)
                if plan.digest and c.pass_index == 0:  # small: the digests come back, the partials stay
                    for found in client.gather([client.submit(operator.itemgetter(1), f) for f in folded]):
                        digests.update(found)
                while len(level) > 1:  # a tree: neighbours combined, so input order is kept
                    pairs = zip(level[::2], level[1::2], strict=False)
                    nxt = [client.submit(combine_pair, shared, a, b, *args, pure=False) for a, b in pairs]
                    level = nxt + ([level[-1]] if len(level) % 2 else [])
                return client.submit(finalize_partial, shared, level[0], *args, pure=False).result()

            return _counted_passes(ctx, one_pass, digests)


def _distributed() -> Any:
    """The ``distributed`` module, or one line saying which extra to install."""
    try:
        import distributed
    except ImportError:
        raise MergeError(
            "needs dask.distributed, which is not installed: pip install 'vwmerge[dask]'", source="--executor dask"
        ) from None
    return distributed


def resolve(executor: str | Executor | None, *, jobs: int = 1, scheduler: Any = None) -> Executor:
    """An executor from what the user said: ``"local"`` (with ``jobs`` processes), ``"dask"``."""
    if executor is None:
        executor = "dask" if scheduler is not None else "local"
    if not isinstance(executor, str):
        return executor
    if executor == "local":
        if scheduler is not None:
            raise MergeError("--scheduler needs --executor dask")
        return ProcessExecutor(jobs) if jobs > 1 else LocalExecutor()
    if executor == "dask":
        _distributed()  # before any model is read
        return DaskExecutor(scheduler, workers=jobs if jobs > 1 else None)
    raise MergeError(f"unknown executor {executor!r}; choose 'local' or 'dask'")
