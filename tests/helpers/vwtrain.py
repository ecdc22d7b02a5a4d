"""Train real VW 9.11.9 models for the tests (the oracle). Test-only: vwmerge never imports VW.

``train(args, seed, path)`` learns ``n`` synthetic examples whose label type matches the
reduction in ``args`` and saves the model; ``vw_merge(paths, out)`` runs VW's own merge;
``predict(path, lines)`` loads a model in VW and returns its predictions.
Extend ``_examples`` (add a branch) when a new reduction needs another label type.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import vowpalwabbit


def _features(rng: random.Random) -> tuple[str, list[float]]:
    x = [round(rng.random(), 3) for _ in range(4)]
    return f"|a x:{x[0]} y:{x[1]} |b z:{x[2]} w:{x[3]}", x


def _adf(rng: random.Random, k: int = 3, labeled: bool = True) -> list[str]:
    ctx = f"shared |s u{rng.randrange(4)} v:{round(rng.random(), 3)}"
    chosen = rng.randrange(k)
    lines = [ctx]
    for a in range(k):
        label = ""
        if labeled and a == chosen:
            cost = 0.0 if (a + rng.randrange(2)) % 2 == 0 else 1.0
            label = f"0:{cost}:{round(1.0 / k, 4)} "
        lines.append(f"{label}|act a{a} f{a}:{round(rng.random(), 3)}")
    return lines


def _ccb(rng: random.Random, slots: int = 2, k: int = 3) -> list[str]:
    """A conditional-contextual-bandit example: shared, k actions, ``slots`` labeled slots."""
    lines = [f"ccb shared |s u{rng.randrange(4)} v:{round(rng.random(), 3)}"]
    lines += [f"ccb action |act a{a} f{a}:{round(rng.random(), 3)}" for a in range(k)]
    for s in range(slots):
        lines.append(f"ccb slot {rng.randrange(k)}:{float(rng.randrange(2))}:0.5 |slot s{s}")
    return lines


def _slates(rng: random.Random) -> list[str]:
    """A slates example: two slots with two actions each."""
    lines = [f"slates shared {float(rng.randrange(2))} |s u{rng.randrange(4)}"]
    lines += [f"slates action {a // 2} |act a{a} f:{round(rng.random(), 3)}" for a in range(4)]
    lines += [f"slates slot {rng.randrange(2)}:0.5 |slot s{s}" for s in range(2)]
    return lines


def _examples(args: str, rng: random.Random, n: int) -> list[str | list[str]]:
    """Examples whose label type fits the stack in ``args`` (multi-line ones as lists)."""
    a = f" {args} "
    out: list[str | list[str]] = []
    for _ in range(n):
        feats, x = _features(rng)
        if " --slates" in a:
            out.append(_slates(rng))
        elif " --ccb_explore_adf" in a:
            out.append(_ccb(rng))
        elif any(t in a for t in (" --cats ", " --cats_pdf ", " --cb_explore_pdf")):
            act = round(rng.uniform(0.0, 10.0), 3)
            out.append(f"ca {act}:{round(abs(act - 10 * x[0]) / 10, 3)}:0.1 {feats}")
        elif any(t in a for t in (" --cbify ", " --warm_cb ")):
            out.append(f"{1 + int(x[0] * 3) % 3} {feats}")
        elif " --multiworld_test " in a:
            act = rng.randrange(1, 4)
            out.append(f"{act}:{float(act != 2)}:0.33 |f p1:{rng.randrange(1, 4)} p2:2 {feats}")
        elif " --boosting " in a:
            out.append(f"{1 if x[0] + x[1] > 1 else -1} {feats}")
        elif any(t in a for t in (" --cb_adf", " --cb_explore_adf", " --csoaa_ldf", " --wap_ldf")):
            if "--csoaa_ldf" in a or "--wap_ldf" in a:
                out.append([f"{i}:{round(rng.random(), 3)} |act a{i} f:{round(rng.random(), 3)}" for i in range(1, 4)])
            else:
                out.append(_adf(rng))
        elif " --cb " in a or " --cb_explore " in a:
            act = rng.randrange(1, 4)
            out.append(f"{act}:{float(act != 2)}:0.33 {feats}")
        elif " --plt " in a or (" --memory_tree " in a and " --oas " in a):
            out.append(f"{int(x[0] * 4) % 4},{int(x[1] * 4) % 4} {feats}")
        elif " --memory_tree " in a or " --recall_tree " in a:
            out.append(f"{1 + int(x[0] * 4) % 4} {feats}")
        elif " --marginal " in a:
            k = rng.randrange(5)
            out.append(f"{round(x[0] + 2 * x[1] + k / 4, 3)} |m u{k} i{k} {feats}")
        elif " --lda " in a:
            words = " ".join(f"w{rng.randrange(4 * t, 4 * t + 6)}:{rng.randrange(1, 4)}" for t in range(3))
            out.append(f"| {words}")
        elif " --cbzo " in a:
            act = round(rng.random(), 3)
            out.append(f"ca {act}:{round(abs(act - x[0]), 3)}:0.5 {feats}")
        elif " --cs_active " in a:
            out.append(f"1:{x[0]} 2:{x[1]} 3:{x[2]} {feats}")
        elif " --oaa " in a or " --ect " in a or " --log_multi " in a:
            out.append(f"{1 + int(x[0] * 3) % 3} {feats}")
        elif " --csoaa " in a:
            out.append(f"1:{x[0]} 2:{x[1]} 3:{x[2]} {feats}")
        elif " --multilabel_oaa " in a:
            out.append(f"{int(x[0] * 3) % 3},{int(x[1] * 3) % 3} {feats}")
        elif "logistic" in a or "hinge" in a or "--binary" in a:
            out.append(f"{1 if x[0] + x[1] > 1 else -1} {feats}")
        else:
            out.append(f"{round(x[0] + 2 * x[1] - x[2], 3)} {feats}")
    return out


def train_on(
    args: str, examples: Iterable[str | Sequence[str]], path: str | Path, initial: str | Path | None = None
) -> Path:
    """A VW model trained on ``examples`` (each a line, or the lines of one multi-line example)
    and saved to ``path``. ``initial``: continue from that model (``-i INITIAL
    --preserve_performance_counters``, which brings its options, so ``args`` is not used)."""
    cmd = f"-i {initial} --preserve_performance_counters --quiet" if initial else f"{args} --quiet"
    ws = vowpalwabbit.Workspace(cmd, enable_logging=False)
    try:
        for ex in examples:
            ws.learn(ex if isinstance(ex, str) else "\n".join(ex))
        ws.save(str(path))
    finally:
        ws.finish()
    return Path(path)


def train(args: str, seed: int, path: str | Path, n: int = 60) -> Path:
    return train_on(args, _examples(args, random.Random(seed), n), path)


def vw_merge(paths: Sequence[str | Path], out: str | Path, base: str | Path | None = None) -> Path:
    """VW's own merge: inputs loaded with --preserve_performance_counters, like vw-merge does."""
    wss = [
        vowpalwabbit.Workspace(f"-i {p} --preserve_performance_counters --quiet", enable_logging=False) for p in paths
    ]
    base_ws = (
        vowpalwabbit.Workspace(f"-i {base} --preserve_performance_counters --quiet", enable_logging=False)
        if base is not None
        else None
    )
    try:
        merged = vowpalwabbit.merge_models(base_ws, wss)
        merged.save(str(out))
        merged.finish()
    finally:
        for w in wss:
            w.finish()
        if base_ws is not None:
            base_ws.finish()
    return Path(out)


def predict(path: str | Path, examples: Sequence[str | list[str]], extra: str = "") -> list[object]:
    ws = vowpalwabbit.Workspace(f"-i {path} -t --quiet {extra}", enable_logging=False)
    try:
        return [ws.predict(ex if isinstance(ex, str) else "\n".join(ex)) for ex in examples]
    finally:
        ws.finish()


def test_examples(args: str, seed: int = 999, n: int = 20) -> list[str | list[str]]:
    """Held-out examples for prediction comparisons."""
    return _examples(args, random.Random(seed), n)


test_examples.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
