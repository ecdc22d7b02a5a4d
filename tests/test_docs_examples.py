"""Every example in README.md and docs/*.md runs, and shows what it really prints.

The Markdown is the source: each fenced block labelled ``sh``, ``console`` or ``python`` is run,
in document order, in one temporary directory per document (so a later block can use a file an
earlier one wrote). The directory holds the files the docs name, made from real VW training
(see :func:`doc_files`): ``examples/day{1,2,3}.model`` (copies of the shipped examples, also at
the top level), ``base.model`` and ``a.model``/``b.model``/``c.model`` that continued training
from it, ``b17.model`` (``-b 17``), ``noq.model`` (no ``-q UA``), ``cut.model`` (``a.model`` cut
inside its last row), ``edited.model`` (a header byte of ``a.model`` changed) and an empty
directory ``models``.

* ``sh``: every command (a line; ``\\`` continues it) must exit 0. Its output is not compared.
* ``console``: ``$ COMMAND`` lines, each followed by what it prints, stdout and stderr together as
  a terminal shows them (log events in the console format). A command whose output has an
  ``Error:`` line must exit 1, every other one 0. Variable parts are normalized on both sides
  (:data:`VARIABLE`): timestamps, durations, memory sizes. A line ``...`` stands for any
  number of lines.
* ``python``: the block runs as a script (``sys.executable``) and must exit 0; a block whose
  first line is ``# NAME.py`` is also saved as NAME.py, for later blocks to import.

Commands run with the interpreter's own bin directory first on PATH, so ``vwmerge`` and
``python`` are the ones under test. A block that cannot run here is marked in the Markdown right
above it: ``<!-- doctest: skip (reason) -->``, or ``<!-- doctest: without "TEXT" ... (reason) -->``
to run it with each TEXT removed. Blocks in other languages (``text``, ``json``, ``toml``) are not
run, but may not hide a command: a line starting with ``$ `` there fails the test. See
docs/testing.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from helpers import vwtrain
from helpers.models import EXAMPLE_PLUGIN_ENTRY_POINT
from vwmerge.contract.registry import BLOCK_ENV

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"sh", "console", "python"}
NOT_RUN = {"text", "json", "toml"}

#: Parts of an output that change from run to run, normalized in the docs and in real output alike.
VARIABLE: list[tuple[str, str]] = [
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", "<TIME>"),  # log timestamps
    (r"\b(\w+_s|seconds)(\"?[=:]\s*)[-+.\de]+", r"\1\2<SECONDS>"),  # load_s=0.093, "seconds": 0.012
    (r"\b(\w*peak_rss_\w+)(\"?[=:]\s*)[-+.\de]+", r"\1\2<MEMORY>"),  # peak_rss_mib=43.0, "peak_rss_bytes": N
]
FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*doctest:\s*(.*?)\s*-->$")


@attrs.frozen
class Block:
    path: Path
    line: int  #: of the opening fence, 1-based
    lang: str
    text: str
    directive: str | None

    @property
    def where(self) -> str:
        name = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name
        return f"{name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"{path.name}:{start + 1}: unclosed code block"
        i += 1
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        d = DIRECTIVE.match(prev.strip())
        out.append(Block(path, start + 1, m.group(1), "\n".join(body), d.group(1) if d else None))
    return out


def commands(text: str) -> list[str]:
    """The commands of an ``sh`` block: one per line, ``\\`` continues a line."""
    out, pending = [], ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        cmd = (pending + line).strip()
        pending = ""
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
    return out


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines and the output lines that follow each."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].strip(), []))
        else:
            assert steps, f"console output before any '$ ' command: {line!r}"
            steps[-1][1].append(line)
    return steps


def apply_directive(block: Block) -> str | None:
    """The text to run, or None when the block is marked skip (which must give a reason)."""
    if block.directive is None:
        return block.text
    m = re.fullmatch(r"skip\s*\((.+)\)", block.directive)
    if m:
        return None
    m = re.fullmatch(r"without((?:\s+\"[^\"]+\")+)\s*\((.+)\)", block.directive)
    assert m, f'{block.where}: unknown doctest directive {block.directive!r} (skip (reason) / without "TEXT" (reason))'
    text = block.text
    for removed in re.findall(r"\"([^\"]+)\"", m.group(1)):
        assert removed in text, f"{block.where}: {removed!r} is not in the block"
        text = text.replace(removed, "")
    return text


def normalize(text: str) -> str:
    for pattern, repl in VARIABLE:
        text = re.sub(pattern, repl, text)
    return text


def output_matches(expected: list[str], actual: str) -> bool:
    """Line by line after :func:`normalize`; an expected line ``...`` matches any lines."""
    want = [normalize(line).rstrip() for line in expected]
    while want and not want[-1]:
        want.pop()
    parts = [r"(?:[^\n]*\n)*?" if w.strip() == "..." else re.escape(w) + r"\n" for w in want]
    got = (
        "".join(normalize(line).rstrip() + "\n" for line in actual.rstrip("\n").splitlines()) if actual.strip() else ""
    )
    return re.fullmatch("".join(parts), got) is not None


# --------------------------------------------------------------------------------------------
# The files the docs name.
VW_ARGS = "--cb_explore_adf --epsilon 0.05 -q UA"


def _load_examples_module() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "examples" / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def doc_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files every document's examples start from (trained by VW once per session)."""
    return make_doc_files(tmp_path_factory.mktemp("doc_files"))


def make_doc_files(root: Path) -> Path:
    """Write the files the docs name into ``root`` (``python tests/test_docs_examples.py DIR``
    does it by hand, to try an example before writing it down)."""
    ex = _load_examples_module()
    day = ex.day_examples  # type: ignore[attr-defined]
    (root / "examples").mkdir()
    for name in ("day1.model", "day2.model", "day3.model"):
        shutil.copy(ROOT / "examples" / name, root / "examples" / name)
        shutil.copy(ROOT / "examples" / name, root / name)
    base = vwtrain.train_on(f"{VW_ARGS} -b 18", day(10, 60), root / "base.model")
    for name, seed, n in (("a.model", 11, 40), ("b.model", 12, 30), ("c.model", 13, 20)):
        vwtrain.train_on("", day(seed, n), root / name, initial=base)
    vwtrain.train_on(f"{VW_ARGS} -b 17", day(14, 30), root / "b17.model")
    vwtrain.train_on("--cb_explore_adf --epsilon 0.05 -b 18", day(15, 30), root / "noq.model")
    data = (root / "a.model").read_bytes()
    (root / "cut.model").write_bytes(data[:-7])
    edited = bytearray(data)
    edited[data.index(b"--cb_explore_adf")] ^= 0x20  # one letter of the options string
    (root / "edited.model").write_bytes(bytes(edited))
    (root / "models").mkdir()
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["VWMERGE_LOG_FORMAT"] = "console"  # what a terminal shows (no colors: not a TTY)
    env.pop("VWMERGE_LOG_LEVEL", None)
    # the example plugin package is installed (make install), as the docs' samples assume
    env[BLOCK_ENV] = ",".join(n for n in env.get(BLOCK_ENV, "").split(",") if n and n != EXAMPLE_PLUGIN_ENTRY_POINT)
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as written
    return env


def _run(cmd: list[str] | str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        executable="/bin/bash" if isinstance(cmd, str) else None,
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=600,
    )


def run_block(block: Block, cwd: Path, index: int) -> list[str]:
    """Run one block; the problems found (empty: it does what the doc says)."""
    text = apply_directive(block)
    if text is None:
        return []
    problems = []
    if block.lang == "sh":
        for cmd in commands(text):
            done = _run(cmd, cwd)
            if done.returncode != 0:
                problems.append(f"{block.where}: `{cmd}` exited {done.returncode}:\n{done.stdout}")
    elif block.lang == "console":
        for cmd, expected in console_steps(text):
            done = _run(cmd, cwd)
            want_rc = 1 if any(line.startswith("Error: ") for line in expected) else 0
            if done.returncode != want_rc:
                problems.append(f"{block.where}: `{cmd}` exited {done.returncode}, not {want_rc}:\n{done.stdout}")
            elif not output_matches(expected, done.stdout):
                problems.append(
                    f"{block.where}: `{cmd}` printed\n{done.stdout}\n--- the doc shows ---\n" + "\n".join(expected)
                )
    elif block.lang == "python":
        first = text.splitlines()[0] if text.strip() else ""
        named = re.fullmatch(r"#\s*(\w+\.py)\s*", first)
        if named:  # a module the doc names: later blocks import it
            (cwd / named.group(1)).write_text(text)
        script = cwd / f"_doc_snippet_{index}.py"
        script.write_text(text)
        done = _run([sys.executable, str(script)], cwd)
        if done.returncode != 0:
            problems.append(f"{block.where}: the Python block exited {done.returncode}:\n{done.stdout}")
    return problems


# --------------------------------------------------------------------------------------------
ALL_BLOCKS = [b for doc in DOCS for b in blocks(doc)]


def documented_commands() -> list[str]:
    """Every command and snippet the tests run (what docs/testing.md counts)."""
    out: list[str] = []
    for b in ALL_BLOCKS:
        text = apply_directive(b) if b.lang in RUN else None
        if text is None:
            continue
        if b.lang == "sh":
            out += commands(text)
        elif b.lang == "console":
            out += [cmd for cmd, _ in console_steps(text)]
        else:
            out.append(f"<python block {b.where}>")
    return out


def test_the_docs_have_examples() -> None:
    run = documented_commands()
    assert len(run) >= 40, len(run)
    runnable = [b for b in ALL_BLOCKS if b.lang in RUN and apply_directive(b) is not None]
    assert {b.path.name for b in runnable} >= {"README.md", "cli.md", "scale.md", "plugins.md"}


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.where)
def test_every_block_is_labelled_and_no_command_hides(block: Block) -> None:
    assert block.lang, f"{block.where}: label the block (sh, console, python to run it; text, json, toml not)"
    assert block.lang in RUN | NOT_RUN, f"{block.where}: unknown block language {block.lang!r}"
    if block.lang in NOT_RUN:
        assert block.directive is None, f"{block.where}: a doctest directive on a block that is not run"
        hidden = [line for line in block.text.splitlines() if line.startswith("$ ")]
        assert not hidden, f"{block.where}: a command in a {block.lang} block is never run: {hidden[0]!r}"
    if block.directive is not None:
        assert re.fullmatch(r"(skip|without(\s+\"[^\"]+\")+)\s*\(.+\)", block.directive), (
            f"{block.where}: a doctest directive needs a reason in parentheses"
        )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_examples_run_and_print_what_the_doc_shows(doc: Path, doc_files: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(doc_files, work)
    problems: list[str] = []
    for i, block in enumerate(blocks(doc)):
        if block.lang in RUN:
            problems += run_block(block, work, i)
    assert not problems, "\n\n".join(problems)


# --------------------------------------------------------------------------------------------
# The checker itself: it must be able to fail.
def test_output_matching_rules() -> None:
    assert output_matches(["a", "...", "z"], "a\nb\nc\nz\n")
    assert output_matches(["a", "...", "z"], "a\nz\n")
    assert not output_matches(["a", "z"], "a\nb\nz\n")
    assert not output_matches(["a"], "a\nb\n")
    assert output_matches(["t 2026-11-23T15:31:53.738377Z load_s=0.093"], "t 2027-01-01T00:00:00.1Z load_s=12.5\n")
    assert not output_matches(["bytes_read=2394"], "bytes_read=2395\n")
    assert output_matches(['  "seconds": 0.004,'], '  "seconds": 0.01610209099999338,\n')
    assert output_matches(['"peak_rss_bytes": 46338048'], '"peak_rss_bytes": 1\n')
    assert output_matches([], "")
    assert not output_matches([], "something\n")


def test_an_unmarked_unrunnable_block_fails(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "```sh\nvwmerge merge -o out.model s3://bucket/a.model s3://bucket/b.model\n```\n\n"
        "<!-- doctest: skip (needs S3) -->\n```sh\nvwmerge merge -o s3://b/o.model s3://b/a.model\n```\n"
        "\n```console\n$ vwmerge --version\nvwmerge 0.0.0-not-this\n```\n"
    )
    found = blocks(doc)
    assert [b.directive for b in found] == [None, "skip (needs S3)", None]
    assert run_block(found[0], tmp_path, 0)  # fails: no such bucket / fsspec protocol
    assert run_block(found[1], tmp_path, 1) == []  # marked
    assert run_block(found[2], tmp_path, 2)  # wrong output


if __name__ == "__main__":
    print(make_doc_files(Path(sys.argv[1])))
