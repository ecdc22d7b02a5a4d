"""Start-up: a command imports only what it uses (issue 11; docs/scale.md, "Start-up").

The real command line runs in a subprocess (``python -m vwmerge``'s own entry, run through
:mod:`runpy`), which then writes the names in ``sys.modules`` when it exits, whatever way it exits:
``--version`` must not import click, ``--help`` no numpy, structlog, pluggy or plugin, and a merge
only the built-in plugins its models need. ``sys.modules`` sees every import, including the plugin
modules the registry imports through :mod:`importlib` (which ``python -X importtime`` does not
report). No test here measures a time.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import vwmerge
from helpers.models import Models
from vwmerge.contract.builtin_index import BUILTIN_INDEX
from vwmerge.contract.registry import DEFAULT_PLUGINS, builtin_index, builtin_index_source

HEAVY = ("numpy", "structlog", "pluggy", "attr", "attrs", "vwmerge.plugins", "vwmerge.engine", "importlib.metadata")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Runs ``python -m vwmerge ARGS`` in this process and, at exit, writes the names of the modules it
# imported (not those the interpreter had at start: site's .pth files may import some) to the file
# named by the first argument.
RUN = """\
import sys
before = set(sys.modules)
import atexit, json, runpy
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(set(sys.modules) - before))))
sys.argv[0] = "vwmerge"
runpy.run_module("vwmerge", run_name="__main__", alter_sys=True)
"""


def _imported(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = tmp_path / "modules.json"
    run = subprocess.run(
        [sys.executable, "-c", RUN, str(out), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    return run, set(json.loads(out.read_text()))


def _heavy(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


def test_version_imports_neither_click_nor_typing(tmp_path: Path) -> None:
    run, modules = _imported(tmp_path, "--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"vwmerge {vwmerge.__version__}\n"
    assert "vwmerge.cli.entry" in modules  # the check sees the imports (not vacuous)
    assert _heavy(modules, (*HEAVY, "click", "typing", "vwmerge.cli.commands")) == []


@pytest.mark.parametrize(
    "args", [("--help",), ("-h",), ("merge", "--help"), ("check", "--help"), ("inspect", "-h"), ("plugins", "--help")]
)
def test_help_imports_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    run, modules = _imported(tmp_path, *args)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Usage: vwmerge")
    assert "vwmerge.cli.commands" in modules and "click" in modules  # (not vacuous)
    assert _heavy(modules) == []


def test_the_version_flag_among_other_options_is_clicks(tmp_path: Path) -> None:
    """Only the bare ``vwmerge --version`` is answered early; with other options click parses."""
    run, modules = _imported(tmp_path, "--log-level", "debug", "--version")
    assert (run.returncode, run.stdout) == (0, f"vwmerge {vwmerge.__version__}\n"), run.stderr
    assert "click" in modules
    run, _ = _imported(tmp_path, "--version", "--no-such-option")
    assert run.returncode == 2 and "No such option" in run.stderr


def test_a_merge_imports_only_the_plugins_its_models_need(tmp_path: Path) -> None:
    out = tmp_path / "merged.model"
    run, modules = _imported(
        tmp_path, "merge", "-o", str(out), str(EXAMPLES / "day1.model"), str(EXAMPLES / "day2.model")
    )
    assert run.returncode == 0, run.stderr
    assert {"numpy", "pluggy", "structlog", "vwmerge.plugins.gd"} <= modules
    loaded = {m.rpartition(".")[2] for m in modules if m.startswith("vwmerge.plugins.")}
    assert "trees" not in loaded and "ftrl" not in loaded and "bottoms" not in loaded
    # what the merge must not pay for: the process pool (--jobs), the dask extra, package metadata
    unused = ("multiprocessing", "concurrent.futures.process", "dask", "distributed", "fsspec", "importlib.metadata")
    assert _heavy(modules, unused) == []
    # and it merged what the full registry merges
    assert out.read_bytes() == vwmerge.merge([vwmerge.load(EXAMPLES / f"day{i}.model") for i in (1, 2)]).to_bytes()


@pytest.mark.parametrize("args", [("check", "day1.model", "day2.model"), ("inspect", "day1.model")])
def test_a_command_that_logs_nothing_imports_no_structlog(tmp_path: Path, args: tuple[str, ...]) -> None:
    run, modules = _imported(tmp_path, args[0], *(str(EXAMPLES / a) for a in args[1:]))
    assert run.returncode == 0, run.stderr
    assert (run.stderr, "numpy" in modules) == ("", True)
    assert _heavy(modules, ("structlog", "asyncio")) == []


def test_a_plugin_that_imports_structlog_logs_as_configured(models: Models, tmp_path: Path) -> None:
    """The trees plugin logs an info event through its own ``structlog.get_logger``: imported
    only for this plt model, after the command configured logging (deferred, since nothing had
    imported structlog), the event is still rendered as configured: a JSON line on stderr (a
    pipe), not structlog's default console line on stdout."""
    a, b = models.inputs("--plt 4 --loss_function logistic", 2)
    out = tmp_path / "merged.model"
    run, modules = _imported(tmp_path, "merge", "--json", "-o", str(out), str(a), str(b))
    assert run.returncode == 0, run.stderr
    assert "vwmerge.plugins.trees" in modules
    events = [json.loads(line) for line in run.stderr.splitlines()]
    (plt,) = [e for e in events if e.get("reduction") == "plt"]
    assert plt["level"] == "info" and "timestamp" in plt and "--loss_function logistic" in plt["event"]
    assert [e["event"] for e in events][-1] == "merged"
    assert isinstance(json.loads(run.stdout), dict)  # stdout holds the JSON document alone


def test_listing_the_plugins_imports_them_all(tmp_path: Path) -> None:
    run, modules = _imported(tmp_path, "plugins", "--json")
    assert run.returncode == 0, run.stderr
    assert {f"vwmerge.plugins.{name}" for name in DEFAULT_PLUGINS} <= modules
    assert {p["name"] for p in json.loads(run.stdout)["plugins"]} >= set(DEFAULT_PLUGINS)


def test_the_builtin_index_says_what_the_plugins_declare() -> None:
    """BUILTIN_INDEX is generated: when a plugin declares other reductions or options, regenerate
    core/contract/builtin_index.py with the text this test prints."""
    assert builtin_index() == BUILTIN_INDEX, "core/contract/builtin_index.py is stale; its text now:\n" + (
        builtin_index_source()
    )
    source = Path(sys.modules["vwmerge.contract.builtin_index"].__file__ or "").read_text()
    assert source == builtin_index_source()


def _fresh_python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet), assert it succeeded; its stdout."""
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize(
    "args",
    ["", "--cb_explore_adf --epsilon 0.1", "--oaa 3", "--ftrl", "--coin", "--nn 2", "--lrq ab2", "--ccb_explore_adf"],
)
def test_the_lazy_registry_derives_the_full_registrys_stacks(models: Models, args: str) -> None:
    """A fresh default registry (built-ins imported on demand) gives every model the stack a
    registry with every plugin imported gives it, and imports only what that stack needs."""
    (path,) = models.inputs(args, 1)
    code = (
        "import sys, vwmerge\n"
        "from vwmerge.contract.registry import Registry, make_plugin_manager\n"
        "from vwmerge.format.header import Header\n"
        "lazy = vwmerge.default_registry()\n"
        "assert not [m for m in sys.modules if m.startswith('vwmerge.plugins.')], 'imported too early'\n"
        "opts = vwmerge.load(sys.argv[1], registry=lazy).options\n"
        "names = lambda reg: [(e.name, e.plugin, e.width, e.above) for e in reg.derive_stack(opts, 'm')]\n"
        "got = names(lazy)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('vwmerge.plugins.'))\n"
        "assert got == names(Registry(make_plugin_manager())), got\n"
        "print(len(loaded))\n"
    )
    assert int(_fresh_python(code, str(path))) < len(DEFAULT_PLUGINS)


def test_a_hook_call_imports_its_plugin() -> None:
    """A stack entry made elsewhere (a plan shipped to a worker) reaches its plugin through a fresh
    default registry that has not imported it yet."""
    code = (
        "import sys, vwmerge\n"
        "from vwmerge.contract.registry import Registry, make_plugin_manager\n"
        "full = Registry(make_plugin_manager())\n"
        "entry = full.derive_stack(vwmerge.Options.parse('--ftrl'), 'm')[-1]\n"
        "assert entry.name == 'ftrl', entry\n"
        "lazy = vwmerge.default_registry()\n"
        "assert not lazy.pm.has_plugin('ftrl')\n"
        "assert lazy.implements('vwmerge_merge', entry)\n"
        "assert lazy.pm.has_plugin('ftrl')\n"
    )
    _fresh_python(code)


def test_the_entry_point_scan_sees_what_importlib_metadata_sees(tmp_path: Path) -> None:
    """The registry reads the ``vwmerge`` entry points from the ``*.dist-info``/``*.egg-info``
    directories itself (importing importlib.metadata costs a tenth of a small command): the same
    distributions, names, versions and entry points, in the same order, as importlib.metadata,
    here with an extra distribution (dist-info, entry point with an attribute) and an egg-info
    on the path, beside the installed ones."""
    info = tmp_path / "Extra_Plugin-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-plugin\nVersion: 2.0\n\nName: not this\n")
    (info / "entry_points.txt").write_text(
        "[console_scripts]\nx = y:z\n\n[vwmerge]\n# c\nextra = extra_mod:plugin.obj [fast]\n"
    )
    egg = tmp_path / "egg_plugin.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: egg-plugin\nVersion: 0.5\n")
    (egg / "entry_points.txt").write_text("[vwmerge]\negg = egg_mod\n")
    code = (
        "from vwmerge.contract import registry as r\n"
        "seen = lambda found: [(d(), eps) for d, eps in found]\n"
        "fast, slow = seen(r._entry_point_dists('vwmerge')), seen(r._entry_point_dists_from_metadata('vwmerge'))\n"
        "assert fast == slow, (fast, slow)\n"
        "assert (r._Dist('extra-plugin', '2.0'), [('extra', 'extra_mod:plugin.obj [fast]')]) in fast, fast\n"
        "assert (r._Dist('egg-plugin', '0.5'), [('egg', 'egg_mod')]) in fast, fast\n"
        "assert any(d.project_name == 'vwmerge' for d, _ in fast)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    _fresh_python(code, env=env)


def test_the_version_is_the_distributions() -> None:
    assert vwmerge.__version__ == importlib.metadata.version("vwmerge")


def test_the_public_names_load_on_first_use() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import vwmerge\n"
        "new = set(sys.modules) - before\n"
        "assert not {'numpy', 'typing', 'click'} & new, sorted(new)\n"
        "from vwmerge import *\n"
        "missing = [n for n in vwmerge.__all__ if n not in globals()]\n"
        "assert not missing, missing\n"
        "assert set(vwmerge.__all__) <= set(dir(vwmerge))\n"
        "assert vwmerge.merge is sys.modules['vwmerge.engine.merging'].merge\n"
        "assert vwmerge.Header is sys.modules['vwmerge.format.header'].Header\n"
        "try:\n"
        "    vwmerge.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    _fresh_python(code)
