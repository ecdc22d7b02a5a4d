"""The dask executor and fsspec URLs, on a real dask.distributed LocalCluster on loopback.

Skipped only when the ``dask`` extra is not installed; CI installs it (``make install``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vwmerge
import vwmerge.model.files
from helpers.models import Models
from helpers.streamcheck import assert_within_rounding
from vwmerge.engine.streaming import merge_files

distributed = pytest.importorskip("distributed")
fsspec = pytest.importorskip("fsspec")

SEEDS = (31, 32, 33, 34, 35)
SIZES = (44, 30, 52, 38, 61)


def _inputs(models: Models, args: str, k: int = 5) -> list[Path]:
    return [models.train(args, s, n) for s, n in zip(SEEDS[:k], SIZES[:k], strict=True)]


@pytest.fixture(scope="module", params=[False, True], ids=["threads", "processes"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Two workers on 127.0.0.1: threads in this process, or two worker processes."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=request.param,
            host="127.0.0.1",
            protocol="tcp",
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.mark.parametrize("weights", [None, (2.0, 1.0, 4.0, 1.0, 3.0)], ids=["counts", "explicit"])
@pytest.mark.parametrize(
    "args",
    ["", "--sgd", "--cb_explore_adf", "-b 4", "--random_weights -b 12"],
    ids=["default", "sgd", "cb_adf", "dense", "random_weights"],
)
def test_dask_equals_the_sequential_merge_within_float32_rounding(
    client: Any, models: Models, tmp_path: Path, args: str, weights: tuple[float, ...] | None
) -> None:
    paths = _inputs(models, args)
    merge_files(paths, tmp_path / "seq.model", weights=weights, progress=False)
    merge_files(paths, tmp_path / "dask.model", weights=weights, executor="dask", scheduler=client, progress=False)
    assert_within_rounding(tmp_path / "seq.model", tmp_path / "dask.model", paths, weights=weights)


def test_dask_base_mode(client: Any, models: Models, tmp_path: Path) -> None:
    base, inputs = models.resumed("--cb_explore_adf")
    merge_files(inputs, tmp_path / "seq.model", base=base, progress=False)
    merge_files(inputs, tmp_path / "dask.model", base=base, scheduler=client, progress=False)
    assert_within_rounding(tmp_path / "seq.model", tmp_path / "dask.model", inputs, base=base)


def test_dask_reports_a_model_error_with_its_file(client: Any, models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "", 3)
    broken = tmp_path / "truncated.model"
    broken.write_bytes(paths[2].read_bytes()[:-3])
    with pytest.raises(vwmerge.ModelFormatError, match="truncated"):
        merge_files([*paths[:2], broken], tmp_path / "out.model", scheduler=client, progress=False)
    assert not (tmp_path / "out.model").exists()


def test_file_urls_in_and_out(client: Any, models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "--cb_explore_adf", 3)
    urls = [p.resolve().as_uri() for p in paths]
    out = tmp_path / "merged.model"
    merge_files(urls, out.as_uri(), progress=False)
    assert out.read_bytes() == vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()
    merge_files(urls, (tmp_path / "dask.model").as_uri(), scheduler=client, progress=False)
    assert_within_rounding(out, tmp_path / "dask.model", paths)


@pytest.mark.parametrize("head", [16, 64, 1 << 20])
def test_remote_protocol_urls(models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: int) -> None:
    """fsspec's in-memory file system stands in for s3://: inputs copied out, output written back.

    The scan fetches the file's head first; 16 bytes end inside the header and 64 inside the gd
    section (the parse then fails on, or runs into, the unfetched zeros): more must be fetched.
    """
    monkeypatch.setattr(vwmerge.model.files, "HEAD_BYTES", head)
    memory = fsspec.filesystem("memory")
    paths = _inputs(models, "", 3)
    urls = []
    for i, p in enumerate(paths):
        memory.pipe(f"/vwmerge-test/in{i}.model", p.read_bytes())
        urls.append(f"memory://vwmerge-test/in{i}.model")
    try:
        report = merge_files(urls, "memory://vwmerge-test/out.model", progress=False)
        data = memory.cat_file("/vwmerge-test/out.model")
        assert data == vwmerge.merge([vwmerge.load(p) for p in paths]).to_bytes()
        assert report.bytes_written == len(data)
        assert [p for p in memory.ls("/vwmerge-test", detail=False) if "tmp" in p] == []
    finally:
        memory.rm("/vwmerge-test", recursive=True)


def test_dask_without_a_scheduler_starts_a_local_cluster(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "--sgd", 4)
    merge_files(paths, tmp_path / "seq.model", progress=False)
    merge_files(paths, tmp_path / "dask.model", executor="dask", jobs=2, progress=False)
    assert_within_rounding(tmp_path / "seq.model", tmp_path / "dask.model", paths)


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def test_cli_merges_on_a_dask_scheduler(scheduler_address: str, models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "")
    seq, par = tmp_path / "seq.model", tmp_path / "dask.model"
    merge_files(paths, seq, progress=False)
    run = subprocess.run(
        [sys.executable, "-m", "vwmerge", "merge", "--json", "--scheduler", scheduler_address, "-o", par, *paths],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)  # the provenance report: workers hashed the inputs they read
    assert report["bytes_written"] == par.stat().st_size
    assert report["settings"]["executor"] == "dask"
    digests = [(i["size"], i["sha256"]) for i in report["inputs"]]
    assert digests == [(p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
    assert report["output"]["sha256"] == hashlib.sha256(par.read_bytes()).hexdigest()
    assert_within_rounding(seq, par, paths)


def test_cli_reports_an_unreachable_scheduler(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "", 2)
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}  # dask retries until then
    run = subprocess.run(
        [sys.executable, "-m", "vwmerge", "merge", "--scheduler", "tcp://127.0.0.1:9", "-o", tmp_path / "m", *paths],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert run.returncode == 1
    assert "cannot reach the dask scheduler" in run.stderr


def test_cli_dry_run_reads_urls(models: Models, tmp_path: Path) -> None:
    paths = _inputs(models, "--cb_explore_adf", 2)
    run = subprocess.run(
        [sys.executable, "-m", "vwmerge", "check", "--json", *(p.resolve().as_uri() for p in paths)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan["ok"]
    assert [m["size"] for m in plan["models"]] == [p.stat().st_size for p in paths]
