"""The long fuzz campaign (``make fuzz``): ``python tests/fuzz/run.py --seconds 1800``.

Trains the seed models (cached in ``--workdir``), then runs the harness in a worker process
under an address-space limit (``--memory``, RLIMIT_AS), so an allocation bomb is a MemoryError
the harness reports instead of a machine brought down. A watchdog restarts a worker that stops
reporting (an input that hangs outside Python code, where the per-input alarm cannot fire) or
dies (a crash), and records the input it was on as a finding. Findings go to
``<workdir>/findings/`` (the input as ``<tag>.model``, what happened as ``<tag>.txt``); the
summary (executions, duration, distinct findings) is printed at the end and written to
``<workdir>/summary.json``. Exit status 1 when there are findings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # harness, and tests/helpers for the seeds

import harness  # noqa: E402


def worker(args: argparse.Namespace) -> None:
    import resource
    import warnings

    from vwmerge.cli import logs

    logs.configure("error", "json")  # the merges' warnings are expected; findings are what matters
    warnings.simplefilter("ignore")  # numpy's overflow/invalid warnings on hostile floats
    resource.setrlimit(resource.RLIMIT_AS, (args.memory << 20, args.memory << 20))
    workdir = Path(args.workdir)
    seeds = harness.build_seeds(workdir / "seeds")
    current = workdir / f"current-{os.getpid()}.model"
    stats_file = workdir / f"stats-{os.getpid()}.json"

    def on_input(data: bytes) -> None:
        current.write_bytes(data)

    def on_progress(stats: harness.Stats) -> None:
        tmp = stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(
            {"library_execs": stats.library_execs, "cli_execs": stats.cli_execs, "findings": stats.findings}
        ))  # fmt: skip
        tmp.replace(stats_file)

    stats = harness.run_campaign(
        seeds, seed=args.seed, seconds=args.seconds, cli_every=args.cli_every,
        findings_dir=workdir / "findings", on_input=on_input, on_progress=on_progress,
    )  # fmt: skip
    on_progress(stats)
    current.unlink(missing_ok=True)


def _cpu_ticks(pid: int) -> int:
    """CPU time (utime + stime, clock ticks) the worker has used: a worker starved of CPU by a busy
    machine (it runs at nice 19) is slow, not hung; only a worker using no CPU is."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1800.0, help="campaign duration (default 1800)")
    ap.add_argument("--workdir", default="fuzz-work", help="seeds, findings, summary (default ./fuzz-work)")
    ap.add_argument("--seed", type=int, default=None, help="first worker's RNG seed (default: random)")
    ap.add_argument("--cli-every", type=int, default=40, help="run the CLI commands on every N-th input")
    ap.add_argument("--memory", type=int, default=2048, help="worker address-space limit in MiB")
    ap.add_argument(
        "--stall",
        type=float,
        default=360.0,
        help="restart a worker that neither starts an input nor a command nor uses CPU for this long (default 360)",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    if args.worker:
        worker(args)
        return 0

    harness.build_seeds(workdir / "seeds")  # in this process: the worker never imports VW
    rng = random.Random(args.seed)
    start = time.monotonic()
    totals = {"library_execs": 0, "cli_execs": 0, "workers": 0}
    findings: dict[str, str] = {}
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    while (left := args.seconds - (time.monotonic() - start)) > 5:
        seed = rng.randrange(2**31)
        cmd = [sys.executable, __file__, "--worker", "--workdir", str(workdir), "--seed", str(seed),
               "--seconds", str(left), "--cli-every", str(args.cli_every), "--memory", str(args.memory)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env)
        totals["workers"] += 1
        stats_file = workdir / f"stats-{proc.pid}.json"
        current = workdir / f"current-{proc.pid}.model"
        last_beat = time.monotonic()
        last_mtime = 0.0
        last_cpu = -1
        reason = None
        while proc.poll() is None:
            time.sleep(2)
            # The worker writes each input to `current` before checking it: that is its heartbeat.
            beats = [f.stat().st_mtime for f in (stats_file, current) if f.exists()]
            with_beat = max(beats, default=0.0)
            cpu = _cpu_ticks(proc.pid)
            if with_beat != last_mtime or cpu != last_cpu:  # a new input, or still computing
                last_mtime, last_cpu, last_beat = with_beat, cpu, time.monotonic()
            if time.monotonic() - last_beat > args.stall:
                reason = f"worker silent for {args.stall:.0f} s (hang outside Python code)"
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if reason is None and proc.returncode != 0:
            reason = f"worker died with status {proc.returncode}"
        if stats_file.exists():
            st = json.loads(stats_file.read_text())
            totals["library_execs"] += st["library_execs"]
            totals["cli_execs"] += st["cli_execs"]
            findings.update(st["findings"])
            stats_file.unlink()
        if reason is not None:
            sig = f"worker:{reason}"
            findings.setdefault(sig, reason)
            if current.exists():
                (workdir / "findings").mkdir(exist_ok=True)
                current.replace(workdir / "findings" / f"worker-{proc.pid}.model")
            print(f"fuzz: {reason}; restarting", file=sys.stderr)
        current.unlink(missing_ok=True)
    summary = {"seconds": round(time.monotonic() - start, 1), **totals, "findings": findings}
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
