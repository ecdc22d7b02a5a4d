"""The short, deterministic fuzz run of the normal test suite (the long one is ``make fuzz``).

A fixed RNG seed mutates real VW models of several stacks; every input goes through load,
to_bytes, reload, merge, the dry-run plan, the streaming merge and the inspect rendering, and a
few through the CLI. Only :class:`vwmerge.VWMergeError` may escape; anything else fails the test
with the finding's signature. Budget: well under 60 s.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import harness
import pytest

#: Library inputs and CLI inputs (each CLI input runs 5 commands) of the short run.
LIBRARY_INPUTS = 150
CLI_EVERY = 75


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[harness.Seed]:
    return harness.build_seeds(tmp_path_factory.mktemp("fuzz-seeds"), harness.SMOKE_STACKS)


def test_mutations_keep_most_headers_valid(seeds: list[harness.Seed]) -> None:
    """The structured mutations are worth running: most of them get past the header checksum."""
    import random

    rng = random.Random(3)
    names = harness.option_names(seeds)
    parsed = sum(harness.parse(harness.mutate(s.data, rng, seeds, names)) is not None for s in seeds * 20)
    assert parsed > 0.6 * len(seeds) * 20


def test_short_fuzz_run_finds_nothing(seeds: list[harness.Seed]) -> None:
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's overflow warnings on hostile floats
        stats = harness.run_campaign(seeds, seed=20261205, count=LIBRARY_INPUTS, cli_every=CLI_EVERY)
    assert stats.library_execs == LIBRARY_INPUTS
    assert stats.cli_execs > 0
    assert stats.findings == {}, "\n".join(f"{k}: {v}" for k, v in stats.findings.items())
    assert time.monotonic() - start < 60


def test_the_property_catches_a_non_vwmerge_error(tmp_path: Path, seeds: list[harness.Seed]) -> None:
    """The harness is not vacuous: an exception other than VWMergeError is a finding."""
    with pytest.raises(harness.Finding) as info:
        harness._guard("load", lambda: 1 / 0)
    assert info.value.kind == "ZeroDivisionError"
    with pytest.raises(harness.Finding) as info:
        harness.check_cli(["inspect", "--no-such-flag", str(seeds[0].path)], [seeds[0].path.name])
    assert info.value.kind == "exit-2"
