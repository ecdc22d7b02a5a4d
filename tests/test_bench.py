"""The speed benchmark runs end to end at tiny sizes (``--smoke``), as ``make bench`` would run it.

Only the shape of the output is checked, never a time: this machine's timings say nothing here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"

COLUMNS = [
    "case", "what", "input MiB", "output MiB", "vwmerge s (min / median / max)", "CPU s", "in-process s",
    "peak MiB", "I/O floor s (read + write)", "× floor", "fsync s", "VW s (min / median / max)",
    "VW peak MiB", "× VW",
]  # fmt: skip


def _table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("| case |")]
    assert len(lines) == 1, text
    start = text.splitlines().index(lines[0])
    header = [c.strip() for c in lines[0].strip().strip("|").split("|")]
    rows = []
    for line in text.splitlines()[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip().strip("|").split("|")), strict=True)))
    return rows


def test_bench_smoke(tmp_path: Path) -> None:
    """Every kind of case runs through this environment's vwmerge, beside its I/O floor and VW."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert out.with_suffix(".md").read_text() == text
    assert f"`{Path(sys.executable).parent / 'vwmerge'}`" in text.splitlines()[0]
    rows = _table(text)
    assert list(rows[0]) == COLUMNS
    by_what = {r["what"]: r for r in rows}
    for what in ("vwmerge --version", "vwmerge --help", "python -c pass"):
        times = by_what[what]["vwmerge s (min / median / max)"].split(" / ")
        low, mid, high = map(float, times)
        assert 0 < low <= mid <= high
        assert float(by_what[what]["peak MiB"]) > 0
    merges = [r for r in rows if r["case"] != "startup"]
    assert {r["case"] for r in merges} == {
        "per-model 2", "per-model 20", "small-20", "b16x2", "base-b16x2 (plain)", "base-b16x2",
    }  # fmt: skip
    for r in merges:
        assert float(r["input MiB"]) > 0, r
        assert float(r["× floor"]) > 0, r
        assert float(r["peak MiB"]) > 0, r
    # VW ran on the two-model merges (predicted fast enough); its base mode refuses bits ≠ 18.
    assert float(next(r for r in merges if r["case"] == "per-model 2")["VW peak MiB"]) > 0
    assert float(next(r for r in merges if r["case"] == "b16x2")["× VW"]) > 0
    assert next(r for r in merges if r["case"] == "base-b16x2")["VW s (min / median / max)"].startswith("skipped")
    assert "Reason: num_bits" in text
    # small-20 is the per-model run at N = 20, shown once more under its own name
    assert next(r for r in merges if r["case"] == "small-20")["what"].endswith("(the runs of per-model 20)")

    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["meta"]["command"] == str(Path(sys.executable).parent / "vwmerge")
    assert len(doc["rows"]) == len(rows)
    b16 = next(r for r in doc["rows"] if r["case"] == "b16x2")
    assert b16["vwmerge"]["via"] == "args"
    assert b16["floor"]["read"] > 0 and b16["floor"]["write"] > 0
    assert b16["output_bytes"] > 0
    targets = {t["target"] for t in doc["targets"]}
    assert {"`vwmerge --version` ≤ 0.12 s", "per-model overhead ≤ 0.3 ms"} <= targets
    assert "base-b16x2: base mode ≤ 1.5× plain mode" in targets
