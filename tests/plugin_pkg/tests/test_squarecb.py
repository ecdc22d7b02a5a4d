"""The example plugin's own tests, written with vwmerge's kit for plugin authors (vwmerge.testing).

Run from this package (``pytest``: its pyproject.toml passes ``-p vwmerge.testing``) or as part of
vwmerge's suite (whose tests/conftest.py declares ``pytest_plugins = ["vwmerge.testing"]``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import vwmerge_example_plugin as plugin
from vwmerge.testing import CliResult, Kit
from vwmerge_example_plugin import REDUCTION, SquareCbState

OPTIONS = "--cb_explore_adf --squarecb"
U64 = 2**64


@pytest.fixture
def kit(vwmerge_kit: Callable[..., Kit]) -> Kit:
    return vwmerge_kit(plugin)  # registered ad hoc if it is not installed


def model(kit: Kit, counter: int | None, examples: float = 1.0, version: str = "9.11.9") -> bytes:
    return kit.make_model(OPTIONS, {REDUCTION: SquareCbState(counter)}, examples=examples, version=version)


def test_round_trip(kit: Kit) -> None:
    for counter in (0, 7, U64 - 1):
        assert kit.assert_roundtrip(model(kit, counter)).state(REDUCTION).counter == counter
    # files older than 8.11.0 have no counter bytes
    assert kit.assert_roundtrip(model(kit, None, version="8.10.0")).state(REDUCTION).counter is None


def test_merge_properties(kit: Kit) -> None:
    """The counter counts learn calls: k copies hold k times it, and every input counts
    whatever its weight (u64 arithmetic wraps)."""
    models = [model(kit, c, examples=e) for c, e in ((3, 2.0), (5, 1.0), (U64 - 2, 4.0))]
    kit.assert_merge_properties(
        models,
        REDUCTION,
        base=model(kit, 2, examples=0.5),
        copies=lambda state, k: SquareCbState(state.counter * k % U64),
        one_hot=lambda states, j: SquareCbState(sum(s.counter for s in states) % U64),
    )


def test_the_cli_merges_with_the_plugin(kit: Kit, vwmerge_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    a, b, out = tmp_path / "a.model", tmp_path / "b.model", tmp_path / "out.model"
    a.write_bytes(model(kit, 3))
    b.write_bytes(model(kit, 4))
    assert "vwmerge-example-plugin" in vwmerge_cli("plugins").check().stdout
    vwmerge_cli("merge", "-o", out, a, b).check()
    assert kit.load(out).state(REDUCTION).counter == 7
