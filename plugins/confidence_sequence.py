"""VW's ``confidence_sequence_robust`` estimator as stored by epsilon_decay and automl.

A helper module shared by :mod:`vwmerge.plugins.epsilon_decay` and
:mod:`vwmerge.plugins.automl`; it declares no reductions. Layout (``confidence_sequence_robust.cc``)::

    CSR = u64 update_count; f64 last_w; f64 last_r; lower: CDB; upper: CDB
    CDB = u64 t; GT
    GT  = f64 sum_x; f64 sum_low_v; f64 sum_mid_v; u64 t;
          u32 H; H × { u64 bucket; bool flag; f64 value }     (std::map, ascending key)

Every statistic except ``last_w``/``last_r`` is a running sum over the updates, so estimators of
the same sub-model merge by summing them (exact without discounting), histogram buckets summed
by key. ``last_w``/``last_r`` are the most recent update: taken from one chosen input.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
from vwmerge.plugin import Reader, Writer

#: One histogram entry as stored: key (bucket, flag), value. Packed, little-endian: 17 bytes.
HISTO_DTYPE = np.dtype([("bucket", "<u8"), ("flag", "u1"), ("value", "<f8")])
U64 = 1 << 64


@attrs.frozen(eq=False)
class GTilde:
    sum_x: float
    sum_low_v: float
    sum_mid_v: float
    t: int
    histo: np.ndarray  #: HISTO_DTYPE, ascending (bucket, flag)


@attrs.frozen(eq=False)
class CountableDiscrete:
    t: int
    gt: GTilde


@attrs.frozen(eq=False)
class ConfidenceSequence:
    update_count: int
    last_w: float
    last_r: float
    lower: CountableDiscrete
    upper: CountableDiscrete


def _read_gt(r: Reader) -> GTilde:
    sx, low, mid = r.f64("g_tilde sum_x"), r.f64("g_tilde sum_low_v"), r.f64("g_tilde sum_mid_v")
    t = r.u64("g_tilde t")
    n = r.count("g_tilde histogram", HISTO_DTYPE.itemsize)
    return GTilde(sx, low, mid, t, r.array(HISTO_DTYPE, n, "g_tilde histogram"))


def _read_cdb(r: Reader) -> CountableDiscrete:
    t = r.u64("countable_discrete t")
    return CountableDiscrete(t, _read_gt(r))


def read_cs(r: Reader) -> ConfidenceSequence:
    n = r.u64("confidence sequence update_count")
    w, rr = r.f64("confidence sequence last_w"), r.f64("confidence sequence last_r")
    return ConfidenceSequence(n, w, rr, _read_cdb(r), _read_cdb(r))


def _write_cdb(w: Writer, c: CountableDiscrete) -> None:
    w.u64(c.t)
    w.f64(c.gt.sum_x)
    w.f64(c.gt.sum_low_v)
    w.f64(c.gt.sum_mid_v)
    w.u64(c.gt.t)
    w.u32(len(c.gt.histo))
    w.array(c.gt.histo, HISTO_DTYPE)


def write_cs(w: Writer, cs: ConfidenceSequence) -> None:
    w.u64(cs.update_count)
    w.f64(cs.last_w)
    w.f64(cs.last_r)
    _write_cdb(w, cs.lower)
    _write_cdb(w, cs.upper)


# --------------------------------------------------------------------------------------------
def _count(values: Sequence[int], base: int | None) -> int:
    total = sum(values) if base is None else base + sum(v - base for v in values)
    return min(max(total, 0), U64 - 1)


def _real(values: Sequence[float], base: float | None) -> float:
    return float(sum(values)) if base is None else base + float(sum(v - base for v in values))


def _histo(histos: Sequence[np.ndarray], base: np.ndarray | None) -> np.ndarray:
    """Σ histograms by key (base + Σ(hᵢ − base) with a base), keys in std::map order."""
    parts = list(histos)
    signs = [1.0] * len(parts)
    if base is not None:
        parts.append(base)
        signs.append(1.0 - len(histos))
    allh = np.concatenate(parts) if parts else np.zeros(0, HISTO_DTYPE)
    if not len(allh):
        return np.zeros(0, HISTO_DTYPE)
    vals = np.concatenate([p["value"] * s for p, s in zip(parts, signs, strict=True)])
    keys = np.stack([allh["bucket"], allh["flag"].astype(np.uint64)], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    summed = np.zeros(len(uniq), np.float64)
    np.add.at(summed, inverse.reshape(-1), vals)
    out = np.zeros(len(uniq), HISTO_DTYPE)
    out["bucket"], out["flag"], out["value"] = uniq[:, 0], uniq[:, 1].astype(np.uint8), summed
    return out


def _combine_cdb(cdbs: Sequence[CountableDiscrete], base: CountableDiscrete | None) -> CountableDiscrete:
    gts = [c.gt for c in cdbs]
    bg = base.gt if base is not None else None
    gt = GTilde(
        _real([g.sum_x for g in gts], bg.sum_x if bg else None),
        _real([g.sum_low_v for g in gts], bg.sum_low_v if bg else None),
        _real([g.sum_mid_v for g in gts], bg.sum_mid_v if bg else None),
        _count([g.t for g in gts], bg.t if bg else None),
        _histo([g.histo for g in gts], bg.histo if bg else None),
    )
    return CountableDiscrete(_count([c.t for c in cdbs], base.t if base else None), gt)


def combine(
    states: Sequence[ConfidenceSequence], base: ConfidenceSequence | None, last_from: int
) -> ConfidenceSequence:
    """Sum the statistics of one estimator over the inputs (relative to ``base`` if given)."""
    src = states[last_from]
    return ConfidenceSequence(
        _count([s.update_count for s in states], base.update_count if base else None),
        src.last_w,
        src.last_r,
        _combine_cdb([s.lower for s in states], base.lower if base else None),
        _combine_cdb([s.upper for s in states], base.upper if base else None),
    )


def summary(cs: ConfidenceSequence) -> dict[str, float | int]:
    return {"update_count": cs.update_count, "lower_t": cs.lower.t, "upper_t": cs.upper.t}
