"""`rnnt train`: train or resume a run from a config file plus flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnt.config import TrainConfig


def add_parser(subparsers, name: str) -> None:
    p = subparsers.add_parser(
        name,
        help="train an RNN-T model (resumes a run directory)",
        description="Train an RNN-T model. Re-running the same command resumes from the last checkpoint.",
    )
    p.add_argument("run_dir", help="run directory (checkpoints, config.json, tensorboard, log.jsonl)")
    p.add_argument("--config", help="TrainConfig JSON file (see rnnt/config.py); flags override it")
    p.add_argument("--train-manifest", help="training manifest (JSONL)")
    p.add_argument("--dev-manifest", help="dev manifest (JSONL) for WER during training")
    p.add_argument("--tokenizer", help="tokenizer file (.model sentencepiece or .json chars)")
    p.add_argument("--steps", type=int, help="train until this many steps in total")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set learning_rate=5e-4 --set model.encoder_units=320")
    p.add_argument("--strategy", default="auto", choices=["auto", "default", "mirrored", "multiworker"],
                   help="tf.distribute strategy (auto: TF_CONFIG workers, else local GPUs, else one device)")
    p.add_argument("--logical-cpus", type=int, default=0, help="split the CPU into N logical devices and mirror")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.set_defaults(run=run)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config_dict: dict, overrides: list[str]) -> dict:
    """Apply KEY=VALUE (dotted keys for nested configs) to a config dict."""
    from rnnt.cli import UsageError

    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        target = config_dict
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise UsageError(f"{key}: {part} is not a section")
        target[parts[-1]] = _parse_value(value)
    return config_dict


def build_config(args) -> "TrainConfig":
    from rnnt.cli import UsageError
    from rnnt.config import TrainConfig, config_from_dict, config_to_dict

    import os

    saved = os.path.join(args.run_dir, "config.json")
    data = config_to_dict(TrainConfig())
    if os.path.exists(saved):  # resuming: the run's own settings are the base
        with open(saved, encoding="utf-8") as f:
            data = json.load(f)
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as f:
                loaded = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"cannot read config {args.config}: {e}") from e
        for key, value in loaded.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
    for flag, key in (("train_manifest", "train_manifest"), ("dev_manifest", "dev_manifest"),
                      ("tokenizer", "tokenizer"), ("steps", "steps")):
        if getattr(args, flag) is not None:
            data[key] = getattr(args, flag)
    apply_overrides(data, args.set)
    try:
        return config_from_dict(TrainConfig, data)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from e


def run(args) -> int:
    import os

    from rnnt.cli import UsageError

    cfg = build_config(args)
    resuming = os.path.exists(os.path.join(args.run_dir, "config.json"))
    if not resuming and not cfg.train_manifest:
        raise UsageError("a new run needs --train-manifest (or train_manifest in --config)")
    if not resuming and not cfg.tokenizer:
        raise UsageError("a new run needs --tokenizer (see `rnnt tokenizer train`)")

    from rnnt.training.distribute import make_strategy
    from rnnt.training.trainer import Trainer

    strategy = make_strategy(args.strategy, logical_cpus=args.logical_cpus)
    trainer = Trainer(cfg, args.run_dir, strategy=strategy, progress=args.progress)
    result = trainer.train(cfg.steps)
    summary = dataclasses.asdict(result)
    print(json.dumps(summary))
    return 0
