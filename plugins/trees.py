"""Tree reductions: log_multi, recall_tree, memory_tree, plt.

VW's merge resets all of them to a fresh tree while averaging the weights the trained trees
route to (the merged model then routes every example through an untrained tree). vwmerge:

* ``log_multi`` grows its tree online, so two models have the same tree only when their data
  made the same splits. Trees merge only when the topology matches (node count, parents,
  internal/leaf, children, the weight slot ``base_predictor`` of each internal node); otherwise
  :class:`vwmerge.IncompatibleModelsError` names the files and the first difference. Matching
  trees: per node the counts ``n``, ``Eh`` and per label ``Ehk``, ``nk``, ``label_count`` are
  summed over the union of labels (kept sorted by label, as VW keeps them); the means
  ``norm_Eh = Eh/n``, ``norm_Ehk = Ehk/nk`` are recomputed; a leaf's ``min_count`` (examples that
  ended there) is summed and an internal node's is recomputed as the minimum of its children's;
  a leaf's ``max_count``/``max_count_label`` come from the summed label counts.
* ``recall_tree``'s topology is fixed by its options, but it is still checked. Per node ``n`` and
  the per-label counts are summed (union of labels, sorted by descending count as VW keeps them),
  and ``entropy`` and ``recall_lbest`` are recomputed from the summed counts (``--bern_hyper``,
  not stored, from the options; VW's default 1).
* ``memory_tree`` stores training examples and a routing tree grown from them. Two memories
  cannot be combined into one consistent tree, so the merge keeps the first model's (or the
  base model's) memory with a warning that says so. It is still parsed byte for byte (the
  section records ``--oas`` and ``--max_number_of_labels``, which VW itself needs on the command
  line to reload the model).
* ``plt`` stores one time counter per tree node (initialized to ``--initial_t``, +1 per update of
  the node): ``initial_t + Σ(tᵢ − initial_t)`` (with a base: ``base + Σ(tᵢ − base)``). VW refuses
  to even load a plt model without ``--loss_function logistic`` (not stored); vwmerge does not
  need it.

With a base model the counts are ``base + Σ(cᵢ − base)`` per node and label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import structlog
from vwmerge.plugin import (
    IncompatibleModelsError,
    MergeContext,
    ModelFormatError,
    ModelWeights,
    Options,
    Reader,
    ReductionSpec,
    SectionIO,
    StackEntry,
    Writer,
    hookimpl,
    rank_of,
)

log = structlog.get_logger("vwmerge")
U32 = 1 << 32


# --------------------------------------------------------------------------------------------
# log_multi
@attrs.frozen
class LmPred:
    Ehk: float
    norm_Ehk: float
    nk: int
    label: int
    label_count: int


@attrs.frozen
class LmNode:
    parent: int
    min_count: int
    internal: int  #: the raw bool byte
    base_predictor: int = 0
    left: int = 0
    right: int = 0
    norm_Eh: float = 0.0
    Eh: float = 0.0
    n: int = 0
    max_count: int = 0
    max_count_label: int = 0
    preds: tuple[LmPred, ...] = ()


@attrs.frozen
class LogMultiState:
    k_low: int  #: VW writes the low 4 bytes of max_predictors here (labelled "k")
    max_predictors: int
    predictors_used: int
    progress: int
    swap_resist: int
    nodes: tuple[LmNode, ...]


def read_log_multi(r: Reader) -> LogMultiState:
    k_low = r.u32("log_multi k")
    count = r.count("log_multi nodes", 14)
    max_pred, used = r.u64("max_predictors"), r.u64("predictors_used")
    progress, swap = r.u8("progress"), r.u32("swap_resist")
    nodes = []
    for _ in range(count):
        parent, npreds, min_count, internal = r.u32("parent"), r.u32("pred count"), r.u32("min_count"), r.u8("internal")
        if internal:
            bp, left, right = r.u32("base_predictor"), r.u32("left"), r.u32("right")
            norm_eh, eh, n = r.f32("norm_Eh"), r.f64("Eh"), r.u32("n")
            fields: dict[str, Any] = {"base_predictor": bp, "left": left, "right": right, "norm_Eh": norm_eh}
            fields |= {"Eh": eh, "n": n}
        else:
            fields = {"max_count": r.u32("max_count"), "max_count_label": r.u32("max_count_label")}
        r.need(npreds * 24, "log_multi node labels")
        preds = tuple(
            LmPred(r.f64("Ehk"), r.f32("norm_Ehk"), r.u32("nk"), r.u32("label"), r.u32("label_count"))
            for _ in range(npreds)
        )
        nodes.append(LmNode(parent, min_count, internal, preds=preds, **fields))
    for i, nd in enumerate(nodes):
        if nd.internal and not (nd.left < count and nd.right < count and nd.parent < count):
            raise r.fail(f"corrupt log_multi tree: node {i} points outside the {count} nodes")
    if nodes:
        _check_acyclic(r, nodes)
    return LogMultiState(k_low, max_pred, used, progress, swap, tuple(nodes))


def _check_acyclic(r: Reader, nodes: Sequence[LmNode]) -> None:
    """Walk the tree from the root without recursion: a node reached twice means the file's
    links form a cycle (or join two branches), which no tree VW grows has."""
    seen = bytearray(len(nodes))
    todo = [0]
    while todo:
        i = todo.pop()
        if seen[i]:
            raise r.fail(f"corrupt log_multi tree: node {i} is reached twice from the root (the links form a cycle)")
        seen[i] = 1
        nd = nodes[i]
        if nd.internal:
            todo += (nd.left, nd.right)


def write_log_multi(w: Writer, s: LogMultiState) -> None:
    w.u32(s.k_low)
    w.u32(len(s.nodes))
    w.u64(s.max_predictors)
    w.u64(s.predictors_used)
    w.u8(s.progress)
    w.u32(s.swap_resist)
    for nd in s.nodes:
        w.u32(nd.parent)
        w.u32(len(nd.preds))
        w.u32(nd.min_count)
        w.u8(nd.internal)
        if nd.internal:
            w.u32(nd.base_predictor)
            w.u32(nd.left)
            w.u32(nd.right)
            w.f32(nd.norm_Eh)
            w.f64(nd.Eh)
            w.u32(nd.n)
        else:
            w.u32(nd.max_count)
            w.u32(nd.max_count_label)
        for p in nd.preds:
            w.f64(p.Ehk)
            w.f32(p.norm_Ehk)
            w.u32(p.nk)
            w.u32(p.label)
            w.u32(p.label_count)


def _lm_shape(nd: LmNode) -> tuple[int, ...]:
    return (nd.parent, bool(nd.internal), nd.base_predictor, nd.left, nd.right) if nd.internal else (nd.parent, False)


def _check_topology(
    reduction: StackEntry,
    trees: Sequence[Any],
    names: Sequence[str],
    header: Callable[[Any], tuple[Any, ...]],
    header_names: str,
    shape: Callable[[Any], tuple[Any, ...]],
    shape_names: str,
) -> None:
    """Refuse to merge trees whose structure differs, naming both files and the first difference."""
    first = trees[0]
    for tree, name in zip(trees[1:], names[1:], strict=True):
        if header(tree) != header(first):
            raise IncompatibleModelsError(
                f"{reduction.name} trees differ ({header_names}: {header(tree)} here, {header(first)} in "
                f"{names[0]}); trees merge only when their topology matches",
                source=name,
            )
        for i, (a, b) in enumerate(zip(first.nodes, tree.nodes, strict=True)):
            if shape(a) != shape(b):
                raise IncompatibleModelsError(
                    f"{reduction.name} trees differ at node {i} ({shape_names}: {shape(b)} here, {shape(a)} in "
                    f"{names[0]}); trees merge only when their topology matches",
                    source=name,
                )


def _combine(values: Sequence[float], base: float | None) -> float:
    """Σ vᵢ, or base + Σ(vᵢ − base)."""
    return sum(values) if base is None else base + sum(v - base for v in values)


def _f32_div(num: float, den: int) -> float:
    """VW's ``static_cast<float>(double) / uint32``, in float32."""
    return float(np.float32(num) / np.float32(den)) if den else 0.0


def _merge_lm_preds(group: Sequence[LmNode], bnode: LmNode | None) -> tuple[LmPred, ...]:
    """Per-label sums over the union of labels (sorted by label, as VW keeps them)."""
    nodes = [*group, *([bnode] if bnode is not None else [])]
    labels = sorted({p.label for nd in nodes for p in nd.preds})
    by_label = [{p.label: p for p in nd.preds} for nd in group]
    base_by_label = {p.label: p for p in bnode.preds} if bnode is not None else None
    out = []
    for label in labels:

        def total(attr: str, label: int = label) -> float:
            vals = [getattr(d[label], attr) if label in d else 0 for d in by_label]
            if base_by_label is None:
                return _combine(vals, None)
            return _combine(vals, getattr(base_by_label[label], attr) if label in base_by_label else 0)

        ehk, nk, cnt = total("Ehk"), int(total("nk")) % U32, int(total("label_count")) % U32
        out.append(LmPred(ehk, _f32_div(ehk, nk), nk, label, cnt))
    return tuple(out)


def merge_log_multi(
    reduction: StackEntry, states: Sequence[LogMultiState], base: LogMultiState | None, names: Sequence[str]
) -> LogMultiState:
    trees = [*states, base] if base is not None else list(states)
    _check_topology(
        reduction, trees, [*names, "the base model"][: len(trees)],
        lambda t: (len(t.nodes), t.max_predictors, t.predictors_used), "nodes, max_predictors, predictors_used",
        _lm_shape, "parent, internal, base_predictor, left, right",
    )  # fmt: skip
    first = states[0]
    nodes: list[LmNode] = []
    for i, nd0 in enumerate(first.nodes):
        group = [s.nodes[i] for s in states]
        bnode = base.nodes[i] if base is not None else None
        preds = _merge_lm_preds(group, bnode)
        if nd0.internal:
            eh = _combine([nd.Eh for nd in group], bnode.Eh if bnode else None)
            n = int(_combine([nd.n for nd in group], bnode.n if bnode else None)) % U32
            node = attrs.evolve(nd0, Eh=eh, n=n, norm_Eh=_f32_div(eh, n) if n else nd0.norm_Eh, preds=tuple(preds))
        else:
            mc = int(_combine([nd.min_count for nd in group], bnode.min_count if bnode else None)) % U32
            top = max((p.label_count for p in preds), default=0)
            tied = [p.label for p in preds if p.label_count == top]
            label = nd0.max_count_label if (not preds or nd0.max_count_label in tied) else tied[0]
            node = attrs.evolve(nd0, min_count=mc, max_count=top, max_count_label=label, preds=tuple(preds))
        nodes.append(node)

    # An internal node's min_count is the smaller of its children's (VW's invariant): children
    # first, without recursion (read_log_multi made sure the links form a tree).
    order, todo = [], [0] if nodes else []
    while todo:
        i = todo.pop()
        order.append(i)
        if nodes[i].internal:
            todo += (nodes[i].left, nodes[i].right)
    for i in reversed(order):
        nd = nodes[i]
        if nd.internal:
            nodes[i] = attrs.evolve(nd, min_count=min(nodes[nd.left].min_count, nodes[nd.right].min_count))
    return attrs.evolve(first, nodes=tuple(nodes))


# --------------------------------------------------------------------------------------------
# recall_tree
@attrs.frozen
class RtNode:
    parent: int
    recall_lbest: float
    internal: int
    depth: int
    base_router: int
    left: int
    right: int
    n: float
    entropy: float
    passes: float
    preds: tuple[tuple[int, float], ...]  #: (label, label_count), descending count


@attrs.frozen
class RecallTreeState:
    k: int
    node_only: int
    max_candidates: int
    max_depth: int
    nodes: tuple[RtNode, ...]


def read_recall_tree(r: Reader) -> RecallTreeState:
    k, node_only = r.u32("recall_tree k"), r.u8("node_only")
    count = r.count("recall_tree nodes", 57, kind="u64")
    maxc, maxd = r.u64("max_candidates"), r.u64("max_depth")
    nodes = []
    for _ in range(count):
        head = (r.u32("parent"), r.f32("recall_lbest"), r.u8("internal"), r.u32("depth"), r.u32("base_router"))
        links = (r.u32("left"), r.u32("right"), r.f64("n"), r.f64("entropy"), r.f64("passes"))
        npreds = r.count("recall_tree labels", 12, kind="u64")
        preds = tuple((r.u32("label"), r.f64("label_count")) for _ in range(npreds))
        nodes.append(RtNode(*head, *links, preds))
    return RecallTreeState(k, node_only, maxc, maxd, tuple(nodes))


def write_recall_tree(w: Writer, s: RecallTreeState) -> None:
    w.u32(s.k)
    w.u8(s.node_only)
    w.u64(len(s.nodes))
    w.u64(s.max_candidates)
    w.u64(s.max_depth)
    for nd in s.nodes:
        w.u32(nd.parent)
        w.f32(nd.recall_lbest)
        w.u8(nd.internal)
        w.u32(nd.depth)
        w.u32(nd.base_router)
        w.u32(nd.left)
        w.u32(nd.right)
        w.f64(nd.n)
        w.f64(nd.entropy)
        w.f64(nd.passes)
        w.u64(len(nd.preds))
        for label, count in nd.preds:
            w.u32(label)
            w.f64(count)


def recall_lbest(n: float, preds: Sequence[tuple[int, float]], max_candidates: int, bern_hyper: float) -> float:
    """VW's ``compute_recall_lbest`` (float32 arithmetic)."""
    mass = sum(c for _, c in preds[:max_candidates])
    f32 = np.float32
    nf = f32(n)
    f = f32(mass) / nf
    stdf = np.sqrt(f * (f32(1) - f) / nf)
    diamf = f32(15) / (np.sqrt(f32(18)) * nf)
    bh = f32(bern_hyper)
    return float(max(f32(0), f - np.sqrt(bh) * stdf - bh * diamf))


def entropy(n: float, preds: Sequence[tuple[int, float]]) -> float:
    """−Σ (c/n)·log(c/n): what VW's incremental update tracks."""
    if not (n > 0 and math.isfinite(n)):
        return 0.0
    shares = (c / n for _, c in preds if c > 0)
    return -sum(p * math.log(p) for p in shares if 0 < p < math.inf)  # an underflowed share adds 0


def merge_recall_tree(
    reduction: StackEntry,
    states: Sequence[RecallTreeState],
    base: RecallTreeState | None,
    names: Sequence[str],
    options: Options,
) -> RecallTreeState:
    trees = [*states, base] if base is not None else list(states)
    _check_topology(
        reduction, trees, [*names, "the base model"][: len(trees)],
        lambda t: (t.k, t.node_only, len(t.nodes), t.max_candidates, t.max_depth),
        "k, node_only, nodes, max_candidates, max_depth",
        lambda nd: (nd.parent, nd.internal, nd.depth, nd.base_router, nd.left, nd.right),
        "parent, internal, depth, base_router, left, right",
    )  # fmt: skip
    bern = options.get_float("bern_hyper", 1.0)
    first = states[0]
    nodes = []
    for i, nd0 in enumerate(first.nodes):
        group = [s.nodes[i] for s in states]
        bnode = base.nodes[i] if base is not None else None
        order: dict[int, float] = {}
        for nd in group:
            for label, _ in nd.preds:
                order.setdefault(label, 0.0)
        if bnode is not None:
            for label, _ in bnode.preds:
                order.setdefault(label, 0.0)
        counts = {
            label: _combine(
                [dict(nd.preds).get(label, 0.0) for nd in group],
                dict(bnode.preds).get(label, 0.0) if bnode is not None else None,
            )
            for label in order
        }
        # VW keeps labels sorted by descending count; ties keep first-seen order (a stable sort).
        preds = tuple(sorted(((lb, c) for lb, c in counts.items() if c > 0), key=lambda p: -p[1]))
        n = _combine([nd.n for nd in group], bnode.n if bnode is not None else None)
        lbest = recall_lbest(n, preds, first.max_candidates, bern) if n > 0 else nd0.recall_lbest
        nodes.append(attrs.evolve(nd0, n=n, entropy=entropy(n, preds), recall_lbest=lbest, preds=preds))
    return attrs.evolve(first, nodes=tuple(nodes))


# --------------------------------------------------------------------------------------------
# memory_tree: parsed for its extent and a summary; kept verbatim.
@attrs.frozen
class MemoryTreeState:
    raw: bytes
    stride_shift: int
    max_nodes: int
    learn_at_leaf: bool
    oas: bool
    nodes: int
    max_num_labels: int
    examples: int


_MT_NODE = np.dtype(
    [("parent", "<u8"), ("internal", "<i4"), ("depth", "<u4"), ("base_router", "<u8"), ("left", "<u8"),
     ("right", "<u8"), ("nl", "<f8"), ("nr", "<f8")]
)  # fmt: skip


def read_memory_tree(r: Reader) -> MemoryTreeState:
    start = r.pos
    ss, max_nodes = r.u32("stride_shift"), r.u64("max_nodes")
    learn_at_leaf, oas = r.boolean("learn_at_leaf"), r.boolean("oas")
    count = r.count("memory_tree nodes", _MT_NODE.itemsize + 4)
    max_labels = r.u64("max_number_of_labels")
    for _ in range(count):
        r.array(_MT_NODE, 1, "memory_tree node")
        n = r.count("memory_tree leaf examples", 4)
        r.bytes(4 * n, "memory_tree leaf example indices")
    examples = r.count("memory_tree examples", 40)
    for _ in range(examples):
        r.bytes(8 + 4 + 4 + 4 + 8, "memory_tree example header")
        if oas:
            r.bytes(4 * r.count("memory_tree example labels", 4), "memory_tree example labels")
        else:
            r.bytes(8, "memory_tree example label")
        r.bytes(r.count("memory_tree example tag", 1), "memory_tree example tag")
        ns = r.count("memory_tree example namespaces", 1)
        r.bytes(ns, "memory_tree example namespaces")
        for _ in range(ns):
            f = r.count("memory_tree example features", 12)
            r.bytes(12 * f, "memory_tree example features")
    raw = bytes(r.buf[start : r.pos])
    return MemoryTreeState(raw, ss, max_nodes, learn_at_leaf, oas, count, max_labels, examples)


def memory_tree_reload_options(s: MemoryTreeState) -> str:
    return f"--oas --max_number_of_labels {s.max_num_labels}" if s.oas else ""


# --------------------------------------------------------------------------------------------
# plt
@attrs.frozen(eq=False)
class PltState:
    nodes_time: np.ndarray  #: float32, one per tree node


def plt_nodes(options: Options) -> int:
    """VW's node count of a k-label tree of arity ``--kary_tree`` (default 2)."""
    k, kary = options.get_int("plt", 0), options.get_int("kary_tree", 2)
    if k <= 0 or kary < 2:
        return 0
    a = kary ** math.floor(math.log(k) / math.log(kary))
    b = k - a
    c = math.ceil(b / (kary - 1.0))
    d = (kary * a - 1.0) / (kary - 1.0)
    e = k - (a - c)
    return int(e + d)


# --------------------------------------------------------------------------------------------
def _widths(name: str) -> Callable[[Options], int]:
    def width(o: Options) -> int:
        if name == "log_multi":
            return max(1, o.get_int("log_multi", 2) - 1)
        if name == "recall_tree":
            k = o.get_int("recall_tree", 2)
            # VW shifts 1 by the depth to count the routers: beyond 63 it means nothing.
            depth = o.get_int("max_depth", math.ceil(math.log2(k)) if k > 1 else 0, high=63)
            return (int(2**depth) - 1) + k
        if name == "memory_tree":
            n = o.get_int("memory_tree", 0) + 1
            return n + (o.get_int("max_number_of_labels", 10) if "oas" in o else 0)
        return max(1, plt_nodes(o))

    return width


@hookimpl
def vwmerge_reductions() -> list[ReductionSpec]:
    def spec(name: str, options: tuple[str, ...], desc: str) -> ReductionSpec:
        return ReductionSpec(
            name=name, rank=rank_of(name), triggers=(name,), options=options, section=True,
            width=_widths(name), description=desc,
        )  # fmt: skip

    return [
        spec("log_multi", ("no_progress", "swap_resistance"), "online multiclass tree (merged if topology matches)"),
        spec("recall_tree", ("max_candidates", "bern_hyper", "max_depth", "node_only", "randomized_routing"),
             "recall tree (fixed topology; label counts summed)"),
        spec("memory_tree", ("max_number_of_labels", "leaf_example_multiplier", "alpha", "dream_repeats", "top_K",
                             "learn_at_leaf", "oas", "dream_at_update", "online"),
             "memory tree (stores examples; not mergeable, one input kept)"),
        spec("plt", ("kary_tree", "threshold", "top_k", "probabilities", "plt_force_load_legacy_model"),
             "probabilistic label tree (per-node time counters)"),
    ]  # fmt: skip


@hookimpl
def vwmerge_save_load(reduction: StackEntry, io: SectionIO, state: Any) -> Any:
    name = reduction.name
    if not io.reading:
        if name == "log_multi":
            write_log_multi(io.w, state)
        elif name == "recall_tree":
            write_recall_tree(io.w, state)
        elif name == "memory_tree":
            io.w.bytes(state.raw)
        else:
            io.w.u32(len(state.nodes_time))
            io.w.array(state.nodes_time, "<f4")
        return None
    r, model = io.r, io.model
    if name == "log_multi":
        return read_log_multi(r)
    if name == "recall_tree":
        return read_recall_tree(r)
    if name == "memory_tree":
        if model.version < (9, 10, 0):
            raise ModelFormatError(
                "memory_tree sections of files older than 9.10.0 use another layout "
                f"(this is {model.header.version_text})",
                source=model.source,
            )
        st = read_memory_tree(r)
        if "oas" in model.options and not st.oas:
            raise ModelFormatError(
                "--oas was given but this memory_tree model was not trained with it (its section says oas=0); "
                "drop --oas from the VW options",
                source=model.source,
            )
        width_options_missing = "oas" not in model.options or (
            model.options.get_int("max_number_of_labels", 10) != st.max_num_labels
        )
        if st.oas and width_options_missing and "per_model_save_load" in model.options:
            raise ModelFormatError(
                "this memory_tree model was trained with --oas, which VW does not record in the options but which "
                "changes the per-model state count under --per_model_save_load; pass "
                f'--vw-options "{memory_tree_reload_options(st)}"',
                source=model.source,
            )
        return st
    if model.version < (9, 7, 0):
        raise ModelFormatError(
            f"plt sections of files older than 9.7.0 use another (buggy) layout (this is {model.header.version_text}); "
            "load it in VW with --plt_force_load_legacy_model and save it again",
            source=model.source,
        )
    t = r.count("plt nodes", 4)
    expect = plt_nodes(model.options)
    if expect and t != expect:
        raise r.fail(f"corrupt plt section: {t} node counters, but --plt/--kary_tree imply {expect}")
    return PltState(r.array("<f4", t, "plt node counters"))


@hookimpl
def vwmerge_merge(
    reduction: StackEntry,
    states: Sequence[Any],
    weights: ModelWeights,
    base: Any,
    context: MergeContext,
) -> Any:
    name = reduction.name
    if name == "log_multi":
        return merge_log_multi(reduction, states, base, context.sources)
    if name == "recall_tree":
        return merge_recall_tree(reduction, states, base, context.sources, context.models[0].options)
    if name == "memory_tree":
        kept = base if base is not None else states[0]
        context.warn(
            reduction,
            "memory_tree stores training examples in a tree grown from them; memories cannot be merged, "
            "so the merged model keeps one input's memory tree (the others' memories are dropped; the "
            "weights are still merged)",
            kept_from="the base model" if base is not None else context.sources[0],
            vw_reload_options=memory_tree_reload_options(kept) or None,
        )
        return kept
    times = [s.nodes_time.astype(np.float64) for s in states]
    if len({len(t) for t in times} | ({len(base.nodes_time)} if base is not None else set())) > 1:
        raise IncompatibleModelsError("plt trees have different node counts")
    initial_t = context.models[0].options.get_float("initial_t", 0.0)
    ref = base.nodes_time.astype(np.float64) if base is not None else initial_t
    out = ref + sum(t - ref for t in times)
    log.info("VW loads plt models only with --loss_function logistic (not stored in the file)", reduction=name)
    return PltState(np.asarray(out, np.float32))


@hookimpl
def vwmerge_describe(reduction: StackEntry, state: Any) -> dict[str, Any]:
    if isinstance(state, LogMultiState):
        leaves = [n for n in state.nodes if not n.internal]
        return {
            "nodes": len(state.nodes), "leaves": len(leaves), "predictors_used": state.predictors_used,
            "max_predictors": state.max_predictors, "examples": sum(n.min_count for n in leaves),
        }  # fmt: skip
    if isinstance(state, RecallTreeState):
        return {"nodes": len(state.nodes), "k": state.k, "root_n": state.nodes[0].n if state.nodes else 0.0}
    if isinstance(state, MemoryTreeState):
        out: dict[str, Any] = {
            "nodes": state.nodes, "examples": state.examples, "oas": state.oas,
            "max_number_of_labels": state.max_num_labels, "bytes": len(state.raw),
        }  # fmt: skip
        if state.oas:
            out["vw_reload_options"] = memory_tree_reload_options(state)
        return out
    return {"nodes": len(state.nodes_time), "nodes_time": state.nodes_time.tolist(),
            "vw_reload_options": "--loss_function logistic"}  # fmt: skip
