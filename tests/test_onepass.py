"""gd's exact merge in one pass over the rows (docs/scale.md, "How a streaming merge works").

The sequential streaming merge holds its inputs (mapped, pages released) and walks their rows in
lock-step blocks: A = Σaᵢ and the contributions per block, base-mode deltas per block. These
tests hold it to the two-pass merge it replaces (reached by lowering the holding limit, which
spills to it; ``cache_bytes=0`` so that every input's rows are read while streaming), to the
in-memory merge and to VW's own merge_models, on VW-trained models, and
check that it reads every input once and that its memory does not follow the inputs' total size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import numpy as np
import pytest
import vwmerge
from helpers import vwtrain
from helpers.models import Models
from vwmerge.engine.streaming import merge_files
from vwmerge.plugins import gd

SEEDS = (31, 32, 33, 34, 35)
SIZES = (20, 45, 33, 61, 12)

#: Configurations on gd's adaptive path (the one that took two passes), and two that never did.
ADAPTIVE = {
    "default_b18": "-b 18",
    "sparse_weights": "--sparse_weights",  # rows in hash-map order: sorted copies in memory
    "initial_weight": "--initial_weight 0.5 -b 12",  # rows with A = 0 in every input
    "dense_b4": "-b 4",  # every input covers every row
    "l1_l2": "--l1 1e-4 --l2 1e-3",  # pending truncation: rows copied before merging
}
OTHER = {"sgd": "--sgd", "normalized": "--normalized"}


def _opts(args: str) -> str | None:
    return "--sparse_weights" if "--sparse_weights" in args else None


def _without_some_rows(path: Path, out: Path, every: int) -> Path:
    """``path`` with every ``every``-th weight row dropped (rows the base has and it lacks)."""
    ws = vwmerge.load(path)
    state = ws.state("gd")
    t = state.table.canonical()
    keep = np.arange(len(t)) % every != 0
    table = vwmerge.WeightTable(t.index[keep], t.values[keep], t.bits, t.columns)
    states = tuple(attrs.evolve(s, table=table) if s is state else s for s in ws.states)
    attrs.evolve(ws, states=states).save(str(out))
    return out


def _inputs(models: Models, args: str, folder: Path, k: int = 5) -> list[Path]:
    """``k`` VW-trained models; the 2nd and 4th lack some of their rows (every 2nd, every 3rd), so
    rows are missing in some inputs (VW's data here has the same few features in every model).
    --sparse_weights inputs are kept as VW wrote them (rows in hash-map order)."""
    paths = [models.train(args, s, n) for s, n in zip(SEEDS[:k], SIZES[:k], strict=True)]
    if "--sparse_weights" in args:
        return paths
    folder.mkdir(exist_ok=True)
    return [
        _without_some_rows(p, folder / f"thin{i}.model", (0, 2, 0, 3, 0)[i]) if i in (1, 3) else p
        for i, p in enumerate(paths)
    ]


def _slug(args: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in args) or "default"


def _reread(report: vwmerge.MergeReport) -> int:
    return sum(p.bytes_reread for p in report.phases)


@pytest.mark.parametrize("weights", [None, (3.0, 1.0, 2.0, 0.5, 1.5)], ids=["counts", "explicit"])
@pytest.mark.parametrize("args", [*ADAPTIVE.values(), *OTHER.values()], ids=[*ADAPTIVE, *OTHER])
def test_one_pass_writes_the_bytes_of_the_two_pass_merge(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: str, weights: tuple[float, ...] | None
) -> None:
    paths = _inputs(models, args, tmp_path / "in")
    opts = _opts(args)
    total = sum(p.stat().st_size for p in paths)
    one = merge_files(paths, tmp_path / "one.model", weights=weights, vw_options=opts, progress=False, cache_bytes=0)
    assert _reread(one) == 0  # every row read once

    monkeypatch.setattr(gd, "HOLD_MAX_INPUTS", 1)  # spill at once: the merge as it was before
    monkeypatch.setattr(gd, "HOLD_MAX_MEMORY", 0)  # (copies in memory hold no descriptor)
    two = merge_files(paths, tmp_path / "two.model", weights=weights, vw_options=opts, progress=False, cache_bytes=0)
    adaptive = weights is None and args in ADAPTIVE.values()
    assert _reread(two) == (total if adaptive else 0)
    assert (tmp_path / "one.model").read_bytes() == (tmp_path / "two.model").read_bytes()
    expected = vwmerge.merge([vwmerge.load(p, vw_options=opts) for p in paths], weights=weights).to_bytes()
    assert (tmp_path / "one.model").read_bytes() == expected
    # small inputs kept parsed from the scan (the default cache) are held and walked the same way
    merge_files(paths, tmp_path / "cached.model", weights=weights, vw_options=opts, progress=False)
    assert (tmp_path / "cached.model").read_bytes() == expected
    # the walk's batched blocks (many small inputs: all rows at once) give the same bytes
    monkeypatch.undo()
    monkeypatch.setattr(gd, "_BATCH_MIN", 1)
    batched = merge_files(paths, tmp_path / "batched.model", weights=weights, vw_options=opts, progress=False)
    assert _reread(batched) == 0
    assert (tmp_path / "batched.model").read_bytes() == expected


def test_the_inputs_differ_in_rows_and_some_rows_have_a_zero_adaptive_sum(models: Models, tmp_path: Path) -> None:
    """What the cases above rely on: rows missing in some inputs, and rows no input updated."""
    for args in ADAPTIVE.values():
        if "--sparse_weights" in args:
            continue
        tables = [vwmerge.load(p).state("gd").table for p in _inputs(models, args, tmp_path / _slug(args))]
        union = vwmerge.plugin.union_sorted([t.canonical().index for t in tables])
        assert sum(len(t) < len(union) for t in tables) >= 2, args
    merged = vwmerge.merge([vwmerge.load(p) for p in _inputs(models, ADAPTIVE["initial_weight"], tmp_path / "iw")])
    table = merged.state("gd").table
    untouched = table.column("adaptive") == 0
    assert untouched.any() and np.all(table.column("w")[untouched] != 0)  # kept: their average value


def test_the_memory_limit_spills_too(models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--sparse_weights inputs are sorted copies in memory: past HOLD_MAX_MEMORY bytes of them the
    merge sums what it holds and takes the second pass, with the same bytes."""
    paths = _inputs(models, ADAPTIVE["sparse_weights"], tmp_path / "in")
    one = merge_files(paths, tmp_path / "one.model", vw_options="--sparse_weights", progress=False, cache_bytes=0)
    monkeypatch.setattr(gd, "HOLD_MAX_MEMORY", 1)
    two = merge_files(paths, tmp_path / "two.model", vw_options="--sparse_weights", progress=False, cache_bytes=0)
    assert _reread(one) == 0 and _reread(two) == sum(p.stat().st_size for p in paths)
    assert (tmp_path / "one.model").read_bytes() == (tmp_path / "two.model").read_bytes()


@pytest.mark.parametrize("args", ["-b 12", "--initial_weight 0.5 -b 12", "--sgd"], ids=["b12", "initial_weight", "sgd"])
def test_many_small_cached_inputs_are_held_past_the_descriptor_limit(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: str
) -> None:
    """Small inputs the scan keeps in memory hold no file descriptor: more of them than
    HOLD_MAX_INPUTS (300 copies of 5 VW models) are still merged in one pass, with the bytes of
    the spilled two-pass merge and of the in-memory merge."""
    sources = _inputs(models, args, tmp_path / "in")
    folder = tmp_path / "many"
    folder.mkdir()
    paths = []
    for i in range(300):
        path = folder / f"m{i}.model"
        path.write_bytes(sources[i % len(sources)].read_bytes())
        paths.append(path)
    assert len(paths) > gd.HOLD_MAX_INPUTS
    calls: list[str] = []
    walked, summed = gd._walked, gd._summed
    monkeypatch.setattr(gd, "_walked", lambda *a, **k: calls.append("walk") or walked(*a, **k))
    monkeypatch.setattr(gd, "_summed", lambda *a, **k: calls.append("sum") or summed(*a, **k))
    merge_files(paths, tmp_path / "one.model", progress=False)
    assert calls == ["walk"]  # one pass: every input held, walked once, none summed
    calls.clear()
    monkeypatch.setattr(gd, "HOLD_MAX_MEMORY", 0)  # no input in memory held: spill, two passes
    merge_files(paths, tmp_path / "two.model", progress=False)
    assert "walk" not in calls and "sum" in calls
    assert (tmp_path / "one.model").read_bytes() == (tmp_path / "two.model").read_bytes()
    expected = vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()
    assert (tmp_path / "one.model").read_bytes() == expected


def test_one_pass_at_b18_equals_vw_merge_models(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "-b 18", tmp_path / "in", 3)
    report = merge_files(paths, tmp_path / "ours.model", progress=False, cache_bytes=0)
    assert _reread(report) == 0
    ours = vwmerge.load(tmp_path / "ours.model").state("gd").table.canonical()
    vw = vwmerge.load(models.vw_merged(paths)).state("gd").table.canonical()
    np.testing.assert_array_equal(ours.index, vw.index)
    assert ours.columns == vw.columns == ("w", "adaptive", "normalized")
    assert ours.values.tobytes() == vw.values.tobytes()  # VW's float32 rounding, bit for bit


@pytest.mark.parametrize("args", ["", "--sgd", "--sparse_weights"], ids=["default", "sgd", "sparse_weights"])
def test_base_mode_deltas_per_block_equal_whole_deltas_and_vw(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: str
) -> None:
    base, inputs = models.resumed(args)
    opts = _opts(args)
    one = merge_files(inputs, tmp_path / "one.model", base=base, vw_options=opts, progress=False, cache_bytes=0)
    assert _reread(one) == 0
    expected = vwmerge.merge(
        [vwmerge.load(p, vw_options=opts) for p in inputs], base=vwmerge.load(base, vw_options=opts)
    ).to_bytes()
    assert (tmp_path / "one.model").read_bytes() == expected
    if opts is None:  # VW's base-model merge: the same rows, bit for bit
        ours = vwmerge.load(tmp_path / "one.model").state("gd").table.canonical()
        vw = vwmerge.load(models.vw_merged(inputs, base=base)).state("gd").table.canonical()
        np.testing.assert_array_equal(ours.index, vw.index)
        assert ours.values.tobytes() == vw.values.tobytes()

    # Rows only in the base (−θ_b in the delta, as VW's dense subtract gives): an input lacking some.
    thinned = [_without_some_rows(inputs[0], tmp_path / "thin.model", 3), *inputs[1:]]
    one = merge_files(thinned, tmp_path / "thin_one.model", base=base, vw_options=opts, progress=False, cache_bytes=0)
    monkeypatch.setattr(gd, "HOLD_MAX_INPUTS", 1)  # whole deltas through vwmerge_subtract, as before
    monkeypatch.setattr(gd, "HOLD_MAX_MEMORY", 0)  # (small inputs are read whole: rows in memory)
    two = merge_files(thinned, tmp_path / "thin_two.model", base=base, vw_options=opts, progress=False, cache_bytes=0)
    assert _reread(one) == 0 and (_reread(two) > 0) == (args != "--sgd")
    assert (tmp_path / "thin_one.model").read_bytes() == (tmp_path / "thin_two.model").read_bytes()


@pytest.mark.parametrize("weights", [None, (3.0, 1.0)], ids=["counts", "explicit"])
@pytest.mark.parametrize("args", ["", "--sgd", "--normalized"], ids=["default", "sgd", "normalized"])
def test_packed_base_mode_walk_equals_the_walk_input_by_input(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: str, weights: tuple[float, ...] | None
) -> None:
    """Small inputs in base mode: their packed rows walked as deltas without an array per input
    (each input f32(θᵢ − θ_b) at its rows, 0 − θ_b at the base's rows it lacks) give the bytes of
    the walk that spreads every input over the block, and of the merge in memory; inputs lacking
    some of the base's rows included."""
    base, inputs = models.resumed(args)
    thinned = [_without_some_rows(inputs[0], tmp_path / "thin.model", 3), *inputs[1:]]
    expected = vwmerge.merge([vwmerge.load(p) for p in thinned], base=vwmerge.load(base), weights=weights).to_bytes()
    packed = merge_files(thinned, tmp_path / "packed.model", base=base, weights=weights, progress=False, cache_bytes=0)
    monkeypatch.setattr(gd, "_PACKED_BASE_ROWS", -1)  # every base too large for the packed walk
    spread = merge_files(thinned, tmp_path / "spread.model", base=base, weights=weights, progress=False, cache_bytes=0)
    assert _reread(packed) == _reread(spread) == 0
    assert (tmp_path / "packed.model").read_bytes() == (tmp_path / "spread.model").read_bytes() == expected


def test_base_mode_calls_the_delta_partial_not_subtract(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed bottom learner gets each input with the base (vwmerge_merge_partial_delta);
    no whole delta table is built (vwmerge_subtract runs only on the scanned, row-less states)."""
    base, inputs = models.resumed("")
    built: list[int] = []
    real = gd.combine_tables

    def counting(a: vwmerge.WeightTable, b: vwmerge.WeightTable, sign: float) -> vwmerge.WeightTable:
        if sign < 0 and len(a):
            built.append(len(a))
        return real(a, b, sign)

    monkeypatch.setattr(gd, "combine_tables", counting)
    merge_files(inputs, tmp_path / "out.model", base=base, progress=False, cache_bytes=0)
    assert built == []
    monkeypatch.setattr(gd, "HOLD_MAX_INPUTS", 1)
    monkeypatch.setattr(gd, "HOLD_MAX_MEMORY", 0)
    merge_files(inputs, tmp_path / "out2.model", base=base, progress=False, cache_bytes=0)
    assert len(built) == 2 * len(inputs)  # spilled: whole deltas, in each of the two passes


_MEASURE = textwrap.dedent(
    """
    import json, sys, threading, time
    from vwmerge.engine.streaming import merge_files

    def status():
        with open("/proc/self/status") as f:
            return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f)
                    if k in ("VmRSS", "VmHWM", "RssFile")}

    before = status()
    file_peak = 0
    done = False

    def sample():
        global file_peak
        while not done:
            file_peak = max(file_peak, status()["RssFile"])
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    report = merge_files(sys.argv[2:], sys.argv[1], progress=False, cache_bytes=0)
    done = True
    sampler.join()
    print(json.dumps({"rss": before["VmRSS"], "file": before["RssFile"], "peak": status()["VmHWM"],
                      "file_peak": file_peak, "reread": report.phases[1].bytes_reread}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status")
def test_peak_memory_stays_well_below_the_inputs_total(models: Models, tmp_path: Path) -> None:
    """Twelve 24 MiB inputs (b21, 70 % of the rows): the held inputs' pages are released, and the
    walk maps only the blocks in flight, so the merge's memory is the output and a few blocks,
    whatever the inputs total (here 280 MiB); holding their pages would cost all of it."""
    template = vwmerge.load(models.train("-b 21", SEEDS[0], SIZES[0]))
    state = template.state("gd")
    paths = []
    for i in range(12):
        rng = np.random.default_rng(i)
        index = np.flatnonzero(rng.random(1 << 21, dtype=np.float32) < 0.7).astype(np.uint64)
        values = np.empty((len(index), 3), np.float32)
        values[:, 0] = rng.normal(0, 0.1, len(index))
        values[:, 1] = rng.exponential(4.0, len(index)) + 0.01
        values[:, 2] = rng.uniform(0.5, 2.0, len(index))
        table = vwmerge.WeightTable(index, values, 21, state.table.columns)
        states = tuple(attrs.evolve(s, table=table) if s is state else s for s in template.states)
        path = tmp_path / f"m{i}.model"
        attrs.evolve(template, states=states).save(str(path))
        paths.append(path)
    total = sum(p.stat().st_size for p in paths)
    out = tmp_path / "merged.model"
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(out), *map(str, paths)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    m = json.loads(run.stdout)
    assert m["reread"] == 0
    mib = 2**20
    mapped = m["file_peak"] - m["file"]  # pages of the inputs mapped into the process at once
    assert mapped < 0.25 * total, f"{mapped / mib:.0f} MiB of the {total / mib:.0f} MiB of inputs were resident at once"
    grown = m["peak"] - m["rss"]  # the output (~33 MiB), a few blocks and their temporaries
    assert grown < 0.6 * total, f"peak grew by {grown / mib:.0f} MiB for {total / mib:.0f} MiB of inputs"
    assert out.read_bytes() == vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()


def test_predictions_of_the_one_pass_merge_match_vw(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "", tmp_path / "in", 3)
    merge_files(paths, tmp_path / "ours.model", progress=False, cache_bytes=0)
    examples = vwtrain.test_examples("")
    assert vwtrain.predict(tmp_path / "ours.model", examples) == vwtrain.predict(models.vw_merged(paths), examples)
