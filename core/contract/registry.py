"""Finding plugins (entry points), resolving who owns each reduction, dispatching hooks.

Built-ins register like any third-party package: they are listed in vwmerge's own ``vwmerge``
entry-point group and loaded by the same ``load_setuptools_entrypoints`` call. Where that
metadata is missing (a source tree on ``sys.path``, a vendored copy), :data:`DEFAULT_PLUGINS`
registers them from code, as pytest and datasette do with theirs, so the base learners are
always there (docs/plugins.md, "Built-in plugins"). Dispatch is per reduction: the core calls
the owning plugin's hook only.

The process-wide :func:`default_registry` imports a built-in plugin's module only when a model
needs it (:data:`~vwmerge.contract.builtin_index.BUILTIN_INDEX` says which options each built-in
knows, without importing it); third-party plugins are imported when the registry is made, and
anything that lists or looks up every plugin (``specs``, ``owner``, ``plugins()``) loads the rest.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import cache, partial
from typing import Any

import attrs
import pluggy

from .._log import ensure_if_imported, log
from ..errors import PluginError
from ..format.options import Options
from . import hookspecs
from .builtin_index import BUILTIN_INDEX
from .stack import CORE_OPTIONS, ReductionSpec, StackEntry

ENTRY_POINT_GROUP = "vwmerge"
BUILTIN_DISTRIBUTION = "vwmerge"
#: Comma-separated entry-point names that are not loaded (to resolve a conflict, for example).
BLOCK_ENV = "VWMERGE_BLOCK_PLUGINS"

hookimpl = pluggy.HookimplMarker("vwmerge")

#: The built-in plugins, by entry-point name (module ``vwmerge.plugins.<name>``): the same list
#: as the ``vwmerge`` entry points in vwmerge's pyproject.toml (a test keeps the two equal).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "gd", "cb_adf", "stateless", "ftrl", "freegrad", "bottoms", "trees", "marginal", "misc_state",
    "cb_explore", "ccb", "ensemble", "epsilon_decay", "automl", "baseline_challenger", "mwt",
    "cb_misc", "cats",
)  # fmt: skip
BUILTIN_PACKAGE = "vwmerge.plugins"


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # (only without entry points)

    try:
        return version(BUILTIN_DISTRIBUTION)
    except PackageNotFoundError:  # a source tree without package metadata
        return "0.0.0"


def _is_builtin_module(plugin: object, name: str) -> bool:
    return name in DEFAULT_PLUGINS and getattr(plugin, "__name__", None) == f"{BUILTIN_PACKAGE}.{name}"


def register_builtins(pm: pluggy.PluginManager) -> None:
    """Register every built-in the entry points did not (no metadata), unless blocked.

    With a :class:`PluginManager` made ``lazy``, a built-in is only noted (imported when needed)."""
    broken = {b.name for b in getattr(pm, "broken", ())}  # reported already, not imported twice
    pending: dict[str, _Pending] | None = getattr(pm, "pending", None) if getattr(pm, "lazy", False) else None
    for name in DEFAULT_PLUGINS:
        if pm.get_plugin(name) is not None or pm.is_blocked(name) or name in broken:
            continue
        if pending is not None and name in BUILTIN_INDEX:
            pending.setdefault(name, _Pending(name, f"{BUILTIN_PACKAGE}.{name}", False, None))
            continue
        module = importlib.import_module(f"{BUILTIN_PACKAGE}.{name}")
        if not pm.is_registered(module):
            pm.register(module, name=name)


@attrs.frozen
class PluginInfo:
    """One loaded plugin, for ``vwmerge plugins``."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    reductions: tuple[str, ...]

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION


def _declared_specs(plugin_name: str, declared: object) -> list[ReductionSpec]:
    """What a plugin's ``vwmerge_reductions`` returned, checked: ReductionSpec objects (or None)."""
    if declared is None:
        return []
    specs = list(declared) if isinstance(declared, Iterable) else None
    if specs is None or not all(isinstance(s, ReductionSpec) for s in specs):
        raise PluginError(f"plugin '{plugin_name}': vwmerge_reductions must return a list of ReductionSpec objects")
    return specs


@attrs.frozen
class BrokenPlugin:
    """An entry point of the ``vwmerge`` group that could not be loaded (and is left out)."""

    name: str  #: the entry point's name
    value: str  #: what it points at (``module`` or ``module:object``)
    distribution: str
    version: str
    error: str  #: ``ExceptionType: message``, one line

    def describe(self) -> str:
        return (
            f"plugin '{self.name}' ({self.distribution} {self.version}, entry point {self.name} = "
            f"{self.value}) could not be loaded: {self.error}"
        )


@attrs.frozen
class _Dist:
    """What :meth:`PluginManager.list_plugin_distinfo` reports of a plugin's distribution."""

    project_name: str
    version: str


def _dist_of(dist: Any) -> _Dist:
    """A distribution's name and version (its METADATA parsed once: each access parses it)."""
    meta = dist.metadata
    return _Dist(meta["Name"] or "", meta["Version"] or "")


# importlib.metadata's EntryPoint.pattern: ``module``, ``module:attr.attr``, optional [extras]
_EP_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")

#: What :func:`_entry_point_dists` yields per distribution: its name and version (read when
#: called), and its entry points of the group as ``(name, value)``.
_Found = tuple[Callable[[], _Dist], list[tuple[str, str]]]


def _load_value(value: str) -> Any:
    """What an entry point's value names, imported (as ``EntryPoint.load``)."""
    match = _EP_VALUE.match(value)
    if match is None:
        raise ValueError(f"malformed entry point value {value!r}")
    obj: Any = importlib.import_module(match["module"])
    for attr in filter(None, (match["attr"] or "").split(".")):
        obj = getattr(obj, attr)
    return obj


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of section ``[group]`` of an ``entry_points.txt``."""
    out, current = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group:
            name, sep, value = line.partition("=")
            if sep:
                out.append((name.strip(), value.strip()))
    return out


def _read_dist(path: str) -> _Dist:
    """Name and version from a ``*.dist-info``'s METADATA (``*.egg-info``: PKG-INFO) headers."""
    fields: dict[str, str] = {}
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, filename), encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        break  # the headers end at the first blank line
                    key, sep, value = line.partition(":")
                    if sep and key in ("Name", "Version"):
                        fields.setdefault(key, value.strip())
        except OSError:
            continue
        break
    return _Dist(fields.get("Name", ""), fields.get("Version", ""))


def _entry_point_dists(group: str) -> Iterator[_Found]:
    """Every installed distribution with entry points in ``group``, in importlib.metadata's order.

    Read from the ``*.dist-info`` and ``*.egg-info`` directories of ``sys.path`` directly:
    importing :mod:`importlib.metadata` (email, zipfile, csv, ...) costs a small command a tenth
    of its time. Where that would not see what importlib.metadata sees (a zip file on
    ``sys.path``, another finder that provides distributions) it asks importlib.metadata."""
    from importlib.machinery import PathFinder

    foreign = any(
        getattr(finder, "find_distributions", None) is not None and finder is not PathFinder for finder in sys.meta_path
    )
    if foreign or any(entry and os.path.isfile(entry) for entry in sys.path):
        yield from _entry_point_dists_from_metadata(group)
        return
    for entry in sys.path:
        folder = entry or "."
        try:
            children = os.listdir(folder)
        except OSError:
            continue
        by_name: dict[str, list[str]] = {}  # importlib.metadata's order: grouped by project name
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                name = re.sub(r"[-_.]+", "_", low.rpartition(".")[0].partition("-")[0])
                by_name.setdefault(name, []).append(child)
        for child in (c for group in by_name.values() for c in group):
            path = os.path.join(folder, child)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as f:
                    found = _section(f.read(), group)
            except OSError:  # no entry points (or a PKG-INFO file named *.egg-info)
                continue
            if found:
                yield partial(_read_dist, path), found


def _entry_point_dists_from_metadata(group: str) -> Iterator[_Found]:
    import importlib.metadata

    for dist in list(importlib.metadata.distributions()):
        found = [(ep.name, ep.value) for ep in dist.entry_points if ep.group == group]
        if found:
            yield partial(_dist_of, dist), found


@attrs.frozen
class _Pending:
    """A built-in plugin found but not imported yet (a lazy :class:`PluginManager`)."""

    name: str
    value: str  #: the module
    from_metadata: bool  #: found as an entry point (False: registered from code, no metadata)
    dist: _Dist | None


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus the entry points that failed to load (:attr:`broken`).

    ``lazy``: vwmerge's own entry points (and :data:`DEFAULT_PLUGINS`) are not imported but kept
    in :attr:`pending` until :meth:`load_pending` (the :class:`Registry` calls it for the
    built-ins a model's options need); third-party entry points are imported as always.
    """

    def __init__(self, project_name: str, *, lazy: bool = False) -> None:
        super().__init__(project_name)
        self.broken: list[BrokenPlugin] = []
        self.lazy = lazy
        self.pending: dict[str, _Pending] = {}
        self._loaded: list[tuple[Any, _Dist]] = []

    def list_plugin_distinfo(self) -> list[tuple[Any, Any]]:
        return [*super().list_plugin_distinfo(), *self._loaded]

    def load_entrypoints_safely(self, group: str) -> int:
        """pluggy's ``load_setuptools_entrypoints``, except that a plugin that fails to import or
        register is recorded in :attr:`broken` and logged as one warning instead of raising:
        one broken package must not take every command down with it."""
        count = 0
        for read_dist, entry_points in _entry_point_dists(group):
            info: _Dist | None = None
            for name, value in entry_points:
                if self.get_plugin(name) or self.is_blocked(name):
                    continue
                info = info or read_dist()
                if self.lazy and _is_builtin_entry_point(name, value, info):
                    self.pending.setdefault(name, _Pending(name, value, True, info))
                    continue
                count += self._load(name, value, lambda v=value: _load_value(v), info, True)
        return count

    def _load(self, name: str, value: str, load: Any, info: _Dist | None, from_metadata: bool) -> int:
        """Import and register one plugin; 1 if it worked, 0 (and a warning) if not."""
        try:
            plugin = load()
            if not self.is_registered(plugin):
                self.register(plugin, name=name)
        except Exception as e:  # any failure of third-party code: import, hook validation
            with contextlib.suppress(Exception):
                if self.has_plugin(name):
                    self.unregister(name=name)
            self._broken(name, value, info, e)
            return 0
        finally:
            ensure_if_imported()  # a plugin that imported structlog logs as configured
        if from_metadata and info is not None:
            self._loaded.append((plugin, info))
        return 1

    def load_pending(self, names: Iterable[str] | None = None) -> list[str]:
        """Import and register these pending built-ins (all when None); the names registered."""
        done = []
        for name in list(self.pending) if names is None else list(names):
            pending = self.pending.pop(name, None)
            if pending is None:
                continue
            module = pending.value
            if self._load(
                name, module, lambda m=module: importlib.import_module(m), pending.dist, pending.from_metadata
            ):
                done.append(name)
        return done

    def _broken(self, name: str, value: str, info: _Dist | None, exc: BaseException) -> None:
        message = " ".join(str(exc).split()) or "(no message)"
        broken = BrokenPlugin(
            name,
            value,
            (info.project_name if info else "") or "(unknown distribution)",
            info.version if info else "",
            f"{type(exc).__name__}: {message}",
        )
        self.broken.append(broken)
        log.warning(
            "plugin_not_loaded",
            plugin=broken.name,
            entry_point=f"{broken.name} = {broken.value}",
            distribution=f"{broken.distribution} {broken.version}".strip(),
            error=broken.error,
            hint=f"its reductions are unavailable; fix or uninstall the package, or set {BLOCK_ENV}={broken.name}",
        )


def _is_builtin_entry_point(name: str, value: str, info: _Dist) -> bool:
    return info.project_name == BUILTIN_DISTRIBUTION and name in BUILTIN_INDEX and value == f"{BUILTIN_PACKAGE}.{name}"


def make_plugin_manager(
    *, autoload: bool = True, extra: Iterable[tuple[Any, str]] = (), lazy: bool = False
) -> PluginManager:
    """A plugin manager with the ``vwmerge`` hooks, every installed plugin (``autoload``) and
    ``extra`` ``(plugin, name)`` pairs. ``lazy``: the built-ins are imported when needed (see
    :class:`PluginManager`), which :func:`default_registry` does."""
    pm = PluginManager("vwmerge", lazy=lazy)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in os.environ.get(BLOCK_ENV, "").split(","))):
        pm.set_blocked(name)
    if autoload:
        pm.load_entrypoints_safely(ENTRY_POINT_GROUP)
        register_builtins(pm)
    for plugin, name in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


class Registry:
    """Which plugin owns which reduction, and hook dispatch to that owner."""

    def __init__(self, pm: pluggy.PluginManager, *, extra_dists: dict[str, str] | None = None) -> None:
        self.pm = pm
        self._dists: dict[str, tuple[str, str]] = {}
        for name, dist_name in (extra_dists or {}).items():
            self._dists[name] = (dist_name, "")
        self._specs: dict[str, ReductionSpec] = {}
        self._owner: dict[str, str] = {}
        self._overrides: list[tuple[str, str, str]] = []
        self._declared: dict[str, list[str]] = {}
        self._callers: dict[tuple[str, str], Any] = {}
        self._implements: dict[tuple[str, str], bool] = {}
        self._direct_impls: dict[tuple[str, str], tuple[Any, tuple[str, ...]] | None] = {}
        self._stacks: dict[Options, tuple[StackEntry, ...]] = {}
        #: built-ins not imported yet (a lazy plugin manager): what each knows, from the index
        self._pending: dict[str, tuple[bool, frozenset[str]]] = {
            name: BUILTIN_INDEX[name] for name in getattr(pm, "pending", ())
        }
        self._adopt([pm.get_name(p) or repr(p) for p in pm.get_plugins()])

    def _adopt(self, names: list[str]) -> None:
        """Take in newly registered plugins: their distributions, then their reductions."""
        pm = self.pm
        wanted = set(names)
        for plugin, dist in pm.list_plugin_distinfo():
            name = pm.get_name(plugin) or repr(plugin)
            if name in wanted and name not in self._dists:
                self._dists[name] = (dist.project_name, dist.version)
        for name in names:  # built-ins registered from code (no package metadata)
            if name not in self._dists and _is_builtin_module(pm.get_plugin(name), name):
                self._dists[name] = (BUILTIN_DISTRIBUTION, _own_version())
        for impl in pm.hook.vwmerge_reductions.get_hookimpls():
            if impl.plugin_name in wanted:
                for spec in _declared_specs(impl.plugin_name, impl.function()):
                    self._declare(impl.plugin_name, spec)
        self._callers.clear()  # (pluggy's subset callers see plugins registered after them)

    def _load_pending(self, names: list[str] | None = None) -> None:
        """Import the pending built-ins named (all when None) and take them in."""
        if not self._pending:
            return
        names = [n for n in (names if names is not None else list(self._pending)) if n in self._pending]
        for name in names:
            del self._pending[name]
        load = getattr(self.pm, "load_pending", None)
        if names and load is not None:
            self._adopt(load(names))

    # -- everything, loaded on first use -----------------------------------------------------
    @property
    def specs(self) -> dict[str, ReductionSpec]:
        """Every reduction a plugin declares, by name (the owner's spec)."""
        self._load_pending()
        return self._specs

    @property
    def owner(self) -> dict[str, str]:
        """The plugin that owns each reduction."""
        self._load_pending()
        return self._owner

    @property
    def overrides(self) -> list[tuple[str, str, str]]:
        """``(reduction, winner, loser)`` for each built-in a third-party plugin overrides."""
        self._load_pending()
        return self._overrides

    @property
    def broken(self) -> tuple[BrokenPlugin, ...]:
        """Entry points that failed to load (see :class:`PluginManager`); listed, never called."""
        self._load_pending()
        return tuple(getattr(self.pm, "broken", ()))

    def distribution(self, plugin_name: str) -> tuple[str, str]:
        return self._dists.get(plugin_name, ("(registered at run time)", ""))

    def _declare(self, plugin_name: str, spec: ReductionSpec) -> None:
        self._declared.setdefault(plugin_name, []).append(spec.name)
        current = self._owner.get(spec.name)
        if current is None:
            self._specs[spec.name], self._owner[spec.name] = spec, plugin_name
            return
        cur_builtin = self.distribution(current)[0] == BUILTIN_DISTRIBUTION
        new_builtin = self.distribution(plugin_name)[0] == BUILTIN_DISTRIBUTION
        if cur_builtin and not new_builtin:
            winner, loser = plugin_name, current
        elif new_builtin and not cur_builtin:
            winner, loser = current, plugin_name
        else:
            raise PluginError(
                f"reduction '{spec.name}' is declared by two plugins: '{current}' "
                f"({self.distribution(current)[0]}) and '{plugin_name}' "
                f"({self.distribution(plugin_name)[0]}); uninstall one or set "
                f"{BLOCK_ENV}=<entry point name>"
            )
        if winner == plugin_name:
            self._specs[spec.name], self._owner[spec.name] = spec, plugin_name
        self._overrides.append((spec.name, winner, loser))

    # -- dispatch ---------------------------------------------------------------------------
    def _caller(self, hook: str, plugin_name: str) -> Any:
        key = (hook, plugin_name)
        if key not in self._callers:
            owner = self.pm.get_plugin(plugin_name)
            others = [p for p in self.pm.get_plugins() if p is not owner]
            self._callers[key] = self.pm.subset_hook_caller(hook, remove_plugins=others)
        return self._callers[key]

    def implements(self, hook: str, entry: StackEntry) -> bool:
        key = (hook, entry.plugin)
        found = self._implements.get(key)
        if found is None:  # remembered: a plugin imported later only adds keys
            if entry.plugin in self._pending:  # an entry from elsewhere (another registry, a plan)
                self._load_pending([entry.plugin])
            owner = self.pm.get_plugin(entry.plugin)
            found = any(impl.plugin is owner for impl in getattr(self.pm.hook, hook).get_hookimpls())
            self._implements[key] = found
        return found

    def _direct(self, hook: str, plugin_name: str) -> tuple[Any, tuple[str, ...]] | None:
        """The owner's one plain implementation of ``hook`` and its argument names, or None when
        pluggy's machinery does something a direct call would not (wrappers, several
        implementations). Remembered: the plugins are fixed when the registry is made."""
        key = (hook, plugin_name)
        if key not in self._direct_impls:
            owner = self.pm.get_plugin(plugin_name)
            impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin is owner]
            plain = len(impls) == 1 and not (impls[0].wrapper or impls[0].hookwrapper)
            self._direct_impls[key] = (impls[0].function, tuple(impls[0].argnames)) if plain else None
        return self._direct_impls[key]

    def call(self, hook: str, entry: StackEntry, **kwargs: Any) -> Any:
        """Call the hook of ``entry``'s owning plugin (None when it does not implement it).

        Every hook but ``vwmerge_reductions`` is firstresult and dispatched to one plugin, so
        the owner's implementation is called directly, with the arguments it names, as pluggy
        would call it (its machinery costs more than the work of a small model's hook); pluggy
        is used where it adds something (wrappers) or names a missing argument."""
        if not self.implements(hook, entry):
            return None
        direct = self._direct(hook, entry.plugin)
        if direct is not None:
            fn, names = direct
            kwargs["reduction"] = entry
            try:
                args = [kwargs[n] for n in names]
            except KeyError:
                del kwargs["reduction"]  # pluggy names the missing argument
            else:
                return fn(*args)
        return self._caller(hook, entry.plugin)(reduction=entry, **kwargs)

    # -- stack ------------------------------------------------------------------------------
    def derive_stack(self, options: Options, source: str) -> tuple[StackEntry, ...]:
        """The enabled reductions, top of stack first, bottom learner last.

        Remembered per options: a merge of N models loads models with the same options 2N times.
        """
        if options in self._stacks:
            return self._stacks[options]
        names = options.names()
        if self._pending:  # the built-ins these options need (and those needed by every model)
            present = set(names)
            self._load_pending(
                [n for n, (every, opts) in self._pending.items() if every or not opts.isdisjoint(present)]
            )
        known = set(CORE_OPTIONS)
        for spec in self._specs.values():
            known |= spec.known_options()
        unknown = [n for n in names if n not in known]
        if unknown:
            broken = tuple(getattr(self.pm, "broken", ()))
            if broken:
                raise PluginError(
                    f"the model uses option --{unknown[0]}, which no loaded vwmerge plugin understands; "
                    + "; ".join(b.describe() for b in broken)
                    + " (it may be the one that provides it)",
                    source=source,
                )
            raise PluginError(
                f"the model uses option --{unknown[0]}, which no installed vwmerge plugin "
                "understands; install a plugin that provides this reduction (see 'vwmerge plugins')",
                source=source,
            )
        enabled = [s for s in self._specs.values() if not s.fallback and s.is_enabled(options)]
        bottoms = [s for s in enabled if s.bottom]
        if not bottoms:
            fallback = [s for s in self._specs.values() if s.fallback]
            if not fallback:
                raise PluginError("no plugin provides a base learner (is vwmerge installed?)", source=source)
            enabled.append(fallback[0])
        elif len(bottoms) > 1:
            raise PluginError(
                "the options enable more than one base learner: " + ", ".join(s.name for s in bottoms),
                source=source,
            )
        enabled.sort(key=lambda s: (s.bottom, -s.rank))
        widths = [max(1, int(s.width(options))) for s in enabled]
        entries = []
        above = 1
        for i, (spec, width) in enumerate(zip(enabled, widths, strict=True)):
            entries.append(StackEntry(spec, self._owner[spec.name], width, above, i))
            if not spec.bottom:
                above *= width
        self._stacks[options] = tuple(entries)
        return self._stacks[options]

    # -- listing ----------------------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        self._load_pending()
        out = []
        for plugin in self.pm.get_plugins():
            name = self.pm.get_name(plugin) or repr(plugin)
            hooks = tuple(h.name for h in self.pm.get_hookcallers(plugin) or () if h.name.startswith("vwmerge_"))
            dist, ver = self.distribution(name)
            reductions = tuple(r for r in self._declared.get(name, ()) if self._owner.get(r) == name)
            out.append(PluginInfo(name, dist, ver, tuple(sorted(hooks)), reductions))
        return sorted(out, key=lambda p: (not p.builtin, p.name))


def builtin_index() -> dict[str, tuple[bool, frozenset[str]]]:
    """What :data:`~vwmerge.contract.builtin_index.BUILTIN_INDEX` must say, from the built-in
    plugins themselves (all imported): for each, whether a model may need it whatever its options
    (a fallback base learner, or a reduction whose ``enabled`` is code), and the option names its
    reductions know (any of them in a model's options makes the model need it)."""
    pm = PluginManager("vwmerge")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(f"{BUILTIN_PACKAGE}.{name}"), name=name)
    index: dict[str, tuple[bool, frozenset[str]]] = {}
    for impl in pm.hook.vwmerge_reductions.get_hookimpls():
        specs = _declared_specs(impl.plugin_name, impl.function())
        always = any(s.fallback or s.enabled is not None for s in specs)
        index[impl.plugin_name] = (always, frozenset().union(*(s.known_options() for s in specs)))
    return {name: index[name] for name in DEFAULT_PLUGINS}


def builtin_index_source() -> str:
    """The text of ``vwmerge/contract/builtin_index.py`` (core/contract/builtin_index.py)."""
    import textwrap

    lines = [
        '"""Which options each built-in plugin knows, so that a command imports only the plugins a model',
        "needs (:class:`vwmerge.contract.registry.Registry`).",
        "",
        "Generated from the plugins by :func:`vwmerge.contract.registry.builtin_index_source`; a test",
        "(tests/test_startup.py) fails with the new text when a plugin declares something else.",
        '"""',
        "",
        "# fmt: off",
        "#: plugin -> (needed by every model, the option names its reductions know)",
        "BUILTIN_INDEX: dict[str, tuple[bool, frozenset[str]]] = {",
    ]
    for name, (always, options) in builtin_index().items():
        lines.append(f'    "{name}": ({always}, frozenset({{')
        body = " ".join(f'"{o}",' for o in sorted(options))
        lines += textwrap.wrap(body, 110, initial_indent="        ", subsequent_indent="        ")
        lines.append("    })),")
    lines += ["}", "# fmt: on", ""]
    return "\n".join(lines)


@cache
def default_registry() -> Registry:
    """The registry of all installed plugins (made once per process; the built-ins are imported
    when a model needs them)."""
    return Registry(make_plugin_manager(lazy=True))
