"""The other base learners VW cannot merge: svrg, OjaNewton, cbzo, bfgs, lda, rank (gd_mf).

Layouts (VW 9.11, verified by parsing files VW wrote):

* ``svrg``, ``OjaNewton``: gd's layout (resume byte, online state with one per-model pair) but
  every row carries the weight only (SVRG's stable point and Oja's sketch are not saved).
  Merged exactly like gd's plain-SGD path (example-count weights; base mode by add/subtract).
* ``cbzo``: rows ``index, w`` only; no resume byte, no counters.
* ``bfgs`` (``--bfgs``/``--conjugate_gradient``, predict-only files only): a bool, then either
  ``index, w`` rows or, when it is true, regularizer rows ``u32 index < 2·2^bits, f32``.
* ``lda``: dense: for every row 0..2^bits−1 ``u64 index`` and one float per topic (the header's
  ``lda`` field); the topic-word variational parameters λ.
* ``rank`` (``--rank r``): dense: every row ``u64 index`` and 2r+1 floats (linear weight, then
  the r left and r right factors).

cbzo, bfgs, lda and rank record no example count, so unless explicit weights are given the
inputs are weighted equally (with the core's warning). Their parameters are averaged. For lda
and rank this is meaningful because VW initializes every row deterministically from its index,
so independently trained models start from the same point (as in federated averaging); the lda
merge warns when the inputs' topics look permuted relative to each other, since averaging
non-corresponding topics mixes them. Dense learners must write every row (a missing row would be
re-initialized randomly by VW), so the merged table keeps all rows, zeros included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from vwmerge.plugin import (
    IncompatibleModelsError,
    MergeContext,
    ModelFormatError,
    ModelWeights,
    Options,
    Reader,
    ReductionSpec,
    SectionIO,
    StackEntry,
    WeightTable,
    Writer,
    align,
    hookimpl,
    rank_of,
)
from vwmerge.plugins import gd
from vwmerge.plugins.ftrl import read_single_state
from vwmerge.plugins.gd import GdState, combine_tables, merge_tables_exact, save_load_gd_like

GD_LIKE = ("svrg", "OjaNewton")
ROWS_ONLY = ("cbzo",)


@attrs.frozen(eq=False)
class RowsState:
    """A base learner whose section is rows only (``flag`` is bfgs's leading bool, else None)."""

    table: WeightTable
    flag: bool | None = None
    dense: bool = False


# --------------------------------------------------------------------------------------------
#: lda rows of files before this version have a u32 index (VW: "support 32bit build models").
LDA_U64_INDEX_SINCE = (8, 0, 3)


def _dense_rows_dtype(k: int, index: str = "<u8") -> np.dtype:
    return np.dtype([("i", index), ("v", "<f4", (k,))])


def _dense_index(name: str, version: tuple[int, int, int]) -> str:
    return "<u4" if name == "lda" and version < LDA_U64_INDEX_SINCE else "<u8"


def read_dense_rows(r: Reader, bits: int, columns: tuple[str, ...], what: str, index: str = "<u8") -> WeightTable:
    """``u64 index, k × f32`` rows to EOF (lda, rank), with the same checks as gd's rows.

    ``index`` ``"<u4"``: the u32 row index of lda in files before 8.0.3."""
    width = "u32" if index == "<u4" else "u64"
    rows = r.rows_to_end(
        _dense_rows_dtype(len(columns), index), f"{what} rows", f"{width} index and {len(columns)} float(s)"
    )
    if len(rows) and bits < 64 and int(rows["i"].max()) >= (1 << bits):
        raise r.fail(f"corrupt {what} rows: row index {int(rows['i'].max())} is not below 2^{bits}")
    r.check_finite(rows["i"], rows["v"], columns, f"non-finite {what} weight")
    return WeightTable(rows["i"], rows["v"], bits, columns)


def write_dense_rows(w: Writer, table: WeightTable, index: str = "<u8") -> None:
    if index == "<u4" and len(table) and int(table.index.max()) > 0xFFFFFFFF:
        raise ValueError("a row index does not fit the u32 index of this file version")
    out = np.empty(len(table), _dense_rows_dtype(table.k, index))
    out["i"] = table.index
    out["v"] = table.values
    w.array(out)


_REG_DTYPE = np.dtype([("i", "<u4"), ("v", "<f4", (1,))])


def _read_regularizer(r: Reader, bits: int) -> WeightTable:
    rows = r.rows_to_end(_REG_DTYPE, "bfgs regularizer rows", "u32 index and 1 float")
    if len(rows) and int(rows["i"].max()) >= (2 << bits):
        raise r.fail(f"corrupt bfgs regularizer: index {int(rows['i'].max())} is not below 2·2^{bits}")
    r.check_finite(rows["i"], rows["v"], ("regularizer",), "non-finite bfgs regularizer")
    return WeightTable(rows["i"], rows["v"], bits, ("regularizer",))


def _write_regularizer(w: Writer, table: WeightTable) -> None:
    out = np.empty(len(table), _REG_DTYPE)
    out["i"] = table.index
    out["v"] = table.values
    w.array(out)


#: Floats per row a dense file without rows may claim (one with rows must fit a row in the file).
MAX_EMPTY_DENSE_COLUMNS = 1 << 16


def _check_row_width(r: Reader, k: int, what: str, index: str = "<u8") -> None:
    """Refuse a row width (``k`` floats after the row index) the file cannot hold, before any
    per-column allocation: a dense file holds whole rows, so one row must fit in what remains."""
    row = np.dtype(index).itemsize + 4 * k
    if (r.remaining and row > r.remaining) or (not r.remaining and k > MAX_EMPTY_DENSE_COLUMNS):
        raise r.fail(
            f"corrupt: {what} means rows of {k} floats ({row} bytes each), but only {r.remaining} bytes "
            f"remain at offset {r.pos}"
        )


def _rank(options: Options) -> int:
    return options.get_int("rank", 0)


def rank_columns(options: Options) -> tuple[str, ...]:
    r = _rank(options)
    return ("w", *(f"left{i}" for i in range(r)), *(f"right{i}" for i in range(r)))


def lda_columns(topics: int) -> tuple[str, ...]:
    return tuple(f"topic{i}" for i in range(topics))


# --------------------------------------------------------------------------------------------
@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    def spec(name: str, setup: str, triggers: tuple[str, ...], options: tuple[str, ...], desc: str) -> ReductionSpec:
        return ReductionSpec(
            name=name, rank=rank_of(setup), triggers=triggers, options=options, section=True, bottom=True,
            description=desc,
        )  # fmt: skip

    return [
        spec("svrg", "svrg", ("svrg",), ("stage_size",), "stochastic variance-reduced gradient (weights only)"),
        spec("OjaNewton", "OjaNewton", ("OjaNewton",),
             ("sketch_size", "epoch_size", "alpha", "alpha_inverse", "learning_rate_cnt", "normalize", "random_init"),
             "online Newton with Oja's sketch (weights only; the sketch is not saved)"),
        spec("cbzo", "cbzo", ("cbzo",), ("policy", "radius"), "continuous-action zeroth-order bandit (weights)"),
        spec("bfgs", "bfgs", ("bfgs", "conjugate_gradient"), ("hessian_on", "mem"),
             "batch L-BFGS / conjugate gradient (predict-only files)"),
        spec("lda", "lda", ("lda",), ("lda_alpha", "lda_rho", "lda_D", "lda_epsilon", "minibatch", "math-mode",
                                      "metrics"),
             "online LDA (dense topic-word parameters)"),
        spec("rank", "gd_mf", ("rank",), (), "matrix factorization --rank (dense: w and 2r factors per row)"),
    ]  # fmt: skip


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: Any) -> Any:
    name = reduction.name
    model = io.model
    if name in GD_LIKE:
        return save_load_gd_like(io, reduction, state, lambda options, resume: ("w",), read_single_state)
    if name in ROWS_ONLY:
        if io.reading:
            return RowsState(WeightTable.read(io.r, model.bits, ("w",)))
        state.table.write(io.w)
        return None
    if name == "bfgs":
        if io.reading:
            flag = io.r.boolean("bfgs regularizer flag")
            table = _read_regularizer(io.r, model.bits) if flag else WeightTable.read(io.r, model.bits, ("w",))
            return RowsState(table, flag)
        io.w.boolean(bool(state.flag))
        if state.flag:
            _write_regularizer(io.w, state.table)
        else:
            state.table.write(io.w)
        return None
    # dense learners
    if io.reading:
        index = _dense_index(name, model.version)
        if name == "lda":
            topics = model.header.lda
            if topics <= 0:
                raise ModelFormatError("the options say --lda but the header's lda field is 0", source=model.source)
            _check_row_width(io.r, topics, "the header's lda field", index)
            cols = lda_columns(topics)
        else:
            rank = _rank(model.options)
            if rank <= 0:
                raise ModelFormatError("--rank needs a positive rank", source=model.source)
            _check_row_width(io.r, 1 + 2 * rank, f"--rank {rank}", index)
            cols = rank_columns(model.options)
        return RowsState(read_dense_rows(io.r, model.bits, cols, name, index), dense=True)
    write_dense_rows(io.w, state.table, _dense_index(name, model.version))
    return None


# --------------------------------------------------------------------------------------------
def _merge_rows(states: Sequence[RowsState], weights: ModelWeights) -> WeightTable:
    """θ = Σ wᵢθᵢ over the union of rows, accumulated in float64 and rounded once."""
    tables = [s.table for s in states]
    if not states[0].dense:
        return merge_tables_exact(tables, weights.values)
    # merge_tables_exact drops all-zero rows; dense learners must keep every row.
    tabs = [t.canonical() for t in tables]
    union, pos = align(tabs)
    acc = np.zeros((len(union), tabs[0].k), np.float64)
    for t, ps, wi in zip(tabs, pos, weights.values, strict=True):
        acc[ps] += t.values.astype(np.float64) * float(wi)
    return WeightTable(union, acc.astype(np.float32), tabs[0].bits, tabs[0].columns)


def _lda_alignment(reduction: StackEntry, states: Sequence[RowsState], context: MergeContext) -> None:
    """Warn when an input's topics do not correspond one-to-one to the first input's."""
    first = states[0].table.canonical()
    for src, st in zip(context.sources[1:], states[1:], strict=True):
        other = st.table.canonical()
        union, (pa, pb) = align([first, other])
        a = np.zeros((len(union), first.k))
        b = np.zeros((len(union), first.k))
        a[pa], b[pb] = first.values, other.values
        a /= np.maximum(np.linalg.norm(a, axis=0), 1e-30)
        b /= np.maximum(np.linalg.norm(b, axis=0), 1e-30)
        best = np.argmax(a.T @ b, axis=1)
        if not np.array_equal(best, np.arange(first.k)):
            context.warn(
                reduction,
                "lda topics do not correspond one-to-one between the inputs (topic i of one model is "
                "closest to another topic of the other); averaging mixes different topics",
                model=src, first=context.sources[0], best_match=best.tolist(),
            )  # fmt: skip


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[Any],
    weights: ModelWeights,
    base: Any,
    context: MergeContext,
) -> Any:
    if reduction.name in GD_LIKE:
        return gd.vwmerge_merge(reduction=reduction, states=states, weights=weights, base=base, context=context)
    if reduction.name == "bfgs" and len({s.flag for s in states}) > 1:
        pairs = zip(context.sources, states, strict=True)
        kinds = (f"{src}: {'regularizer' if s.flag else 'weights'}" for src, s in pairs)
        raise IncompatibleModelsError(f"bfgs files differ in kind ({', '.join(kinds)})")
    if reduction.name == "lda":
        _lda_alignment(reduction, states, context)
    return RowsState(_merge_rows(states, weights), states[0].flag, states[0].dense)


def _combine(a: RowsState, b: RowsState, sign: float) -> RowsState:
    if a.flag != b.flag:
        raise IncompatibleModelsError("the base model and the models differ in kind (bfgs regularizer vs weights)")
    table = combine_tables(a.table, b.table, sign)
    return RowsState(table if a.dense else table.nonzero(), a.flag, a.dense)


@hookimpl
def vwmerge_subtract(reduction: StackEntry, state: Any, base: Any, context: MergeContext) -> Any:
    """Every learner here is additive: gd's rule for the gd-layout ones, rows elementwise else."""
    if reduction.name in GD_LIKE:
        return gd.vwmerge_subtract(reduction=reduction, state=state, base=base, context=context)
    return _combine(state, base, -1)


@hookimpl
def vwmerge_add(reduction: StackEntry, base: Any, delta: Any, context: MergeContext) -> Any:
    if reduction.name in GD_LIKE:
        return gd.vwmerge_add(reduction=reduction, base=base, delta=delta, context=context)
    return _combine(base, delta, +1)


@hookimpl
def vwmerge_scale(reduction: StackEntry, delta: Any, scale: float, context: MergeContext) -> Any:
    """gd's rule for the gd-layout learners; the others store learned parameters only (bfgs's
    weights, lda's topic-word parameters, --rank's weights and factors, cbzo's weights): every
    column is scaled."""
    if reduction.name in GD_LIKE:
        return gd.vwmerge_scale(reduction=reduction, delta=delta, scale=scale, context=context)
    values = (delta.table.values.astype(np.float64) * scale).astype(np.float32)
    table = WeightTable(delta.table.index, values, delta.table.bits, delta.table.columns)
    return RowsState(table, delta.flag, delta.dense)


@hookimpl
def vwmerge_example_count(reduction: StackEntry, state: Any) -> float | None:
    if isinstance(state, GdState) and state.online is not None:
        return state.online.weighted_labeled_examples
    return None


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: Any) -> dict[str, Any]:
    if isinstance(state, GdState):
        out: dict[str, Any] = {"save_resume": state.resume, "weights": state.table.summary()}
        if state.online is not None:
            out["online"] = attrs.asdict(state.online)
        return out
    out = {"weights": state.table.summary()}
    if state.flag is not None:
        out["regularizer"] = state.flag
    return out
