"""``vwmerge.testing``: a pytest plugin for vwmerge plugin authors.

Opt in with ``pytest_plugins = ["vwmerge.testing"]`` in your top-level ``conftest.py`` or with
``pytest -p vwmerge.testing``. It gives:

* :class:`Kit` (fixture ``vwmerge_kit``): builds real model files holding your reduction's section
  from options and a state (:meth:`Kit.make_model`, no VW needed), and asserts what every plugin
  must hold: a byte-identical round trip, ``merge(m, …, m) == m``, input order does not matter,
  one-hot weights give that model back, and ``add(base, subtract(m, base)) == m``;
* :func:`run_cli`: the real ``vwmerge`` command line in a subprocess (fixture ``vwmerge_cli``);
* fixture ``vwmerge_registry``: a :class:`~vwmerge.Registry` with plugins registered ad hoc, for
  a plugin that is not installed through an entry point (yet).

States are compared through the bytes your own ``vwmerge_save_load`` writes for them (your state
class need not define ``==``), unless you pass ``equal=``. Every assertion raises
:class:`AssertionError` naming the property, the reduction and both states. docs/plugins.md shows
a complete plugin tested with this module.

vwmerge itself never imports this module: pytest is not a dependency of vwmerge.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from .contract.registry import Registry, default_registry, make_plugin_manager
from .contract.sectionio import SectionIO
from .contract.stack import ModelInfo, StackEntry
from .engine.merging import merge, prepare_merge
from .format.binio import Writer
from .format.header import Header, lp_string
from .format.options import Options
from .format.weights import WeightTable
from .model.workspace import Workspace, load

__all__ = [
    "CliResult",
    "Kit",
    "ModelLike",
    "assert_roundtrip",
    "make_model",
    "plugin_registry",
    "run_cli",
]

#: What the assertions accept: model bytes, a path, or a loaded workspace.
ModelLike = bytes | bytearray | str | os.PathLike[str] | Workspace
#: Compares two states of one reduction: True when they are equal.
Equal = Callable[[Any, Any], bool]

#: The version string :meth:`Kit.make_model` writes by default (the VW release vwmerge is tested on).
VW_VERSION = "9.11.9"
#: Default rows of the gd bottom :meth:`Kit.make_model` writes: row -> weight.
DEFAULT_WEIGHTS: Mapping[int, float] = {1: 0.5, 5: -0.25, 9: 2.0}


# --------------------------------------------------------------------------------------------
# The command line
@attrs.frozen
class CliResult:
    """One run of ``python -m vwmerge``: its arguments, exit code and output."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> CliResult:
        """This result, or an AssertionError showing the command and its stderr if it failed."""
        __tracebackhide__ = True
        if self.returncode != 0:
            raise AssertionError(
                f"vwmerge {' '.join(self.args)} exited {self.returncode}\n--- stderr ---\n{self.stderr}"
            )
        return self


def run_cli(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300,
) -> CliResult:
    """Run the real ``vwmerge`` (``sys.executable -m vwmerge ARGS``) in a subprocess.

    It sees the plugins installed in this environment (through the ``vwmerge`` entry points),
    not those registered ad hoc in this process. ``env`` replaces the environment when given.
    Output is text; stderr is a pipe, so log events there are JSON lines.
    """
    argv = tuple(os.fspath(a) for a in args)
    proc = subprocess.run(
        [sys.executable, "-m", "vwmerge", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return CliResult(argv, proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------------------------
# Registries with plugins registered ad hoc
@contextlib.contextmanager
def plugin_registry(*plugins: object, autoload: bool = True) -> Iterator[Registry]:
    """A fresh registry with ``plugins`` (modules or objects with ``@hookimpl`` functions)
    registered, on top of the installed ones (``autoload``, which brings the built-in base
    learners); they are unregistered when the block ends, whatever happens in it.

    A plugin already loaded through its entry point is used as loaded. A plugin registered here
    has no distribution, so it overrides a built-in plugin for the same reduction.
    """
    pm = make_plugin_manager(autoload=autoload)
    added: list[str] = []
    try:
        for plugin in plugins:
            if pm.is_registered(plugin):
                continue
            name = str(getattr(plugin, "__name__", None) or f"adhoc-{id(plugin):x}")
            pm.register(plugin, name=name)
            added.append(name)
        pm.check_pending()
        yield Registry(pm)
    finally:
        for name in added:
            pm.unregister(name=name)


# --------------------------------------------------------------------------------------------
def _online_state(w: Writer, n: int, examples: float, min_label: float, max_label: float, l1l2: bool) -> None:
    """gd's saved online state (docs/format.md, "shared data"): ``examples`` labeled examples."""
    w.f32(0.0)  # initial_t
    for _ in range(n):
        w.f64(examples)  # normalized_sum_norm_x
    for value in (examples, 0.0, 0.0):  # t, sum_loss, sum_loss_since_last_dump
        w.f64(value)
    for value in (1.0, min_label, max_label):  # dump_interval, labels
        w.f32(value)
    for value in (examples, 0.0, 0.0):  # weighted labeled examples, labels, unlabeled examples
        w.f64(value)
    w.u64(int(examples))  # example_number
    w.u64(0)  # total_features
    for _ in range(n):
        w.f64(examples)  # total_weight
    w.f64(0.0)  # old_weighted_labeled_examples
    w.u64(0)  # current_pass
    if l1l2:
        w.f64(0.0)  # l1_state: no pending truncation
        w.f64(1.0)  # l2_state


def _table(weights: Mapping[int, float | Sequence[float]], bits: int, columns: tuple[str, ...]) -> WeightTable:
    """Rows in ascending order; a scalar sets column ``w`` and 1.0 in every other column."""
    index = np.array(sorted(weights), dtype=np.uint64)
    values = np.ones((len(index), len(columns)), np.float32)
    for i, row in enumerate(sorted(weights)):
        given = weights[row]
        if isinstance(given, (int, float)):
            values[i, 0] = given
        else:
            if len(given) != len(columns):
                raise ValueError(f"row {row}: {len(given)} values given, the rows have columns {columns}")
            values[i] = given
    if len(index) and int(index[-1]) >= 1 << bits:
        raise ValueError(f"row {int(index[-1])} is not below 2^{bits}")
    return WeightTable(index, values, bits, columns)


@attrs.frozen
class Kit:
    """Builds models and asserts plugin properties through one :class:`~vwmerge.Registry`."""

    registry: Registry = attrs.field(factory=default_registry)

    # -- models ---------------------------------------------------------------------------------
    def make_model(
        self,
        options: str = "",
        states: Mapping[str, Any] | None = None,
        *,
        bits: int = 18,
        weights: Mapping[int, float | Sequence[float]] | None = None,
        examples: float = 1.0,
        save_resume: bool = True,
        version: str = VW_VERSION,
        min_label: float = 0.0,
        max_label: float = 1.0,
    ) -> bytes:
        """The bytes of a model file whose header holds ``options`` and whose sections hold
        ``states`` (reduction name -> the state your ``vwmerge_save_load`` writes, or the raw
        section bytes), written by vwmerge's own writer and read back by vwmerge.

        ``options`` are the options string as VW stores it (``--my_reduction 3``); the stack is
        derived from them by the registry, as for any model. The base learner is gd, unless a
        state for another one is given: its rows are ``weights`` (row -> w, or row -> one value
        per saved column); with ``save_resume`` it records ``examples`` labeled examples, which
        set the default merge weights. Every other reduction with a section needs a state.
        """
        states = dict(states or {})
        opts = Options.parse(options)
        header = Header(
            lp_string(version), lp_string(""), min_label, max_label, bits, 0, (), (), lp_string(opts.to_text())
        )
        stack = self.registry.derive_stack(opts, "<make_model>")
        unknown = sorted(set(states) - {e.name for e in stack})
        if unknown:
            raise ValueError(
                f"states given for {unknown}, which the options {options!r} do not enable; "
                f"the stack is {' > '.join(e.name for e in stack)}"
            )
        w = Writer()
        header.write(w)
        io = SectionIO(ModelInfo(header, opts, stack, "<make_model>"), writer=w, registry=self.registry)
        gd_rows = False
        for entry in stack:
            if not entry.section:
                continue
            state = states.get(entry.name)
            if isinstance(state, (bytes, bytearray)):
                w.bytes(bytes(state))
            elif state is not None:
                self.registry.call("vwmerge_save_load", entry, io=io, state=state)
            elif entry.bottom and entry.name == "gd":
                w.boolean(save_resume)
                if save_resume:
                    n = entry.above if "per_model_save_load" in opts else 1
                    _online_state(w, n, examples, min_label, max_label, header.version >= (9, 0, 0))
                gd_rows = True
            else:
                raise ValueError(
                    f"reduction '{entry.name}' (enabled by the options) writes a section: "
                    f"give its state, or its section's bytes, in states={{'{entry.name}': ...}}"
                )
        if weights is not None and not gd_rows:
            raise ValueError(
                "weights= sets the rows of a gd base learner; this model's base learner comes from states="
            )
        ws = load(w.getvalue(), registry=self.registry, name="<make_model>")
        if gd_rows:  # gd read the empty table and knows the columns its rows carry
            bottom = ws.states[-1]
            table = _table(DEFAULT_WEIGHTS if weights is None else weights, bits, bottom.table.columns)
            ws = attrs.evolve(ws, states=(*ws.states[:-1], attrs.evolve(bottom, table=table)))
        return ws.to_bytes()

    def load(self, model: ModelLike) -> Workspace:
        """A workspace of ``model``, loaded through this kit's registry."""
        if isinstance(model, Workspace):
            return model
        if isinstance(model, (bytes, bytearray)):
            return load(bytes(model), registry=self.registry)
        return load(Path(model), registry=self.registry, name=os.fspath(model))

    def section(self, model: ModelLike, reduction: str) -> bytes:
        """The bytes the owning plugin writes for ``reduction``'s state in ``model``."""
        ws = self.load(model)
        return self._section_of(ws, ws.entry(reduction), ws.state(reduction))

    def _section_of(self, ws: Workspace, entry: StackEntry, state: Any) -> bytes:
        w = Writer()
        self.registry.call(
            "vwmerge_save_load", entry, io=SectionIO(ws.info, writer=w, registry=self.registry), state=state
        )
        return w.getvalue()

    # -- assertions -----------------------------------------------------------------------------
    def assert_roundtrip(self, model: ModelLike) -> Workspace:
        """Reading ``model`` and writing it again gives back its bytes, exactly. Returns it loaded."""
        __tracebackhide__ = True
        data = Path(model).read_bytes() if isinstance(model, (str, os.PathLike)) else None
        if isinstance(model, (bytes, bytearray)):
            data = bytes(model)
        ws = self.load(model)
        if data is None:  # a workspace: its bytes must survive a write and a read
            data = ws.to_bytes()
            ws = self.load(data)
        out = ws.to_bytes()
        if out != data:
            n = min(len(out), len(data))
            diff = np.flatnonzero(np.frombuffer(out, np.uint8, n) != np.frombuffer(data, np.uint8, n))
            at = int(diff[0]) if len(diff) else n
            owner = self._owner_at(ws, at)
            raise AssertionError(
                f"round trip changed the file: {len(data)} bytes read, {len(out)} written, first "
                f"difference at offset {at} ({owner}): read {data[at : at + 16].hex()}, "
                f"wrote {out[at : at + 16].hex()}"
            )
        return ws

    def _owner_at(self, ws: Workspace, offset: int) -> str:
        """Which part of the written file holds byte ``offset``."""
        pos = len(ws.header.to_bytes())
        if offset < pos:
            return "the header"
        for entry, state in zip(ws.stack, ws.states, strict=True):
            if entry.section:
                pos += len(self._section_of(ws, entry, state))
                if offset < pos:
                    return f"section of '{entry.name}', plugin '{entry.plugin}'"
        return "past the last section"

    def _check(self, what: str, reduction: str, got_ws: Workspace, got: Any, want: Any, equal: Equal | None) -> None:
        __tracebackhide__ = True
        entry = got_ws.entry(reduction)
        if equal is not None:
            if not equal(got, want):
                raise AssertionError(
                    f"{what}: reduction '{reduction}' (plugin '{entry.plugin}')\n  got  {got!r}\n  want {want!r}"
                )
            return
        g, w = self._section_of(got_ws, entry, got), self._section_of(got_ws, entry, want)
        if g != w:
            raise AssertionError(
                f"{what}: reduction '{reduction}' (plugin '{entry.plugin}') writes different bytes\n"
                f"  got  {got!r}\n       {g.hex()}\n  want {want!r}\n       {w.hex()}"
            )

    def _require_merge(self, ws: Workspace, reduction: str) -> None:
        __tracebackhide__ = True
        entry = ws.entry(reduction)
        if not entry.section:
            raise AssertionError(f"reduction '{reduction}' has no section: there is no state to merge")
        if not self.registry.implements("vwmerge_merge", entry) and not entry.bottom:
            raise AssertionError(
                f"reduction '{reduction}' (plugin '{entry.plugin}') implements no vwmerge_merge: "
                "vwmerge keeps the first model's state"
            )

    def assert_k_copies(
        self,
        model: ModelLike,
        reduction: str,
        *,
        ks: Sequence[int] = (2, 3),
        expected: Callable[[Any, int], Any] | None = None,
        equal: Equal | None = None,
    ) -> None:
        """``merge([m] * k)`` gives ``m``'s state of ``reduction`` back (a merge never changes
        what a model means), for each k in ``ks``, by default and with explicit weights.

        ``expected(state, k)`` says what k copies should give instead, for state that counts
        (a learn counter summed on merge is k times the original's).
        """
        __tracebackhide__ = True
        m = self.load(model)
        self._require_merge(m, reduction)
        state = m.state(reduction)
        for k in ks:
            want = expected(state, k) if expected is not None else state
            for weights in (None, [float(i + 1) for i in range(k)]):
                merged = merge([m] * k, weights=weights, registry=self.registry)
                how = "VW's weighting" if weights is None else f"weights {weights}"
                self._check(
                    f"merging {k} copies of one model ({how})", reduction, merged, merged.state(reduction), want, equal
                )

    def assert_permutation_invariant(
        self, models: Sequence[ModelLike], reduction: str, *, equal: Equal | None = None
    ) -> None:
        """Merging the same models in any order (each with its weight) gives the same state of
        ``reduction``; every permutation of up to 4 models, else rotations and the reversal."""
        __tracebackhide__ = True
        ws = [self.load(m) for m in models]
        if len(ws) < 2:
            raise ValueError("permutation invariance needs at least two models")
        self._require_merge(ws[0], reduction)
        n = len(ws)
        if n <= 4:
            orders = list(itertools.permutations(range(n)))[1:]
        else:
            orders = [tuple((i + s) % n for i in range(n)) for s in range(1, n)] + [tuple(reversed(range(n)))]
        weights = [float(i + 1) for i in range(n)]
        for w in (None, weights):
            first = merge(ws, weights=w, registry=self.registry)
            for order in orders:
                again = merge(
                    [ws[i] for i in order], weights=None if w is None else [w[i] for i in order], registry=self.registry
                )
                how = "VW's weighting" if w is None else f"weights {w} permuted with them"
                self._check(
                    f"merging the models in order {list(order)} instead of {list(range(n))} ({how})",
                    reduction, again, again.state(reduction), first.state(reduction), equal,
                )  # fmt: skip

    def assert_one_hot(
        self,
        models: Sequence[ModelLike],
        reduction: str,
        *,
        expected: Callable[[Sequence[Any], int], Any] | None = None,
        equal: Equal | None = None,
    ) -> None:
        """Weights ``[0, …, c, …, 0]`` give model j's state of ``reduction`` back, for every j.

        ``expected(states, j)`` says what they should give instead, for state that counts
        (learn counters describe all inputs whatever their weights).
        """
        __tracebackhide__ = True
        ws = [self.load(m) for m in models]
        if len(ws) < 2:
            raise ValueError("one-hot weights need at least two models")
        self._require_merge(ws[0], reduction)
        states = [m.state(reduction) for m in ws]
        for j, scale in itertools.product(range(len(ws)), (1.0, 3.0)):
            weights = [scale if i == j else 0.0 for i in range(len(ws))]
            merged = merge(ws, weights=weights, registry=self.registry)
            want = expected(states, j) if expected is not None else states[j]
            self._check(
                f"merging with one-hot weights {weights}", reduction, merged, merged.state(reduction), want, equal
            )

    def assert_base_inverse(
        self, model: ModelLike, base: ModelLike, reduction: str, *, equal: Equal | None = None
    ) -> None:
        """``add(base, subtract(m, base)) == m`` through the plugin's hooks, and the base-mode
        merge of ``m`` alone, ``merge([m], base=base)``, gives ``m``'s state back."""
        __tracebackhide__ = True
        m, b = self.load(model), self.load(base)
        entry = m.entry(reduction)
        missing = [h for h in ("vwmerge_subtract", "vwmerge_add") if not self.registry.implements(h, entry)]
        if missing:
            raise AssertionError(
                f"reduction '{reduction}' (plugin '{entry.plugin}') implements no {' or '.join(missing)}"
            )
        ctx = prepare_merge([m], base=b, registry=self.registry).context
        delta = self.registry.call(
            "vwmerge_subtract", entry, state=m.state(reduction), base=b.state(reduction), context=ctx
        )
        back = self.registry.call("vwmerge_add", entry, base=b.state(reduction), delta=delta, context=ctx)
        self._check("add(base, subtract(m, base))", reduction, m, back, m.state(reduction), equal)
        merged = merge([m], base=b, registry=self.registry)
        self._check(
            "merging one model with a base model", reduction, merged, merged.state(reduction), m.state(reduction), equal
        )

    def assert_merge_properties(
        self,
        models: Sequence[ModelLike],
        reduction: str,
        *,
        base: ModelLike | None = None,
        copies: Callable[[Any, int], Any] | None = None,
        one_hot: Callable[[Sequence[Any], int], Any] | None = None,
        equal: Equal | None = None,
    ) -> None:
        """All of the above: k copies (of each model), input order, one-hot weights, and, where
        the plugin implements ``vwmerge_subtract`` and ``vwmerge_add`` and a ``base`` is given,
        the base-mode inverse (for each model)."""
        __tracebackhide__ = True
        ws = [self.load(m) for m in models]
        for m in ws:
            self.assert_k_copies(m, reduction, expected=copies, equal=equal)
        self.assert_permutation_invariant(ws, reduction, equal=equal)
        self.assert_one_hot(ws, reduction, expected=one_hot, equal=equal)
        entry = ws[0].entry(reduction)
        if base is not None and all(self.registry.implements(h, entry) for h in ("vwmerge_subtract", "vwmerge_add")):
            for m in ws:
                self.assert_base_inverse(m, base, reduction, equal=equal)


def make_model(
    options: str = "", states: Mapping[str, Any] | None = None, *, registry: Registry | None = None, **kw: Any
) -> bytes:
    """:meth:`Kit.make_model` through ``registry`` (default: the installed plugins)."""
    return Kit(registry or default_registry()).make_model(options, states, **kw)


def assert_roundtrip(model: ModelLike, *, registry: Registry | None = None) -> Workspace:
    """:meth:`Kit.assert_roundtrip` through ``registry`` (default: the installed plugins)."""
    __tracebackhide__ = True
    return Kit(registry or default_registry()).assert_roundtrip(model)


# --------------------------------------------------------------------------------------------
# Fixtures
@pytest.fixture
def vwmerge_registry() -> Iterator[Callable[..., Registry]]:
    """``vwmerge_registry(*plugins)``: a fresh registry of the installed plugins plus ``plugins``
    registered ad hoc; they are unregistered after the test."""
    with contextlib.ExitStack() as stack:

        def build(*plugins: object, autoload: bool = True) -> Registry:
            return stack.enter_context(plugin_registry(*plugins, autoload=autoload))

        yield build


@pytest.fixture
def vwmerge_kit(vwmerge_registry: Callable[..., Registry]) -> Callable[..., Kit]:
    """``vwmerge_kit(*plugins)``: a :class:`Kit` over the installed plugins plus ``plugins``."""

    def build(*plugins: object, autoload: bool = True) -> Kit:
        return Kit(vwmerge_registry(*plugins, autoload=autoload))

    return build


@pytest.fixture
def vwmerge_cli() -> Callable[..., CliResult]:
    """:func:`run_cli`: ``vwmerge_cli("merge", "-o", out, a, b).check()``."""
    return run_cli
