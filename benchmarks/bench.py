"""Speed and memory benchmark: vwmerge's streaming merge against VW's own ``merge_models``.

For each configuration (options × bits) one model is trained by VW 9.11.9; N variants of it are
then written by vwmerge with random weight rows covering ``--density`` of the 2^bits rows (a
trained VW model fills few rows; long-trained production models fill most of them, and this
keeps generating them fast). Each variant keeps the VW model's header, options and sections and
gets its own example counts, so VW loads every one of them (that is checked by VW's own runs).

Every measurement runs in a fresh subprocess that reports its own wall time (load + merge +
save; imports and vwmerge's plugin discovery excluded, like VW's library load) and peak RSS
(``VmHWM``); runs shorter than 15 s are repeated and the fastest kept, for both tools:

* vwmerge: ``vwmerge.engine.streaming.merge_files`` (sequential, VW's exact rounding), plus the
  ``vwmerge merge`` command line end to end (interpreter start and imports included);
* VW: every input loaded with ``--preserve_performance_counters``, ``vowpalwabbit.merge_models``,
  save: what vw-merge does.

A VW run predicted to take more than ``--vw-limit`` seconds, or more memory than the machine has,
is skipped; the prediction scales the closest measured VW run of the same table (linear in N,
and by the per-row time ratio measured between two bit widths) and the table says so. The I/O
lower bound is (bytes read + bytes written) over this machine's measured sequential throughput.

    python benchmarks/bench.py                         # the full table (tens of minutes)
    python benchmarks/bench.py --bits 18,22 --models 2,8 --options default
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

OPTIONS = {"default": "", "cb_explore_adf": "--cb_explore_adf"}
GIB = float(1 << 30)


# --------------------------------------------------------------------------------------------
# Models
def _train_template(args: str, bits: int, path: Path) -> Path:
    """A real VW model of the configuration: 200 examples, so every section holds real state."""
    import vowpalwabbit

    rng = random.Random(bits)
    ws = vowpalwabbit.Workspace(f"{args} -b {bits} --quiet", enable_logging=False)
    try:
        for _ in range(200):
            feats = " ".join(f"f{rng.randrange(10_000)}:{rng.random():.3f}" for _ in range(20))
            if "cb_explore_adf" in args:
                chosen = rng.randrange(3)
                lines = [f"shared |s {feats}"]
                for a in range(3):
                    label = f"0:{rng.random():.2f}:0.33 " if a == chosen else ""
                    lines.append(f"{label}|a act{a} g{rng.randrange(100)}")
                ws.learn("\n".join(lines))
            else:
                ws.learn(f"{rng.random():.3f} |x {feats}")
        ws.save(str(path))
    finally:
        ws.finish()
    return path


def _variant(template: Any, seed: int, density: float, path: Path) -> int:
    """A copy of ``template`` with random rows (a fraction ``density`` of 2^bits) and counters."""
    import vwmerge
    from vwmerge.model.workspace import write_workspace

    rng = np.random.default_rng(seed)
    bits = template.header.bits
    state = template.states[-1]
    columns = state.table.columns
    index = np.flatnonzero(rng.random(1 << bits, dtype=np.float32) < density).astype(np.uint64)
    values = np.empty((len(index), len(columns)), np.float32)
    for j, name in enumerate(columns):
        if name == "w":
            values[:, j] = rng.normal(0.0, 0.1, len(index))
        elif name == "adaptive":
            values[:, j] = rng.exponential(4.0, len(index)) + 0.01
        else:
            values[:, j] = rng.uniform(0.5, 2.0, len(index))
    scale = float(rng.uniform(0.5, 2.0))
    online = state.online
    if online is not None:
        online = attrs.evolve(
            online,
            weighted_labeled_examples=online.weighted_labeled_examples * scale,
            t=online.t * scale,
            example_number=int(online.example_number * scale),
        )
    table = vwmerge.WeightTable(index, values, bits, columns)
    states = (*template.states[:-1], attrs.evolve(state, online=online, table=table))
    return write_workspace(str(path), attrs.evolve(template, states=states))


def generate(work: Path, label: str, args: str, bits: int, count: int, density: float) -> list[Path]:
    """``count`` variants of one VW-trained model (made once; reused by smaller N)."""
    import vwmerge

    folder = work / f"{label}_b{bits}"
    folder.mkdir(parents=True, exist_ok=True)
    template_path = folder / "template.model"
    if not template_path.exists():
        _train_template(args, bits, template_path)
    template = vwmerge.load(template_path)
    paths = []
    for i in range(count):
        path = folder / f"m{i:02d}_d{density}.model"
        if not path.exists():
            _variant(template, 1000 * bits + i, density, path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Measurements, each in its own process
def _child(tool: str, out: str, paths: list[str]) -> None:
    """Run one merge in this (fresh) process and print its wall time and peak RSS as JSON."""
    if tool == "vw":
        import vowpalwabbit

        start = time.perf_counter()
        wss = [
            vowpalwabbit.Workspace(f"-i {p} --preserve_performance_counters --quiet", enable_logging=False)
            for p in paths
        ]
        merged = vowpalwabbit.merge_models(None, wss)
        merged.save(out)
        seconds = time.perf_counter() - start
    else:
        from vwmerge import default_registry
        from vwmerge.engine.streaming import merge_files

        default_registry()  # plugin discovery: once per process, like VW's library load at import
        start = time.perf_counter()
        merge_files(paths, out, progress=False)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss": _peak_rss()}))


def _peak_rss() -> int:
    """This process's peak RSS: VmHWM (ru_maxrss would start from the benchmark's own peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@attrs.frozen
class Run:
    seconds: float
    peak_rss: int
    wall: float  #: the whole subprocess, interpreter start included


def _measure(cmd: Sequence[str], timeout: float) -> Run | None:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed:\n{err[-2000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if lines:
        rec = json.loads(lines[-1])
        return Run(rec["seconds"], rec["peak_rss"], wall)
    return Run(wall, 0, wall)


#: Runs shorter than this are repeated (``--repeat``) and the fastest is kept, for both tools:
#: on a shared virtual machine one short run says more about its neighbours than about the tool.
REPEAT_BELOW = 15.0


def measure_tool(tool: str, paths: Sequence[Path], out: Path, timeout: float, repeat: int = 1) -> Run | None:
    """One merge in a fresh process: the fastest of ``repeat`` runs when a run is short."""
    cmd = [sys.executable, __file__, "--child", tool, "--child-out", str(out), *map(str, paths)]
    runs: list[Run] = []
    try:
        while len(runs) < repeat:
            run = _measure(cmd, timeout)
            if run is None:
                return None
            runs.append(run)
            if run.seconds >= REPEAT_BELOW:
                break
    finally:
        out.unlink(missing_ok=True)
    return min(runs, key=lambda r: r.seconds)


def measure_cli(paths: Sequence[Path], out: Path, timeout: float, repeat: int = 1) -> tuple[float, int]:
    """``vwmerge merge`` end to end (interpreter start, imports, merge, save): seconds, output bytes."""
    exe = shutil.which("vwmerge")
    cmd = [exe] if exe else [sys.executable, "-m", "vwmerge"]
    walls: list[float] = []
    while len(walls) < repeat:
        start = time.perf_counter()
        subprocess.run(
            [*cmd, "--log-level", "warning", "merge", "--quiet", "-o", str(out), *map(str, paths)],
            check=True, timeout=timeout, stdin=subprocess.DEVNULL, capture_output=True,
        )  # fmt: skip
        walls.append(time.perf_counter() - start)
        size = out.stat().st_size
        out.unlink()
        if walls[-1] >= REPEAT_BELOW:
            break
    return min(walls), size


def read_throughput(paths: Sequence[Path]) -> float:
    """Bytes per second reading ``paths`` start to end in 16 MiB blocks (their cache state as is)."""
    buf = bytearray(16 << 20)
    total = 0
    start = time.perf_counter()
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total / max(time.perf_counter() - start, 1e-9)


def write_throughput(folder: Path, size: int = 1 << 30) -> float:
    """Bytes per second writing ``size`` bytes sequentially and fsyncing them."""
    block = np.random.default_rng(0).integers(0, 255, 16 << 20, dtype=np.uint8).tobytes()
    path = folder / "throughput.tmp"
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return size / seconds


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# --------------------------------------------------------------------------------------------
@attrs.frozen
class Row:
    label: str
    bits: int
    models: int
    input_bytes: int
    output_bytes: int
    ours: Run
    cli: float
    vw: Run | None
    vw_note: str
    io_bound: float


def _predict(vw_runs: dict[tuple[str, int, int], Run], label: str, bits: int, n: int) -> tuple[float, float, str]:
    """VW's time and memory for (bits, n), scaled from the closest measured runs.

    Linear in N from the largest measured N at these bits; across bits, the per-row growth
    measured between the two largest measured bit widths (same N) is applied.
    """
    same_bits = [(m, r) for (lb, b, m), r in vw_runs.items() if lb == label and b == bits and m < n]
    if same_bits:
        m, r = max(same_bits, key=lambda x: x[0])
        return r.seconds * n / m, r.peak_rss * n / m, f"{r.seconds:.0f} s measured for N={m}, × N/{m}"
    lower = sorted({b for (lb, b, _) in vw_runs if lb == label and b < bits})
    if not lower:
        return 0.0, 0.0, ""
    b1 = lower[-1]
    pairs = sorted(m for (lb, b, m) in vw_runs if lb == label and b == b1)
    m = min(pairs, key=lambda x: abs(x - n))
    r1 = vw_runs[(label, b1, m)]
    growth = 2.0 ** (bits - b1)  # at least linear in rows
    note = f"{r1.seconds:.1f} s measured at b{b1} N={m}"
    if len(lower) > 1:
        b0 = lower[-2]
        common = [mm for (lb, b, mm) in vw_runs if lb == label and b == b0 and (label, b1, mm) in vw_runs]
        if common:
            mm = max(common)
            per_bit = (vw_runs[(label, b1, mm)].seconds / vw_runs[(label, b0, mm)].seconds) ** (1 / (b1 - b0))
            growth = max(growth, per_bit ** (bits - b1))
            note += f", × {per_bit:.2f} per bit (b{b0}→b{b1} at N={mm})"
    seconds = r1.seconds * growth * n / m
    memory = r1.peak_rss * 2.0 ** (bits - b1) * n / m
    return seconds, memory, note + (f", × N/{m}" if n != m else "")


def _fmt_s(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def render(rows: list[Row], read_tp: float, write_tp: float, started: str) -> str:
    out = [
        f"vwmerge {_version()} vs VW {_vw_version()}, {started}; {os.cpu_count()} cores, "
        f"{machine_memory() / GIB:.0f} GiB; sequential read {read_tp / GIB:.2f} GiB/s, "
        f"write+fsync {write_tp / GIB:.2f} GiB/s",
        "",
        "| options | bits | N | input GiB | vwmerge s | CLI s | VW s | time ratio | vwmerge peak GiB "
        "| VW peak GiB | memory ratio | I/O bound s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for r in rows:
        if r.vw is not None:
            vw_s, vw_m = _fmt_s(r.vw.seconds), f"{r.vw.peak_rss / GIB:.2f}"
            t_ratio = f"{r.ours.seconds / r.vw.seconds:.3f}"
            m_ratio = f"{r.ours.peak_rss / r.vw.peak_rss:.3f}"
        else:
            notes.append(r.vw_note)
            vw_s, vw_m, t_ratio, m_ratio = f"skipped [{len(notes)}]", "–", "–", "–"
        out.append(
            f"| {r.label} | {r.bits} | {r.models} | {r.input_bytes / GIB:.2f} | {_fmt_s(r.ours.seconds)} "
            f"| {_fmt_s(r.cli)} | {vw_s} | {t_ratio} | {r.ours.peak_rss / GIB:.2f} | {vw_m} | {m_ratio} "
            f"| {_fmt_s(r.io_bound)} |"
        )
    out.append("")
    out += [f"[{i}] VW not run: {note}." for i, note in enumerate(notes, 1)]
    return "\n".join(out)


def _version() -> str:
    import vwmerge

    return vwmerge.__version__


def _vw_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("vowpalwabbit")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", default="18,22,24,26")
    parser.add_argument("--models", default="2,8,32", help="N values (bits 26 uses --models-26)")
    parser.add_argument("--models-26", default="2,8,16", help="N values at 26 bits (16 models are ~11 GB)")
    parser.add_argument("--options", default="default,cb_explore_adf", help=f"of {', '.join(OPTIONS)}")
    parser.add_argument("--density", type=float, default=0.64, help="fraction of the 2^bits rows present")
    parser.add_argument("--vw-limit", type=float, default=330.0, help="skip VW runs predicted longer (s)")
    parser.add_argument("--repeat", type=int, default=3, help=f"runs under {REPEAT_BELOW:.0f} s: fastest of this many")
    parser.add_argument("--work", type=Path, default=None, help="where models go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated models")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (and raw JSON) here")
    parser.add_argument("--child", choices=["vw", "vwmerge"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.child:
        _child(a.child, a.child_out, a.paths)
        return 0

    work = a.work or Path(tempfile.mkdtemp(prefix="vwmerge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    write_tp = write_throughput(work)
    memory = machine_memory()
    rows: list[Row] = []
    vw_runs: dict[tuple[str, int, int], Run] = {}
    raw = []
    read_tp_seen = []
    try:
        for label in a.options.split(","):
            args = OPTIONS[label]
            for bits in map(int, a.bits.split(",")):
                counts = [int(n) for n in (a.models_26 if bits == 26 else a.models).split(",")]
                paths_all = generate(work, label, args, bits, max(counts), a.density)
                os.sync()  # no write-back of the new models competing with the measurements
                read_tp = read_throughput(paths_all)
                read_tp_seen.append(read_tp)
                for n in counts:
                    paths = paths_all[:n]
                    out = work / "merged.model"
                    in_bytes = sum(p.stat().st_size for p in paths)
                    ours = measure_tool("vwmerge", paths, out, timeout=3600, repeat=a.repeat)
                    assert ours is not None
                    cli, out_bytes = measure_cli(paths, out, timeout=3600, repeat=a.repeat)
                    predicted_s, predicted_m, basis = _predict(vw_runs, label, bits, n)
                    vw: Run | None = None
                    note = ""
                    if predicted_s > a.vw_limit:
                        note = f"predicted {predicted_s:.0f} s from {basis}"
                    elif predicted_m > 0.8 * memory:
                        note = f"predicted {predicted_m / GIB:.0f} GiB from {basis}"
                    else:
                        vw = measure_tool("vw", paths, out, timeout=max(3 * a.vw_limit, 600), repeat=a.repeat)
                        if vw is None:
                            note = f"killed after {max(3 * a.vw_limit, 600):.0f} s"
                        else:
                            vw_runs[(label, bits, n)] = vw
                    io_bound = in_bytes / read_tp + out_bytes / write_tp
                    row = Row(label, bits, n, in_bytes, out_bytes, ours, cli, vw, note, io_bound)
                    rows.append(row)
                    raw.append(attrs.asdict(row))
                    print(json.dumps(raw[-1]), file=sys.stderr, flush=True)
                if not a.keep:  # at most one configuration's models on disk at a time
                    shutil.rmtree(paths_all[0].parent, ignore_errors=True)
        table = render(rows, float(np.median(read_tp_seen)), write_tp, started)
        print(table)
        if a.out:
            a.out.write_text(table + "\n")
            a.out.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    finally:
        if not a.keep and a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
