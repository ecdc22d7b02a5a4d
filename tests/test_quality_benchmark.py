"""The quality benchmark runs end to end (small sizes, real VW, a subprocess like ``make quality``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"


def _rows(text: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 6 and not cells[0].startswith(("family", "---")):
            rows.setdefault((cells[0], cells[1]), cells[2:])
    return rows


def test_quality_benchmark_small_run() -> None:
    """Merged models load in VW and get scored; VW refuses coin; VW's squarecb merge explores
    uniformly (counter reset), so its PMF costs exactly the uniform policy's, vwmerge's less."""
    families = ["squared gd", "cb_explore_adf squarecb", "coin squared"]
    args = [sys.executable, str(SCRIPT), "--train", "800", "--test", "300", "--no-skewed"]
    for f in families:
        args += ["--family", f]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout)
    assert {fam for fam, _ in rows} == set(families)
    number = re.compile(r"^\d+\.\d{4}$")
    for (fam, metric), (shards, merged, vw_merged, whole) in rows.items():
        assert re.match(r"^\d+\.\d{4} \(\d+\.\d{4}–\d+\.\d{4}\)$", shards), (fam, metric, shards)
        assert number.match(merged), (fam, metric, merged)
        assert number.match(whole), (fam, metric, whole)
        assert vw_merged == "refused" if fam == "coin squared" else number.match(vw_merged), (fam, vw_merged)
    uniform = re.search(r"uniform policy (\d+\.\d{4})", proc.stdout)
    assert uniform is not None
    _, merged, vw_merged, _ = rows[("cb_explore_adf squarecb", "expected cost of its PMF")]
    assert vw_merged == uniform.group(1)
    assert float(merged) < float(vw_merged)
    assert "VW refused: Bottom learner 'ftrl-Coin Betting'" in proc.stdout
