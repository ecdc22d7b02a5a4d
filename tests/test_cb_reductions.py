"""Contextual-bandit, exploration and ensemble reductions against the real VW 9.11.9.

For every configuration: models trained by VW at test time are read and written back byte for
byte; two of them are merged by vwmerge, the merged file loads and predicts in VW, and each
stateful reduction's merged state is what docs/reductions.md says (re-read from the merged
file, computed here from the inputs' states). Where VW can merge, its merged section is shown
to be the *fresh* (untrained) section, which vwmerge's is not. Base mode is checked the same way.

Add a configuration: one :class:`Case` in :data:`CASES` (a new label type goes into
``vwtrain._examples``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import vowpalwabbit
import vwmerge
from helpers import vwtrain
from helpers.configs import CASES, Case
from helpers.models import Models
from vwmerge.engine.merging import execute, prepare_merge
from vwmerge.testing import Kit, assert_roundtrip

NO_MERGE = "reduction has state but no merge; keeping one model's state unchanged"


STATEFUL = tuple(c for c in CASES if c.stateful)

#: VW's learner name for a vwmerge reduction name, where they differ beyond a ``-suffix``.
VW_NAMES = {"cb_algs": "cb", "cbify": "cbify"}


# --------------------------------------------------------------------------------------------
def load(path: Path) -> vwmerge.Workspace:
    return vwmerge.load(path)


def section(ws: vwmerge.Workspace, name: str) -> bytes:
    """One reduction's section, as its plugin writes it."""
    return Kit(ws.registry).section(ws, name)


def fresh(models: Models, args: str) -> Path:
    """An untrained model: the state VW's merge leaves a reduction without merge in."""
    return models.train(args, 0, 0)


def vw_learners(path: Path) -> list[str]:
    ws = vowpalwabbit.Workspace(f"-i {path} --quiet", enable_logging=False)
    try:
        return list(ws.get_enabled_learners())
    finally:
        ws.finish()


def merge_and_check_loads(
    models: Models, args: str, inputs: Sequence[vwmerge.Workspace], tmp_path: Path, **kw: Any
) -> vwmerge.Workspace:
    """Merge, save, reload with vwmerge and predict with VW; returns the re-read merged file."""
    merged = vwmerge.merge(inputs, **kw)
    out = tmp_path / "merged.model"
    merged.save(out)
    preds = vwtrain.predict(out, vwtrain.test_examples(args, n=3))
    assert len(preds) == 3
    return assert_roundtrip(out)


# --------------------------------------------------------------------------------------------
# The documented merge rules, computed here from the inputs' states.
def _counter(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    vals = [s.value for s in states]
    return {"value": sum(vals) if base is None else base.value + sum(v - base.value for v in vals)}


def _first(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    n0 = ctx["options"].get_int("first", 0) if base is None else base.tau
    return {"tau": max(0, n0 - sum(n0 - s.tau for s in states))}


def _synthcover(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    every = [*states, *([base] if base is not None else [])]
    return {"min_cost": min(s.min_cost for s in every), "max_cost": max(s.max_cost for s in every)}


def _ccb(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    every = [*states, *([base] if base is not None else [])]
    return {"multi_slot_seen": any(s.multi_slot_seen for s in every)}


def _boosting(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    if states[0].n is None:
        return {"n": None}
    a = np.stack([s.alpha for s in states]).astype(np.float64)
    alpha = w @ a if base is None else base.alpha + w @ (a - base.alpha)
    out: dict[str, Any] = {"alpha": alpha.astype(np.float32)}
    if states[0].v is not None:
        v = np.stack([s.v for s in states]).astype(np.float64)
        raw = (w @ v if base is None else base.v + w @ (v - base.v)).astype(np.float32)
        out["v"] = (raw / np.float32(raw.astype(np.float64).sum())).astype(np.float32)
    return out


def _sum_field(get: Callable[[Any], float], states: Sequence[Any], base: Any) -> float:
    vals = [get(s) for s in states]
    return sum(vals) if base is None else get(base) + sum(v - get(base) for v in vals)


def _challenger(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    every = [*states, *([base] if base is not None else [])]
    out = {f: _sum_field(lambda s, f=f: s[f], states, base) for f in ("n", "sumw", "sumwr", "expectation_n")}
    out |= {f: min(s[f] for s in every) for f in ("rmin", "wmin")}
    out |= {f: max(s[f] for s in every) for f in ("rmax", "wmax")}
    out |= {f: states[0][f] for f in ("alpha", "tau")}
    return out


def _epsilon_decay(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    return {
        "weight_indices": states[0].weight_indices,
        "update_counts": [
            [_sum_field(lambda s, r=r, c=c: s.estimators[r][c].update_count, states, base) for c in range(len(row))]
            for r, row in enumerate(states[0].estimators)
        ],
    }


def _automl(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    namespaces = sorted({int(ns) for s in states for ns in s.ns_counter["ns"]})

    def count(s: Any, ns: int) -> int:
        hit = s.ns_counter["count"][s.ns_counter["ns"] == ns]
        return int(hit[0]) if len(hit) else 0

    return {
        "total_learn_count": _sum_field(lambda s: s.total_learn_count, states, base),
        "ns_counter": {ns: _sum_field(lambda s, ns=ns: count(s, ns), states, base) for ns in namespaces},
        "slot_updates": [
            _sum_field(lambda s, k=k: s.estimators[k].own.update_count, states, base)
            for k in range(len(states[0].estimators))
        ],
    }


def _mwt(states: Sequence[Any], base: Any, w: np.ndarray, ctx: dict[str, Any]) -> dict[str, Any]:
    every = [*states, *([base] if base is not None else [])]
    costs: dict[int, float] = {}
    for s in every:
        for p in s.policies.tolist():
            costs.setdefault(p, 0.0)
    for s in states:
        for p, c in zip(s.policies.tolist(), s.evals["cost"].tolist(), strict=True):
            costs[p] += c
    if base is not None:
        for p, c in zip(base.policies.tolist(), base.evals["cost"].tolist(), strict=True):
            costs[p] -= (len(states) - 1) * c
    return {"total": _sum_field(lambda s: s.total, states, base), "costs": costs}


def _observed(name: str, st: Any) -> dict[str, Any]:
    """The fields of a merged state that the rule for ``name`` predicts."""
    if name in ("cb_explore_adf_squarecb", "cb_explore_adf_regcb", "cb_explore_adf_cover"):
        return {"value": st.value}
    if name in ("cb_explore_adf_graph_feedback", "cb_explore"):
        return {"value": st.value}
    if name == "cb_explore_adf_first":
        return {"tau": st.tau}
    if name == "cb_explore_adf_synthcover":
        return {"min_cost": st.min_cost, "max_cost": st.max_cost}
    if name == "ccb_explore_adf":
        return {"multi_slot_seen": st.multi_slot_seen}
    if name == "boosting":
        if st.n is None:
            return {"n": None}
        return {"alpha": st.alpha, **({"v": st.v} if st.v is not None else {})}
    if name == "baseline_challenger_cb":
        return {
            f: st[f] for f in ("n", "sumw", "sumwr", "expectation_n", "rmin", "wmin", "rmax", "wmax", "alpha", "tau")
        }
    if name == "epsilon_decay":
        return {
            "weight_indices": st.weight_indices,
            "update_counts": [[cs.update_count for cs in row] for row in st.estimators],
        }
    if name == "automl":
        return {
            "total_learn_count": st.total_learn_count,
            "ns_counter": dict(zip(st.ns_counter["ns"].tolist(), st.ns_counter["count"].tolist(), strict=True)),
            "slot_updates": [e.own.update_count for e in st.estimators],
        }
    if name == "multiworld_test":
        return {"total": st.total, "costs": dict(zip(st.policies.tolist(), st.evals["cost"].tolist(), strict=True))}
    raise AssertionError(f"no rule for {name}")


RULES: dict[str, Callable[..., dict[str, Any]]] = {
    "cb_explore_adf_squarecb": _counter,
    "cb_explore_adf_regcb": _counter,
    "cb_explore_adf_cover": _counter,
    "cb_explore_adf_graph_feedback": _counter,
    "cb_explore": _counter,
    "cb_explore_adf_first": _first,
    "cb_explore_adf_synthcover": _synthcover,
    "ccb_explore_adf": _ccb,
    "boosting": _boosting,
    "baseline_challenger_cb": _challenger,
    "epsilon_decay": _epsilon_decay,
    "automl": _automl,
    "multiworld_test": _mwt,
}


def _assert_matches(name: str, got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys(), name
    for key, w in want.items():
        g = got[key]
        if isinstance(w, np.ndarray):
            # float32 results of a float64 computation rounded once
            np.testing.assert_allclose(g, w, rtol=2**-22, atol=2**-30, err_msg=f"{name}.{key}")
        elif isinstance(w, float):
            assert g == pytest.approx(w, rel=1e-12, abs=1e-12), f"{name}.{key}"
        elif isinstance(w, dict):
            assert g.keys() == w.keys(), f"{name}.{key}"
            for k in w:
                assert g[k] == pytest.approx(w[k], rel=1e-12, abs=1e-12), f"{name}.{key}[{k}]"
        else:
            assert g == w, f"{name}.{key}"


def check_rule(name: str, merged: vwmerge.Workspace, inputs: Sequence[vwmerge.Workspace], base: Any = None) -> None:
    # VW's weights: each model's labeled-example count (its increment over the base), normalized.
    counts = np.array([m.states[-1].online.weighted_labeled_examples for m in inputs])
    if base is not None:
        counts = counts - base.states[-1].online.weighted_labeled_examples
    weights = counts / counts.sum()
    want = RULES[name](
        [m.state(name) for m in inputs],
        base.state(name) if base is not None else None,
        weights,
        {"options": merged.options},
    )
    _assert_matches(name, _observed(name, merged.state(name)), want)


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_round_trip_and_stack(models: Models, case: Case) -> None:
    """Trained, fresh and VW-reloaded files are reproduced byte for byte; the stack is VW's."""
    paths = [*models.inputs(case.args, 2), fresh(models, case.args)]
    for p in paths:
        json.dumps(assert_roundtrip(p).describe())
    ws = load(paths[0])
    names = [e.name for e in ws.stack]
    learners = vw_learners(paths[0])
    for name in case.stack:
        assert name in names
        vw_name = VW_NAMES.get(name, name)
        assert any(lr == vw_name or lr.startswith(vw_name + "-") for lr in learners), (name, learners)
    for name in case.stateful:
        assert ws.entry(name).section
    if case.pmsl is not None:
        assert ws.state("cb_adf").counters.shape == (case.pmsl, 2)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_merge_follows_the_rule_and_loads_in_vw(models: Models, case: Case, tmp_path: Path, logs: list) -> None:
    inputs = [load(p) for p in models.inputs(case.args, 2)]
    merged = merge_and_check_loads(models, case.args, inputs, tmp_path)
    assert not [e for e in logs if e["event"] == NO_MERGE]
    for name in case.stateful:
        check_rule(name, merged, inputs)


@pytest.mark.parametrize("case", STATEFUL, ids=lambda c: c.id)
def test_vw_resets_what_vwmerge_merges(models: Models, case: Case, tmp_path: Path) -> None:
    """VW's merged section is the untrained one; vwmerge's carries the inputs' state."""
    paths = models.inputs(case.args, 2)
    vw = load(models.vw_merged(paths))
    new = load(fresh(models, case.args))
    ours = vwmerge.merge([load(p) for p in paths])
    for name in case.stateful:
        assert section(vw, name) == section(new, name), name
        trained = [section(load(p), name) for p in paths]
        if any(t != section(new, name) for t in trained):
            assert section(ours, name) != section(new, name), name


@pytest.mark.parametrize("case", STATEFUL, ids=lambda c: c.id)
def test_base_mode(models: Models, case: Case, tmp_path: Path, logs: list) -> None:
    """``base + Σ(xᵢ − base)`` for additive state, the rule over inputs and base otherwise."""
    base_path, paths = models.resumed(case.args)
    base, inputs = load(base_path), [load(p) for p in paths]
    merged = merge_and_check_loads(models, case.args, inputs, tmp_path, base=base)
    assert not [e for e in logs if e["event"] == NO_MERGE]
    for name in case.stateful:
        check_rule(name, merged, inputs, base)
    if not case.vw_merges_base:
        with pytest.raises(RuntimeError, match="incompatible"):
            models.vw_merged(paths, base=base_path)
        return
    vw = load(models.vw_merged(paths, base=base_path))
    new = load(fresh(models, case.args))
    for name in case.stateful:
        assert section(vw, name) == section(new, name), name


# --------------------------------------------------------------------------------------------
# The merge properties of vwmerge's kit for plugin authors (vwmerge.testing), on the built-ins
# whose laws are simple: what k copies give, input order (exact: these merges sum integers or
# take extrema), one-hot weights, and add(base, subtract(m, base)) == m for m trained on from base.
def _counts(state: Any, k: int) -> Any:
    return attrs.evolve(state, value=state.value * k % 2**64)


def _all_counts(states: Sequence[Any], j: int) -> Any:
    return attrs.evolve(states[j], value=sum(s.value for s in states) % 2**64)


def _first_laws(n0: int) -> tuple[Callable[[Any, int], Any], Callable[[Sequence[Any], int], Any]]:
    """Each input consumed n0 − τᵢ of the explore-first budget: the budgets consumed add up."""

    def left(taus: Sequence[int]) -> int:
        return max(0, n0 - sum(n0 - t for t in taus))

    return (
        lambda s, k: attrs.evolve(s, tau=left([s.tau] * k)),
        lambda states, j: attrs.evolve(states[j], tau=left([s.tau for s in states])),
    )


KIT_LAWS: dict[str, tuple[Callable[[Any, int], Any] | None, Callable[[Sequence[Any], int], Any] | None]] = {
    "cb_explore_adf_squarecb": (_counts, _all_counts),
    "cb_explore_adf_regcb": (_counts, _all_counts),
    "cb_explore_adf_cover": (_counts, _all_counts),
    "cb_explore_adf_graph_feedback": (_counts, _all_counts),
    "cb_explore": (_counts, _all_counts),
    "cb_explore_adf_first": _first_laws(100),
    "cb_explore_adf_synthcover": (None, None),  # extrema: the model's own back
    "ccb_explore_adf": (None, None),  # a flag, or-ed
    "boosting": (None, None),  # weighted means, in float64 rounded once
}
KIT_CASES = [c for c in STATEFUL if set(c.stateful) <= set(KIT_LAWS)]


@pytest.mark.parametrize("case", KIT_CASES, ids=lambda c: c.id)
def test_the_plugin_kit_merge_properties(models: Models, case: Case) -> None:
    kit = Kit()
    inputs = models.inputs(case.args, 3)
    base, continued = models.resumed(case.args)
    for name in case.stateful:
        copies, one_hot = KIT_LAWS[name]
        kit.assert_merge_properties(inputs, name, copies=copies, one_hot=one_hot)
        entry = kit.load(base).entry(name)
        if kit.registry.implements("vwmerge_subtract", entry):
            for m in continued:
                kit.assert_base_inverse(m, base, name)


# --------------------------------------------------------------------------------------------
def test_ccb_flag_is_ored(tmp_path: Path) -> None:
    """A single-slot model (flag false) merged with a multi-slot one keeps the slot interactions."""
    rng = random.Random(5)
    single = [
        ["ccb shared |s u1", *(f"ccb action |act a{a}" for a in range(3)), f"ccb slot {rng.randrange(3)}:1:0.5"]
        for _ in range(20)
    ]
    a = vwtrain.train_on("--ccb_explore_adf", single, tmp_path / "single.model")
    b = vwtrain.train_on("--ccb_explore_adf", [vwtrain._ccb(rng) for _ in range(20)], tmp_path / "multi.model")
    wa, wb = load(a), load(b)
    assert (wa.state("ccb_explore_adf").multi_slot_seen, wb.state("ccb_explore_adf").multi_slot_seen) == (False, True)
    for order in ([wa, wb], [wb, wa]):
        assert vwmerge.merge(order).state("ccb_explore_adf").multi_slot_seen is True
    # VW cannot merge them at all: its fresh output lacks the slot interactions model b loads with.
    with pytest.raises(RuntimeError, match="interactions"):
        vwtrain.vw_merge([a, b], tmp_path / "vw.model")
    out = tmp_path / "merged.model"
    vwmerge.merge([wa, wb]).save(out)
    assert len(vwtrain.predict(out, [vwtrain._ccb(rng)])) == 1


def test_cbify_ldf(tmp_path: Path) -> None:
    """``--cbify_ldf`` simulates a bandit from cost-sensitive ldf data; it inserts cb_min/max_cost."""
    rng = random.Random(9)

    def data() -> list[list[str]]:
        return [
            [f"{i}:{round(rng.random(), 3)} |act a{i} f:{round(rng.random(), 3)}" for i in range(1, 4)]
            for _ in range(30)
        ]

    paths = [vwtrain.train_on("--cbify_ldf", data(), tmp_path / f"{i}.model") for i in range(2)]
    wss = [load(p) for p in paths]
    for ws, p in zip(wss, paths, strict=True):
        assert ws.to_bytes() == p.read_bytes()
    assert {"cbify_ldf", "cb_explore_adf_greedy"} <= {e.name for e in wss[0].stack}
    assert "cbify_ldf" in vw_learners(paths[0])
    out = tmp_path / "merged.model"
    vwmerge.merge(wss).save(out)
    assert load(out).state("cb_adf").counters.tolist() == [
        (wss[0].state("cb_adf").counters + wss[1].state("cb_adf").counters).tolist()[0]
    ]
    assert len(vwtrain.predict(out, data()[:2])) == 2


def test_first_budget_continues(models: Models) -> None:
    """--first 100 after 30 and 37 examples leaves 33 to explore; VW restarts at 100."""
    paths = models.inputs("--cb_explore_adf --first 100", 2)
    assert [load(p).state("cb_explore_adf_first").tau for p in paths] == [70, 63]
    assert vwmerge.merge([load(p) for p in paths]).state("cb_explore_adf_first").tau == 33
    assert load(models.vw_merged(paths)).state("cb_explore_adf_first").tau == 100


def test_boosting_alpha_follows_explicit_weights(models: Models) -> None:
    a, b = (load(p) for p in models.inputs("--boosting 3 --alg adaptive", 2))
    m = vwmerge.merge([a, b], weights=[3, 1]).state("boosting")
    want = (0.75 * a.state("boosting").alpha.astype(np.float64) + 0.25 * b.state("boosting").alpha).astype(np.float32)
    np.testing.assert_array_equal(m.alpha, want)
    assert float(m.v.astype(np.float64).sum()) == pytest.approx(1.0, abs=1e-6)


def test_automl_with_different_configs_keeps_the_largest(tmp_path: Path, logs: list) -> None:
    """Different namespaces → different candidate configs: the slot weights do not belong together."""
    rng = random.Random(3)
    args = "--cb_explore_adf --automl 3"
    plain = [vwtrain._adf(rng) for _ in range(30)]
    extra = [[f"{ex[0]} |t z{rng.randrange(3)}", *ex[1:]] for ex in (vwtrain._adf(rng) for _ in range(30))]
    a = load(vwtrain.train_on(args, plain, tmp_path / "a.model"))
    b = load(vwtrain.train_on(args, extra, tmp_path / "b.model"))
    assert a.state("automl").structure() != b.state("automl").structure()
    merged = vwmerge.merge([a, b], weights=[1, 3])
    assert section(merged, "automl") == section(b, "automl")
    warned = [e for e in logs if e.get("reduction") == "automl" and e["log_level"] == "warning"]
    assert warned and warned[0]["kept_from"] == b.source
    executed = execute(prepare_merge([a, b], weights=[1, 3]))  # recorded by the execution itself
    (outcome,) = [o for o in executed.outcomes if o.reduction == "automl"]
    assert (outcome.result, outcome.kept_from) == ("kept", b.source)
    assert outcome.warnings and outcome.warnings[0]["kept_from"] == b.source
    out = tmp_path / "m.model"
    merged.save(out)
    assert len(vwtrain.predict(out, vwtrain.test_examples(args, n=2))) == 2


def test_epsilon_decay_with_different_slots_keeps_the_largest(models: Models, logs: list) -> None:
    """A promoted challenger permutes weight_indices; such inputs are not averaged slot by slot."""
    a, b = (load(p) for p in models.inputs("--cb_explore_adf --epsilon_decay --model_count 3", 2))
    st = b.state("epsilon_decay")
    k = [e.name for e in b.stack].index("epsilon_decay")
    promoted = attrs.evolve(st, weight_indices=(1, 0, 2))
    b2 = attrs.evolve(b, states=(*b.states[:k], promoted, *b.states[k + 1 :]))
    merged = vwmerge.merge([a, b2])  # b has more examples (37 vs 30)
    assert merged.state("epsilon_decay") is promoted
    assert any(e.get("reduction") == "epsilon_decay" and e["log_level"] == "warning" for e in logs)


#: Every option VW keeps for these reductions, set to a non-default value. VW writes all of them
#: into the options string except the listed ones (not ``keep`` in VW), and vwmerge must
#: understand every one (the core refuses options no plugin declares).
KEPT_OPTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("--cb_explore_adf --squarecb --gamma_scale 5 --gamma_exponent 0.4 --mellowness 0.2 --cb_min_cost -1 "
     "--cb_max_cost 2 --epsilon 0.1 --elim", ()),
    ("--cb_explore_adf --regcb --regcbopt --mellowness 0.2 --cb_min_cost 0 --cb_max_cost 2 --first_only", ()),
    ("--cb_explore_adf --cover 2 --psi 0.5 --nounif --first_only --epsilon 0.1 --cb_type dr", ()),
    ("--cb_explore_adf --bag 2 --greedify --epsilon 0.1 --first_only", ()),
    ("--cb_explore_adf --softmax --lambda 2 --epsilon 0.1", ()),
    ("--cb_explore_adf --synthcover --synthcoverpsi 0.2 --synthcoversize 10 --epsilon 0.1", ()),
    ("--cb_explore_adf --rnd 2 --rnd_alpha 0.2 --rnd_invlambda 0.2 --epsilon 0.1", ()),
    ("--cb_explore_adf --large_action_space --max_actions 5 --spanner_c 2 --action_cache_slack 3", ()),
    ("--cb_explore_adf --graph_feedback --gamma_scale 5 --gamma_exponent 0.4", ()),
    ("--cb_explore_adf --first 5 --epsilon 0.1", ()),
    ("--cb_explore_adf --epsilon 0.2 --first_only", ()),
    ("--cb_explore 3 --cb_force_legacy --cover 2 --psi 0.5 --nounif --epsilon 0.1", ()),
    ("--cb 3 --cb_force_legacy --cb_type ips", ()),
    ("--cb_explore_adf --epsilon_decay --model_count 3 --min_scope 5 --epsilon_decay_significance_level 0.1 "
     "--constant_epsilon --bonferroni_denominator 2 --min_champ_examples 3 --initial_epsilon 0.5 "
     "--shift_model_bounds 1 --reward_as_cost --tol_x 1e-5 --opt_func brentq --challenger_epsilon", ()),
    ("--cb_explore_adf --automl 3 --default_lease 10 --priority_type favor_popular_namespaces "
     "--priority_challengers 2 --interaction_type cubic --oracle_type rand --automl_significance_level 0.1 "
     "--fixed_significance_level --reward_as_cost --tol_x 1e-5 --opt_func brentq", ()),
    ("--cb_explore_adf --baseline_challenger_cb --cb_c_alpha 0.1 --cb_c_tau 0.99", ()),
    ("--cb_explore_adf --cb_dro --cb_dro_alpha 0.1 --cb_dro_tau 0.99 --cb_dro_wmax 10", ()),
    ("--boosting 3 --gamma 0.2 --alg logistic", ("gamma",)),
    ("--bootstrap 3 --bs_type vote", ()),
    ("--ccb_explore_adf --ccb_no_slot_index --all_slots_loss", ("all_slots_loss",)),
    ("--cbify 3 --flip_loss_sign", ()),
    ("--cats 4 --min_value 0 --max_value 10 --bandwidth 1 --tree_bandwidth 1", ()),
    ("--cb_explore_adf --explore_eval --multiplier 0.5", ("multiplier",)),
)  # fmt: skip


@pytest.mark.parametrize(("args", "not_kept"), KEPT_OPTIONS, ids=[a for a, _ in KEPT_OPTIONS])
def test_every_kept_option_is_understood(models: Models, args: str, not_kept: tuple[str, ...]) -> None:
    paths = [models.train(args, seed, 12) for seed in (1, 2)]
    wss = [load(p) for p in paths]
    for ws, p in zip(wss, paths, strict=True):
        assert ws.to_bytes() == p.read_bytes()
    given = {t[2:] for t in args.split() if t.startswith("--")}
    assert given - set(wss[0].options.names()) == set(not_kept)
    assert vwmerge.merge(wss).to_bytes()


#: ``--per_model_save_load``: gd stores one state pair per sub-model, the product of the feature
#: widths above it (reductions.md §3), so a wrong width misreads everything after that array.
PMSL_COUNTS: tuple[tuple[str, int], ...] = (
    ("--cb 3 --cb_force_legacy", 6),  # csoaa 3 × cb (dr) 2
    ("--cb 3 --cb_force_legacy --cb_type ips", 3),
    ("--cb_explore 3 --cb_force_legacy --cover 2", 18),  # cb_explore (cover+1) 3 × cb 2 × csoaa 3
    ("--cb_explore 3 --cb_force_legacy --bag 3", 18),
    ("--cats 4 --min_value 0 --max_value 10 --bandwidth 1", 3),  # cats_tree: K − 1 internal nodes
    ("--cats 8 --min_value 0 --max_value 10 --bandwidth 1", 7),
    ("--boosting 3", 3),
    ("--bootstrap 2", 2),
    ("--cb_explore_adf --cover 2 --cb_type dr", 6),  # cover (C+1) 3 × cb_adf (dr) 2
    ("--cb_explore_adf --epsilon_decay --model_count 3", 3),
    ("--cb_explore_adf --automl 3", 3),
    ("--cb_explore_adf --rnd 2", 3),
    ("--multiworld_test f --learn 3", 6),
)


@pytest.mark.parametrize(("args", "count"), PMSL_COUNTS, ids=[a for a, _ in PMSL_COUNTS])
def test_feature_widths_give_vw_per_model_state_count(models: Models, args: str, count: int) -> None:
    """The same data with and without --per_model_save_load: same counters, ``count`` pairs."""
    with_pmsl = models.train(f"{args} --per_model_save_load", 3, 12)
    ws, plain = load(with_pmsl), load(models.train(args, 3, 12))
    assert ws.to_bytes() == with_pmsl.read_bytes()
    on, ref = ws.states[-1].online, plain.states[-1].online
    assert len(on.normalized_sum_norm_x) == len(on.total_weight) == count
    assert (on.t, on.example_number, on.weighted_labeled_examples, on.sum_loss) == (
        ref.t,
        ref.example_number,
        ref.weighted_labeled_examples,
        ref.sum_loss,
    )
