"""NaN and ±inf in a streamed merge: the merged rows are checked instead of every input's rows
(docs/scale.md, "Non-finite values"), and a non-finite merged value sends the merge back to
the inputs to name the first offending file, row and column, exactly as reading it would.

That is only sound if a non-finite input value always reaches the merged rows: these tests
poison one value of one input, in every position, column, merge mode and executor, and check
that the merge is refused naming it, with no output left behind."""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import pytest
import vwmerge
from helpers.cli import assert_one_error, run_cli
from helpers.models import Models
from vwmerge.engine.streaming import merge_files

VALUES = [math.nan, math.inf, -math.inf]


def _poison(path: Path, out: Path, value: float, row: int, column: str) -> int:
    """``path`` with stored row ``row``'s ``column`` set to ``value``; returns the row's index."""
    ws = vwmerge.load(path)
    state = ws.states[-1]
    table = state.table
    values = np.array(table.values)
    values[row, table.columns.index(column)] = value
    poisoned = attrs.evolve(state, table=attrs.evolve(table, values=values))
    out.write_bytes(attrs.evolve(ws, states=(*ws.states[:-1], poisoned)).to_bytes())
    return int(table.index[row])


def _refused(paths: list[Path], bad: Path, index: int, column: str, out: Path, **kwargs: object) -> None:
    with pytest.raises(vwmerge.ModelFormatError) as e:
        merge_files(paths, out, progress=False, **kwargs)  # type: ignore[arg-type]
    message = str(e.value)
    assert str(bad) in message and f"row {index} " in message and f"column '{column}'" in message, message
    assert not out.exists()


@pytest.mark.parametrize("value", VALUES, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize(
    ("args", "column", "weights"),
    [
        ("", "w", None),  # gd's exact adaptive path
        ("", "adaptive", None),
        ("", "normalized", None),
        ("--sgd", "w", None),  # VW's example-count path
        ("", "w", (0.0, 1.0, 2.0)),  # an explicit weight of 0 on the first model
        ("--cb_explore_adf", "w", None),
        ("--l1 1e-4", "w", None),  # a pending L1 truncation would zero a NaN: checked as read
        ("--ftrl", "w", None),  # not streamed (no partial hooks): every input checked as read
    ],
    ids=["adaptive-w", "adaptive-a", "adaptive-n", "sgd", "weight0", "cb_adf", "l1", "ftrl"],
)
@pytest.mark.parametrize("cache_bytes", [None, 0], ids=["kept", "reread"])
def test_a_non_finite_input_is_named_in_every_position_and_mode(
    models: Models, tmp_path: Path, value: float, position: int, args: str, column: str,
    weights: tuple[float, ...] | None, cache_bytes: int | None,
) -> None:  # fmt: skip
    paths = list(models.inputs(args, 3))
    bad = tmp_path / "bad.model"
    index = _poison(paths[position], bad, value, 1, column)
    paths[position] = bad
    _refused(paths, bad, index, column, tmp_path / "out.model", weights=weights, cache_bytes=cache_bytes)


@pytest.mark.parametrize("value", VALUES, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("args", ["", "--sgd"])
def test_a_row_the_other_models_lack_is_named(models: Models, tmp_path: Path, args: str, value: float) -> None:
    """A row only the poisoned model has (every other model is zero there), its other columns 0."""
    paths = list(models.inputs(args, 3))
    ws = vwmerge.load(paths[2])
    state = ws.states[-1]
    table = state.table
    taken = set().union(*(set(vwmerge.load(p).states[-1].table.index.tolist()) for p in paths))
    index = next(r for r in range(1 << table.bits) if r not in taken)
    at = int(np.searchsorted(table.index, index))
    row = np.zeros((1, table.k), np.float32)
    row[0, 0] = value
    grown = attrs.evolve(
        table,
        index=np.insert(table.index, at, index).astype(table.index.dtype),
        values=np.insert(np.asarray(table.values), at, row, axis=0),
    )
    bad = tmp_path / "bad.model"
    bad.write_bytes(attrs.evolve(ws, states=(*ws.states[:-1], attrs.evolve(state, table=grown))).to_bytes())
    _refused([*paths[:2], bad], bad, index, "w", tmp_path / "out.model")


def test_several_bad_inputs_name_the_first(models: Models, tmp_path: Path) -> None:
    paths = list(models.inputs("", 3))
    first, second = tmp_path / "first.model", tmp_path / "second.model"
    _poison(paths[2], second, math.inf, 0, "w")
    index = _poison(paths[1], first, math.nan, 2, "w")
    _refused([paths[0], first, second], first, index, "w", tmp_path / "out.model")


def test_base_mode_and_allow_nonfinite(models: Models, tmp_path: Path) -> None:
    base, resumed = models.resumed("")
    bad = tmp_path / "bad.model"
    index = _poison(resumed[1], bad, math.inf, 1, "w")
    _refused([resumed[0], bad], bad, index, "w", tmp_path / "out.model", base=base)
    merge_files([resumed[0], bad], tmp_path / "ok.model", base=base, allow_nonfinite=True, progress=False)
    merged = vwmerge.load(tmp_path / "ok.model", allow_nonfinite=True).states[-1].table
    assert not np.isfinite(merged.values[merged.index == index]).all()


def test_jobs_refuse_naming_the_file(models: Models, tmp_path: Path) -> None:
    paths = list(models.inputs("", 3))
    bad = tmp_path / "bad.model"
    index = _poison(paths[2], bad, math.nan, 1, "adaptive")
    out = tmp_path / "out.model"
    run = run_cli("merge", "--jobs", "2", "-o", out, *paths[:2], bad)
    assert_one_error(run, str(bad), f"row {index} ", "column 'adaptive'")
    assert "Warning" not in run.stderr and not out.exists()


def test_dask_refuses_naming_the_file(models: Models, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    paths = list(models.inputs("--sgd", 3))
    bad = tmp_path / "bad.model"
    index = _poison(paths[0], bad, -math.inf, 1, "w")
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        _refused([bad, *paths[1:]], bad, index, "w", tmp_path / "out.model", scheduler=client)
