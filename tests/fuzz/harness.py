"""Fuzzing vwmerge with real VW models: seed models, structured mutations, the property checked.

The property (issue 8, item 4): whatever the bytes, loading, writing, merging, planning and
inspecting a model raise nothing but :class:`vwmerge.VWMergeError`, promptly and in bounded
memory; the CLI exits 0 or 1, and on 1 prints one ``Error:`` line naming a file and no traceback.
Anything else is a *finding*.

Seeds are real VW 9.11.9 models trained when the harness starts (:func:`build_seeds`). Mutations
are mostly structured, because random bytes rarely get past the header checksum: the header is
re-encoded with a valid checksum after its options, bits, lda or string/count fields are given
hostile values (``inf``, ``nan``, ``1e12``, ``-1``, 0xFFFFFFFF, ...); u32/u64/float fields in the
sections are overwritten with hostile values; weight rows get NaN/inf; files are cut, spliced
and bit-flipped. ``run.py`` drives a long campaign; ``test_fuzz_smoke.py`` a short fixed one.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

#: VW option sets the seeds are trained with: the main base learners and the reductions whose
#: sections carry sizes, trees, counters or numerical state.
SEED_STACKS: tuple[str, ...] = (
    "",
    "--sgd",
    "--oaa 3",
    "--nn 2",
    "--cb_explore_adf",
    "--cb_explore_adf --cover 2",
    "--cb_explore_adf --epsilon_decay --model_count 2",
    "--csoaa_ldf m",
    "--lda 3 -b 8",
    "--rank 2 -q ab -b 10",
    "--recall_tree 4",
    "--plt 4 --loss_function logistic",
    "--log_multi 3",
    "--memory_tree 4",
    "--ftrl",
    "--pistol",
    "--bfgs --predict_only_model -b 12",
    "--marginal m",
    "--boosting 3",
    "--new_mf 2 -q ab -b 10",
    "--cats 4 --min_value 0 --max_value 10 --bandwidth 1",
    "--active --simulation",
)

#: A quick subset for the short run in the normal test suite.
SMOKE_STACKS: tuple[str, ...] = (
    "",
    "--oaa 3",
    "--cb_explore_adf",
    "--lda 3 -b 8",
    "--rank 2 -q ab -b 10",
    "--recall_tree 4",
    "--plt 4 --loss_function logistic",
    "--ftrl",
    "--bfgs --predict_only_model -b 12",
    "--csoaa_ldf m",
)

#: Option values VW would never write: not numbers, not finite, not integers, out of range.
HOSTILE_VALUES: tuple[str, ...] = (
    "inf", "-inf", "nan", "NaN", "1e9", "1e12", "1e308", "1e999", "-1", "-2147483649", "0",
    "4294967295", "4294967296", "18446744073709551616", "9" * 40, "1.5", "0x10", "abc", "",
    "2147483647", "65", "64", "1e-9", "-0", "+3", "3.0",
)  # fmt: skip
#: u32 values for counts, lengths, bits and indices.
HOSTILE_U32: tuple[int, ...] = (
    0, 1, 2, 3, 7, 31, 32, 63, 64, 65, 255, 256, 4096, 0xFFFF, 0x10000,
    0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF,
)  # fmt: skip
HOSTILE_U64: tuple[int, ...] = (0, 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1)
HOSTILE_F32: tuple[float, ...] = (math.nan, math.inf, -math.inf, 3.4e38, -3.4e38, 1e-45, 0.0, -0.0, -1.0, 1e30)


@attrs.frozen
class Seed:
    args: str
    path: Path
    data: bytes


def build_seeds(directory: Path, stacks: Sequence[str] = SEED_STACKS, n: int = 40) -> list[Seed]:
    """Train one real VW model per option set (cached in ``directory``) and read it."""
    from helpers import vwtrain  # imported here so fuzz workers never load VW

    directory.mkdir(parents=True, exist_ok=True)
    seeds = []
    for args in stacks:
        slug = hashlib.sha1(args.encode()).hexdigest()[:10]
        path = directory / f"seed-{slug}.model"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            if args.startswith(("--lda", "--bfgs")):
                _train_from_file(args, tmp, n)
            else:
                vwtrain.train(args, 5, tmp, n=n)
            tmp.rename(path)
        seeds.append(Seed(args, path, path.read_bytes()))
    return seeds


def _train_from_file(args: str, path: Path, n: int) -> None:
    """lda (unlabeled text) and bfgs (passes over a cache) train from a data file, as in VW."""
    import vowpalwabbit
    from helpers import vwtrain

    data = path.with_suffix(".txt")
    lines = [ex if isinstance(ex, str) else "\n".join(ex) for ex in vwtrain._examples(args, random.Random(5), n)]
    data.write_text("\n".join(lines) + "\n")
    passes = f"--passes 3 -c -k --cache_file {path.with_suffix('.cache')}" if "--bfgs" in args else ""
    ws = vowpalwabbit.Workspace(f"{args} -d {data} {passes} -f {path} --quiet", enable_logging=False)
    ws.finish()
    data.unlink()
    path.with_suffix(".cache").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Structured mutations
@attrs.frozen
class Parsed:
    """A model cut into its header's checksummed chunks and the rest of the file."""

    version: bytes  #: the version LP blob's payload
    chunks: list[bytes]  #: Header._checksum_chunks(): id len, id, 'm', min, max, bits, lda, ...
    rest: bytes  #: everything after the checksum (the reduction sections)


def parse(data: bytes) -> Parsed | None:
    from vwmerge.format.binio import Reader
    from vwmerge.format.header import Header

    try:
        r = Reader(data)
        h = Header.read(r)
    except Exception:
        return None
    return Parsed(h.version_raw, h._checksum_chunks(), data[r.pos :])


def encode(p: Parsed, *, rest: bytes | None = None) -> bytes:
    """The header from ``p``'s chunks with a valid chained checksum, then ``rest``."""
    from vwmerge.format.murmur import chained_checksum

    out = [struct.pack("<I", len(p.version)), p.version, *p.chunks, struct.pack("<II", 4, chained_checksum(p.chunks))]
    return b"".join(out) + (p.rest if rest is None else rest)


def _options_index(chunks: list[bytes]) -> int:
    return len(chunks) - 1  # the options payload is the last chunk, its length the one before


def _with_options(p: Parsed, text: str) -> Parsed:
    raw = text.encode("utf-8", "replace") + b"\0"
    chunks = list(p.chunks)
    k = _options_index(chunks)
    chunks[k - 1] = struct.pack("<I", len(raw))
    chunks[k] = raw
    return attrs.evolve(p, chunks=chunks)


def _options_tokens(p: Parsed) -> list[str]:
    return p.chunks[_options_index(p.chunks)].split(b"\0", 1)[0].decode("utf-8", "replace").split()


def mutate_option(p: Parsed, rng: random.Random, names: Sequence[str]) -> Parsed:
    """Give an option a hostile value, add a known option with one, drop or duplicate one."""
    toks = _options_tokens(p)
    value_slots = [i for i, t in enumerate(toks) if not t.startswith("--")]
    hostile = rng.choice(HOSTILE_VALUES) if rng.random() < 0.85 else str(rng.randrange(-5, 70))
    choice = rng.random()
    if choice < 0.45 and value_slots:
        toks[rng.choice(value_slots)] = hostile
    elif choice < 0.8 and names:
        toks += [f"--{rng.choice(names)}", *([hostile] if hostile else [])]
    elif choice < 0.9 and toks:
        del toks[rng.randrange(len(toks))]
    elif toks:
        toks.insert(rng.randrange(len(toks) + 1), rng.choice(toks))
    return _with_options(p, " " + " ".join(toks))


def mutate_header_field(p: Parsed, rng: random.Random) -> Parsed:
    """A hostile min/max label, bits, lda, ngram/skip or id field, checksum kept valid."""
    chunks = list(p.chunks)
    field = rng.choice(["min", "max", "bits", "lda", "ngram", "skip", "id"])
    if field in ("min", "max"):
        chunks[3 if field == "min" else 4] = struct.pack("<f", rng.choice(HOSTILE_F32))
    elif field in ("bits", "lda"):
        chunks[5 if field == "bits" else 6] = struct.pack("<I", rng.choice(HOSTILE_U32))
    elif field == "ngram":
        k = 7
        count = struct.unpack("<I", chunks[k])[0]
        new = rng.choice([*HOSTILE_U32[:8], rng.randrange(1, 4)])
        grams = [bytes([rng.randrange(256), rng.randrange(48, 58), rng.randrange(256)]) for _ in range(min(new, 4))]
        chunks[k : k + 1 + count] = [struct.pack("<I", new), *grams]
    elif field == "skip":
        k = 8 + struct.unpack("<I", chunks[7])[0]
        count = struct.unpack("<I", chunks[k])[0]
        new = rng.choice(HOSTILE_U32[:8])
        chunks[k : k + 1 + count] = [struct.pack("<I", new), *[b"a9\0"] * min(new, 4)]
    else:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        chunks[0:2] = [struct.pack("<I", len(raw)), raw]
    return attrs.evolve(p, chunks=chunks)


def mutate_version(p: Parsed, rng: random.Random) -> Parsed:
    v = rng.choice([b"9.11.9\0", b"9.0.0\0", b"8.0.3\0", b"8.11.0\0", b"9.99999999999999999999.1\0", b"10.0.0\0"])
    return attrs.evolve(p, version=v)


def mutate_fields(rest: bytes, rng: random.Random) -> bytes:
    """Overwrite a few u32/u64/f32/f64 fields in the sections with hostile values."""
    b = bytearray(rest)
    if not b:
        return bytes(b)
    for _ in range(rng.randrange(1, 4)):
        # Section fields sit early; the rows fill the end. Prefer the first KiB.
        hi = len(b) if rng.random() < 0.3 else min(len(b), 1024)
        pos = rng.randrange(hi)
        kind = rng.choice(["u32", "u32", "u64", "f32", "f64", "u8"])
        if kind == "u32":
            blob = struct.pack("<I", rng.choice(HOSTILE_U32))
        elif kind == "u64":
            blob = struct.pack("<Q", rng.choice(HOSTILE_U64))
        elif kind == "f32":
            blob = struct.pack("<f", rng.choice(HOSTILE_F32))
        elif kind == "f64":
            blob = struct.pack("<d", rng.choice(HOSTILE_F32))
        else:
            blob = bytes([rng.choice([0, 1, 2, 0x7F, 0xFF])])
        b[pos : pos + len(blob)] = blob[: len(b) - pos]
    return bytes(b)


def mutate_rows(rest: bytes, rng: random.Random) -> bytes:
    """Put NaN/inf/huge floats at 4-aligned positions near the end (the weight rows)."""
    b = bytearray(rest)
    if len(b) < 8:
        return bytes(b)
    for _ in range(rng.randrange(1, 6)):
        pos = len(b) - 4 * rng.randrange(1, max(2, len(b) // 4))
        b[pos : pos + 4] = struct.pack("<f", rng.choice(HOSTILE_F32[:5]))
    return bytes(b)


def mutate_bytes(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """Unstructured: flips, cuts, insertions, deletions, splices with another seed."""
    b = bytearray(data)
    op = rng.randrange(6)
    if op == 0 and b:
        for _ in range(rng.randrange(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1 and b:
        del b[rng.randrange(len(b)) :]
    elif op == 2:
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    elif op == 3 and b:
        i = rng.randrange(len(b))
        del b[i : i + rng.randrange(1, 64)]
    elif op == 4:
        cut = rng.randrange(len(b) + 1)
        b = b[:cut] + other[rng.randrange(len(other) + 1) :]
    else:
        b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return bytes(b)


def mutate(data: bytes, rng: random.Random, seeds: Sequence[Seed], names: Sequence[str]) -> bytes:
    """One to three mutations of ``data``; most keep the header's checksum valid."""
    for _ in range(rng.randrange(1, 4)):
        p = parse(data)
        roll = rng.random()
        if p is None or roll < 0.1:
            data = mutate_bytes(data, rng, rng.choice(seeds).data)
        elif roll < 0.45:
            data = encode(mutate_option(p, rng, names))
        elif roll < 0.6:
            data = encode(mutate_header_field(p, rng))
        elif roll < 0.63:
            data = encode(mutate_version(p, rng))
        elif roll < 0.8:
            data = encode(p, rest=mutate_fields(p.rest, rng))
        elif roll < 0.9:
            data = encode(p, rest=mutate_rows(p.rest, rng))
        elif roll < 0.95:  # another seed's sections under this header
            data = encode(p, rest=(parse(rng.choice(seeds).data) or p).rest)
        else:
            data = encode(p, rest=mutate_bytes(p.rest, rng, rng.choice(seeds).data))
    return data


def option_names(seeds: Sequence[Seed]) -> list[str]:
    """Every option name the seeds use, plus the size-bearing ones a plugin reads."""
    names = {t[2:] for s in seeds if (p := parse(s.data)) for t in _options_tokens(p) if t.startswith("--")}
    names |= {"oaa", "rank", "lda", "nn", "random_seed", "recall_tree", "max_depth", "plt", "kary_tree",
              "cover", "bag", "rnd", "first", "boosting", "bootstrap", "model_count", "ect", "log_multi",
              "memory_tree", "max_number_of_labels", "automl", "cats", "new_mf", "ftrl_alpha", "ftrl_beta",
              "l1", "l2", "initial_t", "bern_hyper", "choices_lambda", "csoaa", "multilabel_oaa", "lrq",
              "interactions", "quadratic", "cubic", "marginal", "decay", "power_t"}  # fmt: skip
    return sorted(names)


# --------------------------------------------------------------------------------------------
# The property
class Finding(Exception):
    """An input broke the property; ``kind`` and ``where`` identify it across inputs."""

    def __init__(self, kind: str, where: str, detail: str) -> None:
        super().__init__(f"{kind} at {where}: {detail}")
        self.kind, self.where, self.detail = kind, where, detail

    @property
    def signature(self) -> str:
        return f"{self.kind}@{self.where}"


class InputTimeout(BaseException):
    pass


def _where(exc: BaseException) -> str:
    """The innermost frame of vwmerge (or the plugins) in the traceback: the bug's location."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "vwmerge" in f.filename or "/plugins/" in f.filename or "/core/" in f.filename]
    f = (ours or frames or [None])[-1]
    if f is None:
        return "?"
    return f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno}"


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`InputTimeout` after ``seconds`` of CPU time (user + system), not wall time,
    so a loaded machine does not make slow inputs. A hang that uses no CPU (blocking on a file)
    is what run.py's watchdog catches."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise InputTimeout(f"more than {seconds} s of CPU time")

    old = signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def _guard(step: str, fn: Callable[[], Any]) -> Any:
    """Run one step; a VWMergeError is an answer (None), anything else a :class:`Finding`."""
    from vwmerge import VWMergeError

    try:
        return fn()
    except VWMergeError as e:
        if not str(e).strip() or "\n" in str(e):
            raise Finding("bad-message", step, repr(str(e))) from e
        return None
    except InputTimeout as e:
        raise Finding("timeout", f"{step}:{_where(e)}", str(e)) from e
    except RecursionError as e:
        raise Finding("RecursionError", f"{step}:{_where(e)}", "recursion") from e
    except Exception as e:
        raise Finding(type(e).__name__, f"{step}:{_where(e)}", str(e)[:300]) from e


def check_library(data: bytes, partner: Seed, workdir: Path, *, timeout: float = 10.0) -> None:
    """The library half of the property for one input; raises :class:`Finding`."""
    import vwmerge
    from vwmerge.cli.render import render_inspect, render_plan, to_json
    from vwmerge.engine.pipeline import MergeRequest, inspect_model, plan_merge, run_merge

    path = workdir / "input.model"
    path.write_bytes(data)
    out = workdir / "out.model"
    with time_limit(timeout):
        ws = _guard("load", lambda: vwmerge.load(data, name="input.model"))
        if ws is not None:
            written = _guard("to_bytes", ws.to_bytes)
            if written is None:
                raise Finding("unwritable", "to_bytes", "a loaded model could not be written")
            again = _guard("reload", lambda: vwmerge.load(written, name="written.model"))
            if again is None:
                raise Finding("unreloadable", "reload", "a written model does not load")
            doc = _guard("inspect", lambda: inspect_model(str(path)))
            if doc is not None:
                _guard("render", lambda: (render_inspect(doc), to_json(doc)))
            for weights in (None, [1.0, 2.0]):
                merged = _guard("merge", lambda w=weights: vwmerge.merge([ws, ws], weights=w))  # type: ignore[misc]
                if merged is not None:
                    _guard("merged.to_bytes", merged.to_bytes)
            other = _guard("load-partner", lambda: vwmerge.load(partner.data, name="partner.model"))
            if other is not None:
                merged = _guard("merge-partner", lambda: vwmerge.merge([ws, other]))
                if merged is not None:
                    _guard("merged.to_bytes", merged.to_bytes)
        req = MergeRequest(inputs=(str(path), str(partner.path)), output=str(out))
        plan = _guard("plan", lambda: plan_merge(req))
        if plan is not None:
            _guard("render-plan", lambda: (render_plan(plan), to_json(plan.to_dict())))
        _guard("run_merge", lambda: run_merge(req))
        _guard("run_merge-self", lambda: run_merge(attrs.evolve(req, inputs=(str(path), str(path)))))


def _limit_memory(limit: int, cpu_seconds: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))

    return apply


#: Address-space limit of a CLI subprocess: python + numpy + the plugins need ~0.5 GiB of it.
CLI_MEMORY = 1536 << 20


def cli_commands(path: Path, partner: Path, out: Path) -> list[list[str]]:
    return [
        ["inspect", str(path)],
        ["inspect", "--json", str(path)],
        ["check", str(path), str(partner)],
        ["merge", "-o", str(out), str(path), str(partner)],
        ["merge", "-o", str(out), "--weights", "1,2", str(path), str(path)],
    ]


def check_cli(
    args: Sequence[str], names: Sequence[str], *, cpu_seconds: int = 30, timeout: float = 300.0, cwd: Path | None = None
) -> None:
    """The CLI half: exit 0 or 1; on 1 exactly one ``Error:`` line naming one of ``names``.

    The command may use ``cpu_seconds`` of CPU time (RLIMIT_CPU: past it the kernel kills it,
    a finding ``exit--24``) and ``timeout`` seconds of wall time (a command blocked on a file)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "VWMERGE_LOG_FORMAT": "json"}
    cmd = [sys.executable, "-m", "vwmerge", *args]
    where = f"cli:{args[0]}"
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
            preexec_fn=_limit_memory(CLI_MEMORY, cpu_seconds), stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise Finding("timeout", where, f"{' '.join(args)} ran more than {timeout} s") from None
    if "Traceback" in proc.stderr:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:]
        frames = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith('File "')]
        loc = frames[-1] if frames else "?"
        raise Finding("traceback", f"{where}:{loc}", " ".join(last)[:300])
    if proc.returncode not in (0, 1):
        raise Finding(f"exit-{proc.returncode}", where, proc.stderr[-300:])
    if proc.returncode == 1:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
        if len(errors) != 1:
            raise Finding("error-lines", where, proc.stderr[-300:])
        if not any(n in errors[0] for n in names):
            raise Finding("error-names-no-file", where, errors[0][:300])


# --------------------------------------------------------------------------------------------
# Campaigns
@attrs.define
class Stats:
    library_execs: int = 0
    cli_execs: int = 0
    findings: dict[str, str] = attrs.field(factory=dict)  #: signature -> detail


def fuzz_once(
    rng: random.Random,
    seeds: Sequence[Seed],
    names: Sequence[str],
    workdir: Path,
    *,
    cli: bool,
    on_input: Callable[[bytes], None] | None = None,
) -> tuple[bytes, list[Finding]]:
    """Mutate one seed, check it (and the CLI if ``cli``); returns the input and its findings."""
    seed = rng.choice(seeds)
    data = mutate(seed.data, rng, seeds, names)
    if on_input is not None:
        on_input(data)
    partner = rng.choice([s for s in seeds if s.args == seed.args] or list(seeds))
    found: list[Finding] = []
    try:
        check_library(data, partner, workdir)
    except Finding as f:
        found.append(f)
    if cli:
        path = workdir / "cli-input.model"
        path.write_bytes(data)
        out = workdir / "cli-out.model"
        for args in cli_commands(path, partner.path, out):
            if on_input is not None:
                on_input(data)  # a heartbeat for run.py's watchdog before each command
            try:
                check_cli(args, [path.name, partner.path.name, out.name])
            except Finding as f:
                found.append(f)
    return data, found


def run_campaign(
    seeds: Sequence[Seed],
    *,
    seed: int,
    count: int | None = None,
    seconds: float | None = None,
    cli_every: int = 0,
    findings_dir: Path | None = None,
    on_input: Callable[[bytes], None] | None = None,
    on_progress: Callable[[Stats], None] | None = None,
) -> Stats:
    """Fuzz until ``count`` inputs or ``seconds`` have passed; CLI checks every ``cli_every``-th."""
    import time

    rng = random.Random(seed)
    names = option_names(seeds)
    stats = Stats()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vwmerge-fuzz-") as tmp:
        workdir = Path(tmp)
        i = 0
        while (count is None or i < count) and (seconds is None or time.monotonic() - start < seconds):
            cli = bool(cli_every) and i % cli_every == 0
            data, found = fuzz_once(rng, seeds, names, workdir, cli=cli, on_input=on_input)
            stats.library_execs += 1
            stats.cli_execs += len(cli_commands(workdir, workdir, workdir)) if cli else 0
            for f in found:
                if f.signature not in stats.findings:
                    stats.findings[f.signature] = f.detail
                    if findings_dir is not None:
                        findings_dir.mkdir(parents=True, exist_ok=True)
                        tag = hashlib.sha1(f.signature.encode()).hexdigest()[:10]
                        (findings_dir / f"{tag}.model").write_bytes(data)
                        (findings_dir / f"{tag}.txt").write_text(f"{f.signature}\n{f.detail}\n")
            i += 1
            if on_progress is not None and i % 20 == 0:
                on_progress(stats)
    return stats
