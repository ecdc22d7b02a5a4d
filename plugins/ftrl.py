"""ftrl, pistol, coin: VW's FTRL-family base learners (``ftrl.cc``; one learner, three algorithms).

The section is gd's layout (resume byte, online state with one per-model pair, rows to EOF) with
3 (Proximal-FTRL), 4 (PiSTOL) or 6 (coin betting) floats per row under save_resume, 1 float
(the weight) in predict-only files. VW refuses to merge these learners ("Bottom learner ... does
not have a merge function"); vwmerge merges each stored column by what it means:

========  =========================  ==========================================================
column    meaning                    merge
========  =========================  ==========================================================
w         the weight VW predicts     weighted mean (the merged model predicts like the average)
          with (``-t``)
z         pistol/coin: −Σg           weighted mean
z         Proximal-FTRL: Σg − Σσw    *recomputed*: z is the dual of w; its σw terms telescope so
                                     that z ≈ −w·(β+√n)/α. Averaging z of different models does
                                     not give back the merged w, so z is set such that FTRL's
                                     closed form gives back the merged w at the merged n (the
                                     weighted mean of z is kept where it already does, to float32
                                     rounding: k copies give z back)
Σg², Σ|g|  step-size statistics     weighted mean
wealth    coin: Σ −g·w (reward)      weighted mean
max|x|,   running maxima            maximum
max|g|
========  =========================  ==========================================================

The per-row statistics are the learner's state at one point, like gd's adaptive column (whose
VW rule, Σaᵢ²/A, gives a back for copies, not k·a); PiSTOL and coin betting recompute each
touched weight from them at the next update, so summing them would make k copies of a model
continue differently from the model (coin: the bet grows with the summed wealth). Averaged with
the merge's weights (example counts, or explicit ``--weights``), ``merge(m, …, m)`` is m and the
merged learner continues from the average. Only the shared example counters are summed (gd's
rule: the merged model has seen every input's examples).

Proximal-FTRL's constants (α, β, λ1, λ2) are not stored in the file. vwmerge reads them from the
options (``--ftrl_alpha``/``--ftrl_beta``/``--l1``/``--l2``, which ``vw_options`` can supply; VW's
defaults otherwise) and checks them against the rows, which satisfy
``|z| = λ1 + |w|·(β/α + λ2 + √n/α)`` exactly; when they do not fit, the constants are fitted
from the rows themselves (three unknowns, linear least squares) and a warning says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import structlog
from vwmerge.plugin import (
    IncompatibleModelsError,
    MergeContext,
    ModelWeights,
    Options,
    ReductionSpec,
    SectionIO,
    StackEntry,
    WeightTable,
    align,
    hookimpl,
    rank_of,
)
from vwmerge.plugins.gd import GdState, OnlineState, merge_online, read_gd_like, save_load_gd_like

log = structlog.get_logger("vwmerge")

#: Per-algorithm saved columns (save_resume) and how each one merges.
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "ftrl": (("w", "mean"), ("z", "dual"), ("sum_g2", "mean")),
    "pistol": (("w", "mean"), ("neg_sum_g", "mean"), ("sum_abs_g", "mean"), ("max_abs_x", "max")),
    "coin": (
        ("w", "mean"), ("neg_sum_g", "mean"), ("sum_abs_g", "mean"), ("max_abs_x", "max"),
        ("wealth", "mean"), ("max_abs_g", "max"),
    ),
}  # fmt: skip

#: VW's default (α, β) per algorithm when --ftrl_alpha/--ftrl_beta are not given.
DEFAULT_ALPHA_BETA = {"ftrl": (0.5, 1.0), "pistol": (1.0, 0.5), "coin": (4.0, 1.0)}

FTRL_OPTIONS = ("ftrl_alpha", "ftrl_beta")


def column_names(name: str, resume: bool) -> tuple[str, ...]:
    return tuple(c for c, _ in COLUMNS[name]) if resume else ("w",)


def column_rules(name: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    rules = dict(COLUMNS[name])
    return tuple(rules.get(c, "mean") for c in columns)


# --------------------------------------------------------------------------------------------
# Shared by every gd-layout bottom whose columns merge by a per-column rule (ftrl family, freegrad).
def read_single_state(io: SectionIO, reduction: StackEntry, columns: Any) -> GdState:
    """gd's layout, but these learners always write one per-model state (even under
    ``--per_model_save_load``), so the count is not taken from the stack."""
    return read_gd_like(io, attrs.evolve(reduction, above=1), columns)


def online_with_base(onlines: Sequence[OnlineState], base: OnlineState | None) -> OnlineState:
    """Counters summed (gd's rule); with a base model, ``base + Σ(oᵢ − base)``."""
    merged = merge_online(onlines)
    if base is None:
        return merged
    k = len(onlines) - 1
    n = len(base.normalized_sum_norm_x)
    return attrs.evolve(
        merged,
        normalized_sum_norm_x=tuple(
            merged.normalized_sum_norm_x[i] - k * base.normalized_sum_norm_x[i] for i in range(n)
        ),
        total_weight=tuple(merged.total_weight[i] - k * base.total_weight[i] for i in range(n)),
        t=merged.t - k * (base.t - float(np.float32(base.initial_t))),
        sum_loss=merged.sum_loss - k * base.sum_loss,
        weighted_labeled_examples=merged.weighted_labeled_examples - k * base.weighted_labeled_examples,
        weighted_labels=merged.weighted_labels - k * base.weighted_labels,
        weighted_unlabeled_examples=merged.weighted_unlabeled_examples - k * base.weighted_unlabeled_examples,
        example_number=(merged.example_number - k * base.example_number) % (1 << 64),
        total_features=(merged.total_features - k * base.total_features) % (1 << 64),
        min_label=min(merged.min_label, base.min_label),
        max_label=max(merged.max_label, base.max_label),
    )  # fmt: skip


def merge_columns(
    tables: Sequence[WeightTable], rules: Sequence[str], p: np.ndarray, base: WeightTable | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column merge over the union of rows (a missing row is all zeros, as in VW).

    ``mean``: Σ pᵢθᵢ (with a base: base + Σ pᵢ(θᵢ − base)); ``sum``: Σ θᵢ (base + Σ(θᵢ − base));
    ``max``: the maximum (these columns are ≥ 0); ``minpos``: the smallest positive value (0 if
    none). ``dual`` columns come back as the weighted mean; the caller recomputes them.
    Accumulated in float64, one input at a time (memory: the union, not models × union).
    """
    tabs = [t.canonical() for t in tables] + ([base.canonical()] if base is not None else [])
    union, pos = align(tabs)
    k = tabs[0].k
    w = np.asarray(p, np.float64)
    out = np.zeros((len(union), k), np.float64)
    minpos = np.full((len(union), k), np.inf)
    if base is not None:
        # base + Σ cᵢ(θᵢ − base) = base·(1 − Σcᵢ) + Σ cᵢθᵢ, where cᵢ = pᵢ (mean) or 1 (sum).
        bv, bp = tabs[-1].values.astype(np.float64), pos[-1]
        for j, rule in enumerate(rules):
            if rule in ("mean", "dual"):
                out[bp, j] = bv[:, j] * (1.0 - w.sum())
            elif rule == "sum":
                out[bp, j] = bv[:, j] * (1.0 - len(tables))
            elif rule == "max":
                out[bp, j] = bv[:, j]
            else:
                minpos[bp, j] = np.where(bv[:, j] > 0, bv[:, j], np.inf)
    for t, ps, wi in zip(tabs[: len(tables)], pos, w, strict=False):
        v = t.values.astype(np.float64)
        for j, rule in enumerate(rules):
            if rule in ("mean", "dual"):
                out[ps, j] += wi * v[:, j]
            elif rule == "sum":
                out[ps, j] += v[:, j]
            elif rule == "max":
                out[ps, j] = np.maximum(out[ps, j], v[:, j])
            elif rule == "minpos":
                minpos[ps, j] = np.minimum(minpos[ps, j], np.where(v[:, j] > 0, v[:, j], np.inf))
            else:  # pragma: no cover - a programming error in COLUMNS
                raise ValueError(rule)
    for j, rule in enumerate(rules):
        if rule == "minpos":
            out[:, j] = np.where(np.isfinite(minpos[:, j]), minpos[:, j], 0.0)
    return union, out


# --------------------------------------------------------------------------------------------
#: Relative distance within which a mean z already is the closed form's z (8 float32 ulps).
DUAL_ROUNDING = 8 * 2.0**-23


@attrs.frozen
class ProximalConstants:
    """FTRL-Proximal's closed form ``|z| = l1 + |w|·(c0 + s·√n)`` with c0 = β/α + λ2, s = 1/α."""

    l1: float
    c0: float
    s: float
    fitted: bool = False

    @classmethod
    def from_options(cls, options: Options) -> ProximalConstants:
        a0, b0 = DEFAULT_ALPHA_BETA["ftrl"]
        alpha = options.get_float("ftrl_alpha", a0)
        beta = options.get_float("ftrl_beta", b0)
        l1, l2 = options.get_float("l1", 0.0), options.get_float("l2", 0.0)
        if alpha == 0:
            raise options.invalid("ftrl_alpha", str(alpha), "is 0 (FTRL divides by it)")
        return cls(l1, beta / alpha + l2, 1.0 / alpha)

    def residual(self, w: np.ndarray, z: np.ndarray, n: np.ndarray) -> float:
        """Largest relative misfit on the rows with w ≠ 0 (0 when there are none)."""
        live = w != 0
        if not np.any(live):
            return 0.0
        aw, az, sn = np.abs(w[live]), np.abs(z[live]), np.sqrt(n[live])
        pred = self.l1 + aw * (self.c0 + self.s * sn)
        return float(np.max(np.abs(pred - az) / np.maximum(az, 1e-12)))

    @classmethod
    def fit(cls, w: np.ndarray, z: np.ndarray, n: np.ndarray) -> ProximalConstants | None:
        """Least squares over the live rows; None when they do not determine the constants
        (fewer than 3, or any of them not finite: a fit through NaN/inf means nothing)."""
        live = w != 0
        if int(np.count_nonzero(live)) < 3:
            return None
        aw, az = np.abs(w[live]), np.abs(z[live])
        with np.errstate(all="ignore"):
            sn = np.sqrt(n[live])
            design = np.stack([np.ones_like(aw), aw, aw * sn], axis=1)
        if not (np.isfinite(design).all() and np.isfinite(az).all()):
            return None
        try:
            coef, *_ = np.linalg.lstsq(design, az, rcond=None)
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(coef).all():
            return None
        fitted = cls(float(coef[0]), float(coef[1]), float(coef[2]), fitted=True)
        if fitted.s <= 0 or fitted.residual(w, z, n) > 1e-3:
            return None
        return fitted

    def dual(self, w: np.ndarray, n: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """The z that makes the closed form return ``w`` at ``n``. ``mean`` (the weighted mean of
        the inputs' z) is kept where it already does to float32 rounding (so k copies give z
        back bit for bit), and, clipped into the L1 dead zone, where w = 0."""
        z = -np.sign(w) * (self.l1 + np.abs(w) * (self.c0 + self.s * np.sqrt(n)))
        consistent = np.abs(z - mean) <= DUAL_ROUNDING * np.maximum(np.abs(z), np.abs(mean))
        dead = np.clip(mean, -self.l1, self.l1)
        dual: np.ndarray = np.where(w != 0, np.where(consistent, mean, z), dead)
        return dual


TOLERANCE = 1e-3


def proximal_constants(
    reduction: StackEntry, tables: Sequence[WeightTable], context: MergeContext
) -> ProximalConstants | None:
    """The constants that explain every input's rows: from the options, else fitted, else None."""
    opts = ProximalConstants.from_options(context.models[0].options)
    inputs = [t.values.astype(np.float64) for t in tables]
    if all(opts.residual(d[:, 0], d[:, 1], d[:, 2]) <= TOLERANCE for d in inputs):
        return opts
    stacked = np.vstack(inputs)
    fitted = ProximalConstants.fit(stacked[:, 0], stacked[:, 1], stacked[:, 2])
    if fitted is not None:
        alpha = 1.0 / fitted.s
        context.warn(
            reduction,
            "the FTRL rows do not fit --ftrl_alpha/--ftrl_beta/--l1/--l2 as given (VW does not store "
            "them); using constants fitted from the rows",
            alpha=round(alpha, 6), beta_over_alpha_plus_l2=round(fitted.c0, 6), l1=round(fitted.l1, 6),
        )  # fmt: skip
        return fitted
    context.warn(
        reduction,
        "cannot determine FTRL's constants from the options or the rows; z is the weighted mean "
        "of the inputs' z (pass the training --ftrl_alpha/--ftrl_beta/--l1/--l2 as VW options)",
    )
    return None


def merge_gd_like_columns(
    reduction: StackEntry,
    algorithm: str,
    states: Sequence[GdState],
    weights: ModelWeights,
    base: GdState | None,
    context: MergeContext,
    rules_for: Any,
) -> GdState:
    """The merge shared by ftrl/pistol/coin/freegrad: online state like gd, rows per column rule."""
    flags = [s.resume for s in states] + ([base.resume] if base is not None else [])
    if len(set(flags)) > 1:
        names = [*context.sources, "the base model"]
        kinds = ", ".join(f"{n}: {'save_resume' if f else 'predict-only'}" for n, f in zip(names, flags, strict=False))
        raise IncompatibleModelsError(
            f"{algorithm} models must all be saved the same way (save_resume or --predict_only_model); {kinds}"
        )
    tables = [s.table for s in states]
    cols = tables[0].columns
    rules = rules_for(cols)
    union, out = merge_columns(tables, rules, weights.values, base.table if base is not None else None)
    if "dual" in rules:
        j = rules.index("dual")
        consts = proximal_constants(reduction, tables, context)
        if consts is not None:
            out[:, j] = consts.dual(out[:, 0], out[:, cols.index("sum_g2")], out[:, j])
    table = WeightTable(union, out.astype(np.float32), tables[0].bits, cols).nonzero()
    online = None
    if states[0].resume:
        online = online_with_base(
            [s.online for s in states if s.online is not None], base.online if base is not None else None
        )
    return GdState(states[0].resume, online, table)


def describe_gd_like(state: GdState) -> dict[str, Any]:
    out: dict[str, Any] = {"save_resume": state.resume, "weights": state.table.summary()}
    if state.online is not None:
        out["online"] = attrs.asdict(state.online)
    return out


# --------------------------------------------------------------------------------------------
@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    desc = {
        "ftrl": "Proximal-FTRL base learner (w, z, Σg² per row)",
        "pistol": "PiSTOL base learner (w, −Σg, Σ|g|, max|x| per row)",
        "coin": "coin-betting base learner (w, −Σg, Σ|g|, max|x|, wealth, max|g| per row)",
    }
    return [
        ReductionSpec(
            name=name,
            rank=rank_of("ftrl"),
            triggers=(name,),
            options=FTRL_OPTIONS,
            section=True,
            bottom=True,
            description=desc[name],
        )
        for name in COLUMNS
    ]


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: GdState | None) -> GdState | None:
    def columns(options: Options, resume: bool) -> tuple[str, ...]:
        return column_names(reduction.name, resume)

    return save_load_gd_like(io, reduction, state, columns, read_single_state)


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[GdState],
    weights: ModelWeights,
    base: GdState | None,
    context: MergeContext,
) -> GdState:
    return merge_gd_like_columns(
        reduction, reduction.name, states, weights, base, context, lambda cols: column_rules(reduction.name, cols)
    )


@hookimpl
def vwmerge_example_count(reduction: StackEntry, state: GdState) -> float | None:
    return state.online.weighted_labeled_examples if state.online is not None else None


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: GdState) -> dict[str, Any]:
    return describe_gd_like(state)
