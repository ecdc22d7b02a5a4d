"""VW 9.11.9's merge defects that vwmerge fixes: each test shows VW's behaviour *and* ours.

Identical inputs make the right answer unambiguous: merging k copies of a model must give that
model back (k is a power of two, so VW's float32 weighting ``w·(a/ka)`` summed k times is exact).
VW is run for real each time, so if a later VW fixes a defect its test fails and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import vowpalwabbit
import vwmerge
from helpers import vwtrain
from helpers.models import Models
from vwmerge.format.weights import WeightTable


def _save(ws: vwmerge.Workspace, path: Path) -> Path:
    ws.save(path)
    return path


def _same_rows(a: WeightTable, b: WeightTable) -> bool:
    a, b = a.canonical(), b.canonical()
    return np.array_equal(a.index, b.index) and a.values.tobytes() == b.values.tobytes()


def _warnings(logs: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("log_level") == "warning" and text in e["event"]]


# --- bits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [20, 10])
def test_bits_are_kept(models: Models, bits: int, tmp_path: Path) -> None:
    args = f"-b {bits}"
    original = models.copies(args, 1)[0]
    copies = models.copies(args, 2)
    examples = vwtrain.test_examples(args)
    expected = vwtrain.predict(original, examples)

    # VW: the output is an 18-bit model whatever the inputs had; only rows < 2^18 survive (none
    # of a 10-bit model's rows, read as 18-bit rows, are where the features hash to).
    vw = vwmerge.load(models.vw_merged(copies))
    assert vw.header.bits == 18
    n_rows = len(vwmerge.load(original).state("gd").table)
    if bits > 18:
        assert len(vw.state("gd").table) < n_rows
    else:
        assert len(vw.state("gd").table) == 0
    assert vwtrain.predict(models.vw_merged(copies), examples) != expected

    # vwmerge: the bits are kept, and merging copies gives the model back.
    ours = vwmerge.merge([vwmerge.load(p) for p in copies])
    assert ours.header.bits == bits
    assert _same_rows(ours.state("gd").table, vwmerge.load(original).state("gd").table)
    assert vwtrain.predict(_save(ours, tmp_path / "ours.model"), examples) == expected

    # Different inputs, equal weights: a linear model predicts the average of its inputs.
    paths = models.inputs(args, 2)
    out = _save(vwmerge.merge([vwmerge.load(p) for p in paths], weights=[1, 1]), tmp_path / "avg.model")
    p1, p2 = (np.array(vwtrain.predict(p, examples)) for p in paths)
    got = np.array(vwtrain.predict(out, examples))
    h = [vwmerge.load(p).header for p in paths]
    lo, hi = min(x.min_label for x in h), max(x.max_label for x in h)
    inside = (np.minimum(p1, p2) > lo) & (np.maximum(p1, p2) < hi) & (got > lo) & (got < hi)
    assert inside.sum() >= len(examples) // 2
    np.testing.assert_allclose(got[inside], (p1[inside] + p2[inside]) / 2, rtol=1e-5, atol=1e-6)


# --- predict-only inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("args", ["--predict_only_model", "--predict_only_model --sgd"])
def test_predict_only_inputs_get_equal_weights(
    models: Models, args: str, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    paths = models.inputs(args, 2)
    examples = vwtrain.test_examples(args)

    # VW: no adaptive column and no example counts in the files: every weight becomes 0.
    vw_path = models.vw_merged(paths)
    assert len(vwmerge.load(vw_path).state("gd").table) == 0
    assert set(vwtrain.predict(vw_path, examples)) == {0.0}

    # vwmerge: equal weights, with a warning naming the models.
    inputs = [vwmerge.load(p) for p in paths]
    ours = vwmerge.merge(inputs)
    (warning,) = _warnings(logs, "records no example count")
    assert warning["models"] == [str(p) for p in paths]
    a, b = (m.state("gd").table.canonical() for m in inputs)
    union = np.union1d(a.index, b.index)
    dense = np.zeros((2, len(union)), np.float64)
    dense[0, np.searchsorted(union, a.index)] = a.values[:, 0]
    dense[1, np.searchsorted(union, b.index)] = b.values[:, 0]
    got = ours.state("gd").table.canonical()
    np.testing.assert_array_equal(got.index, union)
    assert got.values[:, 0].tobytes() == (0.5 * dense[0] + 0.5 * dense[1]).astype(np.float32).tobytes()

    # Copies of one predict-only model merge back into that model.
    copies = [vwmerge.load(p) for p in models.copies(args, 2)]
    out = _save(vwmerge.merge(copies), tmp_path / "copies.model")
    assert out.read_bytes() == models.copies(args, 1)[0].read_bytes()


# --- --id -----------------------------------------------------------------------------------


def test_id_is_kept_when_all_inputs_share_it(models: Models, logs: list[dict[str, Any]]) -> None:
    paths = models.inputs("--id abc", 2)
    assert vwmerge.load(models.vw_merged(paths)).header.id == ""  # VW drops it
    assert vwmerge.merge([vwmerge.load(p) for p in paths]).header.id == "abc"
    assert not _warnings(logs, "--id")

    # Different ids: no id can be right, so none is written, with a warning.
    other = models.train("--id xyz", 12, 37)
    merged = vwmerge.merge([vwmerge.load(paths[0]), vwmerge.load(other)])
    assert merged.header.id == ""
    (warning,) = _warnings(logs, "different --id")
    assert warning["ids"] == ["abc", "xyz"]


# --- duplicated options ------------------------------------------------------------------------


def test_options_are_never_duplicated(models: Models, tmp_path: Path) -> None:
    args = "--lrq ab2"
    paths = models.inputs(args, 2)
    vw_path = models.vw_merged(paths)
    assert vwmerge.load(vw_path).header.options_text == " --lrq ab2 --lrq ab2"  # VW doubles it

    ours = vwmerge.merge([vwmerge.load(p) for p in paths])
    assert ours.header.options_text == " --lrq ab2"

    # VW cannot merge its own output with an original any more; vwmerge can, and writes it once.
    with pytest.raises(RuntimeError, match="Command lines are not identical"):
        vwtrain.vw_merge([vw_path, paths[0]], tmp_path / "vw_again.model")
    again = vwmerge.merge([vwmerge.load(vw_path), vwmerge.load(paths[0])])
    assert again.header.options_text == " --lrq ab2"
    examples = vwtrain.test_examples(args)
    assert len(vwtrain.predict(_save(again, tmp_path / "again.model"), examples)) == len(examples)

    # Merging copies of VW's doubled file gives that file's weights back, with the options once.
    doubled = vwmerge.merge([vwmerge.load(vw_path)] * 2)
    assert doubled.header.options_text == " --lrq ab2"
    assert _same_rows(doubled.state("gd").table, vwmerge.load(vw_path).state("gd").table)


# --- --normalized alone ------------------------------------------------------------------------


def test_normalized_only_merge_keeps_the_normalized_column(models: Models) -> None:
    args = "--normalized"
    original = vwmerge.load(models.copies(args, 1)[0])
    copies = models.copies(args, 2)
    assert np.all(original.state("gd").table.column("normalized") > 0)

    vw = vwmerge.load(models.vw_merged(copies)).state("gd").table
    assert vw.columns == ("w", "normalized")
    assert not np.any(vw.column("normalized"))  # VW: every feature looks never seen

    ours = vwmerge.merge([vwmerge.load(p) for p in copies]).state("gd").table
    assert _same_rows(ours, original.state("gd").table)


# --- pending l1/l2 truncation -----------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4])
def test_pending_l1_l2_truncation_is_applied(
    models: Models, k: int, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    args = "--l1 1e-3 --l2 1e-3"
    original = models.copies(args, 1)[0]
    online = vwmerge.load(original).state("gd").online
    assert online.l1_state > 0 and online.l2_state < 1  # pending: weights are stored raw
    copies = models.copies(args, k)
    examples = vwtrain.test_examples(args)
    expected = vwtrain.predict(original, examples)  # -t materializes trunc(w, l1)·l2

    # VW averages the raw weights and resets l1/l2 state: no truncation is ever applied.
    vw_path = models.vw_merged(copies)
    vw_online = vwmerge.load(vw_path).state("gd").online
    assert (vw_online.l1_state, vw_online.l2_state) == (0.0, 1.0)
    assert vwtrain.predict(vw_path, examples) != expected

    merged = vwmerge.merge([vwmerge.load(p) for p in copies])
    assert _warnings(logs, "pending --l1/--l2 truncation")
    assert (merged.state("gd").online.l1_state, merged.state("gd").online.l2_state) == (0.0, 1.0)
    assert vwtrain.predict(_save(merged, tmp_path / "ours.model"), examples) == expected


# --- further defects documented in docs/merge-semantics.md -------------------------------------


def test_initial_t_is_kept_and_counted_once(models: Models) -> None:
    """VW's output takes a fresh initial_t (a user's --initial_t is lost) and adds it to Σ tᵢ."""
    args = "--sgd --initial_t 5"
    paths = models.inputs(args, 2)
    inputs = [vwmerge.load(p).state("gd").online for p in paths]
    assert {o.initial_t for o in inputs} == {5.0}
    vw = vwmerge.load(models.vw_merged(paths)).state("gd").online
    assert vw.initial_t == 1.0
    assert vw.t == 1.0 + sum(o.t for o in inputs)
    ours = vwmerge.merge([vwmerge.load(p) for p in paths]).state("gd").online
    assert ours.initial_t == 5.0
    assert ours.t == 5.0 + sum(o.t - 5.0 for o in inputs)
    assert ours.t == 5.0 + sum(o.weighted_labeled_examples for o in inputs)  # unit example weights


def test_zero_example_counts_do_not_make_nan_weights(
    models: Models, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    """A model re-saved by VW after a plain ``-i`` load has its counters zeroed: VW's merge
    weights are then 0/0 and every weight becomes NaN; vwmerge weights such models equally."""
    zeroed = []
    for i, p in enumerate(models.inputs("--sgd", 2)):
        out = tmp_path / f"zeroed{i}.model"
        vw = vowpalwabbit.Workspace(f"-i {p} --quiet", enable_logging=False)
        try:
            vw.save(str(out))
        finally:
            vw.finish()
        assert vwmerge.load(out).state("gd").online.weighted_labeled_examples == 0.0
        zeroed.append(out)

    vw_out = vwtrain.vw_merge(zeroed, tmp_path / "vw.model")
    vw_table = vwmerge.load(vw_out, allow_nonfinite=True).state("gd").table
    assert len(vw_table) == 2**18 and bool(np.all(np.isnan(vw_table.values)))
    with pytest.raises(vwmerge.ModelFormatError, match="row 0 holds nan"):  # refused unless allowed
        vwmerge.load(vw_out)

    ours = vwmerge.merge([vwmerge.load(p) for p in zeroed])
    assert _warnings(logs, "example counts sum to zero")
    assert bool(np.all(np.isfinite(ours.state("gd").table.values)))
    explicit = vwmerge.merge([vwmerge.load(p) for p in zeroed], weights=[1, 1])
    assert _same_rows(ours.state("gd").table, explicit.state("gd").table)


# --- ngram / skips ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", ["--ngram 2 --skips 1", "--ngram a2"])
def test_ngram_and_skips_are_kept(models: Models, args: str, tmp_path: Path) -> None:
    """VW keeps --ngram/--skips in the header's own fields, not in the options; its merge writes
    the fields empty, so its merged model no longer builds the n-grams the weights were trained
    on. vwmerge keeps them: k copies load in VW and predict exactly like the model."""
    original = models.copies(args, 1)[0]
    copies = models.copies(args, 2)
    examples = vwtrain.test_examples(args, n=30)
    expected = vwtrain.predict(original, examples)
    header = vwmerge.load(original).header
    assert header.ngrams  # the model has them

    vw = vwmerge.load(models.vw_merged(copies)).header
    assert (vw.ngrams, vw.skips) == ((), ())
    vw_preds = vwtrain.predict(models.vw_merged(copies), examples)
    assert sum(a != b for a, b in zip(vw_preds, expected, strict=True)) > len(expected) // 2

    out = _save(vwmerge.merge([vwmerge.load(p) for p in copies]), tmp_path / "merged.model")
    ours = vwmerge.load(out).header
    assert (ours.ngrams, ours.skips) == (header.ngrams, header.skips)
    assert vwtrain.predict(out, examples) == expected


# --- rows no example updated ---------------------------------------------------------------------


@pytest.mark.parametrize("args", ["--initial_weight 0.5 -b 18", "--normal_weights -b 18", "--new_mf 2 -q ab -b 18"])
def test_rows_no_example_updated_keep_their_initial_values(models: Models, args: str, tmp_path: Path) -> None:
    """On the adaptive path VW sets w = 0 where the adaptive sums of all inputs are 0: the rows
    no example updated, which hold the initial value (--initial_weight, --random_weights,
    --normal_weights, ..., which VW does not keep in the file, or --new_mf's random start, which
    VW draws anew on load for the rows its merge dropped). vwmerge averages them: 2 copies give the
    model back bit for bit, and predictions on examples with unseen features are unchanged."""
    original = models.copies(args, 1)[0]
    copies = models.copies(args, 2)
    examples = [ex + f" |a new{i}:1 |b other{i % 5}:0.5" for i, ex in enumerate(vwtrain.test_examples(args, n=30))]
    expected = vwtrain.predict(original, examples)
    table = vwmerge.load(original).states[-1].table

    vw_path = models.vw_merged(copies)
    assert not _same_rows(vwmerge.load(vw_path).states[-1].table, table)
    vw_preds = vwtrain.predict(vw_path, examples)
    assert sum(a != b for a, b in zip(vw_preds, expected, strict=True)) > len(expected) // 2

    out = _save(vwmerge.merge([vwmerge.load(p) for p in copies]), tmp_path / "merged.model")
    assert _same_rows(vwmerge.load(out).states[-1].table, table)
    assert vwtrain.predict(out, examples) == expected
