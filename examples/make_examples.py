"""Maintainer script: regenerate the example models shipped in ``examples/``.

    python examples/make_examples.py        # or: make examples

Needs the real Vowpal Wabbit (``pip install vowpalwabbit==9.11.9``, a test dependency; vwmerge
itself never imports it). The story: a news site picks one of three articles for each visitor
with a contextual bandit (``--cb_explore_adf``) and trains one model per day of logged traffic.
``day1.model``, ``day2.model`` and ``day3.model`` are those three days; they saw different amounts
of traffic, so VW's example-count weighting gives them different weights. Merging them gives
the model the site would have had after training on all three days' data::

    vwmerge merge -o merged.model examples/day*.model && vwmerge inspect merged.model

The data are synthetic but deterministic (fixed seeds), so re-running the script rewrites the same
bytes as long as VW's version is the same.
"""

from __future__ import annotations

import random
from pathlib import Path

import vowpalwabbit

HERE = Path(__file__).resolve().parent
#: Same configuration for every day: models can only be merged if it matches.
VW_ARGS = "--cb_explore_adf --epsilon 0.05 -q UA -b 18"
TOPICS = ("sports", "politics", "tech")
#: (file name, seed, visitors logged that day)
DAYS = (("day1.model", 1, 120), ("day2.model", 2, 80), ("day3.model", 3, 50))


def click_probability(time_of_day: str, device: str, topic: str) -> float:
    """The hidden truth the bandit learns: who reads what, when."""
    base = {"sports": 0.3, "politics": 0.2, "tech": 0.25}[topic]
    if time_of_day == "morning" and topic == "politics":
        base += 0.4
    if time_of_day == "evening" and topic == "sports":
        base += 0.4
    if device == "mobile" and topic == "tech":
        base += 0.2
    return min(base, 0.95)


def day_examples(seed: int, visitors: int) -> list[str]:
    """One multi-line ADF example per visitor, logged by a uniformly random policy."""
    rng = random.Random(seed)
    out = []
    for _ in range(visitors):
        time_of_day = rng.choice(("morning", "afternoon", "evening"))
        device = rng.choice(("mobile", "desktop"))
        shown = rng.randrange(len(TOPICS))
        clicked = rng.random() < click_probability(time_of_day, device, TOPICS[shown])
        lines = [f"shared |User time={time_of_day} device={device}"]
        for i, topic in enumerate(TOPICS):
            label = f"0:{0.0 if clicked else 1.0}:{1 / len(TOPICS):.4f} " if i == shown else ""
            lines.append(f"{label}|Article topic={topic} words:{rng.randint(300, 1500) / 1000}")
        out.append("\n".join(lines))
    return out


def train_day(path: Path, seed: int, visitors: int) -> None:
    ws = vowpalwabbit.Workspace(f"{VW_ARGS} --quiet", enable_logging=False)
    try:
        for example in day_examples(seed, visitors):
            ws.learn(example)
        ws.save(str(path))
    finally:
        ws.finish()


def main() -> None:
    for name, seed, visitors in DAYS:
        path = HERE / name
        train_day(path, seed, visitors)
        print(f"wrote {path.relative_to(HERE.parent)}: {visitors} visitors, {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
