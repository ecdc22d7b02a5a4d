"""Coverage-guided fuzzing of the library with atheris (libFuzzer), seeded with real VW models.

    python tests/fuzz/atheris_target.py CORPUS_DIR -max_total_time=600 -rss_limit_mb=2048

CORPUS_DIR is filled with the harness's seed models on the first run (libFuzzer adds the inputs
that reach new code to it). The custom mutator alternates the harness's structured mutations
(hostile options and header fields with a valid checksum, hostile section fields, NaN rows) with
libFuzzer's own byte mutations, so coverage feedback also works past the header checksum. Every
input goes through :func:`harness.check_library`; a finding raises, and libFuzzer stops and
saves the input as ``crash-<sha1>`` (reproduce: run this script with that file as argument).
The structured campaign (``run.py``, ``make fuzz``) is the one the project runs for 30 minutes;
this is its coverage-guided companion.
"""

from __future__ import annotations

import random
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import atheris  # noqa: E402

with atheris.instrument_imports():
    import vwmerge

    vwmerge.default_registry().plugins()  # imports every plugin module (entry points) under instrumentation

import harness  # noqa: E402

SEED_DIR = Path(tempfile.gettempdir()) / "vwmerge-atheris-seeds"
SEEDS: list[harness.Seed] = []
NAMES: list[str] = []
WORKDIR = Path(tempfile.mkdtemp(prefix="vwmerge-atheris-"))


def mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.5 and harness.parse(data) is not None:
        out = harness.mutate(data, rng, SEEDS, NAMES)
    else:
        out = atheris.Mutate(data, max_size)
    return out[:max_size]


def one_input(data: bytes) -> None:
    try:
        harness.check_library(data, SEEDS[len(data) % len(SEEDS)], WORKDIR)
    except harness.Finding as f:
        raise RuntimeError(f"finding {f.signature}: {f.detail}") from f


def main() -> None:
    from vwmerge.cli import logs

    logs.configure("error", "json")
    warnings.simplefilter("ignore")
    SEEDS.extend(harness.build_seeds(SEED_DIR))
    NAMES.extend(harness.option_names(SEEDS))
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-") and Path(a).is_dir()), None)
    if corpus is not None and not any(corpus.iterdir()):
        for s in SEEDS:
            (corpus / s.path.name).write_bytes(s.data)
    atheris.Setup(sys.argv, one_input, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
