"""A write that fails midway leaves no temporary file and an existing OUT byte for byte unchanged.

Two real failures: the file-size limit of the process (``RLIMIT_FSIZE``, set in the child before
it runs: the kernel refuses the write with EFBIG once the temporary file reaches the limit, as a
full disk refuses it with ENOSPC), for the command line and for ``Workspace.save``; and an
exception raised by the code that produces the bytes, after some of them are written (a plugin's
bug, or Ctrl-C), for local paths and fsspec ``memory://`` URLs.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import vwmerge
from vwmerge.engine.streaming import merge_files
from vwmerge.format.binio import Writer
from vwmerge.format.weights import WeightTable
from vwmerge.model.workspace import write_workspace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INPUTS = [EXAMPLES / f"day{i}.model" for i in (1, 2, 3)]
OLD = b"an older merged model that must survive a failed merge\n" * 40


def _limit(nbytes: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return preexec


def _limit_inside_the_rows() -> int:
    """A limit the output passes in the middle of its weight rows: the file exists and has bytes."""
    merged = vwmerge.merge([vwmerge.load(p) for p in INPUTS]).to_bytes()
    header = len(vwmerge.load(INPUTS[0]).header.to_bytes())
    assert len(merged) > header + 100
    return (header + len(merged)) // 2


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "out.model")


@pytest.mark.parametrize("existing", [True, False], ids=["OUT exists", "no OUT"])
def test_cli_write_beyond_the_file_size_limit(tmp_path: Path, existing: bool) -> None:
    out = tmp_path / "out.model"
    if existing:
        out.write_bytes(OLD)
    done = subprocess.run(
        [sys.executable, "-m", "vwmerge", "merge", "-o", str(out), *map(str, INPUTS)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit(_limit_inside_the_rows()),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: {out}: cannot write the merged model: File too large"], done.stderr
    assert _leftovers(tmp_path) == []  # no temporary file
    if existing:
        assert out.read_bytes() == OLD
    else:
        assert not out.exists()
    # the same merge without the limit succeeds: the limit was the only problem
    ok = subprocess.run([sys.executable, "-m", "vwmerge", "merge", "-o", str(out), *map(str, INPUTS)], timeout=300)
    assert ok.returncode == 0 and vwmerge.load(out)


SAVE = """
import sys, vwmerge
ws = vwmerge.merge([vwmerge.load(p) for p in sys.argv[2:]])
try:
    ws.save(sys.argv[1])
except vwmerge.VWMergeError as e:
    print(type(e).__name__, e)
    sys.exit(3)
"""


def test_workspace_save_beyond_the_file_size_limit(tmp_path: Path) -> None:
    out = tmp_path / "out.model"
    out.write_bytes(OLD)
    done = subprocess.run(
        [sys.executable, "-c", SAVE, str(out), *map(str, INPUTS)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit(_limit_inside_the_rows()),
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == f"MergeError {out}: cannot write the merged model: File too large"
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


class Boom(Exception):
    pass


def _failing_rows(exc: BaseException) -> Callable[..., None]:
    """WeightTable.write that writes the first half of the rows, then raises ``exc``."""
    original = WeightTable.write

    def write(self: WeightTable, w: Writer, chunk_rows: int = 1 << 20) -> None:
        half = WeightTable(self.index[: len(self) // 2], self.values[: len(self) // 2], self.bits, self.columns)
        original(half, w, chunk_rows)
        assert getattr(w, "written", 1) > 0  # bytes reached the file before the failure
        raise exc

    return write


@pytest.mark.parametrize("exc", [Boom("a plugin's bug"), KeyboardInterrupt()], ids=["exception", "interrupt"])
def test_exception_inside_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    merged = vwmerge.merge([vwmerge.load(p) for p in INPUTS])
    out = tmp_path / "out.model"
    out.write_bytes(OLD)
    monkeypatch.setattr(WeightTable, "write", _failing_rows(exc))
    with pytest.raises(type(exc)):
        merged.save(out)
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path) == []
    with pytest.raises(type(exc)):
        merge_files([str(p) for p in INPUTS], str(out))
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_exception_inside_the_writer_to_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    fsspec = pytest.importorskip("fsspec")
    memfs = fsspec.filesystem("memory")
    url = "memory://write-failures/out.model"
    memfs.pipe("/write-failures/out.model", OLD)
    merged = vwmerge.merge([vwmerge.load(p) for p in INPUTS])
    monkeypatch.setattr(WeightTable, "write", _failing_rows(Boom("midway")))
    try:
        with pytest.raises(Boom):
            write_workspace(url, merged)
        assert memfs.cat("/write-failures/out.model") == OLD
        assert [p.rsplit("/", 1)[-1] for p in memfs.ls("/write-failures", detail=False)] == ["out.model"]
    finally:
        memfs.rm("/write-failures", recursive=True)


def test_nothing_but_the_output_is_written(tmp_path: Path) -> None:
    """The success path: one file, the merged model; mode as a plain open() would give it."""
    out = tmp_path / "out.model"
    vwmerge.merge([vwmerge.load(p) for p in INPUTS]).save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.model"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
