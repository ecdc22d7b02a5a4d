"""Base learners VW cannot merge, tree/memory reductions, and the other stateful reductions,
against the real VW 9.11.9 (issue 3, part 2).

For every configuration two models are trained by VW at test time; vwmerge reads and writes them
back byte for byte (its stack matching VW's learner list), merges them, and the merged file loads
and predicts in VW (given the options VW does not store). Merging k copies of one model predicts
like the model. Each merge rule of docs/reductions.md is checked on the merged file read
back, against values computed here from the inputs. VW's own refusal to merge the FTRL family is
shown next to vwmerge's merge.

Add a configuration: one :class:`Cfg` in :data:`CONFIGS` (a label type goes in ``vwtrain._examples``).
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import vowpalwabbit
import vwmerge
from helpers import vwtrain
from helpers.configs import BOTTOM_CONFIGS, Cfg
from helpers.models import INPUT_SIZES, Models
from helpers.zoo import Zoo
from vwmerge.format.weights import align
from vwmerge.plugins.misc_state import ActiveState
from vwmerge.plugins.trees import LogMultiState, RecallTreeState

CONFIGS = BOTTOM_CONFIGS
BY_ARGS = {c.args: c for c in CONFIGS}
FTRL_FAMILY = ("--ftrl", "--pistol", "--coin", "--freegrad")
NO_COUNT = "model records no example count"


@pytest.fixture(scope="session")
def zoo(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    return Zoo(models, tmp_path_factory.mktemp("bottoms"))


def merged(zoo: Zoo, cfg: Cfg, paths: list[Path], out: Path, **kw: Any) -> tuple[vwmerge.Workspace, Path]:
    ws = vwmerge.merge([zoo.load(cfg, p) for p in paths], **kw)
    ws.save(out)
    return zoo.load(cfg, out), out


def _numbers(preds: list[Any]) -> np.ndarray:
    """Predictions flattened to floats (scalars, class ids, label lists, pdf segments, text)."""
    flat: list[float] = []

    def walk(x: Any) -> None:
        if isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        elif isinstance(x, str):
            flat.extend(float(t.split(":")[-1]) for t in x.replace(",", " ").split() if t)
        else:
            flat.append(float(x))

    walk(preds)
    return np.array(flat, dtype=np.float64)


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.id)
def test_round_trip_and_stack(zoo: Zoo, cfg: Cfg, tmp_path: Path) -> None:
    """Both models parse to EOF through vwmerge's stack and are written back byte for byte."""
    passes = f"--passes 2 -c -k --cache_file {tmp_path / 'c'}" if cfg.train == "passes" else ""
    ws = vowpalwabbit.Workspace(f"{cfg.args} {cfg.extra} {passes} --quiet", enable_logging=False)
    try:
        learners = ws.get_enabled_learners()
    finally:
        ws.finish()
    assert all(any(n == v or n.startswith(f"{v}-") for n in learners) for v in cfg.vw), learners
    for path in zoo.pair(cfg):
        model = zoo.load(cfg, path)
        names = [e.name for e in model.stack]
        assert set(cfg.names) <= set(names)
        assert model.to_bytes() == path.read_bytes()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.id)
def test_merge_loads_in_vw_and_copies_predict_alike(zoo: Zoo, cfg: Cfg, tmp_path: Path) -> None:
    a, b = zoo.pair(cfg)
    _, out = merged(zoo, cfg, [a, b], tmp_path / "merged.model")
    raw = zoo.predict(cfg, out, tmp_path)
    preds = _numbers(raw)
    assert len(raw) >= 12 and np.all(np.isfinite(preds))  # memory_tree --oas predicts empty label sets
    if not cfg.copies_predict:
        return
    _, three = merged(zoo, cfg, [a, a, a], tmp_path / "copies.model")
    reference = a
    if cfg.args.startswith("--active"):
        # VW cannot load its own fresh --active file (0 section bytes, its loader wants 8): the
        # reference is the same model with the 8 bytes (VW's starting label range) added.
        one = zoo.load(cfg, a)
        labels = (min(0.0, one.header.min_label), max(1.0, one.header.max_label))
        pairs = zip(one.stack, one.states, strict=True)
        states = tuple(ActiveState(labels) if e.name == "active" else s for e, s in pairs)
        reference = tmp_path / "one.model"
        attrs.evolve(one, states=states).save(reference)
    np.testing.assert_allclose(
        _numbers(zoo.predict(cfg, three, tmp_path)), _numbers(zoo.predict(cfg, reference, tmp_path)), rtol=2e-5
    )


# --------------------------------------------------------------------------------------------
# The FTRL family and freegrad
@pytest.mark.parametrize("args", FTRL_FAMILY)
def test_vw_refuses_to_merge_what_vwmerge_merges(zoo: Zoo, args: str, tmp_path: Path) -> None:
    a, b = zoo.pair(BY_ARGS[args])
    with pytest.raises(RuntimeError, match="does not have a merge function"):
        vwtrain.vw_merge([a, b], tmp_path / "vw.model")
    ws, out = merged(zoo, BY_ARGS[args], [a, b], tmp_path / "ours.model")
    assert len(ws.states[-1].table) and vwtrain.predict(out, vwtrain.test_examples(args, n=3))


def on_rows(table: vwmerge.WeightTable, rows: np.ndarray) -> np.ndarray:
    """The table's values at ``rows`` (zeros where it has no such row), float64."""
    t = table.canonical()
    out = np.zeros((len(rows), t.k))
    pos = np.searchsorted(t.index, rows)
    pos = np.minimum(pos, max(len(t) - 1, 0))
    hit = (t.index[pos] == rows) if len(t) else np.zeros(len(rows), bool)
    out[hit] = t.values[pos[hit]]
    return out


def _dense(tables: list[vwmerge.WeightTable]) -> tuple[np.ndarray, list[np.ndarray]]:
    tabs = [t.canonical() for t in tables]
    union, pos = align(tabs)
    out = []
    for t, p in zip(tabs, pos, strict=True):
        d = np.zeros((len(union), t.k))
        d[p] = t.values
        out.append(d)
    return union, out


RULES = {
    "--ftrl": {"w": "mean", "sum_g2": "mean"},
    "--pistol": {"w": "mean", "neg_sum_g": "mean", "sum_abs_g": "mean", "max_abs_x": "max"},
    "--coin": {"w": "mean", "neg_sum_g": "mean", "sum_abs_g": "mean", "max_abs_x": "max", "wealth": "mean",
               "max_abs_g": "max"},
    "--freegrad": {"w": "mean", "sum_g": "mean", "sum_g2": "mean", "h1": "minpos", "max_g": "max",
                   "sum_ratio": "mean"},
}  # fmt: skip


@pytest.mark.parametrize("args", FTRL_FAMILY)
def test_ftrl_family_columns_follow_their_rule(zoo: Zoo, args: str, tmp_path: Path) -> None:
    cfg = BY_ARGS[args]
    ins = [zoo.load(cfg, p) for p in zoo.pair(cfg)]
    ws, _ = merged(zoo, cfg, list(zoo.pair(cfg)), tmp_path / "m.model")
    counts = np.array([m.states[-1].online.weighted_labeled_examples for m in ins])
    p = counts / counts.sum()
    union, dense = _dense([m.states[-1].table for m in ins])
    out = ws.states[-1].table
    assert out.columns == ins[0].states[-1].table.columns
    full = on_rows(out, union)
    stack = np.stack(dense)
    for j, col in enumerate(out.columns):
        rule = RULES[args].get(col)
        if rule == "mean":
            want = np.tensordot(p, stack[:, :, j], axes=1)
        elif rule == "sum":
            want = stack[:, :, j].sum(axis=0)
        elif rule == "max":
            want = stack[:, :, j].max(axis=0)
        elif rule == "minpos":
            pos = np.where(stack[:, :, j] > 0, stack[:, :, j], np.inf).min(axis=0)
            want = np.where(np.isfinite(pos), pos, 0.0)
        else:
            continue
        np.testing.assert_allclose(full[:, j], want, rtol=1e-6, atol=1e-7, err_msg=col)
    online = ws.states[-1].online
    assert online.weighted_labeled_examples == pytest.approx(counts.sum())


@pytest.mark.parametrize("args", ["--ftrl", "--ftrl --ftrl_alpha 0.1 --ftrl_beta 0.5"])
def test_proximal_ftrl_dual_is_consistent_with_the_merged_weight(
    zoo: Zoo, args: str, tmp_path: Path, logs: list
) -> None:
    """z is recomputed so that FTRL's closed form gives back the merged w at the summed Σg²,
    with the real α and β (from VW's defaults, or fitted from the rows when they differ)."""
    cfg = BY_ARGS[args]
    alpha, beta = (0.1, 0.5) if "ftrl_alpha" in args else (0.5, 1.0)
    ws, out = merged(zoo, cfg, list(zoo.pair(cfg)), tmp_path / "m.model")
    t = ws.states[-1].table
    w, z, n = (t.column(c).astype(np.float64) for c in ("w", "z", "sum_g2"))
    live = w != 0
    assert live.sum() >= 3
    closed = -z[live] * alpha / (beta + np.sqrt(n[live]))  # VW's w for λ1 = λ2 = 0
    np.testing.assert_allclose(closed, w[live], rtol=1e-5)
    fitted = [e for e in logs if "fitted from the rows" in e["event"]]
    assert bool(fitted) == ("ftrl_alpha" in args)
    if fitted:
        assert fitted[0]["alpha"] == pytest.approx(alpha, rel=1e-3)
    # Summing z instead would not be consistent: its closed form gives other weights.
    rows = t.index[live].astype(np.uint64)
    summed_z = sum(on_rows(zoo.load(cfg, p).states[-1].table, rows)[:, 1] for p in zoo.pair(cfg))
    assert not np.allclose(-summed_z * alpha / (beta + np.sqrt(n[live])), w[live], rtol=1e-2)
    # VW continues training from the merged model.
    again = "--ftrl_alpha 0.1 --ftrl_beta 0.5" if "ftrl_alpha" in args else ""
    ws_vw = vowpalwabbit.Workspace(f"-i {out} --quiet {again}", enable_logging=False)
    try:
        for ex in vwtrain.test_examples("--ftrl", n=5):
            ws_vw.learn(ex)
        assert np.isfinite(ws_vw.predict(vwtrain.test_examples("--ftrl", n=1)[0]))
    finally:
        ws_vw.finish()


def test_ftrl_base_mode_adds_the_deltas(models: Models, tmp_path: Path) -> None:
    base_path, paths = models.resumed("--pistol")
    base = vwmerge.load(base_path)
    ins = [vwmerge.load(p) for p in paths]
    out = vwmerge.merge(ins, base=base)
    union, (b, *ds) = _dense([base.states[-1].table] + [m.states[-1].table for m in ins])
    cols = out.states[-1].table.columns
    full = on_rows(out.states[-1].table, union)
    # base + Σ pᵢ(θᵢ − base) for every mean column, pᵢ the models' example-count weights.
    c = np.array([m.states[-1].online.weighted_labeled_examples for m in ins])
    p = c / c.sum()
    for col in ("w", "sum_abs_g", "neg_sum_g"):
        j = cols.index(col)
        want = b[:, j] + sum(pi * (d[:, j] - b[:, j]) for pi, d in zip(p, ds, strict=True))
        np.testing.assert_allclose(full[:, j], want, rtol=1e-6, atol=1e-7, err_msg=col)
    o = out.states[-1].online
    assert o.weighted_labeled_examples == pytest.approx(
        base.states[-1].online.weighted_labeled_examples
        + sum(m.states[-1].online.weighted_labeled_examples - base.states[-1].online.weighted_labeled_examples
              for m in ins)
    )  # fmt: skip


def test_mixed_predict_only_and_resume_refused(zoo: Zoo) -> None:
    a = vwmerge.load(zoo.model(BY_ARGS["--ftrl"], 0))
    b = vwmerge.load(zoo.model(BY_ARGS["--ftrl --predict_only_model"], 1))
    with pytest.raises(vwmerge.IncompatibleModelsError, match="predict-only"):
        vwmerge.merge([a, b])


# --------------------------------------------------------------------------------------------
# Other bottoms
def test_svrg_and_oja_average_like_gd(zoo: Zoo, tmp_path: Path) -> None:
    for args in ("--svrg", "--OjaNewton"):
        cfg = BY_ARGS[args]
        ins = [zoo.load(cfg, p) for p in zoo.pair(cfg)]
        ws, _ = merged(zoo, cfg, list(zoo.pair(cfg)), tmp_path / f"{args[2:]}.model")
        c = np.array([m.states[-1].online.weighted_labeled_examples for m in ins])
        union, dense = _dense([m.states[-1].table for m in ins])
        want = sum(ci / c.sum() * d[:, 0] for ci, d in zip(c, dense, strict=True))
        np.testing.assert_allclose(on_rows(ws.states[-1].table, union)[:, 0], want, rtol=1e-5, atol=1e-7)
        assert ws.states[-1].online.weighted_labeled_examples == pytest.approx(c.sum())


@pytest.mark.parametrize("args", ["--cbzo --policy linear -b 12", "--bfgs --predict_only_model -b 12",
                                  "--lda 3 -b 8", "--rank 2 -q ab -b 10"])  # fmt: skip
def test_countless_bottoms_average_equally(zoo: Zoo, args: str, tmp_path: Path, logs: list) -> None:
    cfg = BY_ARGS[args]
    ins = [zoo.load(cfg, p) for p in zoo.pair(cfg)]
    ws, _ = merged(zoo, cfg, list(zoo.pair(cfg)), tmp_path / "m.model")
    assert any(NO_COUNT in e["event"] for e in logs)
    union, (a, b) = _dense([m.states[-1].table for m in ins])
    out = ws.states[-1].table
    if args.startswith(("--lda", "--rank")):
        # Dense learners: every row is written, in order (VW re-initializes missing rows randomly).
        np.testing.assert_array_equal(out.index, np.arange(1 << ws.header.bits))
        np.testing.assert_allclose(out.values, (a + b) / 2, rtol=1e-6)
    else:
        np.testing.assert_allclose(on_rows(out, union)[:, 0], (a[:, 0] + b[:, 0]) / 2, rtol=1e-6)


def test_cbzo_linear_policy_predicts_the_average_action(zoo: Zoo, tmp_path: Path) -> None:
    """cbzo's linear policy is linear in the weights: the merged mean action is the average."""
    cfg = BY_ARGS["--cbzo --policy linear -b 12"]
    a, b = zoo.pair(cfg)
    _, out = merged(zoo, cfg, [a, b], tmp_path / "m.model")

    def centers(path: Path) -> np.ndarray:
        # each prediction is a pdf; the policy's action is the midpoint of its densest segment
        return np.array([
            (max(p, key=lambda s: s[2])[0] + max(p, key=lambda s: s[2])[1]) / 2
            for p in vwtrain.predict(path, vwtrain.test_examples(cfg.args, n=6))
        ])  # fmt: skip

    ca, cb, cm = centers(a), centers(b), centers(out)
    np.testing.assert_allclose(cm, (ca + cb) / 2, rtol=1e-3, atol=1e-3)


def test_lda_warns_when_topics_do_not_correspond(zoo: Zoo, logs: list) -> None:
    cfg = BY_ARGS["--lda 3 -b 8"]
    a = zoo.load(cfg, zoo.model(cfg, 0))
    state = a.states[-1]
    swapped = attrs.evolve(state, table=state.table.with_values(np.ascontiguousarray(state.table.values[:, ::-1])))
    b = attrs.evolve(a, states=(*a.states[:-1], swapped))
    vwmerge.merge([a, a])
    assert not any("topics do not correspond" in e["event"] for e in logs)
    vwmerge.merge([a, b])
    assert any("topics do not correspond" in e["event"] for e in logs)


# --------------------------------------------------------------------------------------------
# Trees
def _tree(ws: vwmerge.Workspace, name: str) -> Any:
    return ws.state(name)


def test_log_multi_merges_matching_trees(zoo: Zoo, tmp_path: Path) -> None:
    cfg = BY_ARGS["--log_multi 3"]
    a, b = zoo.pair(cfg)
    ta, tb = (_tree(zoo.load(cfg, p), "log_multi") for p in (a, b))
    assert isinstance(ta, LogMultiState)
    ws, _ = merged(zoo, cfg, [a, b], tmp_path / "m.model")
    t = _tree(ws, "log_multi")
    for i, nd in enumerate(t.nodes):
        na, nb = ta.nodes[i], tb.nodes[i]
        assert (nd.parent, nd.internal, nd.left, nd.right) == (na.parent, na.internal, na.left, na.right)
        labels = sorted({p.label for p in na.preds} | {p.label for p in nb.preds})
        assert [p.label for p in nd.preds] == labels
        for p in nd.preds:
            pa = next((q for q in na.preds if q.label == p.label), None)
            pb = next((q for q in nb.preds if q.label == p.label), None)
            assert p.label_count == sum(q.label_count for q in (pa, pb) if q)
            assert p.Ehk == pytest.approx(sum(q.Ehk for q in (pa, pb) if q))
            if p.nk:
                assert p.norm_Ehk == pytest.approx(p.Ehk / p.nk, rel=1e-6)
        if nd.internal:
            assert nd.n == na.n + nb.n
            assert nd.Eh == pytest.approx(na.Eh + nb.Eh)
        else:
            assert nd.min_count == na.min_count + nb.min_count
            assert nd.max_count == max((p.label_count for p in nd.preds), default=0)
    for nd in t.nodes:  # VW's invariant, as in the inputs
        if nd.internal:
            assert nd.min_count == min(t.nodes[nd.left].min_count, t.nodes[nd.right].min_count)
    for src in (ta, tb):
        for nd in src.nodes:
            if nd.internal:
                assert nd.min_count == min(src.nodes[nd.left].min_count, src.nodes[nd.right].min_count)


def test_log_multi_refuses_different_topologies(models: Models, tmp_path: Path) -> None:
    """--log_multi 2 swaps nodes online: these two trees end up different."""
    a, b = models.train("--log_multi 2", 11, 30), models.train("--log_multi 2", 12, 37)
    ta, tb = vwmerge.load(a).state("log_multi"), vwmerge.load(b).state("log_multi")
    assert [(n.parent, n.internal) for n in ta.nodes] != [(n.parent, n.internal) for n in tb.nodes]
    with pytest.raises(vwmerge.IncompatibleModelsError) as err:
        vwmerge.merge([vwmerge.load(a), vwmerge.load(b)])
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg and "topology" in msg and "node 0" in msg


def test_recall_tree_sums_label_counts_and_recomputes(zoo: Zoo, tmp_path: Path) -> None:
    cfg = BY_ARGS["--recall_tree 4"]
    a, b = zoo.pair(cfg)
    ta, tb = (zoo.load(cfg, p).state("recall_tree") for p in (a, b))
    ws, _ = merged(zoo, cfg, [a, b], tmp_path / "m.model")
    t = ws.state("recall_tree")
    assert isinstance(t, RecallTreeState)
    for nd, na, nb in zip(t.nodes, ta.nodes, tb.nodes, strict=True):
        assert nd.n == pytest.approx(na.n + nb.n)
        want = dict(na.preds)
        for label, c in nb.preds:
            want[label] = want.get(label, 0.0) + c
        assert dict(nd.preds) == pytest.approx(want)
        counts = [c for _, c in nd.preds]
        assert counts == sorted(counts, reverse=True)
        if nd.n > 0:
            assert nd.entropy == pytest.approx(-sum(c / nd.n * math.log(c / nd.n) for c in counts))
    # the inputs' entropies are VW's incremental ones: the formula reproduces them
    for nd in ta.nodes:
        if nd.n > 0:
            assert nd.entropy == pytest.approx(-sum(c / nd.n * math.log(c / nd.n) for _, c in nd.preds), abs=1e-9)


def test_recall_tree_base_mode(models: Models) -> None:
    base_path, paths = models.resumed("--recall_tree 4")
    base = vwmerge.load(base_path)
    ins = [vwmerge.load(p) for p in paths]
    out = vwmerge.merge(ins, base=base).state("recall_tree")
    root_b, roots = base.state("recall_tree").nodes[0], [m.state("recall_tree").nodes[0] for m in ins]
    assert out.nodes[0].n == pytest.approx(root_b.n + sum(r.n - root_b.n for r in roots))


def test_memory_tree_keeps_one_memory_with_a_warning(zoo: Zoo, tmp_path: Path, logs: list) -> None:
    cfg = BY_ARGS["--memory_tree 4 --oas --max_number_of_labels 4"]
    a, b = zoo.pair(cfg)
    ws, _ = merged(zoo, cfg, [a, b], tmp_path / "m.model")
    assert ws.state("memory_tree").raw == zoo.load(cfg, a).state("memory_tree").raw
    warn = [e for e in logs if e["event"].startswith("memory_tree stores training examples")]
    assert warn and warn[0]["kept_from"] == str(a)
    assert warn[0]["vw_reload_options"] == "--oas --max_number_of_labels 4"
    desc = {d["reduction"]: d for d in ws.describe()}["memory_tree"]["state"]
    assert desc["oas"] and desc["vw_reload_options"] == "--oas --max_number_of_labels 4"


def test_memory_tree_oas_given_wrongly_is_named(zoo: Zoo) -> None:
    with pytest.raises(vwmerge.ModelFormatError, match="drop --oas"):
        vwmerge.load(zoo.model(BY_ARGS["--memory_tree 4"], 0), vw_options="--oas")


def test_plt_node_times_add_up(zoo: Zoo, tmp_path: Path) -> None:
    cfg = BY_ARGS["--plt 4 --loss_function logistic"]
    a, b = zoo.pair(cfg)
    ta, tb = (zoo.load(cfg, p).state("plt").nodes_time for p in (a, b))
    assert len(ta) == 7  # k = 4, binary tree
    ws, out = merged(zoo, cfg, [a, b], tmp_path / "m.model")
    np.testing.assert_allclose(ws.state("plt").nodes_time, ta + tb)
    assert ta[0] == INPUT_SIZES[0]  # the root sees every example (initial_t 0)
    with pytest.raises(RuntimeError, match="logistic"):
        vwtrain.predict(out, vwtrain.test_examples(cfg.args, n=1))  # VW needs the loss; vwmerge did not


# --------------------------------------------------------------------------------------------
# marginal
def test_marginal_sums_increments_over_the_union(zoo: Zoo, tmp_path: Path) -> None:
    for args in ("--marginal m", "--marginal m --compete"):
        cfg = BY_ARGS[args]
        ins = [zoo.load(cfg, p).state("marginal") for p in zoo.pair(cfg)]
        ws, _ = merged(zoo, cfg, list(zoo.pair(cfg)), tmp_path / "m.model")
        out = ws.state("marginal")
        keys = sorted(set(ins[0].marginals["key"].tolist()) | set(ins[1].marginals["key"].tolist()))
        assert out.marginals["key"].tolist() == keys
        for rec in out.marginals:
            src = [m.marginals[m.marginals["key"] == rec["key"]] for m in ins]
            assert rec["num"] == pytest.approx(0.5 + sum(float(s["num"][0]) - 0.5 for s in src if len(s)))
            assert rec["den"] == pytest.approx(1.0 + sum(float(s["den"][0]) - 1.0 for s in src if len(s)))
        if "compete" in args:
            assert ins[0].experts is not None and len(ins[0].experts) == len(ins[0].marginals)
            for e in out.experts:
                src = [m.experts[m.experts["key"] == e["key"]] for m in ins]
                r1 = sum(float(s["r1"][0]) for s in src if len(s))
                c1 = sum(float(s["c1"][0]) for s in src if len(s))
                assert e["r1"] == pytest.approx(r1, rel=1e-6)
                want = 2 * max(r1, 0) * math.exp(max(r1, 0) ** 2 / (3 * c1)) / (3 * c1) if c1 and r1 > 0 else 0.0
                assert e["w1"] == pytest.approx(want, rel=1e-4)
        else:
            assert out.experts is None


def test_marginal_compete_must_be_named(zoo: Zoo) -> None:
    compete, plain = zoo.model(BY_ARGS["--marginal m --compete"], 0), zoo.model(BY_ARGS["--marginal m"], 0)
    with pytest.raises(vwmerge.ModelFormatError, match='--vw-options "--compete"') as err:
        vwmerge.load(compete)
    assert str(compete) in str(err.value)
    with pytest.raises(vwmerge.ModelFormatError, match="drop it"):
        vwmerge.load(plain, vw_options="--compete")
    # VW itself cannot reload the file without the option either
    with pytest.raises(RuntimeError):
        vwtrain.predict(compete, vwtrain.test_examples("--marginal m", n=1))


def test_marginal_compete_through_the_cli(zoo: Zoo, tmp_path: Path) -> None:
    a, b = zoo.pair(BY_ARGS["--marginal m --compete"])
    out = tmp_path / "cli.model"
    cmd = [sys.executable, "-m", "vwmerge", "merge", "-o", str(out), str(a), str(b)]
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--compete" in bad.stderr and not out.exists()
    good = subprocess.run([*cmd, "--vw-options", "--compete"], capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert np.all(np.isfinite(vwtrain.predict(out, vwtrain.test_examples("--marginal m", n=4), "--compete")))


# --------------------------------------------------------------------------------------------
# active, stage_poly, experimental_igl
def test_active_fresh_files_merge_into_loadable_ones(zoo: Zoo, tmp_path: Path) -> None:
    cfg = BY_ARGS["--active --simulation"]
    a, b = zoo.pair(cfg)
    ins = [zoo.load(cfg, p) for p in (a, b)]
    assert all(m.state("active").labels is None for m in ins)  # trained from scratch: 0 bytes
    with pytest.raises(RuntimeError, match="corrupted"):
        vwtrain.predict(a, vwtrain.test_examples(cfg.args, n=1), "--simulation")  # VW cannot
    ws, out = merged(zoo, cfg, [a, b], tmp_path / "m.model")
    lo, hi = ws.state("active").labels
    assert lo == pytest.approx(min(0.0, *(m.header.min_label for m in ins)))
    assert hi == pytest.approx(max(1.0, *(m.header.max_label for m in ins)))
    # VW re-saves the merged model with the 8 bytes; vwmerge reads that layout too, byte for byte.
    resaved = tmp_path / "resaved.model"
    vw = vowpalwabbit.Workspace(f"-i {out} --simulation --quiet --preserve_performance_counters", enable_logging=False)
    vw.save(str(resaved))
    vw.finish()
    again = vwmerge.load(resaved)
    assert again.state("active").labels == (lo, hi) and again.to_bytes() == resaved.read_bytes()
    merged2 = vwmerge.merge([again, ins[0]])
    assert merged2.state("active").labels == (lo, hi)


def _reduce_reference(arrays: list[np.ndarray]) -> np.ndarray:
    """VW's all-reduce rule, written per byte position (independent of the plugin's vectorized one)."""
    out = arrays[0].copy()
    for other in arrays[1:]:
        for i in np.flatnonzero(out != other):
            v1, v2 = int(out[i]), int(other[i])
            if (v1 & 128) != (v2 & 128):
                continue
            out[i] = max(v1, v2) if v1 & 128 else (v2 if v1 == 127 else (v1 if v2 == 127 else min(v1, v2)))
    return out


def test_stage_poly_support_follows_vws_allreduce(zoo: Zoo, tmp_path: Path) -> None:
    cfg = BY_ARGS["--stage_poly -b 10 --batch_sz 8"]
    a, b = zoo.pair(cfg)
    da, db = (zoo.load(cfg, p).state("stage_poly").depthsbits for p in (a, b))
    assert len(da) == 2 << 10 and not np.array_equal(da, db)
    ws, _ = merged(zoo, cfg, [a, b], tmp_path / "m.model")
    np.testing.assert_array_equal(ws.state("stage_poly").depthsbits, _reduce_reference([da.copy(), db.copy()]))


def test_igl_sums_the_policy_normalizer(zoo: Zoo, tmp_path: Path) -> None:
    cfg = CONFIGS[[c.train for c in CONFIGS].index("dsjson")]
    a, b = zoo.pair(cfg)
    pa, pb = (zoo.load(cfg, p).state("experimental_igl").pairs for p in (a, b))
    ws, _ = merged(zoo, cfg, [a, b], tmp_path / "m.model")
    np.testing.assert_allclose(ws.state("experimental_igl").pairs, pa + pb)
    assert pa[0, 1] > 0


def test_every_stateful_reduction_here_is_mergeable(zoo: Zoo) -> None:
    """No configuration falls back to 'kept one model's state' silently: each has a merge hook."""
    for cfg in CONFIGS:
        ws = zoo.load(cfg, zoo.model(cfg, 0))
        for entry in ws.stack:
            if entry.section:
                assert ws.registry.implements("vwmerge_merge", entry), (cfg.args, entry.name)


VW_RESETS: dict[str, Callable[[vwmerge.Workspace], bool]] = {
    "--log_multi 3": lambda ws: len(ws.state("log_multi").nodes) == 1,
    "--recall_tree 4": lambda ws: all(nd.n == 0 and not nd.preds for nd in ws.state("recall_tree").nodes),
    "--memory_tree 4": lambda ws: ws.state("memory_tree").examples == 0,
    "--marginal m": lambda ws: len(ws.state("marginal").marginals) == 0,
}


@pytest.mark.parametrize("args", list(VW_RESETS))
def test_vw_resets_the_state_vwmerge_merges(zoo: Zoo, args: str, tmp_path: Path) -> None:
    """VW's merged section is the untrained one; vwmerge's is not (memory_tree: one input's)."""
    cfg = BY_ARGS[args]
    a, b = zoo.pair(cfg)
    vw = zoo.load(cfg, vwtrain.vw_merge([a, b], tmp_path / "vw.model"))
    ours, _ = merged(zoo, cfg, [a, b], tmp_path / "ours.model")
    assert VW_RESETS[args](vw)
    assert not VW_RESETS[args](ours)


def test_marginal_base_mode(models: Models) -> None:
    base_path, paths = models.resumed("--marginal m")
    base = vwmerge.load(base_path).state("marginal")
    ins = [vwmerge.load(p).state("marginal") for p in paths]
    out = vwmerge.merge([vwmerge.load(p) for p in paths], base=vwmerge.load(base_path)).state("marginal")
    for rec in out.marginals:
        ref = base.marginals[base.marginals["key"] == rec["key"]]
        ref_num = float(ref["num"][0]) if len(ref) else 0.5
        src = [m.marginals[m.marginals["key"] == rec["key"]] for m in ins]
        assert rec["num"] == pytest.approx(ref_num + sum(float(s["num"][0]) - ref_num for s in src if len(s)))


def test_proximal_ftrl_constants_from_vw_options(zoo: Zoo, logs: list) -> None:
    """Given the training constants (VW does not store them), vwmerge uses them and fits nothing."""
    cfg = BY_ARGS["--ftrl --ftrl_alpha 0.1 --ftrl_beta 0.5"]
    ins = [vwmerge.load(p, vw_options="--ftrl_alpha 0.1 --ftrl_beta 0.5") for p in zoo.pair(cfg)]
    t = vwmerge.merge(ins).states[-1].table
    assert not any("fitted from the rows" in e["event"] for e in logs)
    live = t.column("w") != 0
    w, z, n = (t.column(c)[live].astype(np.float64) for c in ("w", "z", "sum_g2"))
    np.testing.assert_allclose(-z * 0.1 / (0.5 + np.sqrt(n)), w, rtol=1e-5)


def test_memory_tree_oas_is_named_where_the_layout_needs_it(models: Models) -> None:
    """Under --per_model_save_load the width --oas adds sets gd's state count: the error names it."""
    path = models.train("--memory_tree 4 --oas --max_number_of_labels 4 --per_model_save_load", 11, 30)
    for given in (None, "--oas"):
        with pytest.raises(vwmerge.ModelFormatError, match='--vw-options "--oas --max_number_of_labels 4"'):
            vwmerge.load(path, vw_options=given)
    ws = vwmerge.load(path, vw_options="--oas --max_number_of_labels 4")
    assert len(ws.states[-1].online.total_weight) == 4 + 1 + 4  # max_nodes + 1 + labels (reductions.md §3)
    assert ws.to_bytes() == path.read_bytes()
