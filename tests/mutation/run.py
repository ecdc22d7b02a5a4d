"""Mutation testing: plant each bug of ``mutants.py`` in a copy of the tree, run the tests that
should catch it, report which were caught (killed) and which were not (survived).

    python tests/mutation/run.py                 # every mutant (make mutation)
    python tests/mutation/run.py fs-in-place ... # some, by id
    python tests/mutation/run.py --list

The working tree is never touched: its tracked and untracked-but-not-ignored files are copied to
a temporary directory, and the packages are imported from there (a ``site`` directory built from
pyproject.toml's package-dir mapping is put first on PYTHONPATH, ahead of the editable install,
for the test process and every ``python -m vwmerge`` it starts). Before any mutant, each test
subset used must pass on the unmutated copy. Each mutant then runs its subsets with ``-x`` until
one fails (killed) or all pass (survived). Exit status 0 when the score reaches ``--target``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import FILES, FILES_FLAT, MUTANTS, TESTS, Mutant

ROOT = Path(__file__).resolve().parents[2]


def copy_tree(dest: Path, rev: str | None = None) -> Path:
    """The repository's files (git's view: tracked plus untracked, not ignored) under ``dest``;
    with ``rev``, that commit's files instead (to measure the score of an older suite)."""
    tree = dest / "tree"
    if rev is not None:
        tree.mkdir()
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return tree
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = ROOT / name
        if not src.is_file():
            continue
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return tree


def package_dirs(pyproject: str) -> dict[str, str]:
    """``[tool.setuptools.package-dir]`` of pyproject.toml (no tomllib: Python 3.10 has none)."""
    out: dict[str, str] = {}
    inside = False
    for line in pyproject.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            inside = line == "[tool.setuptools.package-dir]"
        elif inside and "=" in line:
            key, value = (part.strip().strip('"').strip("'") for part in line.split("=", 1))
            out[key] = value
    return out


def build_site(tree: Path, dest: Path) -> Path:
    """A directory whose packages are the copy's, laid out as pyproject.toml maps them."""
    mapping = package_dirs((tree / "pyproject.toml").read_text())
    site = dest / "site"
    site.mkdir()
    for package, directory in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        if not package:
            continue
        link = site.joinpath(*package.split("."))
        if link.exists() or link.is_symlink():
            continue  # already there through its parent's directory
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(tree / directory, target_is_directory=True)
    return site


def environment(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_tests(tree: Path, env: dict[str, str], subset: str, timeout: float) -> tuple[bool, float, str]:
    """Whether the subset passes; its seconds; the last lines of its output."""
    start = time.monotonic()
    files = [a for a in TESTS[subset] if a.endswith(".py")]
    present = [a for a in TESTS[subset] if not a.endswith(".py") or (tree / a).exists()]
    if files and not any(a.endswith(".py") for a in present):
        return True, 0.0, "no such tests in this tree"  # an older suite without them catches nothing
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *present]
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - start, "timeout"
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    if done.returncode == 5:  # pytest: no tests selected (an older suite without them)
        return True, time.monotonic() - start, "no tests selected"
    return done.returncode == 0, time.monotonic() - start, tail


def _file(tree: Path, m: Mutant) -> str:
    """The mutant's file in this tree: the current layout, else the one before the re-layering."""
    return FILES[m.module] if (tree / FILES[m.module]).exists() else FILES_FLAT[m.module]


def applies(tree: Path, m: Mutant) -> bool:
    path = tree / _file(tree, m)
    return path.exists() and path.read_text().count(m.original) == 1


def apply(tree: Path, m: Mutant) -> tuple[Path, str]:
    path = tree / _file(tree, m)
    text = path.read_text() if path.exists() else ""
    found = text.count(m.original)
    if found != 1:
        raise SystemExit(f"mutant {m.id}: its snippet occurs {found} times in {_file(tree, m)}; update mutants.py")
    path.write_text(text.replace(m.original, m.mutated))
    return path, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="mutant ids (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test subset run")
    parser.add_argument("--target", type=float, default=0.9, help="score to reach for exit status 0")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--rev", help="run on this commit's code and tests instead (mutants whose snippet it lacks are skipped)"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the running pytest is killed, the copy of the tree removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [m for m in MUTANTS if not args.ids or m.id in args.ids]
    if args.list:
        for m in MUTANTS:
            print(f"{m.id:32} {FILES[m.module]:32} {m.reason}")
        return 0
    unknown = set(args.ids) - {m.id for m in MUTANTS}
    if unknown:
        raise SystemExit(f"unknown mutant(s): {', '.join(sorted(unknown))}")

    with tempfile.TemporaryDirectory(prefix="vwmerge-mutation-") as tmp:
        tree = copy_tree(Path(tmp), args.rev)
        site = build_site(tree, Path(tmp))
        env = environment(site)
        where = subprocess.run(
            [sys.executable, "-c", "import vwmerge, vwmerge.plugins.gd as g; print(vwmerge.__file__, g.__file__)"],
            env=env, cwd=tree, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert all(p.startswith(str(site)) for p in where.split()), f"vwmerge is not imported from the copy: {where}"
        if args.rev is not None:
            skipped = [m.id for m in chosen if not applies(tree, m)]
            chosen = [m for m in chosen if applies(tree, m)]
            if skipped:
                print(f"not in {args.rev}: {', '.join(skipped)}")
        for m in chosen:  # every snippet is where it should be before anything runs
            path, text = apply(tree, m)
            path.write_text(text)

        subsets = list(dict.fromkeys(s for m in chosen for s in m.tests))
        print(f"baseline: {len(subsets)} test subsets on the unmutated copy", flush=True)
        for subset in subsets:
            ok, secs, tail = run_tests(tree, env, subset, args.timeout)
            print(
                f"  {subset:12} {'pass' if ok else 'FAIL'}  {secs:6.1f} s  {tail if tail.startswith('no ') else ''}",
                flush=True,
            )
            if args.rev is None and tail.startswith("no "):
                raise SystemExit(f"the subset {subset} runs no tests: fix TESTS in mutants.py")
            if not ok:
                raise SystemExit(f"the subset {subset} fails without any mutant:\n{tail}")

        results = []
        for m in chosen:
            path, text = apply(tree, m)
            try:
                status, secs, by = "survived", 0.0, None
                for subset in m.tests:
                    ok, s, tail = run_tests(tree, env, subset, args.timeout)
                    secs += s
                    if not ok:
                        status, by = "killed", subset
                        break
            finally:
                path.write_text(text)
            results.append({"id": m.id, "file": _file(tree, m), "status": status, "by": by, "seconds": round(secs, 1),
                            "reason": m.reason, "equivalent": m.equivalent})  # fmt: skip
            print(f"{status:8} {m.id:32} {secs:6.1f} s  {by or ''}", flush=True)

    killed = sum(r["status"] == "killed" for r in results)
    score = killed / len(results) if results else 1.0
    print(f"\n{killed} of {len(results)} mutants killed: score {score:.0%}")
    for r in results:
        if r["status"] == "survived":
            why = f" — equivalent: {r['equivalent']}" if r["equivalent"] else ""
            print(f"  survived {r['id']} ({r['file']}): {r['reason']}{why}")
    if args.json:
        args.json.write_text(json.dumps({"score": score, "results": results}, indent=2) + "\n")
    return 0 if score >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
