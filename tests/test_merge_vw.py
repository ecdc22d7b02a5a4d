"""vwmerge's merge against VW's own ``merge_models``, where VW is right.

Three models per configuration, trained by VW 9.11.9 on different data and different numbers of
examples, are merged by both. The weight rows must be equal bit for bit, the counters equal
except for the documented ``t`` difference, and the merged file vwmerge writes must make VW
predict exactly what VW's merged model predicts. Configurations where VW is wrong (other bits,
predict-only, pending l1/l2 state) are in ``test_vw_defects.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import pytest
import vwmerge
from helpers import vwtrain
from helpers.models import Models
from vwmerge.format.options import Options
from vwmerge.format.weights import WeightTable


@attrs.frozen
class MergeCase:
    args: str
    #: Documented reason why vwmerge's file differs from VW's, or None: then the whole merged
    #: file must be byte-identical to VW's.
    file_differs: str | None = None

    @property
    def sgd_like(self) -> bool:
        opts = self.args.split()
        return ("--sgd" in opts or "--invariant" in opts) and not ("--adaptive" in opts or "--normalized" in opts)

    @property
    def normalized_only(self) -> bool:
        return "--normalized" in self.args.split() and "--adaptive" not in self.args.split()

    def __str__(self) -> str:
        return self.args or "default"


T_ONCE = "t counts initial_t once"
CASES: list[MergeCase] = [
    MergeCase(""),
    MergeCase("--sgd", T_ONCE),
    MergeCase("--adaptive"),
    MergeCase("--normalized", "the normalized column is kept"),
    MergeCase("--invariant", T_ONCE),
    MergeCase("--adaptive --normalized"),
    MergeCase("--sparse_weights"),
    MergeCase("--sparse_weights --sgd", T_ONCE),
    MergeCase("-b 18"),
    MergeCase("--loss_function logistic"),
    MergeCase("--loss_function hinge"),
    MergeCase("--loss_function quantile"),
    MergeCase("-q ab"),
    MergeCase("--cubic abb"),
    MergeCase("--interactions ab"),
    MergeCase("--noconstant"),
    MergeCase("--id abc", "--id is kept"),
    MergeCase("--oaa 3"),
    MergeCase("--csoaa 3"),
    MergeCase("--ect 3"),
    MergeCase("--binary"),
    MergeCase("--nn 3", "the inputs' --random_seed state is kept"),
    MergeCase("--lrq ab2", "options are not doubled"),
    MergeCase("--multilabel_oaa 3"),
    MergeCase("--csoaa_ldf m"),
    *(MergeCase(f"--cb_adf --cb_type {t}") for t in ("ips", "dm", "dr", "mtr", "sm")),
    MergeCase("--cb_explore_adf"),
    MergeCase("--cb 3"),
    MergeCase("--cb_explore 3"),
    MergeCase("--oaa 3 --per_model_save_load"),
    MergeCase("--cb_adf --cb_type dr --per_model_save_load"),
    MergeCase("--csoaa 3 --per_model_save_load"),
    MergeCase("--ect 5 --per_model_save_load"),
    MergeCase("--lrq ab2 --per_model_save_load", "options are not doubled"),
]
#: Configurations whose merged weight rows (every saved column) are bit-identical to VW's;
#: for ``--normalized`` alone the weight column is, and the normalized column is deliberately not.
BIT_IDENTICAL = [c for c in CASES if not c.normalized_only]
#: Configurations whose whole merged file is byte-identical to VW's.
FILE_IDENTICAL = [c for c in CASES if c.file_differs is None]


def _rows_equal(a: WeightTable, b: WeightTable) -> None:
    a, b = a.canonical(), b.canonical()
    np.testing.assert_array_equal(a.index, b.index)
    assert a.columns == b.columns
    assert a.values.tobytes() == b.values.tobytes()


def _w_rows(t: WeightTable) -> WeightTable:
    """The rows VW would write if only the weight column counted (it zeroes the others)."""
    t = t.canonical()
    keep = t.column("w") != 0
    return WeightTable(t.index[keep], t.values[keep][:, :1], t.bits, ("w",))


def _check_online(ours: vwmerge.Workspace, vw: vwmerge.Workspace, n_models: int, sgd_like: bool) -> None:
    """Equal counters, except ``t``: VW adds a fresh initial_t on top of every input's own."""
    o, v = ours.state("gd").online, vw.state("gd").online
    init = float(np.float32(o.initial_t))
    if sgd_like:
        assert init == 1.0  # VW's sgd-like default, so the difference below is not zero
        assert v.t == o.t + n_models * init
    else:
        assert init == 0.0
        assert v.t == o.t
    assert attrs.evolve(o, t=0.0) == attrs.evolve(v, t=0.0)


def _predictions_equal(models: Models, args: str, ours: vwmerge.Workspace, vw_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "ours.model"
    ours.save(out)
    examples = vwtrain.test_examples(args)
    assert vwtrain.predict(out, examples) == vwtrain.predict(vw_path, examples)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_merge_equals_vw(models: Models, case: MergeCase, tmp_path: Path) -> None:
    paths = models.inputs(case.args, 3)
    inputs = [vwmerge.load(p) for p in paths]
    vw_path = models.vw_merged(paths)
    vw = vwmerge.load(vw_path)
    ours = vwmerge.merge(inputs)

    if case.normalized_only:
        _rows_equal(_w_rows(ours.state("gd").table), _w_rows(vw.state("gd").table))
        assert not np.any(vw.state("gd").table.column("normalized"))  # VW zeroes it
        assert np.all(ours.state("gd").table.column("normalized") > 0)  # vwmerge keeps it
    else:
        _rows_equal(ours.state("gd").table, vw.state("gd").table)

    _check_online(ours, vw, len(inputs), case.sgd_like)
    if any(e.name == "cb_adf" for e in ours.stack):
        np.testing.assert_array_equal(ours.state("cb_adf").counters, vw.state("cb_adf").counters)
        np.testing.assert_array_equal(ours.state("cb_adf").counters, sum(m.state("cb_adf").counters for m in inputs))

    h, hv = ours.header, vw.header
    assert (h.bits, h.min_label, h.max_label, h.lda) == (hv.bits, hv.min_label, hv.max_label, hv.lda)
    assert Options.parse(h.options_text).configuration() == Options.parse(hv.options_text).configuration()
    assert h.options_raw == inputs[0].header.options_raw
    if case.file_differs is None:
        assert ours.to_bytes() == vw_path.read_bytes()
    else:
        assert ours.to_bytes() != vw_path.read_bytes()

    _predictions_equal(models, case.args, ours, vw_path, tmp_path)


# --- base-model mode ---------------------------------------------------------------------------
BASE_CASES = [MergeCase(""), MergeCase("--sgd"), MergeCase("--normalized"), MergeCase("--adaptive")]


@pytest.mark.parametrize("case", [*BASE_CASES, MergeCase("--cb_adf --cb_type mtr")], ids=str)
def test_base_mode_equals_vw(models: Models, case: MergeCase, tmp_path: Path) -> None:
    base_path, paths = models.resumed(case.args)
    base = vwmerge.load(base_path)
    inputs = [vwmerge.load(p) for p in paths]
    vw_path = models.vw_merged(paths, base=base_path)
    vw = vwmerge.load(vw_path)
    ours = vwmerge.merge(inputs, base=base)

    if case.normalized_only:
        _rows_equal(_w_rows(ours.state("gd").table), _w_rows(vw.state("gd").table))
        # VW: base + (merged deltas with the normalized column zeroed) = the base's column.
        vt, bt = vw.state("gd").table.canonical(), base.state("gd").table.canonical()
        common, iv, ib = np.intersect1d(vt.index, bt.index, return_indices=True)
        assert len(common) == len(bt)
        assert vt.column("normalized")[iv].tobytes() == bt.column("normalized")[ib].tobytes()
        # vwmerge: the base's column plus the weighted deltas, which never shrink a max |x|.
        ot = ours.state("gd").table.canonical()
        _, io, ib2 = np.intersect1d(ot.index, bt.index, return_indices=True)
        assert np.all(ot.column("normalized")[io] >= bt.column("normalized")[ib2])
    else:
        _rows_equal(ours.state("gd").table, vw.state("gd").table)

    # t: VW's deltas each lose the base's t, then the merge adds one fresh initial_t.
    o, v = ours.state("gd").online, vw.state("gd").online
    init = float(np.float32(o.initial_t))
    assert v.t == o.t + (init if case.sgd_like else 0.0)
    assert o.t == base.state("gd").online.t + sum(m.state("gd").online.t - base.state("gd").online.t for m in inputs)
    assert attrs.evolve(o, t=0.0) == attrs.evolve(v, t=0.0)
    if any(e.name == "cb_adf" for e in ours.stack):
        b = base.state("cb_adf").counters
        expected = b + sum(m.state("cb_adf").counters - b for m in inputs)
        assert int(b[0, 0]) > 0
        np.testing.assert_array_equal(ours.state("cb_adf").counters, expected)
        np.testing.assert_array_equal(vw.state("cb_adf").counters, expected)

    _predictions_equal(models, case.args, ours, vw_path, tmp_path)


# --- explicit weights --------------------------------------------------------------------------


def _dense(tables: list[WeightTable]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each table as float64 rows over the union of all indices (missing rows are 0)."""
    tables = [t.canonical() for t in tables]
    union = np.unique(np.concatenate([t.index for t in tables]))
    dense = []
    for t in tables:
        d = np.zeros((len(union), t.k), np.float64)
        d[np.searchsorted(union, t.index)] = t.values
        dense.append(d)
    return union, dense


@pytest.mark.parametrize("args", ["", "--sgd", "--adaptive --normalized --oaa 3"])
@pytest.mark.parametrize(("weights", "normalize"), [([3, 1], True), ([3, 1], False), ([0.5, 0, 2.5], True)])
def test_explicit_weights_are_exactly_the_weighted_sum(
    models: Models, args: str, weights: list[float], normalize: bool
) -> None:
    inputs = [vwmerge.load(p) for p in models.inputs(args, len(weights))]
    merged = vwmerge.merge(inputs, weights=weights, normalize=normalize)
    union, dense = _dense([m.state("gd").table for m in inputs])
    w = np.array(weights, np.float64)
    if normalize:
        w = w / w.sum()
    acc = np.zeros_like(dense[0])
    for wi, d in zip(w, dense, strict=True):
        acc += wi * d
    expected = acc.astype(np.float32)
    keep = np.any(expected != 0, axis=1)
    got = merged.state("gd").table.canonical()
    np.testing.assert_array_equal(got.index, union[keep])
    assert got.values.tobytes() == expected[keep].tobytes()
    # The weights replace VW's count weighting, but the counters are still summed.
    assert merged.state("gd").online.weighted_labeled_examples == sum(
        m.state("gd").online.weighted_labeled_examples for m in inputs
    )


def test_explicit_weights_predict_the_weighted_average(models: Models, tmp_path: Path) -> None:
    """A linear model merged with weights [3, 1] predicts 0.75·p₁ + 0.25·p₂ in VW."""
    args = ""
    paths = models.inputs(args, 2)
    out = tmp_path / "weighted.model"
    vwmerge.merge([vwmerge.load(p) for p in paths], weights=[3, 1]).save(out)
    examples = vwtrain.test_examples(args)
    p1, p2 = (np.array(vwtrain.predict(p, examples)) for p in paths)
    got = np.array(vwtrain.predict(out, examples))
    headers = [vwmerge.load(p).header for p in paths]
    lo, hi = min(h.min_label for h in headers), max(h.max_label for h in headers)
    # Predictions are clipped to the label range; compare where nothing was clipped.
    inside = (p1 > lo) & (p1 < hi) & (p2 > lo) & (p2 < hi) & (got > lo) & (got < hi)
    assert inside.sum() >= len(examples) // 2
    np.testing.assert_allclose(got[inside], 0.75 * p1[inside] + 0.25 * p2[inside], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0], "1 weights given for 2 models"),
        ([1.0, 2.0, 3.0], "3 weights given for 2 models"),
        ([1.0, -1.0], "sum must be positive"),
        ([-1.0, -2.0], "sum must be positive"),
        ([0.0, 0.0], "sum must be positive"),
        ([math.nan, 1.0], "not a finite number"),
        ([1.0, math.inf], "not a finite number"),
    ],
)
def test_bad_explicit_weights_are_refused(models: Models, weights: list[float], message: str) -> None:
    inputs = [vwmerge.load(p) for p in models.inputs("", 2)]
    with pytest.raises(vwmerge.MergeError, match=message) as caught:
        vwmerge.merge(inputs, weights=weights)
    assert str(caught.value).startswith("weights: ")  # the argument, and the model where it is one
    if "finite" in message:
        assert str(inputs[[math.isfinite(w) for w in weights].index(False)].source) in str(caught.value)
