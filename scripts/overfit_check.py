"""Screen a training change: train on 200 speechocean762 clips from a run's settings and watch the losses.

    python scripts/overfit_check.py runs/recipe-default/run /tmp/overfit 200 model.frame_stack=6 ctc_weight=1.0

Starts from the run's config.json with augmentation off, a 50-step warmup and no decay; KEY=VALUE overrides (JSON
values, `model.` for model settings) follow. Per-token and per-utterance losses go to OUT/tensorboard.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import sys
from pathlib import Path

from rnnt.config import TrainConfig, config_from_dict
from rnnt.data.manifest import read_manifest, write_manifest
from rnnt.training.trainer import Trainer


def split_overrides(items) -> tuple[dict, dict]:
    """KEY=VALUE strings (JSON values; a value ending in .json stays a path) -> (model settings, other settings)."""
    model: dict = {}
    other: dict = {}
    for item in items:
        key, value = item.split("=", 1)
        value = value if value.endswith(".json") else json.loads(value)
        (model if key.startswith("model.") else other)[key.removeprefix("model.")] = value
    return model, other


def main(run_dir: str, out: str, steps: str, *overrides: str) -> None:
    base = config_from_dict(TrainConfig, json.loads((Path(run_dir) / "config.json").read_text()))
    real = next(m.split("@")[0] for m in base.train_manifest.split(",") if "real-train" in m)
    clips = [u for u in read_manifest(real) if "fsdd" not in u.audio]
    random.Random(1).shuffle(clips)
    shutil.rmtree(out, ignore_errors=True)
    Path(out).mkdir(parents=True)
    write_manifest(f"{out}/clips.jsonl", clips[:200])
    train = dict(train_manifest=f"{out}/clips.jsonl", dev_manifest="", spec_augment=False, speed_perturb=False,
                 augment_share=0.0, warmup_steps=50, steps=int(steps), decay_steps=100_000,
                 checkpoint_every=100_000, log_every=10)
    model, extra = split_overrides(overrides)
    train.update(extra)
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, **model), **train)
    Trainer(cfg, f"{out}/run", progress=False).train()


if __name__ == "__main__":
    main(*sys.argv[1:])
