"""Speed and memory benchmark of the ``vwmerge`` command, beside the machine's I/O floor and VW.

Every measurement is a whole process, timed from the outside and repeated (``--repeat``, 3 by
default): the table gives min / median / max of the wall times and the largest peak resident
memory (the process and the children it waited for, from ``wait4``'s rusage). The command run is
the vwmerge of *this* interpreter's environment: the ``vwmerge`` script beside ``sys.executable``
when its ``#!`` names this environment's interpreter, else ``python -m vwmerge`` — never whatever
``vwmerge`` comes first on PATH.

Cases (``--cases a,b,...``; ``--list-cases`` shows the sets)::

    startup          vwmerge --version, vwmerge --help, beside python -c pass and import vwmerge
    per-model        small models, N = 2 and 2,000: (wall(2000) - wall(2)) / 1998
    small-N          N small VW-trained models (663 bytes each), beside VW's merge_models
    bBITSxN          N models of 2^BITS rows (64 % present), default options; cb-bBITSxN:
                     --cb_explore_adf
    base-bBITSxN     --base BASE plus N models, beside the plain merge of the same N models
    grid             the options x bits x N table of earlier docs/scale.md versions

Each merge case is reported beside its **I/O floor**, measured in the same run: the inputs read
once start to end into a reused buffer (page cache warm: they were read just before) plus an
output of the merged size written and closed without fsync; the fastest of ``--repeat`` tries.
(``vwmerge merge`` also fsyncs its output: the fsync of that many bytes is measured and reported
separately.) VW 9.11.9's ``merge_models`` (every input loaded with
``--preserve_performance_counters``, merged, saved: what vw-merge does) runs as a whole process
too, unless it is predicted to take longer than ``--vw-limit`` seconds or more memory than is
available; the prediction scales a VW run of this benchmark (linear in N) or, before one, the
per-model cost measured in earlier runs (``VW_PRIOR``), and the table says why a run was skipped.

    python benchmarks/bench.py --quick             # a few minutes: the issue-11 targets but b24/b26
    python benchmarks/bench.py                     # + small-10000 and VW where it fits
    python benchmarks/bench.py --big               # + b24x8 and b26x16 (about 13 GB of disk)
    python benchmarks/bench.py --cases b22x8,base-b22x16 --repeat 5 --out results/run1
    python benchmarks/bench.py --smoke             # seconds: every kind of case, tiny sizes

The Markdown table goes to stdout (and ``--out PREFIX`` writes PREFIX.md and PREFIX.json);
``--json FILE`` (``-`` for stdout) writes the raw measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

OPTIONS = {"default": "", "cb": "--cb_explore_adf"}
MIB = float(1 << 20)
GIB = float(1 << 30)

QUICK = ["startup", "per-model", "small-200", "small-2000", "b22x8", "base-b22x16"]
DEFAULT = [*QUICK, "small-10000"]
BIG = ["b24x8", "b26x16"]
SMOKE = ["startup", "per-model", "small-20", "b16x2", "base-b16x2"]
GRID = [
    f"{prefix}b{bits}x{n}"
    for prefix in ("", "cb-")
    for bits in (18, 22, 24, 26)
    for n in ((2, 8, 16) if bits == 26 else (2, 8, 32))
]

#: Above this many models the command line gets them from a list file (``--models-from FILE``,
#: issue 10) when the installed ``vwmerge merge --help`` offers that option; below it, and
#: until then, they go on the command line as long as it fits in ARG_MAX, else through the library.
MODELS_FROM_ABOVE = 1000

#: VW's merge before this run measured one: seconds and peak bytes per input model, by kind
#: ("small" or bits), from docs/scale.md (2026-11-23) and issue 10 (200 small models: 9.6 s,
#: 4.2 GiB). Only used to decide whether to start a VW run.
VW_PRIOR: dict[str | int, tuple[float, float]] = {
    "small": (0.048, 21.5 * MIB),
    18: (0.051, 30 * MIB),
    22: (6.2, 215 * MIB),
    24: (188.0, 790 * MIB),
    26: (3900.0, 3.2 * GIB),
}


def _vw_prior(kind: str | int) -> tuple[float, float, str]:
    """VW's seconds and bytes per model from :data:`VW_PRIOR`; other bit widths scale the closest
    known one by 2 per bit (at least linear in rows)."""
    if kind in VW_PRIOR:
        per_s, per_m = VW_PRIOR[kind]
        return per_s, per_m, f"{per_s:g} s and {per_m / MIB:.0f} MiB per model measured earlier (VW_PRIOR)"
    assert isinstance(kind, int)
    known = min((b for b in VW_PRIOR if isinstance(b, int)), key=lambda b: abs(b - kind))
    per_s, per_m = VW_PRIOR[known]
    factor = 2.0 ** (kind - known)
    return per_s * factor, per_m * factor, f"VW_PRIOR at b{known} × 2^{kind - known}"


#: Seen with VW 9.11.9 at 16, 20 and 22 bits: merge_models' result is an 18-bit model, and with a
#: base it checks the base against it.
VW_BASE_BITS = (
    "VW's merge_models with a base refuses models of bits ≠ 18 "
    "('Model is incompatible with the destination model. Reason: num_bits')"
)


# --------------------------------------------------------------------------------------------
# The vwmerge command of this environment
def vwmerge_command() -> list[str]:
    """argv prefix running the vwmerge installed for ``sys.executable``."""
    bindir = Path(sys.executable).parent
    script = bindir / "vwmerge"
    try:
        first = script.open("rb").readline().decode(errors="replace")
    except OSError:
        first = ""
    interpreter = first[2:].split()[0] if first.startswith("#!") and first[2:].split() else ""
    if interpreter and Path(interpreter).parent == bindir:
        return [str(script)]
    return [sys.executable, "-m", "vwmerge"]


def supports_models_from(cmd: Sequence[str]) -> bool:
    proc = subprocess.run([*cmd, "merge", "--help"], capture_output=True, text=True, check=False)
    return "--models-from" in proc.stdout


def _fits_command_line(argv: Sequence[str]) -> bool:
    pointer = 8
    size = sum(len(a.encode()) + 1 + pointer for a in argv)
    size += sum(len(k) + len(v) + 2 + pointer for k, v in os.environ.items())
    return size < os.sysconf("SC_ARG_MAX") - 8192


# --------------------------------------------------------------------------------------------
# Models
def _examples(args: str, rng: random.Random, count: int, vocabulary: int, features: int) -> Iterable[str]:
    for _ in range(count):
        feats = " ".join(f"f{rng.randrange(vocabulary)}:{rng.random():.3f}" for _ in range(features))
        if "cb_explore_adf" in args:
            chosen = rng.randrange(3)
            lines = [f"shared |s {feats}"]
            for a in range(3):
                label = f"0:{rng.random():.2f}:0.33 " if a == chosen else ""
                lines.append(f"{label}|a act{a} g{rng.randrange(100)}")
            yield "\n".join(lines)
        else:
            yield f"{rng.random():.3f} |x {feats}"


def _train(args: str, bits: int, path: Path, count: int = 200, vocabulary: int = 10_000, features: int = 20) -> Path:
    """A real VW model of the configuration, so that every section holds real state."""
    import vowpalwabbit

    ws = vowpalwabbit.Workspace(f"{args} -b {bits} --quiet", enable_logging=False)
    try:
        for example in _examples(args, random.Random(bits), count, vocabulary, features):
            ws.learn(example)
        ws.save(str(path))
    finally:
        ws.finish()
    return path


def _variant(template: Any, seed: int, density: float, path: Path, scale: float | None = None) -> None:
    """A copy of ``template`` with random rows (a fraction ``density`` of 2^bits) and counters
    scaled by ``scale`` (random in [0.5, 2) when None)."""
    import vwmerge

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
    factor = float(rng.uniform(0.5, 2.0)) if scale is None else scale
    online = state.online
    if online is not None:
        online = attrs.evolve(
            online,
            weighted_labeled_examples=online.weighted_labeled_examples * factor,
            t=online.t * factor,
            example_number=int(online.example_number * factor),
        )
    table = vwmerge.WeightTable(index, values, bits, columns)
    states = (*template.states[:-1], attrs.evolve(state, online=online, table=table))
    attrs.evolve(template, states=states).save(str(path))


@attrs.frozen
class Models:
    folder: Path
    names: list[str]  #: relative to folder
    base: str | None = None

    @property
    def paths(self) -> list[Path]:
        return [self.folder / n for n in self.names]

    def input_bytes(self) -> int:
        extra = [self.folder / self.base] if self.base else []
        return sum(p.stat().st_size for p in [*self.paths, *extra])


def wide_models(work: Path, label: str, bits: int, count: int, density: float, base: bool) -> Models:
    """``count`` variants of one VW-trained model (made once, shared by every case of the
    configuration) and, for base mode, a base with a quarter of the template's examples (fewer
    than every variant, as a base must have)."""
    import vwmerge

    folder = work / f"{label}_b{bits}"
    folder.mkdir(parents=True, exist_ok=True)
    template_path = folder / "template.model"
    if not template_path.exists():
        _train(OPTIONS[label], bits, template_path)
    template = None
    names = [f"m{i:03d}.model" for i in range(count)]
    for i, name in enumerate(names):
        if not (folder / name).exists():
            template = template or vwmerge.load(template_path)
            _variant(template, 1000 * bits + i, density, folder / name)
    if base and not (folder / "base.model").exists():
        _variant(template or vwmerge.load(template_path), 999, density, folder / "base.model", scale=0.25)
    return Models(folder, names, "base.model" if base else None)


def small_models(work: Path, count: int) -> Models:
    """``count`` copies of one small VW-trained model (10 examples of 4 features: ~660 bytes)."""
    folder = work / "small"
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "template.model"
    if not template.exists():
        _train("", 18, template, count=10, vocabulary=40, features=4)
    names = [f"{i:05d}.model" for i in range(count)]
    for name in names:
        if not (folder / name).exists():
            shutil.copyfile(template, folder / name)
    return Models(folder, names)


# --------------------------------------------------------------------------------------------
# Measuring one process
class ProcessFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], code: int, stderr: str) -> None:
        lines = [line for line in stderr.splitlines() if line.strip()]
        self.last_line = lines[-1].strip() if lines else f"exit status {code}"
        super().__init__(f"{' '.join(map(str, argv[:5]))} ... exited {code}:\n{stderr[-3000:]}")


@attrs.frozen
class Proc:
    wall: float
    peak_rss: int  #: bytes: the process or the largest child it waited for
    cpu: float  #: user + system seconds, children included
    stdout: str


#: Runs one command and measures it from a small process: a child's peak RSS (``ru_maxrss``)
#: includes the memory of the process it was forked from as it was before ``exec``, so a fork of
#: this benchmark (numpy loaded) would report 40+ MiB for ``python -c pass``. The wrapper is a
#: ``python -S`` importing only built-in modules (about 8 MiB, the floor of every peak reported);
#: it forks, execs the command, ``wait4``s it and writes its wall time, its rusage (peak RSS of it
#: and the children it waited for, CPU time) and its exit status to the file named first.
WRAPPER = """
import os, signal, sys, time
result, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
signal.setitimer(signal.ITIMER_REAL, 0)
with open(result, "w") as f:
    f.write(f"{wall} {usage.ru_maxrss * 1024} {usage.ru_utime + usage.ru_stime} {status}")
"""


def run_process(argv: Sequence[str], cwd: Path | None = None, timeout: float = 3600.0) -> Proc | None:
    """Run ``argv`` through :data:`WRAPPER`: wall time, peak RSS, CPU time. None: timed out."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result"
        wrapped = [sys.executable, "-S", "-c", WRAPPER, str(result), str(timeout), *map(str, argv)]
        subprocess.run(wrapped, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=True)
        wall_s, rss_s, cpu_s, status_s = result.read_text().split()
        status = int(status_s)
        out.seek(0)
        err.seek(0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            return None
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise ProcessFailed(argv, code, err.read().decode(errors="replace"))
        return Proc(float(wall_s), int(rss_s), float(cpu_s), out.read().decode())


@attrs.frozen
class Timing:
    """Repeated runs of one command."""

    walls: list[float]
    peak_rss: int
    cpu: float  #: median
    inner: float | None = None  #: median of the seconds the process reports itself (merge only)
    via: str = ""  #: how the models were given: args, --models-from, library

    @property
    def min(self) -> float:
        return min(self.walls)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def max(self) -> float:
        return max(self.walls)


def repeat(run: Callable[[], Proc | None], times: int, long: float = float("inf")) -> tuple[list[Proc], bool]:
    """``times`` runs (one when a run takes longer than ``long`` s); False when one timed out."""
    procs: list[Proc] = []
    while len(procs) < times:
        proc = run()
        if proc is None:
            return procs, False
        procs.append(proc)
        if proc.wall >= long:
            break
    return procs, True


def timing(procs: list[Proc], inner: list[float] | None = None, via: str = "") -> Timing:
    return Timing(
        walls=[p.wall for p in procs],
        peak_rss=max(p.peak_rss for p in procs),
        cpu=statistics.median(p.cpu for p in procs),
        inner=statistics.median(inner) if inner else None,
        via=via,
    )


# --------------------------------------------------------------------------------------------
# The I/O floor
@attrs.frozen
class Floor:
    read: float  #: the inputs read once, page cache warm (fastest try)
    write: float  #: an output of the merged size written, closed without fsync (fastest try)
    fsync: float  #: the same write, fsynced (vwmerge merge fsyncs its output; for reference)

    @property
    def total(self) -> float:
        return self.read + self.write


def _read_all(paths: Sequence[Path], buf: bytearray) -> float:
    start = time.perf_counter()
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    return time.perf_counter() - start


def _write(path: Path, size: int, block: bytes, fsync: bool) -> float:
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        left = size
        while left > 0:
            left -= f.write(block[: min(left, len(block))])
        if fsync:
            os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return seconds


def io_floor(paths: Sequence[Path], output_bytes: int, folder: Path, tries: int) -> Floor:
    buf = bytearray(16 << 20)
    block = bytes(np.random.default_rng(0).integers(0, 255, 16 << 20, dtype=np.uint8))
    _read_all(paths, buf)  # page cache warm
    reads = [_read_all(paths, buf) for _ in range(max(tries, 1))]
    writes = [_write(folder / "floor.tmp", output_bytes, block, fsync=False) for _ in range(max(tries, 1))]
    os.sync()  # nothing of the floor's writes left to compete with the next measurement
    fsync = _write(folder / "floor.tmp", output_bytes, block, fsync=True)
    return Floor(min(reads), min(writes), fsync)


# --------------------------------------------------------------------------------------------
# Children: VW's merge, and vwmerge's library when the command line cannot take the models
def _child(kind: str, out: str, listfile: str, base: str | None) -> None:
    paths = Path(listfile).read_text().splitlines()
    start = time.perf_counter()
    if kind == "vw":
        import vowpalwabbit

        start = time.perf_counter()
        opts = "--preserve_performance_counters --quiet"
        base_ws = vowpalwabbit.Workspace(f"-i {base} {opts}", enable_logging=False) if base else None
        wss = [vowpalwabbit.Workspace(f"-i {p} {opts}", enable_logging=False) for p in paths]
        vowpalwabbit.merge_models(base_ws, wss).save(out)
    else:
        import importlib

        module = importlib.import_module("vwmerge.engine.streaming")  # where merge_files lives
        importlib.import_module("vwmerge").default_registry()  # plugin discovery, left out as by the CLI
        start = time.perf_counter()
        module.merge_files(paths, out, base=base, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - start}))


# --------------------------------------------------------------------------------------------
# Rows
@attrs.frozen
class Row:
    case: str
    what: str  #: the command or merge measured
    models: int | None
    input_bytes: int | None
    output_bytes: int | None
    vwmerge: Timing | None
    floor: Floor | None = None
    vw: Timing | None = None
    vw_note: str = ""


@attrs.frozen
class Setup:
    cmd: list[str]
    models_from: bool
    work: Path
    repeat: int
    startup_repeat: int
    density: float
    vw_limit: float
    vw: bool
    per_model: tuple[int, int]
    memory_available: int


def merge_argv(setup: Setup, models: Models, out: Path, listfile: Path) -> tuple[list[str], str]:
    """The command merging ``models`` into ``out`` and how it takes them (args, --models-from,
    library)."""
    head = [*setup.cmd, "--log-level", "warning", "merge", "--quiet", "--json", "-o", str(out)]
    if models.base:
        head += ["--base", models.base]
    if setup.models_from and len(models.names) > MODELS_FROM_ABOVE:
        listfile.write_text("".join(f"{n}\n" for n in models.names))
        return [*head, "--models-from", str(listfile)], "--models-from"
    argv = [*head, *models.names]
    if _fits_command_line(argv):
        return argv, "args"
    listfile.write_text("".join(f"{p}\n" for p in models.paths))
    child = [sys.executable, __file__, "--child", "vwmerge", "--child-out", str(out), "--child-list", str(listfile)]
    if models.base:
        child += ["--child-base", str(models.folder / models.base)]
    return child, "library"


class Bench:
    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.rows: list[Row] = []
        self._merges: dict[tuple[str, int, bool], Row] = {}
        self._vw_measured: dict[tuple[str | int, bool], tuple[int, Timing]] = {}

    # -- merge cases
    def merge_row(self, case: str, kind: str, label: str, bits: int, n: int, base: bool) -> Row:
        key = (f"{label}/{kind}{bits}", n, base)
        if key in self._merges:
            first = self._merges[key]
            return attrs.evolve(first, what=f"{first.what} (the runs of {first.case})")
        s = self.setup
        if kind == "small":
            models = small_models(s.work, n)
            what = f"{n} small models"
        else:
            need = int((n + base) * (1 << bits) * s.density * 16 * 1.1) + (1 << bits) * 16 + (2 << 30)
            free = shutil.disk_usage(s.work).free
            if free < need:
                row = Row(case, f"skipped: needs ~{need / GIB:.1f} GiB of disk, {free / GIB:.1f} free", n,
                          None, None, None)  # fmt: skip
                self._merges[key] = row
                return row
            models = wide_models(s.work, label, bits, n, s.density, base)
            opts = f" {OPTIONS[label]}" if OPTIONS[label] else ""
            what = f"b{bits}{opts} × {n}" + (" --base" if base else "")
        os.sync()  # no write-back of new models competing with the measurements
        out = s.work / "merged.model"
        listfile = s.work / "models.txt"
        argv, via = merge_argv(s, models, out, listfile)
        procs, ok = repeat(lambda: run_process(argv, cwd=models.folder), s.repeat)
        if not ok:
            raise RuntimeError(f"{case}: vwmerge did not finish within an hour")
        output_bytes = out.stat().st_size
        out.unlink()
        inner = [_reported_seconds(p.stdout) for p in procs]
        ours = timing(procs, [x for x in inner if x is not None], via)
        extra = [models.folder / models.base] if models.base else []
        floor = io_floor([*models.paths, *extra], output_bytes, s.work, s.repeat)
        vw, note = self.vw_run(kind, label, bits, models, out, listfile)
        row = Row(case, what, n, models.input_bytes(), output_bytes, ours, floor, vw, note)
        self._merges[key] = row
        return row

    def vw_run(
        self, kind: str, label: str, bits: int, models: Models, out: Path, listfile: Path
    ) -> tuple[Timing | None, str]:
        s = self.setup
        if not s.vw:
            return None, "not run (--no-vw)"
        if models.base and bits != 18:
            return None, f"VW not run: {VW_BASE_BITS}"
        n = len(models.names) + (1 if models.base else 0)
        prior_key: str | int = "small" if kind == "small" else bits
        measured = self._vw_measured.get((f"{label}/{prior_key}", bool(models.base)))
        if measured is not None and measured[0] * 10 >= n:
            # linear in N above the process's fixed cost (start-up, import): close N only, since
            # a two-model run is mostly that fixed cost (memory: all of it scaled, an overestimate)
            m, t = measured
            fixed = t.median - (t.inner if t.inner is not None else 0.0)
            seconds, memory = fixed + (t.median - fixed) * n / m, t.peak_rss * n / m
            basis = f"{t.median:.1f} s, {t.peak_rss / GIB:.2f} GiB measured here for N={m}, × N/{m}"
        else:
            per_s, per_m, basis = _vw_prior(prior_key)
            seconds, memory = per_s * n, per_m * n
        if seconds > s.vw_limit:
            return None, f"VW not run: predicted {seconds:.0f} s > --vw-limit {s.vw_limit:.0f} s ({basis})"
        if memory > 0.8 * s.memory_available:
            return None, (
                f"VW not run: predicted {memory / GIB:.1f} GiB, {s.memory_available / GIB:.1f} GiB available ({basis})"
            )
        listfile.write_text("".join(f"{p}\n" for p in models.paths))
        argv = [sys.executable, __file__, "--child", "vw", "--child-out", str(out), "--child-list", str(listfile)]
        if models.base:
            argv += ["--child-base", str(models.folder / models.base)]
        timeout = max(3 * s.vw_limit, 60.0)
        try:
            procs, ok = repeat(lambda: run_process(argv, timeout=timeout), s.repeat, long=15.0)
        except ProcessFailed as e:
            return None, f"VW failed: {e.last_line}"
        finally:
            out.unlink(missing_ok=True)
        if not ok:
            return None, f"VW killed after {timeout:.0f} s"
        inner = [_reported_seconds(p.stdout) for p in procs]
        t = timing(procs, [x for x in inner if x is not None])
        key = (f"{label}/{prior_key}", bool(models.base))
        if n >= self._vw_measured.get(key, (0, t))[0]:
            self._vw_measured[key] = (n, t)
        return t, ""

    # -- cases
    def run_case(self, case: str) -> None:
        if case == "startup":
            self.startup()
            return
        if case == "per-model":
            for n in self.setup.per_model:
                row = self.merge_row(f"per-model {n}", "small", "default", 18, n, False)
                self.rows.append(attrs.evolve(row, case=f"per-model {n}"))
            return
        if m := re.fullmatch(r"small-(\d+)", case):
            row = self.merge_row(case, "small", "default", 18, int(m.group(1)), False)
            self.rows.append(attrs.evolve(row, case=case))
            return
        m = CASE.fullmatch(case)
        if m is None:
            raise SystemExit(f"unknown case {case!r} (--list-cases shows them)")
        label = "cb" if m.group("cb") else "default"
        bits, n = int(m.group("bits")), int(m.group("n"))
        if m.group("base"):
            plain = self.merge_row(f"{case} plain", "wide", label, bits, n, False)
            self.rows.append(attrs.evolve(plain, case=f"{case} (plain)"))
        self.rows.append(self.merge_row(case, "wide", label, bits, n, bool(m.group("base"))))

    def startup(self) -> None:
        s = self.setup
        runs = {
            "vwmerge --version": [*s.cmd, "--version"],
            "vwmerge --help": [*s.cmd, "--help"],
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import vwmerge'": [sys.executable, "-c", "import vwmerge"],
        }
        for what, argv in runs.items():
            if s.startup_repeat >= 3:
                run_process(argv)  # warm
            procs, _ = repeat(lambda argv=argv: run_process(argv), s.startup_repeat)  # type: ignore[misc]
            self.rows.append(Row("startup", what, None, None, None, timing(procs)))

    def prune(self, work: Path, keep: set[str]) -> None:
        """Delete generated models no remaining case needs (big configurations take GBs)."""
        for folder in work.iterdir():
            if folder.is_dir() and folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)


CASE = re.compile(r"(?P<base>base-)?(?P<cb>cb-)?b(?P<bits>\d+)x(?P<n>\d+)")


def _folder_of(case: str) -> str:
    if case in ("startup",):
        return ""
    if case == "per-model" or case.startswith("small-"):
        return "small"
    m = CASE.fullmatch(case)
    return f"{'cb' if m and m.group('cb') else 'default'}_b{m.group('bits')}" if m else ""


def _reported_seconds(stdout: str) -> float | None:
    """The merge's own seconds (load + merge + save) from ``--json`` or the library child."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    value = doc.get("seconds") if isinstance(doc, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


# --------------------------------------------------------------------------------------------
# Output
def _s(x: float) -> str:
    return f"{x:.2g}" if x < 0.01 else f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.0f}"


def _mib(x: float) -> str:
    return f"{x / MIB:.0f}" if x >= 10 * MIB else f"{x / MIB:.1f}" if x >= 0.1 * MIB else f"{x / MIB:.2g}"


COLUMNS = [
    "case", "what", "input MiB", "output MiB", "vwmerge s (min / median / max)", "CPU s", "in-process s",
    "peak MiB", "I/O floor s (read + write)", "× floor", "fsync s", "VW s (min / median / max)",
    "VW peak MiB", "× VW",
]  # fmt: skip


def render(rows: list[Row], meta: dict[str, Any], targets: list[dict[str, str]]) -> str:
    out = [
        f"vwmerge {meta['vwmerge']} (`{meta['command']}`) vs VW {meta['vw']}, {meta['started']}; "
        f"{meta['cpus']} cores, {meta['memory_gib']:.0f} GiB, load average {meta['load_average']:.1f} "
        f"at the start; {meta['repeat']} runs per merge, {meta['startup_repeat']} per start-up command",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---:|" * (len(COLUMNS) - 2),
    ]
    notes: list[str] = []
    for r in rows:
        c = dict.fromkeys(COLUMNS, "–") | {"case": r.case, "what": r.what}
        if r.input_bytes is not None:
            c["input MiB"] = _mib(r.input_bytes)
        if r.output_bytes is not None:
            c["output MiB"] = _mib(r.output_bytes)
        t = r.vwmerge
        if t is not None:
            via = "" if t.via in ("", "args") else f" ({t.via})"
            c["vwmerge s (min / median / max)"] = f"{_s(t.min)} / {_s(t.median)} / {_s(t.max)}{via}"
            c["CPU s"] = _s(t.cpu)
            c["in-process s"] = _s(t.inner) if t.inner is not None else "–"
            c["peak MiB"] = _mib(t.peak_rss)
        if r.floor is not None and t is not None:
            f = r.floor
            c["I/O floor s (read + write)"] = f"{_s(f.total)} ({_s(f.read)} + {_s(f.write)})"
            c["× floor"] = f"{t.median / f.total:.1f}"
            c["fsync s"] = _s(f.fsync)
        if r.vw is not None and t is not None:
            v = r.vw
            c["VW s (min / median / max)"] = f"{_s(v.min)} / {_s(v.median)} / {_s(v.max)}"
            c["VW peak MiB"] = _mib(v.peak_rss)
            c["× VW"] = f"{t.median / v.median:.3f}"
        elif r.vw_note:
            if r.vw_note not in notes:
                notes.append(r.vw_note)
            c["VW s (min / median / max)"] = f"skipped [{notes.index(r.vw_note) + 1}]"
        cells = [c[name] for name in COLUMNS]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out += [f"[{i}] {note}." for i, note in enumerate(notes, 1)]
    if targets:
        out += ["", "| target (issue 11) | measured (medians) | met |", "|---|---|---|"]
        out += [f"| {t['target']} | {t['measured']} | {t['met']} |" for t in targets]
    return "\n".join(out)


def _row(rows: list[Row], case: str) -> Row | None:
    return next((r for r in rows if r.case == case and r.vwmerge is not None), None)


def targets(rows: list[Row]) -> list[dict[str, str]]:
    """The issue-11 targets this run can say something about, judged on medians."""
    result: list[dict[str, str]] = []

    def add(target: str, measured: str, met: bool) -> None:
        result.append({"target": target, "measured": measured, "met": "yes" if met else "no"})

    for case, limit, memory in (("b22x8", 5.0, None), ("b24x8", 3.0, None), ("b26x16", 8.0, 3 * GIB)):
        r = _row(rows, case)
        if r is None or r.floor is None or r.vwmerge is None:
            continue
        ratio = r.vwmerge.median / r.floor.total
        text = f"{_s(r.vwmerge.median)} s / {_s(r.floor.total)} s = {ratio:.1f}× (CPU {_s(r.vwmerge.cpu)} s)"
        ok = ratio <= limit
        goal = f"{case}: ≤ {limit:g}× the I/O floor"
        if memory is not None:
            text += f", peak {r.vwmerge.peak_rss / GIB:.2f} GiB"
            ok = ok and r.vwmerge.peak_rss <= memory
            goal += f" in ≤ {memory / GIB:.0f} GiB"
        add(goal, text, ok)
    bare = next((r for r in rows if r.what == "python -c pass" and r.vwmerge), None)
    for what in ("vwmerge --version", "vwmerge --help"):
        r = next((r for r in rows if r.what == what and r.vwmerge), None)
        if r is not None and r.vwmerge is not None:
            text = f"{_s(r.vwmerge.median)} s, CPU {_s(r.vwmerge.cpu)} s"
            if bare is not None and bare.vwmerge is not None:
                text += f" (python -c pass: {_s(bare.vwmerge.median)} s, CPU {_s(bare.vwmerge.cpu)} s)"
            add(f"`{what}` ≤ 0.12 s", text, r.vwmerge.median <= 0.12)
    per = sorted(
        (r.models, r.vwmerge.median, r.vwmerge.cpu)
        for r in rows
        if r.case.startswith("per-model") and r.vwmerge and r.models
    )
    if len(per) >= 2 and per[-1][0] > per[0][0]:
        (n0, w0, c0), (n1, w1, c1) = per[0], per[-1]
        cost = (w1 - w0) / (n1 - n0)
        text = (
            f"(wall({n1}) − wall({n0})) / {n1 - n0} = ({_s(w1)} − {_s(w0)}) s / {n1 - n0} = {cost * 1e3:.2f} ms"
            f" (CPU: {(c1 - c0) / (n1 - n0) * 1e3:.2f} ms)"
        )
        if cost < 0:
            result.append({"target": "per-model overhead ≤ 0.3 ms", "measured": text + " (noise)", "met": "–"})
        else:
            add("per-model overhead ≤ 0.3 ms", text, cost <= 0.3e-3)
    for r in rows:
        m = CASE.fullmatch(r.case)
        if m and m.group("base") and r.vwmerge is not None:
            plain = _row(rows, f"{r.case} (plain)")
            if plain is not None and plain.vwmerge is not None:
                ratio = r.vwmerge.median / plain.vwmerge.median
                add(
                    f"{r.case}: base mode ≤ 1.5× plain mode",
                    f"{_s(r.vwmerge.median)} s / {_s(plain.vwmerge.median)} s = {ratio:.2f}×"
                    f" (CPU {_s(r.vwmerge.cpu)} s / {_s(plain.vwmerge.cpu)} s)",
                    ratio <= 1.5,
                )
    small = sorted(
        (r.models, r.vwmerge.peak_rss) for r in rows if r.case.startswith("small-") and r.vwmerge and r.models
    )
    if len(small) >= 2:
        (n0, m0), (n1, m1) = small[0], small[-1]
        add(
            "memory flat in N (small models)",
            f"peak {_mib(m0)} MiB at N = {n0}, {_mib(m1)} MiB at N = {n1}"
            f" ({(m1 - m0) / (n1 - n0) / 1024:+.1f} KiB per model)",
            m1 <= 1.25 * m0 + 8 * MIB,
        )
    return result


def _version() -> str:
    import vwmerge

    return str(vwmerge.__version__)


def _vw_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("vowpalwabbit")


def _memory_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _as_json(value: Any) -> Any:
    if isinstance(value, Timing):
        return {**attrs.asdict(value), "min": value.min, "median": value.median, "max": value.max}
    if isinstance(value, Floor):
        return {**attrs.asdict(value), "total": value.total}
    if attrs.has(type(value)):
        return {f.name: _as_json(getattr(value, f.name)) for f in attrs.fields(type(value))}
    return value


def select_cases(a: argparse.Namespace) -> list[str]:
    if a.cases:
        names: list[str] = []
        for c in a.cases.split(","):
            names += {"quick": QUICK, "default": DEFAULT, "big": BIG, "grid": GRID, "smoke": SMOKE}.get(c, [c])
    elif a.smoke:
        names = list(SMOKE)
    elif a.quick:
        names = list(QUICK)
    else:
        names = list(DEFAULT)
    if a.big and not a.cases:
        names += BIG
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", help="comma-separated cases or sets (quick, default, big, grid, smoke)")
    parser.add_argument("--quick", action="store_true", help="the quick set: " + ",".join(QUICK))
    parser.add_argument("--big", action="store_true", help="add " + ",".join(BIG) + " (GBs of disk, minutes)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds: " + ",".join(SMOKE))
    parser.add_argument("--list-cases", action="store_true", help="print the case sets and exit")
    parser.add_argument("--repeat", type=int, default=None, help="runs per merge (default 3; --smoke 1)")
    parser.add_argument("--startup-repeat", type=int, default=None, help="runs per start-up command (default 10)")
    parser.add_argument("--per-model", default=None, help="the two N of per-model (default 2,2000; --smoke 2,20)")
    parser.add_argument("--density", type=float, default=0.64, help="fraction of the 2^bits rows present")
    parser.add_argument("--vw-limit", type=float, default=None, help="skip VW runs predicted longer (s; 330)")
    parser.add_argument("--no-vw", action="store_true", help="do not run VW")
    parser.add_argument("--work", type=Path, default=None, help="where models go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated models")
    parser.add_argument("--out", type=Path, default=None, help="also write PREFIX.md and PREFIX.json")
    parser.add_argument("--json", dest="json_path", default=None, help="write the raw results as JSON (- : stdout)")
    parser.add_argument("--child", choices=["vw", "vwmerge"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--child-list", help=argparse.SUPPRESS)
    parser.add_argument("--child-base", help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.child:
        _child(a.child, a.child_out, a.child_list, a.child_base)
        return 0
    if a.list_cases:
        for name, cases in (("quick", QUICK), ("default", DEFAULT), ("big", BIG), ("smoke", SMOKE), ("grid", GRID)):
            print(f"{name}: {','.join(cases)}")
        return 0

    cases = select_cases(a)
    n0, n1 = map(int, (a.per_model or ("2,20" if a.smoke else "2,2000")).split(","))
    cmd = vwmerge_command()
    versions = {"vwmerge": _version(), "vw": _vw_version()}  # fail before making anything
    work = a.work or Path(tempfile.mkdtemp(prefix="vwmerge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        cmd=cmd,
        models_from=supports_models_from(cmd),
        work=work,
        repeat=a.repeat or (1 if a.smoke else 3),
        startup_repeat=a.startup_repeat or (2 if a.smoke else 10),
        density=a.density,
        vw_limit=a.vw_limit if a.vw_limit is not None else (5.0 if a.smoke else 30.0 if a.quick else 330.0),
        vw=not a.no_vw,
        per_model=(n0, n1),
        memory_available=_memory_available(),
    )
    meta = {
        "vwmerge": versions["vwmerge"],
        "command": " ".join(cmd),
        "models_from": setup.models_from,
        "vw": versions["vw"],
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB,
        "load_average": os.getloadavg()[0],
        "repeat": setup.repeat,
        "startup_repeat": setup.startup_repeat,
        "vw_limit": setup.vw_limit,
        "density": setup.density,
        "cases": cases,
    }
    bench = Bench(setup)
    try:
        for i, case in enumerate(cases):
            start = time.perf_counter()
            bench.run_case(case)
            print(f"bench: {case}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            if not a.keep:
                bench.prune(work, {_folder_of(c) for c in cases[i + 1 :]})
        found = targets(bench.rows)
        table = render(bench.rows, meta, found)
        doc = {"meta": meta, "rows": [_as_json(r) for r in bench.rows], "targets": found}
        if a.json_path == "-":
            print(json.dumps(doc, indent=1))
        else:
            print(table)
            if a.json_path:
                Path(a.json_path).write_text(json.dumps(doc, indent=1) + "\n")
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.with_suffix(".md").write_text(table + "\n")
            a.out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    finally:
        if not a.keep and a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
