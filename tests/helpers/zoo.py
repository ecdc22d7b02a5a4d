"""Training and predicting VW models through data files (passes, lda's unlabeled text, IGL's
dsjson), and :class:`Zoo`, the session cache of two models per configuration."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import attrs
import vowpalwabbit
import vwmerge

from helpers import vwtrain
from helpers.configs import Cfg
from helpers.models import INPUT_SEEDS, INPUT_SIZES, Models


def _igl_lines(rng: random.Random, n: int) -> list[str]:
    """Interaction-grounded examples: observations instead of rewards (dsjson only)."""
    users, actions = ["Tom", "Anna", "Ben"], ["politics", "sports", "music", "food"]
    lines = []
    for _ in range(n):
        user, chosen = rng.choice(users), rng.randrange(len(actions))
        click = (user == "Tom") == (chosen % 2 == 0)
        ex = {
            "_label_cost": 0, "_label_probability": 0.25, "_label_Action": chosen + 1, "_labelIndex": chosen,
            "o": [{"v": {"v=click" if click else "v=none": 1}, "_definitely_bad": False}],
            "a": list(range(len(actions))),
            "c": {"User": {f"user={user}": 1, f"time={rng.choice(['am', 'pm'])}": 1},
                  "_multi": [{"Action": {f"action={a}": 1}} for a in actions]},
            "p": [0.25] * 4, "_original_label_cost": 0,
        }  # fmt: skip
        lines.append(json.dumps(ex))
    return lines


def _lines(cfg: Cfg, seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    if cfg.train == "dsjson":
        return _igl_lines(rng, n)
    return [ex if isinstance(ex, str) else "\n".join(ex) + "\n" for ex in vwtrain._examples(cfg.args, rng, n)]


def train_file(cfg: Cfg, seed: int, n: int, path: Path) -> Path:
    data = path.with_suffix(".txt")
    data.write_text("\n".join(_lines(cfg, seed, n)) + "\n")
    passes = f"--passes 3 -c -k --cache_file {path.with_suffix('.cache')}" if cfg.train == "passes" else ""
    ws = vowpalwabbit.Workspace(f"{cfg.args} -d {data} {passes} -f {path} --quiet", enable_logging=False)
    ws.finish()
    return path


def predict_file(model: Path, cfg: Cfg, lines: list[str], tmp: Path) -> list[str]:
    """VW's predictions file for ``lines`` (lda topic vectors, dsjson actions...)."""
    data, preds = tmp / "predict.txt", tmp / "predictions.txt"
    data.write_text("\n".join(lines) + "\n")
    dsjson = "--dsjson" if cfg.train == "dsjson" else ""
    ws = vowpalwabbit.Workspace(
        f"-i {model} -t {dsjson} -d {data} -p {preds} --quiet {cfg.extra}", enable_logging=False
    )
    ws.finish()
    return preds.read_text().split("\n")


@attrs.define
class Zoo:
    """Session cache: two VW models per configuration (the conftest seeds and sizes)."""

    models: Models
    root: Path
    cache: dict[tuple[str, int], Path] = attrs.field(factory=dict)

    def model(self, cfg: Cfg, i: int) -> Path:
        seed, n = INPUT_SEEDS[i], INPUT_SIZES[i]
        if cfg.train == "learn":
            return self.models.train(cfg.args, seed, n)
        key = (cfg.args, i)
        if key not in self.cache:
            slug = "".join(ch if ch.isalnum() else "_" for ch in cfg.args)
            self.cache[key] = train_file(cfg, seed, n, self.root / f"{slug}.{i}.model")
        return self.cache[key]

    def pair(self, cfg: Cfg) -> tuple[Path, Path]:
        return self.model(cfg, 0), self.model(cfg, 1)

    def load(self, cfg: Cfg, path: Path) -> vwmerge.Workspace:
        # VW 9.11.9's svrg diverges on the first input's data (every weight NaN); vwmerge refuses
        # such a file by default (tests/test_hostile.py), the zoo takes it as VW wrote it.
        return vwmerge.load(path, vw_options=cfg.vw_options or None, allow_nonfinite=cfg.args == "--svrg")

    def predict(self, cfg: Cfg, path: Path, tmp: Path) -> list[Any]:
        if cfg.train in ("file", "dsjson"):
            return predict_file(path, cfg, _lines(cfg, 999, 12), tmp)
        return vwtrain.predict(path, vwtrain.test_examples(cfg.args, n=12), cfg.extra)
