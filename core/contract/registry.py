"""Finding plugins (entry points), resolving who owns each reduction, dispatching hooks.

Built-ins register like any third-party package: they are listed in vwmerge's own ``vwmerge``
entry-point group and loaded by the same ``load_setuptools_entrypoints`` call. Where that
metadata is missing (a source tree on ``sys.path``, a vendored copy), :data:`DEFAULT_PLUGINS`
registers them from code, as pytest and datasette do with theirs, so the base learners are
always there (docs/plugins.md, "Built-in plugins"). Dispatch is per reduction: the core calls
the owning plugin's hook only.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import attrs
import pluggy
import structlog

from ..errors import PluginError
from ..format.options import Options
from . import hookspecs
from .stack import CORE_OPTIONS, ReductionSpec, StackEntry

ENTRY_POINT_GROUP = "vwmerge"
BUILTIN_DISTRIBUTION = "vwmerge"
#: Comma-separated entry-point names that are not loaded (to resolve a conflict, for example).
BLOCK_ENV = "VWMERGE_BLOCK_PLUGINS"

hookimpl = pluggy.HookimplMarker("vwmerge")
log = structlog.get_logger("vwmerge")

#: The built-in plugins, by entry-point name (module ``vwmerge.plugins.<name>``): the same list
#: as the ``vwmerge`` entry points in vwmerge's pyproject.toml (a test keeps the two equal).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "gd", "cb_adf", "stateless", "ftrl", "freegrad", "bottoms", "trees", "marginal", "misc_state",
    "cb_explore", "ccb", "ensemble", "epsilon_decay", "automl", "baseline_challenger", "mwt",
    "cb_misc", "cats",
)  # fmt: skip
BUILTIN_PACKAGE = "vwmerge.plugins"


def _own_version() -> str:
    try:
        return version(BUILTIN_DISTRIBUTION)
    except PackageNotFoundError:  # a source tree without package metadata
        return "0.0.0"


def _is_builtin_module(plugin: object, name: str) -> bool:
    return name in DEFAULT_PLUGINS and getattr(plugin, "__name__", None) == f"{BUILTIN_PACKAGE}.{name}"


def register_builtins(pm: pluggy.PluginManager) -> None:
    """Register every built-in the entry points did not (no metadata), unless blocked."""
    broken = {b.name for b in getattr(pm, "broken", ())}  # reported already, not imported twice
    for name in DEFAULT_PLUGINS:
        if pm.get_plugin(name) is not None or pm.is_blocked(name) or name in broken:
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


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus the entry points that failed to load (:attr:`broken`)."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.broken: list[BrokenPlugin] = []
        self._loaded: list[tuple[Any, _Dist]] = []

    def list_plugin_distinfo(self) -> list[tuple[Any, Any]]:
        return [*super().list_plugin_distinfo(), *self._loaded]

    def load_entrypoints_safely(self, group: str) -> int:
        """pluggy's ``load_setuptools_entrypoints``, except that a plugin that fails to import or
        register is recorded in :attr:`broken` and logged as one warning instead of raising:
        one broken package must not take every command down with it."""
        import importlib.metadata

        count = 0
        for dist in list(importlib.metadata.distributions()):
            for ep in dist.entry_points:
                if ep.group != group or self.get_plugin(ep.name) or self.is_blocked(ep.name):
                    continue
                try:
                    plugin = ep.load()
                    self.register(plugin, name=ep.name)
                except Exception as e:  # any failure of third-party code: import, hook validation
                    with contextlib.suppress(Exception):
                        if self.has_plugin(ep.name):
                            self.unregister(name=ep.name)
                    self._broken(ep, dist, e)
                    continue
                self._loaded.append((plugin, _Dist(dist.metadata["Name"] or "", dist.version or "")))
                count += 1
        return count

    def _broken(self, ep: Any, dist: Any, exc: BaseException) -> None:
        message = " ".join(str(exc).split()) or "(no message)"
        broken = BrokenPlugin(
            ep.name,
            ep.value,
            dist.metadata["Name"] or "(unknown distribution)",
            dist.version or "",
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


def make_plugin_manager(*, autoload: bool = True, extra: Iterable[tuple[Any, str]] = ()) -> PluginManager:
    pm = PluginManager("vwmerge")
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
        #: entry points that failed to load (see :class:`PluginManager`); listed, never called
        self.broken: tuple[BrokenPlugin, ...] = tuple(getattr(pm, "broken", ()))
        self._dists: dict[str, tuple[str, str]] = {}
        for plugin, dist in pm.list_plugin_distinfo():
            name = pm.get_name(plugin) or repr(plugin)
            self._dists[name] = (dist.project_name, dist.version)
        for plugin in pm.get_plugins():  # built-ins registered from code (no package metadata)
            name = pm.get_name(plugin) or repr(plugin)
            if name not in self._dists and _is_builtin_module(plugin, name):
                self._dists[name] = (BUILTIN_DISTRIBUTION, _own_version())
        for name, dist_name in (extra_dists or {}).items():
            self._dists[name] = (dist_name, "")
        self.specs: dict[str, ReductionSpec] = {}
        self.owner: dict[str, str] = {}
        self.overrides: list[tuple[str, str, str]] = []
        self._declared: dict[str, list[str]] = {}
        for impl in pm.hook.vwmerge_reductions.get_hookimpls():
            for spec in _declared_specs(impl.plugin_name, impl.function()):
                self._declare(impl.plugin_name, spec)
        self._callers: dict[tuple[str, str], Any] = {}
        self._implements: dict[tuple[str, str], bool] = {}
        self._direct_impls: dict[tuple[str, str], tuple[Any, tuple[str, ...]] | None] = {}
        self._stacks: dict[Options, tuple[StackEntry, ...]] = {}

    def distribution(self, plugin_name: str) -> tuple[str, str]:
        return self._dists.get(plugin_name, ("(registered at run time)", ""))

    def _declare(self, plugin_name: str, spec: ReductionSpec) -> None:
        self._declared.setdefault(plugin_name, []).append(spec.name)
        current = self.owner.get(spec.name)
        if current is None:
            self.specs[spec.name], self.owner[spec.name] = spec, plugin_name
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
            self.specs[spec.name], self.owner[spec.name] = spec, plugin_name
        self.overrides.append((spec.name, winner, loser))

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
        if found is None:  # remembered: the plugins are fixed when the registry is made
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
        known = set(CORE_OPTIONS)
        for spec in self.specs.values():
            known |= spec.known_options()
        unknown = [n for n in options.names() if n not in known]
        if unknown:
            if self.broken:
                raise PluginError(
                    f"the model uses option --{unknown[0]}, which no loaded vwmerge plugin understands; "
                    + "; ".join(b.describe() for b in self.broken)
                    + " (it may be the one that provides it)",
                    source=source,
                )
            raise PluginError(
                f"the model uses option --{unknown[0]}, which no installed vwmerge plugin "
                "understands; install a plugin that provides this reduction (see 'vwmerge plugins')",
                source=source,
            )
        enabled = [s for s in self.specs.values() if not s.fallback and s.is_enabled(options)]
        bottoms = [s for s in enabled if s.bottom]
        if not bottoms:
            fallback = [s for s in self.specs.values() if s.fallback]
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
            entries.append(StackEntry(spec, self.owner[spec.name], width, above, i))
            if not spec.bottom:
                above *= width
        self._stacks[options] = tuple(entries)
        return self._stacks[options]

    # -- listing ----------------------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        out = []
        for plugin in self.pm.get_plugins():
            name = self.pm.get_name(plugin) or repr(plugin)
            hooks = tuple(h.name for h in self.pm.get_hookcallers(plugin) or () if h.name.startswith("vwmerge_"))
            dist, ver = self.distribution(name)
            reductions = tuple(r for r in self._declared.get(name, ()) if self.owner.get(r) == name)
            out.append(PluginInfo(name, dist, ver, tuple(sorted(hooks)), reductions))
        return sorted(out, key=lambda p: (not p.builtin, p.name))


@cache
def default_registry() -> Registry:
    """The registry of all installed plugins (loaded once per process)."""
    return Registry(make_plugin_manager())
