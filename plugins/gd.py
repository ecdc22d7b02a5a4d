"""gd: VW's default base learner. Owns the shared data (example counters, labels) and the weights.

Merge semantics follow VW's ``merge_models`` bit for bit where VW is right (see
docs/merge-semantics.md) and differ, deliberately, where it is not:

* ``t`` counts ``initial_t`` once, not once per input;
* pending ``--l1``/``--l2`` truncation is applied before averaging (VW averages raw weights and
  resets the truncation state, so its merged model predicts differently from its inputs);
* ``--normalized``-only merges keep the normalized column (VW zeroes it);
* predict-only inputs are weighted equally (VW zeroes every weight);
* on the adaptive path a row no input updated (adaptive sum 0 in every input) keeps the inputs'
  example-count average: it holds an initial value (``--initial_weight``, ``--random_weights``,
  ``--new_mf``...) that VW does not restore on load (VW sets w = 0).
"""

from __future__ import annotations

import array
import functools
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import attrs
import numpy as np
from vwmerge.plugin import (
    IncompatibleModelsError,
    MergeContext,
    ModelFormatError,
    ModelWeights,
    NextPass,
    Options,
    PartialContext,
    ReductionSpec,
    RowBlock,
    RowSums,
    SectionIO,
    StackEntry,
    WeightTable,
    add_at,
    align,
    hookimpl,
    in_mapped_file,
    rank_of,
    release_pages,
    walk_rows,
)

GD_OPTIONS = (
    "sgd", "adaptive", "normalized", "invariant", "adax", "learning_rate", "power_t", "initial_t",
    "decay_learning_rate", "l1_state", "l2_state", "sparse_l2",
)  # fmt: skip

U64 = 1 << 64
TRUNCATION_APPLIED = "applied pending --l1/--l2 truncation before merging (VW merges raw weights)"


def gd_columns(options: Options, resume: bool) -> tuple[str, ...]:
    """Which floats each saved row carries: decided by the resume flag and the options."""
    if not resume:
        return ("w",)
    adaptive, normalized = "adaptive" in options, "normalized" in options
    if not adaptive and not normalized:
        return ("w",) if options.has_any("sgd", "invariant") else ("w", "adaptive", "normalized")
    cols = ["w"]
    if adaptive:
        cols.append("adaptive")
    if normalized:
        cols.append("normalized")
    return tuple(cols)


# --------------------------------------------------------------------------------------------
#: Files before this version (VERSION_SAVE_RESUME_FIX) lack three online-state fields.
RESUME_FIX_SINCE = (7, 10, 1)


# Online state (VW's shared_data plus gd's per-model states), as saved under save_resume.
@functools.cache
def _online_layout(n: int, with_l1l2: bool) -> struct.Struct:
    """OnlineState's fields as one struct: initial_t, n sums of norm x, t, two losses, dump
    interval, labels, three example weights, example number, features, n total weights, old
    weighted examples, pass, and (9.0.0 on) the l1 and l2 states."""
    return struct.Struct("<f" + "d" * n + "ddd" + "fff" + "ddd" + "QQ" + "d" * n + "dQ" + ("dd" if with_l1l2 else ""))


@attrs.frozen
class OnlineState:
    initial_t: float
    normalized_sum_norm_x: tuple[float, ...]
    t: float
    sum_loss: float
    sum_loss_since_last_dump: float
    dump_interval: float
    min_label: float
    max_label: float
    weighted_labeled_examples: float
    weighted_labels: float
    weighted_unlabeled_examples: float
    example_number: int
    total_features: int
    total_weight: tuple[float, ...]
    old_weighted_labeled_examples: float
    current_pass: int
    l1_state: float | None  # None: file older than 9.0.0 (no l1/l2 state fields)
    l2_state: float | None

    @classmethod
    def read(cls, r: Any, n: int, with_l1l2: bool, with_resume_fix: bool = True) -> OnlineState:
        """``with_resume_fix`` False (files before 7.10.1): no total_weight, old weighted examples
        or current pass in the file; VW then starts them at 0, and so does this state."""
        layout = _online_layout(n, with_l1l2)
        if not with_resume_fix or r.remaining < layout.size:  # field by field (an error names the field)
            return cls._read_fields(r, n, with_l1l2, with_resume_fix)
        v = layout.unpack_from(r.buf, r.pos)  # one call, not thirty: this runs for every input
        r.pos += layout.size
        i = 1 + n  # v: initial_t, n norms, then t at i ... total_features at i + 10, n totals, ...
        j = i + 11 + n  # old weighted examples, current pass, l1, l2
        l1, l2 = (v[j + 2], v[j + 3]) if with_l1l2 else (None, None)
        return cls(
            v[0], v[1:i], v[i], v[i + 1], v[i + 2], v[i + 3], v[i + 4], v[i + 5], v[i + 6], v[i + 7],
            v[i + 8], v[i + 9], v[i + 10], v[i + 11 : j], v[j], v[j + 1], l1, l2,
        )  # fmt: skip

    @classmethod
    def _read_fields(cls, r: Any, n: int, with_l1l2: bool, with_resume_fix: bool = True) -> OnlineState:
        initial_t = r.f32("initial_t")
        nsnx = tuple(r.f64("normalized_sum_norm_x") for _ in range(n))
        t, sl, sld = r.f64("t"), r.f64("sum_loss"), r.f64("sum_loss_since_last_dump")
        dump, mn, mx = r.f32("dump_interval"), r.f32("min_label"), r.f32("max_label")
        wle, wl, wue = r.f64("wle"), r.f64("weighted_labels"), r.f64("weighted_unlabeled")
        en, tf = r.u64("example_number"), r.u64("total_features")
        tw, old, cp = (0.0,) * n, 0.0, 0
        if with_resume_fix:
            tw = tuple(r.f64("total_weight") for _ in range(n))
            old, cp = r.f64("old_weighted_labeled_examples"), r.u64("current_pass")
        l1 = r.f64("l1_state") if with_l1l2 else None
        l2 = r.f64("l2_state") if with_l1l2 else None
        return cls(initial_t, nsnx, t, sl, sld, dump, mn, mx, wle, wl, wue, en, tf, tw, old, cp, l1, l2)

    def write(self, w: Any, with_resume_fix: bool = True) -> None:
        w.f32(self.initial_t)
        for v in self.normalized_sum_norm_x:
            w.f64(v)
        w.f64(self.t)
        w.f64(self.sum_loss)
        w.f64(self.sum_loss_since_last_dump)
        w.f32(self.dump_interval)
        w.f32(self.min_label)
        w.f32(self.max_label)
        w.f64(self.weighted_labeled_examples)
        w.f64(self.weighted_labels)
        w.f64(self.weighted_unlabeled_examples)
        w.u64(self.example_number)
        w.u64(self.total_features)
        if with_resume_fix:
            for v in self.total_weight:
                w.f64(v)
            w.f64(self.old_weighted_labeled_examples)
            w.u64(self.current_pass)
        if self.l1_state is not None:
            w.f64(self.l1_state)
            w.f64(self.l2_state if self.l2_state is not None else 1.0)

    @property
    def pending_truncation(self) -> bool:
        return (self.l1_state or 0.0) != 0.0 or (self.l2_state if self.l2_state is not None else 1.0) != 1.0


@attrs.frozen(eq=False)
class GdState:
    resume: bool
    online: OnlineState | None
    table: WeightTable


def per_model_count(reduction: StackEntry, options: Options) -> int:
    return reduction.above if "per_model_save_load" in options else 1


# --------------------------------------------------------------------------------------------
@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    return [
        ReductionSpec(
            name="gd",
            rank=rank_of("gd"),
            options=GD_OPTIONS,
            section=True,
            bottom=True,
            fallback=True,
            description="VW's default online gradient descent base learner",
        )
    ]


def read_gd_like(io: SectionIO, reduction: StackEntry, columns_for: Any) -> GdState:
    """Shared by gd and the other gd-layout bottoms: resume byte, online state, rows."""
    r = io.r
    model = io.model
    resume = r.boolean("resume flag")
    online = None
    if resume:
        online = OnlineState.read(
            r, per_model_count(reduction, model.options), model.version >= (9, 0, 0), model.version >= RESUME_FIX_SINCE
        )
    cols = columns_for(model.options, resume)
    if not io.load_weights:
        return GdState(resume, online, WeightTable.skip(r, model.bits, cols))
    # A streamed merge may check the merged rows for NaN/inf instead of every input's: every value
    # reaches them through sums and products, except under a pending L1 truncation (it zeroes a NaN).
    table = WeightTable.read(r, model.bits, cols, deferrable=online is None or not online.pending_truncation)
    low = table.column("adaptive").min() if "adaptive" in cols and len(table) else 0.0
    if not low >= 0:  # NaN or negative
        r.check_finite(table.index, table.values, cols, "non-finite weight")  # NaN, -inf: named as such
    if low < 0:
        raise ModelFormatError(
            "corrupt weights: negative adaptive sums (was this file saved by VW after loading it "
            "with -t? that writes 1-float rows under options that imply more)",
            source=model.source,
        )
    return GdState(resume, online, table)


def write_gd_like(io: SectionIO, state: GdState) -> None:
    w = io.w
    w.boolean(state.resume)
    if state.resume:
        assert state.online is not None
        state.online.write(w, io.model.version >= RESUME_FIX_SINCE)
    state.table.write(w)


def save_load_gd_like(
    io: SectionIO,
    reduction: StackEntry,
    state: GdState | None,
    columns_for: Any,
    reader: Callable[[SectionIO, StackEntry, Any], GdState] = read_gd_like,
) -> GdState | None:
    """The save_load hook of every learner in gd's layout: ``reader`` when reading, else write."""
    if io.reading:
        return reader(io, reduction, columns_for)
    assert state is not None
    write_gd_like(io, state)
    return None


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: GdState | None) -> GdState | None:
    return save_load_gd_like(io, reduction, state, gd_columns)


@hookimpl
def vwmerge_example_count(reduction: StackEntry, state: GdState) -> float | None:
    return state.online.weighted_labeled_examples if state.online is not None else None


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: GdState) -> dict[str, Any]:
    out: dict[str, Any] = {"save_resume": state.resume, "weights": state.table.summary()}
    if state.online is not None:
        out["online"] = attrs.asdict(state.online)
    return out


# --------------------------------------------------------------------------------------------
# Weights arithmetic
def trunc_materialize(table: WeightTable, online: OnlineState | None) -> WeightTable:
    """Apply pending L1 truncation and L2 contraction the way VW does when it syncs weights."""
    if online is None or not online.pending_truncation:
        return table
    g = np.float32(online.l1_state or 0.0)
    c = np.float32(online.l2_state if online.l2_state is not None else 1.0)
    vals = np.array(table.values, dtype=np.float32, copy=True)
    w = vals[:, 0]
    shrunk = np.where(np.abs(w) > g, w - np.where(w > 0, g, -g).astype(np.float32), np.float32(0))
    vals[:, 0] = (shrunk.astype(np.float32) * c).astype(np.float32)
    return table.with_values(vals)


def merge_tables_vw(
    tables: Sequence[WeightTable], p: np.ndarray, adaptive_path: bool, extra_cols_weighted: bool
) -> WeightTable:
    """VW's merge of weight rows, with its float32 rounding order (see header-gd.md §9.3).

    On the adaptive path a row whose adaptive sum is 0 in every input (never updated: it holds
    its initial value) gets the simple path's Σ f32(θᵢ·pᵢ) in every column instead of VW's w = 0.
    """
    tabs = [t.canonical() for t in tables]
    union, pos = align(tabs)
    k = tabs[0].k
    out = np.zeros((len(union), k), np.float32)
    if adaptive_path:
        ai = tabs[0].columns.index("adaptive")
        total = np.zeros(len(union), np.float32)
        for t, ps in zip(tabs, pos, strict=True):
            total[ps] += t.values[:, ai]
        for t, ps, pi in zip(tabs, pos, p.astype(np.float32), strict=True):
            vals = np.array(t.values, dtype=np.float32, copy=True)
            tot = total[ps]
            ok = tot > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (vals[:, ai] / np.where(ok, tot, np.float32(1))).astype(np.float32)
            scaled = (vals * ratio[:, None]).astype(np.float32)
            vals[ok] = scaled[ok]
            # A = 0: no input ever updated the row, so it holds its initial value (--initial_weight,
            # --random_weights, --new_mf, ...). The example-count average keeps it (VW zeroes w).
            vals[~ok] = (vals[~ok] * pi).astype(np.float32)
            out[ps] += vals
    else:
        for t, ps, pi in zip(tabs, pos, p.astype(np.float32), strict=True):
            out[ps, 0] += (t.values[:, 0] * pi).astype(np.float32)
            if extra_cols_weighted and k > 1:
                out[ps, 1:] += (t.values[:, 1:] * pi).astype(np.float32)
    return WeightTable(union, out, tabs[0].bits, tabs[0].columns).nonzero()


def merge_tables_exact(tables: Sequence[WeightTable], w: np.ndarray) -> WeightTable:
    """θ = Σ wᵢθᵢ for every column, accumulated in float64 and rounded once."""
    tabs = [t.canonical() for t in tables]
    union, pos = align(tabs)
    acc = np.zeros((len(union), tabs[0].k), np.float64)
    for t, ps, wi in zip(tabs, pos, w, strict=True):
        acc[ps] += t.values.astype(np.float64) * float(wi)
    return WeightTable(union, acc.astype(np.float32), tabs[0].bits, tabs[0].columns).nonzero()


def combine_tables(a: WeightTable, b: WeightTable, sign: float) -> WeightTable:
    """a + sign·b elementwise over the union of rows, in float32 (VW's add/subtract)."""
    ta, tb = a.canonical(), b.canonical()
    union, (pa, pb) = align([ta, tb])
    va = np.zeros((len(union), ta.k), np.float32)
    vb = np.zeros((len(union), ta.k), np.float32)
    va[pa] = ta.values
    vb[pb] = tb.values
    out = (va + vb) if sign > 0 else (va - vb)
    return WeightTable(union, out.astype(np.float32), ta.bits, ta.columns)


# --------------------------------------------------------------------------------------------
def _check_resume(states: Sequence[GdState], context: MergeContext) -> None:
    flags = {s.resume for s in states}
    if len(flags) > 1:
        i = next(i for i, s in enumerate(states) if s.resume != states[0].resume)
        raise _resume_mismatch(i, states[i].resume, 0, context)


def _resume_mismatch(i: int, resume: bool, other: int, context: MergeContext) -> IncompatibleModelsError:
    kind = "predict-only" if not resume else "save_resume"
    return IncompatibleModelsError(
        f"is a {kind} model but {context.sources[other]} is not; re-save both the same way",
        source=context.sources[i] if i < len(context.sources) else None,
    )


@attrs.frozen
class OnlineSum:
    """Online states summed one at a time, in input order: what :func:`merge_online` makes of
    them, kept as running sums so that a merge of many inputs folds each state in as it reads it
    and keeps none (every sum is a left fold from 0.0, as VW adds; the labels' extremes as
    ``min``/``max`` take them: the first of equal values)."""

    first: OnlineState  #: the first input's: initial_t, and the l1/l2 state when none is pending
    normalized_sum_norm_x: tuple[float, ...]
    t_examples: float  #: Σ (tᵢ − f32(initial_tᵢ)): t counts each input's examples, initial_t once
    sum_loss: float
    min_label: float
    max_label: float
    weighted_labeled_examples: float
    weighted_labels: float
    weighted_unlabeled_examples: float
    example_number: int
    total_features: int
    total_weight: tuple[float, ...]
    pending: bool  #: an input has a pending --l1/--l2 truncation

    @classmethod
    def of(cls, o: OnlineState) -> OnlineSum:
        return cls(
            o, tuple(0.0 + v for v in o.normalized_sum_norm_x), 0.0 + (o.t - float(np.float32(o.initial_t))),
            0.0 + o.sum_loss, o.min_label, o.max_label, 0.0 + o.weighted_labeled_examples, 0.0 + o.weighted_labels,
            0.0 + o.weighted_unlabeled_examples, o.example_number % U64, o.total_features % U64,
            tuple(0.0 + v for v in o.total_weight), o.pending_truncation,
        )  # fmt: skip

    def add(self, o: OnlineState) -> OnlineSum:
        """These sums with ``o``, the next input's state, added (``0.0 + x`` is ``x`` but for
        −0.0, and a running sum from 0.0 is never −0.0: the same sums as adding ``x``)."""
        return self.joined(OnlineSum.of(o))

    def joined(self, other: OnlineSum) -> OnlineSum:
        """These sums and ``other``'s, the later inputs', added (one input's: :meth:`add`, the
        exact fold; several inputs': sums of sums, not VW's order of additions)."""
        return OnlineSum(
            self.first,
            tuple(a + b for a, b in zip(self.normalized_sum_norm_x, other.normalized_sum_norm_x, strict=True)),
            self.t_examples + other.t_examples,
            self.sum_loss + other.sum_loss,
            other.min_label if other.min_label < self.min_label else self.min_label,
            other.max_label if other.max_label > self.max_label else self.max_label,
            self.weighted_labeled_examples + other.weighted_labeled_examples,
            self.weighted_labels + other.weighted_labels,
            self.weighted_unlabeled_examples + other.weighted_unlabeled_examples,
            (self.example_number + other.example_number) % U64,
            (self.total_features + other.total_features) % U64,
            tuple(a + b for a, b in zip(self.total_weight, other.total_weight, strict=True)),
            self.pending or other.pending,
        )  # fmt: skip

    def merged(self) -> OnlineState:
        """The merged state: counters summed, labels combined, per-model states summed; progress
        fields fresh; t counts initial_t once (VW adds every input's initial_t on top of its own)."""
        first = self.first
        return OnlineState(
            initial_t=first.initial_t,
            normalized_sum_norm_x=self.normalized_sum_norm_x,
            t=float(np.float32(first.initial_t)) + self.t_examples,
            sum_loss=self.sum_loss,
            sum_loss_since_last_dump=0.0,
            dump_interval=1.0,
            min_label=self.min_label,
            max_label=self.max_label,
            weighted_labeled_examples=self.weighted_labeled_examples,
            weighted_labels=self.weighted_labels,
            weighted_unlabeled_examples=self.weighted_unlabeled_examples,
            example_number=self.example_number,
            total_features=self.total_features,
            total_weight=self.total_weight,
            old_weighted_labeled_examples=0.0,
            current_pass=0,
            l1_state=None if first.l1_state is None else (0.0 if self.pending else first.l1_state),
            l2_state=None if first.l2_state is None else (1.0 if self.pending else first.l2_state),
        )


def merge_online(onlines: Sequence[OnlineState]) -> OnlineState:
    """Counters summed, labels combined, per-model states summed; progress fields fresh."""
    acc = OnlineSum.of(onlines[0])
    for o in onlines[1:]:
        acc = acc.add(o)
    return acc.merged()


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[GdState],
    weights: ModelWeights,
    base: GdState | None,
    context: MergeContext,
) -> GdState:
    _check_resume(states, context)
    resume = states[0].resume
    tables = [trunc_materialize(s.table, s.online) for s in states]
    if any(s.online is not None and s.online.pending_truncation for s in states):
        context.warn(reduction, TRUNCATION_APPLIED)
    cols = tables[0].columns
    if weights.explicit or weights.equal_fallback:
        table = merge_tables_exact(tables, weights.values)
    else:
        adaptive_path = resume and "adaptive" in cols
        table = merge_tables_vw(tables, weights.vw_f32, adaptive_path, extra_cols_weighted=True)
    online = None
    if resume:
        online = merge_online([s.online for s in states if s.online is not None])
    return GdState(resume, online, table)


def _diff_online(a: OnlineState, b: OnlineState, sign: int) -> OnlineState:
    def f(x: float, y: float) -> float:
        return x + y if sign > 0 else x - y

    def u(x: int, y: int) -> int:
        return (x + y) % U64 if sign > 0 else (x - y) % U64

    return attrs.evolve(
        a,
        normalized_sum_norm_x=tuple(
            f(x, y) for x, y in zip(a.normalized_sum_norm_x, b.normalized_sum_norm_x, strict=True)
        ),
        t=f(a.t, b.t),
        sum_loss=f(a.sum_loss, b.sum_loss),
        weighted_labeled_examples=f(a.weighted_labeled_examples, b.weighted_labeled_examples),
        weighted_labels=f(a.weighted_labels, b.weighted_labels),
        weighted_unlabeled_examples=f(a.weighted_unlabeled_examples, b.weighted_unlabeled_examples),
        example_number=u(a.example_number, b.example_number),
        total_features=u(a.total_features, b.total_features),
        total_weight=tuple(f(x, y) for x, y in zip(a.total_weight, b.total_weight, strict=True)),
        min_label=min(a.min_label, b.min_label),
        max_label=max(a.max_label, b.max_label),
    )  # fmt: skip


def _check_base_resume(state: GdState, base: GdState) -> None:
    if state.resume != base.resume:
        raise IncompatibleModelsError("the base model and the models differ in save_resume/predict-only")


def _delta_online(state: OnlineState | None, base: OnlineState | None) -> OnlineState | None:
    """The online state of ``state − base`` (None unless both have one)."""
    if state is None or base is None:
        return None
    online = _diff_online(state, base, -1)
    # t of a delta counts examples only; the base keeps initial_t. The delta's weights are
    # already truncated (trunc_materialize), so its l1/l2 state is neutral (else merge truncates twice).
    return attrs.evolve(
        online,
        t=online.t + float(np.float32(online.initial_t)),
        l1_state=None if online.l1_state is None else 0.0,
        l2_state=None if online.l2_state is None else 1.0,
    )


@hookimpl
def vwmerge_subtract(reduction: StackEntry, state: GdState, base: GdState, context: MergeContext) -> GdState:
    _check_base_resume(state, base)
    table = combine_tables(trunc_materialize(state.table, state.online), trunc_materialize(base.table, base.online), -1)
    return GdState(state.resume, _delta_online(state.online, base.online), table)


@hookimpl
def vwmerge_add(reduction: StackEntry, base: GdState, delta: GdState, context: MergeContext) -> GdState:
    table = _added(trunc_materialize(base.table, base.online), delta.table)
    online = None
    if base.online is not None and delta.online is not None:
        merged = _diff_online(base.online, delta.online, +1)
        online = attrs.evolve(
            merged,
            t=base.online.t + delta.online.t - float(np.float32(delta.online.initial_t)),
            sum_loss_since_last_dump=0.0,
            dump_interval=1.0,
            old_weighted_labeled_examples=0.0,
            current_pass=0,
            l1_state=None if base.online.l1_state is None else 0.0,
            l2_state=None if base.online.l2_state is None else 1.0,
        )
    return GdState(base.resume, online, table)


def _added(base: WeightTable, delta: WeightTable) -> WeightTable:
    """``combine_tables(base, delta, +1).nonzero()``, a block of rows at a time (both walked in
    lock step, :func:`vwmerge.plugin.walk_rows`): the same float32 sums over the union of rows
    (a row of one table adds +0 from the other), the rows with a value ≠ 0, nothing the size of
    the union but the result."""
    sources = [_sorted_rows(base), _sorted_rows(delta)]
    k = base.k

    def spread(block: RowBlock, i: int) -> np.ndarray:
        pos, rows = block.positions(i), np.ascontiguousarray(block.rows(i)[1].T)
        if len(pos) == block.size:
            return rows
        cols = np.zeros((k, block.size), np.float32)
        for j in range(k):
            cols[j][pos] = rows[j]
        return cols

    def merge_block(block: RowBlock) -> np.ndarray:
        total: np.ndarray = np.add(spread(block, 0), spread(block, 1), dtype=np.float32)
        return total

    return walk_rows(sources, base.bits, base.columns, merge_block, signed_zeros=True)


def scale_column(table: WeightTable, column: str, scale: float) -> WeightTable:
    """``table`` with one column multiplied by ``scale`` (float64 product, rounded to float32)."""
    values = np.array(table.values, dtype=np.float32, copy=True)
    i = table.columns.index(column)
    values[:, i] = (values[:, i].astype(np.float64) * scale).astype(np.float32)
    return WeightTable(table.index, values, table.bits, table.columns)


@hookimpl
def vwmerge_scale(reduction: StackEntry, delta: GdState, scale: float, context: MergeContext) -> GdState:
    """``--scale``: the weight column only.

    The adaptive column (Σg²) and the normalized column (largest |x| per feature) are statistics
    of the gradients and features the models saw, like the example counters: scaled, the next
    training run would take steps as if it had seen less data than it has. A server learning
    rate (FedOpt) moves the parameters; the optimizer's statistics stay what the clients measured.
    """
    return GdState(delta.resume, delta.online, scale_column(delta.table, "w", scale))


# --------------------------------------------------------------------------------------------
# Partial results: the same merge one input at a time (streaming, --jobs, dask). Sequentially
# (context.exact) every value is bit-identical to vwmerge_merge; in parallel the sums are float64
# and combine in any grouping (docs/scale.md gives the tolerance).
def _rows_mode(weights: ModelWeights, resume: bool, columns: tuple[str, ...]) -> str:
    """Which of vwmerge_merge's row merges applies: the same decision, taken per input."""
    if weights.explicit or weights.equal_fallback:
        return "weighted"
    return "adaptive" if resume and "adaptive" in columns else "simple"


#: An exact merge holds at most this many inputs, mapped but not yet summed, to walk their rows in
#: lock step when it finalizes (one pass over the rows); past this it sums what it holds and
#: goes on input by input as before (the exact adaptive path then takes a second pass). Each
#: held input whose rows view a mapped file keeps it mapped (and a file descriptor open): at most
#: a quarter of the process's open-file limit of those are held. Inputs whose rows are in memory
#: (small models read whole and kept by the scan's state cache, copies) hold no descriptor and
#: count only against :data:`HOLD_MAX_MEMORY`.
HOLD_MAX_INPUTS = 256
#: ... and at most this many bytes of held rows that are in memory rather than views of a
#: mapped file (--sparse_weights files, sorted when read; rows with pending truncation; small
#: models read whole).
HOLD_MAX_MEMORY = 1 << 30
#: In the walk, an input covering at least 1/_EXPAND of a block's positions is spread over all of
#: them (contiguous arithmetic, zeros where it has no row) rather than indexed row by row.
_EXPAND = 2
#: In the walk, a block of at least this many inputs with at most _BATCH_ROWS rows per input on
#: average is merged in one batch (their rows concatenated in input order, the sums done by
#: ``np.add.at``, which adds repeated positions in array order) rather than input by input.
_BATCH_MIN = 8
_BATCH_ROWS = 512


@functools.cache
def _descriptor_budget() -> int:
    """Held inputs a quarter of this process's open-file limit allows (a mapping keeps one open)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return HOLD_MAX_INPUTS
    return HOLD_MAX_INPUTS if soft == resource.RLIM_INFINITY else max(2, soft // 4)


T = TypeVar("T")


class Run(Generic[T]):
    """An immutable sequence whose concatenation costs the length of the right-hand side only.

    The items live in a list shared by the runs made from it; a run sees its first ``len`` items.
    ``a + b`` appends b's items to a's list in place when ``a`` is the longest run of that list
    (nothing else sees past its end), else copies: a fold's partials, each combined once into
    the accumulator, grow in linear time rather than quadratic (tuples of N inputs concatenated
    N times)."""

    __slots__ = ("_items", "_n")

    def __init__(self, items: Sequence[T] = (), *, _shared: list[T] | None = None, _n: int = -1) -> None:
        self._items: list[T] = _shared if _shared is not None else list(items)
        self._n = _n if _shared is not None else len(self._items)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[T]:
        items = self._items
        for i in range(self._n):
            yield items[i]

    def __add__(self, other: Run[T]) -> Run[T]:
        items = self._items if len(self._items) == self._n else self._items[: self._n]
        items.extend(other._items[: other._n])
        return Run(_shared=items, _n=len(items))

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (process executors) as its own items
        return (Run, (self._items[: self._n],))


#: Rows per chunk of packed rows (:class:`Packed`): about 1 MiB of a default model's rows.
_CHUNK_ROWS = 1 << 16


class _Chunk:
    """Consecutive inputs' rows, copied one after another: ``index[:rows]``, ``values[:rows]``;
    input ``inputs[j]``'s rows are ``starts[j]:starts[j + 1]``."""

    __slots__ = ("index", "inputs", "rows", "starts", "values")

    def __init__(self, dtype: Any, k: int, capacity: int) -> None:
        self.index = np.empty(capacity, dtype)  # (pages never written are never resident)
        self.values = np.empty((capacity, k), np.float32)
        self.rows = 0
        self.inputs = array.array("q")
        self.starts = array.array("q", [0])


class _Store:
    """The chunks behind :class:`Packed` values (shared, append-only)."""

    __slots__ = ("chunks", "count", "rows")

    def __init__(self) -> None:
        self.chunks: list[_Chunk] = []
        self.rows = 0
        self.count = 0

    def append(self, index: int, rows: tuple[np.ndarray, np.ndarray]) -> None:
        """Input ``index``'s rows after the others' (a new chunk when the last is full)."""
        idx, vals = rows
        n = len(idx)
        last = self.chunks[-1] if self.chunks else None
        if (
            last is None
            or len(last.index) - last.rows < n
            or (idx.dtype != last.index.dtype and not np.can_cast(idx.dtype, last.index.dtype))
        ):
            last = _Chunk(idx.dtype, vals.shape[1], max(_CHUNK_ROWS, n))
            self.chunks.append(last)
        last.index[last.rows : last.rows + n] = idx
        last.values[last.rows : last.rows + n] = vals
        last.rows += n
        last.inputs.append(index)
        last.starts.append(last.rows)
        self.rows += n
        self.count += 1


class Packed:
    """Held inputs whose rows are in memory, copied one after another in input order into
    shared chunks: an input costs its rows' bytes and 16 bytes, not a file's bytes, a parsed
    state and a dozen array objects (10,000 small models merge in about the memory of 200).

    Immutable like :class:`Run`: ``a + b`` appends b's rows to a's chunks in place when ``a`` is
    the longest value made from them (nothing sees past its end), else copies a first.
    """

    __slots__ = ("_single", "_store", "count", "rows")

    def __init__(
        self,
        store: _Store | None,
        rows: int,
        count: int,
        single: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self._store, self.rows, self.count, self._single = store, rows, count, single

    @classmethod
    def of(cls, index: int, rows: tuple[np.ndarray, np.ndarray]) -> Packed:
        """One input's rows, not yet copied (they are when it is added to another value)."""
        return cls(None, len(rows[0]), 1, (index, rows))

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Each chunk of this value's inputs, in input order: (row numbers, values rows × k,
        input positions, each input's first row in the chunk and the chunk's end)."""
        if self._single is not None:
            index, (idx, vals) = self._single
            yield idx, vals, np.array([index], np.int64), np.array([0, len(idx)], np.int64)
            return
        assert self._store is not None
        left = self.count
        for c in self._store.chunks:
            if left <= 0:
                return
            m = min(left, len(c.inputs))
            starts = np.frombuffer(c.starts, np.int64)[: m + 1]
            end = int(starts[-1])
            yield c.index[:end], c.values[:end], np.frombuffer(c.inputs, np.int64)[:m], starts
            left -= m

    def items(self) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
        """Each input's (position, (row numbers, values)): views of the chunks."""
        if self._single is not None:
            yield self._single
            return
        for index, values, inputs, starts in self.chunks():
            for j in range(len(inputs)):
                a, b = int(starts[j]), int(starts[j + 1])
                yield int(inputs[j]), (index[a:b], values[a:b])

    @property
    def nbytes(self) -> int:
        """What these rows cost in memory once packed (16 bytes an input besides)."""
        if self._single is not None:
            idx, vals = self._single[1]
            return int(idx.nbytes + vals.nbytes) + 16
        return sum(idx.nbytes + vals.nbytes + 16 * len(inputs) for idx, vals, inputs, _ in self.chunks())

    def _own(self) -> _Store:
        """A store whose end is this value's: the shared one, or a copy of this value's inputs."""
        st = self._store
        if st is not None and st.rows == self.rows and st.count == self.count:
            return st
        store = _Store()
        for index, rows in self.items():
            store.append(index, rows)
        return store

    def __add__(self, other: Packed) -> Packed:
        store = self._own()
        if other._single is not None:
            store.append(*other._single)
        else:
            for index, rows in other.items():
                store.append(index, rows)
        return Packed(store, store.rows, store.count)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (process executors) as its own rows
        return (_unpickle_packed, (list(self.items()),))


def _unpickle_packed(items: list[tuple[int, tuple[np.ndarray, np.ndarray]]]) -> Packed:
    store = _Store()
    for index, rows in items:
        store.append(index, rows)
    return Packed(store, store.rows, store.count)


@attrs.frozen(eq=False)
class Held:
    """An input an exact merge holds for the lock-step walk whose rows view its mapped file
    (holding them keeps the mapping and a file descriptor): its position, its rows (ascending)
    and the bytes of them that are copies in memory. Inputs whose rows are in memory are
    :class:`Packed` instead."""

    index: int
    rows: tuple[np.ndarray, np.ndarray]
    memory: int


@attrs.frozen(eq=False)
class GdPartial:
    """Some inputs merged: their row sums and the per-input facts the final state needs.

    Exactly one of ``sums``, ``rows``, held inputs (``held``, ``packed``) is set. A partial of one input holds its
    ``rows`` (index, values; views of its mapped file): they are summed into the accumulators, a
    block at a time, when the partial is combined or finalized. In an exact merge's first pass
    the inputs are held instead (unsummed: mapped ones in ``held``, their pages released; those
    in memory copied into ``packed``), and finalize walks all
    their rows in lock step (:func:`vwmerge.plugin.walk_rows`): one pass over the rows, on every
    core. ``base_rows`` (base mode, held inputs): the base's rows; each input's delta is taken
    a block at a time. ``sums`` accumulators per mode: ``weighted`` Σwᵢθᵢ per column (float64);
    ``simple`` Σ f32(pᵢθᵢ) per column (float32, exact) or Σpᵢθᵢ (float64); ``adaptive`` exact
    pass 0: A = Σaᵢ (float32, VW's order), exact pass 1: Σ f32(θᵢ·aᵢ/A) per column (Σ f32(θᵢ·pᵢ)
    where A = 0); associative: A, Σaᵢθᵢ per column, then Σpᵢθᵢ per column for the rows where
    A = 0 (float64).
    """

    resume: bool
    first: int
    onlines: Run[tuple[int, OnlineState]]
    pending: bool
    columns: tuple[str, ...]
    bits: int
    sums: RowSums | None
    rows: tuple[np.ndarray, np.ndarray] | None = None
    held: Run[Held] = attrs.field(factory=Run)
    base_rows: tuple[np.ndarray, np.ndarray] | None = None
    #: Of ``held``: how many view a mapped file, and their bytes in memory (kept as they are
    #: combined, so each combine checks the holding limits in constant time).
    held_mapped: int = 0
    held_memory: int = 0
    #: Held inputs whose rows are in memory (small models read whole, sorted copies), packed.
    packed: Packed | None = None
    #: Exact merges: the online states of the inputs combined so far, summed in input order as
    #: they come (``onlines`` then holds none); parallel merges keep them in ``onlines`` and sum
    #: them in input order when they finalize.
    online_sum: OnlineSum | None = None

    @property
    def holds(self) -> bool:
        """Whether the partial holds its inputs (unsummed) for the lock-step walk."""
        return bool(self.held) or self.packed is not None

    def held_inputs(self) -> list[tuple[int, tuple[np.ndarray, np.ndarray]]]:
        """The held inputs (position, rows) in input order, packed ones as views."""
        mapped = [(h.index, h.rows) for h in self.held]
        if self.packed is None:
            return mapped
        packed = list(self.packed.items())
        return sorted([*mapped, *packed], key=lambda item: item[0]) if mapped else packed


def _sorted_rows(table: WeightTable) -> tuple[np.ndarray, np.ndarray]:
    """Rows in ascending order, as they are when VW's dense writer wrote them (views, no copy);
    --sparse_weights files are canonicalized (copies)."""
    if table.is_ascending():
        return table.index, table.values
    canon = table.canonical()
    return canon.index, canon.values


def _vw_adaptive_scaled(values: np.ndarray, ai: int, totals: np.ndarray, p: np.float32) -> np.ndarray:
    """Rows' contributions on VW's adaptive path (§9.3), columns × rows, float32: f32(θ·f32(a/A)),
    and f32(θ·p) where A = 0 (rows no input updated keep their average initial value)."""
    ok = totals > 0
    all_ok = bool(ok.all())
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(values[:, ai], totals if all_ok else np.where(ok, totals, np.float32(1)), dtype=np.float32)
    out = np.empty((values.shape[1], len(values)), np.float32)
    for j in range(len(out)):  # column by column: no transposed copy of the rows first
        np.multiply(values[:, j], ratio, out=out[j], dtype=np.float32)
    if not all_ok:  # A = 0: the example-count weight p, as merge_tables_vw (VW zeroes w there)
        bad = ~ok
        for j in range(len(out)):
            out[j][bad] = np.multiply(values[bad, j], p, dtype=np.float32)
    return out


@attrs.frozen(eq=False)
class _Totals:
    """A block's adaptive totals A, with what every input's ratio a/A needs of them (computed
    once per block): where A > 0, whether it is not anywhere, and A with 1 where it is not (the
    divisor)."""

    ok: np.ndarray
    bad: bool  # A > 0 does not hold everywhere
    divisor: np.ndarray

    @classmethod
    def of(cls, totals: np.ndarray) -> _Totals:
        ok = totals > 0
        if bool(ok.all()):
            return cls(ok, False, totals)
        return cls(ok, True, np.where(ok, totals, np.float32(1)))


def _vw_adaptive_scaled_columns(columns: np.ndarray, ai: int, totals: _Totals, p: np.float32) -> np.ndarray:
    """:func:`_vw_adaptive_scaled` of rows given as columns × rows: the same operations on every
    element (f32(θ·f32(a/A)), f32(θ·p) where A = 0), without a row index."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(columns[ai], totals.divisor, dtype=np.float32)
    if totals.bad:  # each row's factor: f32(a/A), or p where A = 0 (one product either way)
        ratio = np.where(totals.ok, ratio, p)
    out: np.ndarray = np.multiply(columns, ratio, dtype=np.float32)
    return out


def _scaled_columns(values: np.ndarray, factor: Any, dtype: Any) -> np.ndarray:
    """factor·θ for every column, columns × rows, computed in ``dtype``."""
    out = np.empty((values.shape[1], len(values)), dtype)
    np.multiply(values.T, factor, out=out, dtype=dtype)
    return out


def _adaptive_statistics(values: np.ndarray, ai: int, p: float) -> np.ndarray:
    """Associative form of the adaptive path: A, Σaᵢθᵢ per column, Σpᵢθᵢ per column (used where
    A = 0)."""
    k = values.shape[1]
    stats = np.empty((1 + 2 * k, len(values)), np.float64)
    stats[0] = values[:, ai]
    for j in range(k):
        np.multiply(stats[0], values[:, j], out=stats[1 + j])
        np.multiply(values[:, j], p, out=stats[1 + k + j], dtype=np.float64)
    return stats


#: (rows, their values, the rows as array positions or None) -> accumulators × rows to add.
Contribution = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def _contribution(
    index: int, resume: bool, columns: tuple[str, ...], context: PartialContext
) -> tuple[Contribution, int, Any]:
    """What input ``index`` adds to the accumulators: (function of a block of its rows, number of
    accumulators, their dtype). The same decisions as vwmerge_merge, per input."""
    k, w = len(columns), context.weights
    ai = columns.index("adaptive") if "adaptive" in columns else -1
    mode = _rows_mode(w, resume, columns)
    if mode == "weighted":
        factor = float(w.values[index])
        return (lambda _, v, __: _scaled_columns(v, factor, np.float64)), k, np.float64
    if mode == "simple":  # VW's float32 weights; exactly: f32(θ·p) in float32
        dtype, p = (np.float32 if context.exact else np.float64), w.vw_f32[index]
        return (lambda _, v, __: _scaled_columns(v, p, dtype)), k, dtype
    p32 = w.vw_f32[index]
    if not context.exact:
        p64 = float(p32)
        return (lambda _, v, __: _adaptive_statistics(v, ai, p64)), 1 + 2 * k, np.float64
    if context.pass_index == 0:
        return (lambda _, v, __: v[:, ai][None, :]), 1, np.float32
    totals: RowSums = context.prior
    return (lambda r, v, pos: _vw_adaptive_scaled(v, ai, totals.lookup(r, positions=pos), p32)), k, np.float32


def _delta_rows(rows: tuple[np.ndarray, np.ndarray], base_rows: tuple[np.ndarray, np.ndarray], bits: int,
                columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A held input's rows minus the base's, whole (what vwmerge_subtract gives)."""
    mine = WeightTable(*rows, bits, columns, ascending=True)
    theirs = WeightTable(*base_rows, bits, columns, ascending=True)
    return _sorted_rows(combine_tables(mine, theirs, -1))


def _inputs(partial: GdPartial) -> list[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """The unsummed inputs of a partial (position, rows): its own rows, or the ones it holds;
    in base mode their deltas from the base."""
    if partial.rows is not None:
        return [(partial.first, partial.rows)]
    if partial.base_rows is None:
        return partial.held_inputs()
    base = partial.base_rows
    return [(i, _delta_rows(rows, base, partial.bits, partial.columns)) for i, rows in partial.held_inputs()]


def _summed(partial: GdPartial, context: PartialContext, sums: RowSums | None = None,
            in_place: bool = False) -> tuple[RowSums, bool]:  # fmt: skip
    """``sums`` (default: none yet) plus the partial's accumulators, and whether the result was
    made here (so may be updated in place). The partial's own sums are never modified."""
    fresh = False
    if partial.sums is not None:
        if sums is None:
            return partial.sums, False
        return sums.combine(partial.sums, in_place=in_place), True  # in place, or a new copy
    for index, rows in _inputs(partial):
        fn, m, dtype = _contribution(index, partial.resume, partial.columns, context)
        if sums is None:
            sums, in_place, fresh = RowSums.empty(partial.bits, m, dtype), True, True
        sums = sums.accumulate(*rows, fn, in_place=in_place)
        in_place = True
    assert sums is not None  # a partial has sums, rows or held inputs
    return sums, fresh or in_place


def _holding(context: PartialContext) -> bool:
    """Whether partials hold their inputs for the lock-step walk (exact merges, first pass)."""
    return context.exact and context.pass_index == 0


def _in_memory(rows: tuple[np.ndarray, np.ndarray]) -> int:
    """Bytes of rows that are copies in memory (views of a mapped file cost none)."""
    return sum(a.nbytes for a in rows if a.flags.owndata)


def _walked(partial: GdPartial, context: PartialContext) -> WeightTable:
    """The merged rows of the inputs ``partial`` holds, every input's rows walked in lock step a
    block at a time: per block A = Σaᵢ and the contributions on the adaptive path (input order,
    from +0.0, float32: the same operations, in the same order, as the two passes), the sums
    elsewhere; in base mode each input's delta f32(θᵢ − θ_b) over its and the base's rows."""
    columns, k, w = partial.columns, len(partial.columns), context.weights
    mode = _rows_mode(w, partial.resume, columns)
    ai = columns.index("adaptive") if mode == "adaptive" else -1
    dtype = np.float64 if mode == "weighted" else np.float32
    base = partial.base_rows
    if not partial.held and partial.packed is not None and (base is None or len(base[0]) <= _PACKED_BASE_ROWS):
        return _walked_packed(partial.packed, partial.bits, columns, mode, ai, dtype, context, base)
    held = partial.held_inputs()
    n = len(held)
    factors: list[Any] = [float(w.values[i]) if mode == "weighted" else w.vw_f32[i] for i, _ in held]
    factor_array = np.array(factors, dtype)
    sources = [rows for _, rows in held] + ([base] if base is not None else [])

    def expanded(block: RowBlock, i: int) -> np.ndarray:
        """Source i's rows in the block as columns × block.size, 0 where it has no row."""
        pos, vals = block.positions(i), block.rows(i)[1]
        rows = np.ascontiguousarray(vals.T)  # one pass over the (strided, unaligned) mapped rows
        if len(pos) == block.size:  # every position: its rows are the block (sorted, unique)
            return rows
        cols = np.zeros((k, block.size), np.float32)
        for j in range(k):
            cols[j][pos] = rows[j]  # a scatter from contiguous values: twice as fast
        return cols

    def block_inputs(block: RowBlock) -> list[tuple[np.ndarray | None, np.ndarray]]:
        """Each input in the block: (positions, rows × columns) where it covers few of the
        block's positions, else (None, columns × block.size) with zeros where it has no row
        (a zero row adds +0, which changes no sum, as the finish writes -0 as +0). In base mode
        the delta f32(θᵢ − θ_b) over every position (0 − θ_b where only the base has the row)."""
        if base is not None:
            theirs = expanded(block, n)
            return [(None, np.subtract(expanded(block, i), theirs, dtype=np.float32)) for i in range(n)]
        out: list[tuple[np.ndarray | None, np.ndarray]] = []
        for i in range(n):
            start, stop = block.cuts[i]
            if _EXPAND * (stop - start) >= block.size:
                out.append((None, expanded(block, i)))
            else:
                out.append((block.positions(i), block.rows(i)[1]))
        return out

    def merge_block(block: RowBlock) -> np.ndarray:
        with np.errstate(all="ignore"):  # (a block thread: non-finite rows are the core's to report)
            if base is None and n >= _BATCH_MIN and block_rows(block) <= _BATCH_ROWS * n:
                return batched_block(block)
            return merged_block(block)

    def block_rows(block: RowBlock) -> int:
        return sum(stop - start for start, stop in block.cuts)

    def batched_block(block: RowBlock) -> np.ndarray:
        """The block's sums with all inputs' rows at once: the same float operations as
        :func:`merged_block`'s row-by-row path, each position's additions in input order."""
        out = np.zeros((k, block.size), dtype)
        present = [i for i, (start, stop) in enumerate(block.cuts) if stop > start]
        if not present:
            return out
        pos = np.concatenate([block.positions(i) for i in present])
        vals = np.concatenate([block.rows(i)[1] for i in present])  # rows × k, input order
        factor = np.repeat(factor_array[present], [block.cuts[i][1] - block.cuts[i][0] for i in present])
        total = None
        if mode == "adaptive":
            total = np.zeros(block.size, np.float32)
            np.add.at(total, pos, np.ascontiguousarray(vals[:, ai]))  # A = Σaᵢ, from +0.0, in input order
        _add_contributions(out, pos, vals, factor, total, ai, dtype)
        return out

    def merged_block(block: RowBlock) -> np.ndarray:
        items = block_inputs(block)
        out = np.zeros((k, block.size), dtype)
        if mode == "adaptive":
            total = np.zeros(block.size, np.float32)
            for pos, vals in items:
                if pos is None:
                    np.add(total, vals[ai], out=total)
                else:
                    add_at(total, pos, vals[:, ai])
            block_totals = _Totals.of(total)
            for (pos, vals), p in zip(items, factors, strict=True):
                if pos is None:
                    np.add(out, _vw_adaptive_scaled_columns(vals, ai, block_totals, p), out=out)
                    continue
                for j, col in enumerate(_vw_adaptive_scaled(vals, ai, total[pos], p)):
                    add_at(out[j], pos, col)
            return out
        for (pos, vals), f in zip(items, factors, strict=True):
            if pos is None:
                np.add(out, np.multiply(vals, f, dtype=dtype), out=out)
                continue
            for j, col in enumerate(_scaled_columns(vals, f, dtype)):
                add_at(out[j], pos, col)
        return out

    return walk_rows(sources, partial.bits, columns, merge_block)


def _add_contributions(
    out: np.ndarray, pos: np.ndarray, vals: np.ndarray, factor: np.ndarray, totals: np.ndarray | None, ai: int,
    dtype: Any,
) -> None:  # fmt: skip
    """``out[:, pos] +=`` each row's contribution, rows in input order (``np.add.at`` adds repeated
    positions in array order): with ``totals`` (the adaptive path's A per position)
    f32(θ·f32(a/A)), or f32(θ·p) where A = 0; without, θ·factor in ``dtype``."""
    if totals is not None:
        a = np.ascontiguousarray(vals[:, ai])
        at = totals[pos]
        ok = at > 0
        ratio = np.divide(a, np.where(ok, at, np.float32(1)), dtype=np.float32)  # f32(a/A)
        ratio = np.where(ok, ratio, factor)  # p where A = 0
        contributions = np.multiply(vals, ratio[:, None], dtype=np.float32)
    else:
        contributions = np.multiply(vals, factor[:, None], dtype=dtype)
    for j in range(len(out)):
        np.add.at(out[j], pos, np.ascontiguousarray(contributions[:, j]))


#: Base mode walks packed inputs without an array per input only for a base of at most this
#: many rows: every input contributes at every base row (−θ_b where it has none), input by input.
_PACKED_BASE_ROWS = 1 << 14
#: Entries (an input's rows and the base's it lacks) per group in :func:`_packed_deltas`.
_PACKED_GROUP = 1 << 20


def _walked_packed(
    packed: Packed, bits: int, columns: tuple[str, ...], mode: str, ai: int, dtype: Any, context: PartialContext,
    base: tuple[np.ndarray, np.ndarray] | None = None,
) -> WeightTable:  # fmt: skip
    """:func:`_walked` of inputs that are all packed in memory, with no array per input: their
    rows, in input order, go through ``np.add.at`` a chunk at a time over the sorted union of
    their row numbers, so each position's additions are in input order from +0.0 (A first, then
    the contributions, float32 on the adaptive path): the operations of the walk's batched
    blocks, the same bytes. In base mode each input adds its delta f32(θᵢ − θ_b) at its rows and
    0 − θ_b at the base's rows it lacks (:func:`_packed_deltas`), as the walk spreads it; a
    position neither has adds +0, which changes no sum. The finish (rows kept, -0 as +0, the
    file's layout) is the walk's, over the union."""
    every = np.asarray(context.weights.values if mode == "weighted" else context.weights.vw_f32, dtype)
    indexes = [index for index, _, _, _ in packed.chunks()]
    if base is not None:
        indexes.append(np.asarray(base[0]))
    union = np.unique(np.concatenate(indexes))
    k = len(columns)
    theta_b = base_pos = None
    if base is not None:
        base_pos = np.searchsorted(union, np.asarray(base[0]))
        theta_b = np.zeros((len(union), k), np.float32)
        theta_b[base_pos] = base[1]

    def entries() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(positions, values rows × k, each row's weight factor), input order."""
        for index, vals, inputs, starts in packed.chunks():
            pos = np.searchsorted(union, index)
            if theta_b is None or base_pos is None:
                yield pos, vals, np.repeat(every[inputs], np.diff(starts))
            else:
                yield from _packed_deltas(pos, vals, every[inputs], starts, theta_b, base_pos)

    out = np.zeros((k, len(union)), dtype)
    with np.errstate(all="ignore"):  # (non-finite rows are the core's to report)
        total = np.zeros(len(union), np.float32) if mode == "adaptive" else None
        if total is not None:
            for pos, vals, _ in entries():
                np.add.at(total, pos, np.ascontiguousarray(vals[:, ai]))  # A = Σaᵢ, from +0.0, in input order
        for pos, vals, factor in entries():
            _add_contributions(out, pos, vals, factor, total, ai, dtype)

    def merge_block(block: RowBlock) -> np.ndarray:
        start, stop = block.cuts[0]
        if block.union is not None:  # sparse: the block's positions are the union's rows start..stop
            return out[:, start:stop]
        spread = np.zeros((k, block.size), dtype)
        spread[:, block.positions(0)] = out[:, start:stop]
        return spread

    return walk_rows([(union, np.zeros((len(union), 0), np.float32))], bits, columns, merge_block)


def _packed_deltas(
    pos: np.ndarray, vals: np.ndarray, factors: np.ndarray, starts: np.ndarray, theta_b: np.ndarray,
    base_pos: np.ndarray,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    """One chunk's inputs as base-mode deltas, a group of inputs at a time, input by input:
    f32(θᵢ − θ_b) at input i's rows (``pos``, ``vals``), then 0 − θ_b at each base row it lacks."""
    counts = np.diff(starts)
    m, nb, size = len(counts), len(base_pos), len(theta_b)
    g0 = 0
    while g0 < m:
        cum = np.cumsum(counts[g0:] + nb)
        g1 = g0 + max(1, int(np.searchsorted(cum, _PACKED_GROUP, side="right")))
        a, b = int(starts[g0]), int(starts[g1])
        owner = np.repeat(np.arange(g1 - g0), counts[g0:g1])
        p = pos[a:b]
        own = np.subtract(vals[a:b], theta_b[p], dtype=np.float32)
        lacking_owner = np.repeat(np.arange(g1 - g0), nb)
        lacking_pos = np.tile(base_pos, g1 - g0)
        lacks = ~np.isin(lacking_owner * size + lacking_pos, owner * size + p)
        lacking_owner, lacking_pos = lacking_owner[lacks], lacking_pos[lacks]
        lacked = np.subtract(np.float32(0), theta_b[lacking_pos], dtype=np.float32)  # 0 − θ_b: +0 stays +0
        all_owner = np.concatenate([owner, lacking_owner])
        order = np.argsort(all_owner, kind="stable")  # input order; an input's rows are distinct
        yield (
            np.concatenate([p, lacking_pos])[order],
            np.concatenate([own, lacked])[order],
            factors[g0:g1][all_owner[order]],
        )
        g0 = g1


def _adaptive_final(columns: tuple[str, ...]) -> Any:
    k = len(columns)

    def final(sums: np.ndarray) -> np.ndarray:
        total = sums[0]
        ok = total > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = sums[1 : 1 + k] / np.where(ok, total, 1.0)
        out = np.empty((k, sums.shape[1]), np.float32)
        for j in range(k):
            out[j] = np.where(ok, scaled[j], sums[1 + k + j])
        return out

    return final


def _finalized(reduction: StackEntry, partial: GdPartial, table: WeightTable, context: PartialContext) -> GdState:
    if partial.pending:
        context.warn(reduction, TRUNCATION_APPLIED)
    online = None
    if partial.resume:
        online = _online_total(partial.online_sum, partial.onlines)
    return GdState(partial.resume, online, table)


def _folded(acc: OnlineSum | None, onlines: Run[tuple[int, OnlineState]]) -> OnlineSum | None:
    """``acc`` (states summed so far, or none yet) with ``onlines`` added in input order."""
    for _, o in sorted(onlines, key=lambda item: item[0]):
        acc = OnlineSum.of(o) if acc is None else acc.add(o)
    return acc


def _online_total(acc: OnlineSum | None, onlines: Run[tuple[int, OnlineState]]) -> OnlineState | None:
    """``acc`` with ``onlines`` added in input order, merged."""
    total = _folded(acc, onlines)
    return total.merged() if total is not None else None


def _online_parts(
    left: GdPartial, right: GdPartial, context: PartialContext
) -> tuple[OnlineSum | None, Run[tuple[int, OnlineState]]]:
    """The online states of two partials combined: an exact merge sums them as they come (a
    state then is not kept), a parallel one keeps them for its finish to sum in input order."""
    if not context.exact:
        return left.online_sum, left.onlines + right.onlines
    acc = _folded(left.online_sum, left.onlines)
    if right.online_sum is not None:  # (an exact fold combines one input at a time: not reached)
        acc = right.online_sum if acc is None else acc.joined(right.online_sum)
    return _folded(acc, right.onlines), Run()


@hookimpl
def vwmerge_merge_partial(
    reduction: StackEntry, state: GdState, weight: float, index: int, context: PartialContext
) -> GdPartial:
    table = trunc_materialize(state.table, state.online)
    online = Run(((index, state.online),) if state.online is not None else ())
    pending = state.online is not None and state.online.pending_truncation
    rows = _sorted_rows(table)
    if _holding(context):
        return _holding_partial(state.resume, index, online, pending, table.columns, table.bits, rows)
    return GdPartial(state.resume, index, online, pending, table.columns, table.bits, None, rows)


def _holding_partial(
    resume: bool, index: int, onlines: Run[tuple[int, OnlineState]], pending: bool, columns: tuple[str, ...],
    bits: int, rows: tuple[np.ndarray, np.ndarray], base_rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> GdPartial:  # fmt: skip
    """A partial holding one input's rows for the walk: views of its mapped file (their pages
    released: read again a block at a time when the walk comes to them), or packed copies of
    rows in memory (the file's bytes and parsed state then go)."""
    if in_mapped_file(*rows):
        release_pages(*rows)
        h = Held(index, rows, _in_memory(rows))
        return GdPartial(resume, index, onlines, pending, columns, bits, None, held=Run((h,)), base_rows=base_rows,
                         held_mapped=1, held_memory=h.memory)  # fmt: skip
    packed = Packed.of(index, rows)
    return GdPartial(resume, index, onlines, pending, columns, bits, None, base_rows=base_rows,
                     held_memory=packed.nbytes, packed=packed)  # fmt: skip


@hookimpl
def vwmerge_merge_partial_delta(
    reduction: StackEntry, state: GdState, base: GdState, weight: float, index: int, context: PartialContext
) -> GdPartial:
    """Base mode: the partial of ``state − base``. Held inputs keep their rows and the base's,
    and the walk takes each delta a block at a time; otherwise the delta is taken whole."""
    if not _holding(context):
        delta = vwmerge_subtract(reduction, state, base, context)
        return vwmerge_merge_partial(reduction, delta, weight, index, context)
    _check_base_resume(state, base)
    rows = _sorted_rows(trunc_materialize(state.table, state.online))
    base_rows = _sorted_rows(trunc_materialize(base.table, base.online))
    online = _delta_online(state.online, base.online)
    onlines = Run(((index, online),) if online is not None else ())
    return _holding_partial(state.resume, index, onlines, False, state.table.columns, state.table.bits, rows, base_rows)


def _holdable(mapped: int, memory: int) -> bool:
    """Whether an exact merge may hold inputs of which ``mapped`` view a mapped file (each keeps
    a descriptor) and ``memory`` bytes are in memory."""
    return mapped <= min(HOLD_MAX_INPUTS, _descriptor_budget()) and memory <= HOLD_MAX_MEMORY


@hookimpl
def vwmerge_merge_combine(
    reduction: StackEntry, left: GdPartial, right: GdPartial, context: PartialContext
) -> GdPartial:
    if left.resume != right.resume:
        raise _resume_mismatch(right.first, right.resume, left.first, context)
    first = min(left.first, right.first)
    online_sum, onlines = _online_parts(left, right, context)
    pending = left.pending or right.pending
    if left.holds and right.holds:
        mapped, memory = left.held_mapped + right.held_mapped, left.held_memory + right.held_memory
        if _holdable(mapped, memory):
            packed = right.packed if left.packed is None else left.packed if right.packed is None else (
                left.packed + right.packed)  # fmt: skip
            return GdPartial(
                left.resume, first, onlines, pending, left.columns, left.bits, None, held=left.held + right.held,
                base_rows=left.base_rows if left.base_rows is not None else right.base_rows,
                held_mapped=mapped, held_memory=memory, packed=packed, online_sum=online_sum,
            )  # fmt: skip
    # Summed: one input at a time (or past the holding limits: what is held is summed now).
    sums, fresh = _summed(left, context, in_place=context.in_place)
    sums, _ = _summed(right, context, sums, in_place=fresh or context.in_place)
    return GdPartial(left.resume, first, onlines, pending, left.columns, left.bits, sums, online_sum=online_sum)


@hookimpl
def vwmerge_merge_finalize(reduction: StackEntry, partial: GdPartial, context: PartialContext) -> GdState | NextPass:
    if partial.holds and partial.sums is None and _holding(context):
        return _finalized(reduction, partial, _walked(partial, context), context)  # one pass
    sums, _ = _summed(partial, context)
    mode = _rows_mode(context.weights, partial.resume, partial.columns)
    if mode == "adaptive" and context.exact and context.pass_index == 0:
        return NextPass(sums)  # pass 1 scales each input by these float32 totals A
    final = _adaptive_final(partial.columns) if mode == "adaptive" and not context.exact else np.asarray
    return _finalized(reduction, partial, sums.finish(final, partial.columns), context)
