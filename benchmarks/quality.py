"""Quality benchmark: does a merged model predict as well as the models it was merged from?

For each learner family, K shard models are trained by VW 9.11.9 on disjoint parts of one
synthetic data set, merged with vwmerge (library API) and, where VW can, with VW's own
``merge_models``. One more model is trained on all the data. Every model, merged ones included,
is then loaded in VW and scored on held-out data with VW's own predictions, so the numbers say
how the merged *files* behave in VW, not how vwmerge thinks they behave.

The data are generated here from a fixed seed (regression, binary and 3-class tasks over dense
features plus sparse tokens, and a contextual bandit with known expected costs, so a policy's
cost is computed exactly rather than estimated). VW is only the trainer and the judge:
vwmerge never imports it.

    python benchmarks/quality.py                 # the table in docs/quality.md
    python benchmarks/quality.py --shards 8 --train 24000

Only vwmerge's built-in plugins are used unless ``--third-party-plugins`` is given (an installed
plugin may override a built-in reduction); the plugins that merged each stateful reduction are
listed under the table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import structlog

K_ACTIONS = 4
N_DENSE = 8
VOCAB = 200
TOKENS_PER_EXAMPLE = 3


# --------------------------------------------------------------------------------------------
# Data
@attrs.frozen(eq=False)
class Dataset:
    """VW text examples (a multi-line example is one string with newlines) and the held-out truth:
    labels, or for the bandit the expected cost of every action."""

    train: list[str]
    test: list[str]
    truth: np.ndarray


def _features(
    rng: np.random.Generator, n: int, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Dense features and tokens; example i draws its tokens from vocabulary slice groups[i]."""
    x = rng.normal(size=(n, N_DENSE))
    width = VOCAB // n_groups
    tokens = groups[:, None] * width + rng.integers(0, width, size=(n, TOKENS_PER_EXAMPLE))
    text = [
        "|d " + " ".join(f"x{j}:{v:.4f}" for j, v in enumerate(row)) + " |t " + " ".join(f"t{t}" for t in toks)
        for row, toks in zip(x, tokens, strict=True)
    ]
    return x, tokens, text


def supervised(kind: str, n_train: int, n_test: int, seed: int, token_groups: int = 1) -> Dataset:
    """y depends linearly on dense features and on per-token effects; the tokens are what a
    shard sees only a quarter of (each token occurs about n·3/200 times in all the data).

    With ``token_groups`` = K > 1 the training data are not iid across shards: the j-th K-th of
    the training examples (shard j) only uses the j-th K-th of the vocabulary; held-out
    examples use all of it.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    groups = np.zeros(n, np.int64)
    if token_groups > 1:
        groups[:n_train] = np.arange(n_train) * token_groups // n_train
        groups[n_train:] = rng.integers(0, token_groups, size=n_test)
    x, tokens, text = _features(rng, n, groups, token_groups)
    classes = 3 if kind == "multiclass" else 1
    beta = rng.normal(size=(N_DENSE, classes))
    gamma = 0.7 * rng.normal(size=(VOCAB, classes))
    score = x @ beta + gamma[tokens].sum(axis=1)
    if kind == "regression":
        y = score[:, 0] + rng.normal(scale=0.5, size=n)
        labels = [f"{v:.4f}" for v in y]
    elif kind == "binary":
        p = 1.0 / (1.0 + np.exp(-0.6 * score[:, 0]))
        y = np.where(rng.random(n) < p, 1.0, -1.0)
        labels = [f"{int(v)}" for v in y]
    elif kind == "multiclass":
        y = 1 + np.argmax(score + rng.gumbel(size=score.shape), axis=1)
        labels = [str(int(v)) for v in y]
    else:
        raise ValueError(kind)
    lines = [f"{lab} {t}" for lab, t in zip(labels, text, strict=True)]
    return Dataset(lines[:n_train], lines[n_train:], np.asarray(y[n_train:], dtype=np.float64))


def bandit(n_train: int, n_test: int, seed: int) -> Dataset:
    """Contexts x, K actions; the expected cost of action a is sigmoid(x·θₐ + bₐ). The log is
    collected by a uniformly random policy (probability 1/K) with Bernoulli costs."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = rng.normal(size=(n, 5))
    theta = rng.normal(size=(5, K_ACTIONS))
    bias = rng.normal(scale=0.5, size=K_ACTIONS)
    cost = 1.0 / (1.0 + np.exp(-(x @ theta + bias)))
    chosen = rng.integers(0, K_ACTIONS, size=n)
    observed = (rng.random(n) < cost[np.arange(n), chosen]).astype(int)
    examples = []
    for i in range(n):
        shared = "shared |s " + " ".join(f"c{j}:{v:.4f}" for j, v in enumerate(x[i]))
        acts = []
        for a in range(K_ACTIONS):
            label = f"0:{observed[i]}:{1.0 / K_ACTIONS} " if (i < n_train and a == chosen[i]) else ""
            acts.append(f"{label}|a act{a}")
        examples.append("\n".join([shared, *acts]))
    return Dataset(examples[:n_train], examples[n_train:], cost[n_train:])


# --------------------------------------------------------------------------------------------
# Families and their losses
def _squared(pred: list[Any], data: Dataset) -> dict[str, float]:
    return {"squared loss": float(np.mean((np.asarray(pred, dtype=np.float64) - data.truth) ** 2))}


def _logistic(pred: list[Any], data: Dataset) -> dict[str, float]:
    s = np.asarray(pred, dtype=np.float64)
    return {
        "logistic loss": float(np.mean(np.logaddexp(0.0, -data.truth * s))),
        "0/1 error": float(np.mean(np.where(s > 0, 1.0, -1.0) != data.truth)),
    }


def _multiclass(pred: list[Any], data: Dataset) -> dict[str, float]:
    return {"error rate": float(np.mean(np.asarray(pred, dtype=np.float64) != data.truth))}


def _policy_cost(pred: list[Any], data: Dataset) -> dict[str, float]:
    """The exact expected cost on held-out contexts of the deployed policy (VW's PMF) and of the
    greedy one (the most probable action; a tie is broken uniformly, so a uniform PMF has the
    cost of the uniform policy)."""
    pmf = np.asarray(pred, dtype=np.float64)
    top = pmf >= pmf.max(axis=1, keepdims=True) - 1e-6
    greedy = (top * data.truth).sum(axis=1) / top.sum(axis=1)
    return {
        "expected cost of its PMF": float(np.mean((pmf * data.truth).sum(axis=1))),
        "expected cost of its greedy action": float(np.mean(greedy)),
    }


@attrs.frozen
class Family:
    name: str
    args: str
    task: str
    loss: Callable[[list[Any], Dataset], dict[str, float]]


FAMILIES: tuple[Family, ...] = (
    Family("squared gd", "", "regression", _squared),
    Family("squared gd --sgd", "--sgd --power_t 0 -l 0.02", "regression", _squared),
    Family("logistic gd", "--loss_function logistic", "binary", _logistic),
    Family("oaa 3 classes", "--oaa 3", "multiclass", _multiclass),
    Family("cb_explore_adf squarecb", "--cb_explore_adf --squarecb -q sa", "cb", _policy_cost),
    Family("ftrl logistic", "--ftrl --loss_function logistic", "binary", _logistic),
    Family("coin squared", "--coin", "regression", _squared),
)


# --------------------------------------------------------------------------------------------
# VW: trainer and judge
def vw_train(args: str, examples: Sequence[str], path: Path) -> Path:
    import vowpalwabbit

    ws = vowpalwabbit.Workspace(f"{args} --quiet", enable_logging=False)
    try:
        for ex in examples:
            ws.learn(ex)
        ws.save(str(path))
    finally:
        ws.finish()
    return path


def vw_predict(path: Path, examples: Sequence[str]) -> list[Any]:
    import vowpalwabbit

    ws = vowpalwabbit.Workspace(f"-i {path} -t --quiet", enable_logging=False)
    try:
        return [ws.predict(ex) for ex in examples]
    finally:
        ws.finish()


def vw_merge(paths: Sequence[Path], out: Path) -> str | None:
    """VW's own merge (inputs loaded with --preserve_performance_counters, as vw-merge does).
    Returns why VW refused, or None when it wrote ``out``."""
    import vowpalwabbit

    wss = [
        vowpalwabbit.Workspace(f"-i {p} --preserve_performance_counters --quiet", enable_logging=False) for p in paths
    ]
    try:
        merged = vowpalwabbit.merge_models(None, wss)
    except Exception as exc:  # VW raises a plain RuntimeError subclass
        return str(exc).strip().splitlines()[0]
    finally:
        for w in wss:
            w.finish()
    try:
        merged.save(str(out))
    finally:
        merged.finish()
    return None


# --------------------------------------------------------------------------------------------
@attrs.frozen
class Row:
    family: str
    metric: str
    shards: list[float]
    merged: float | str
    vw_merged: float | str
    all_data: float


def run_family(fam: Family, data: Dataset, shards: int, workdir: Path, seed: int) -> tuple[list[Row], list[str]]:
    """Shard models on consecutive, disjoint slices of the training data; the all-data model
    sees the same examples in one random order."""
    import vwmerge

    d = Path(tempfile.mkdtemp(prefix=fam.task, dir=workdir))
    chunks = np.array_split(np.arange(len(data.train)), shards)
    shard_paths = [vw_train(fam.args, [data.train[i] for i in c], d / f"shard{j}.model") for j, c in enumerate(chunks)]
    order = np.random.default_rng(seed).permutation(len(data.train))
    all_path = vw_train(fam.args, [data.train[i] for i in order], d / "all.model")

    notes: list[str] = []
    merged: dict[str, float] | str
    try:
        models = [vwmerge.load(p) for p in shard_paths]
        out = vwmerge.merge(models)
        out.save(d / "merged.model")
        merged = fam.loss(vw_predict(d / "merged.model", data.test), data)
        owners = [
            f"{e.name} ({e.plugin}, {models[0].registry.distribution(e.plugin)[0]})" for e in out.stack if e.section
        ]
        notes.append(f"{fam.name}: merged by " + ", ".join(owners))
    except vwmerge.VWMergeError as exc:
        merged = "no plugin" if isinstance(exc, vwmerge.PluginError) else "failed"
        notes.append(f"{fam.name}: vwmerge could not merge: {exc}")
        structlog.get_logger("vwmerge").warning("vwmerge could not merge", family=fam.name, error=str(exc))

    refused = vw_merge(shard_paths, d / "vw_merged.model")
    vw_merged: dict[str, float] | str
    if refused is None:
        vw_merged = fam.loss(vw_predict(d / "vw_merged.model", data.test), data)
    else:
        vw_merged = "refused"
        notes.append(f"{fam.name}: VW refused: {refused}")

    per_shard = [fam.loss(vw_predict(p, data.test), data) for p in shard_paths]
    whole = fam.loss(vw_predict(all_path, data.test), data)
    rows = [
        Row(
            fam.name,
            metric,
            [s[metric] for s in per_shard],
            merged[metric] if isinstance(merged, dict) else merged,
            vw_merged[metric] if isinstance(vw_merged, dict) else vw_merged,
            whole[metric],
        )
        for metric in whole
    ]
    return rows, notes


def fmt(v: float | str) -> str:
    return f"{v:.4f}" if isinstance(v, float) else v


def table(rows: Sequence[Row], shards: int) -> str:
    head = (
        f"| family | held-out metric | {shards} shard models: mean (min–max) | vwmerge merged | VW merged "
        "| one model, all data |\n|---|---|---|---|---|---|"
    )
    body = [
        f"| {r.family} | {r.metric} | {np.mean(r.shards):.4f} ({min(r.shards):.4f}–{max(r.shards):.4f}) "
        f"| {fmt(r.merged)} | {fmt(r.vw_merged)} | {r.all_data:.4f} |"
        for r in rows
    ]
    return "\n".join([head, *body])


def builtin_plugins_only() -> list[str]:
    """Block every entry point of the ``vwmerge`` group that vwmerge itself does not ship."""
    from vwmerge.contract.registry import BLOCK_ENV, BUILTIN_DISTRIBUTION, ENTRY_POINT_GROUP

    foreign = [
        ep.name
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.dist is None or ep.dist.name != BUILTIN_DISTRIBUTION
    ]
    current = [n for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()]
    os.environ[BLOCK_ENV] = ",".join(dict.fromkeys([*current, *foreign]))
    return foreign


def run(
    title: str, families: Sequence[Family], data: dict[str, Dataset], shards: int, workdir: Path, seed: int
) -> tuple[str, list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    for fam in families:
        t0 = time.perf_counter()
        r, n = run_family(fam, data[fam.task], shards, workdir, seed)
        rows += r
        notes += n
        print(f"{title}, {fam.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return table(rows, shards), notes


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=4, help="K: shard models per family (default 4)")
    ap.add_argument("--train", type=int, default=12000, help="training examples in all (default 12000)")
    ap.add_argument("--test", type=int, default=4000, help="held-out examples (default 4000)")
    ap.add_argument("--seed", type=int, default=2024, help="data seed (default 2024)")
    ap.add_argument("--family", action="append", help="run only this family (repeatable)")
    ap.add_argument("--no-skewed", action="store_true", help="skip the second table (shards see different tokens)")
    ap.add_argument("--third-party-plugins", action="store_true", help="let installed plugins override built-ins")
    opts = ap.parse_args(argv)

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(30),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    blocked = [] if opts.third_party_plugins else builtin_plugins_only()
    import vowpalwabbit
    import vwmerge

    families = [f for f in FAMILIES if not opts.family or f.name in opts.family]
    k, seed = opts.shards, opts.seed
    iid = {
        "regression": supervised("regression", opts.train, opts.test, seed),
        "binary": supervised("binary", opts.train, opts.test, seed + 1),
        "multiclass": supervised("multiclass", opts.train, opts.test, seed + 2),
        "cb": bandit(opts.train, opts.test, seed + 3),
    }
    skewed = {
        "regression": supervised("regression", opts.train, opts.test, seed, token_groups=k),
        "binary": supervised("binary", opts.train, opts.test, seed + 1, token_groups=k),
        "multiclass": supervised("multiclass", opts.train, opts.test, seed + 2, token_groups=k),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vwmerge-quality-") as tmp:
        first, notes = run("iid", families, iid, k, Path(tmp), seed)
        second = None
        if not opts.no_skewed:
            second, _ = run("skewed", [f for f in families if f.task in skewed], skewed, k, Path(tmp), seed)

    cb = iid["cb"].truth
    print(
        f"K = {k} shards of {opts.train // k} examples each ({opts.train} in all), {opts.test} held-out "
        f"examples, data seed {seed}; VW {vowpalwabbit.__version__}, vwmerge {vwmerge.__version__}. "
        "Lower is better everywhere.\n"
    )
    print("Shards are disjoint slices of iid data:\n")
    print(first)
    if second is not None:
        print(
            f"\nSkewed shards: each shard's examples use only its own 1/{k} of the token vocabulary "
            "(held-out examples use all of it):\n"
        )
        print(second)
    mc = iid["multiclass"].truth.astype(int)
    print(
        f"\nBandit reference costs: uniform policy {cb.mean():.4f}, best action per context "
        f"{cb.min(axis=1).mean():.4f}. Majority-class error (3 classes): {1 - np.bincount(mc).max() / len(mc):.4f}.\n"
    )
    print(
        "* every model in the tables, the vwmerge-merged ones included, was saved to a file and loaded by "
        f"VW {vowpalwabbit.__version__} (`-i model -t`) to make the predictions scored here"
    )
    for note in notes:
        print(f"* {note}")
    if blocked:
        print(f"* third-party plugins not used: {', '.join(blocked)}")
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
