"""Load a trained model from a training run folder or a checkpoint prefix.

A run folder holds ``config.json`` (a TrainConfig), ``checkpoints/`` written by `tf.train.CheckpointManager`
with ``tf.train.Checkpoint(model=rnnt_model, ...)``, and the tokenizer file named by ``TrainConfig.tokenizer``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re

import tensorflow as tf

from rnnt.config import TrainConfig, config_to_dict, load_config_file
from rnnt.model import RNNT

__all__ = ["RunError", "checkpoint_date", "load_run", "resolve_checkpoint"]

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


class RunError(Exception):
    """A run folder or checkpoint cannot be loaded; the message says why."""


def _find_run_dir(start: str) -> str | None:
    folder = os.path.abspath(start)
    for _ in range(3):
        if os.path.isfile(os.path.join(folder, CONFIG_FILE)):
            return folder
        folder = os.path.dirname(folder)
    return None


def resolve_checkpoint(run_or_checkpoint: str) -> tuple[str, str]:
    """(run dir, checkpoint prefix) of a run folder (its latest checkpoint), a checkpoints folder or a prefix."""
    path = os.path.abspath(os.path.expanduser(run_or_checkpoint))
    if os.path.isdir(path):
        run_dir = _find_run_dir(path)
        if run_dir is None:
            raise RunError(f"{run_or_checkpoint}: no {CONFIG_FILE} here or above: not a training run folder")
        candidates = [path, os.path.join(path, CHECKPOINT_DIR), os.path.join(run_dir, CHECKPOINT_DIR)]
        for folder in candidates:
            if os.path.isdir(folder):
                prefix = tf.train.latest_checkpoint(folder)
                if prefix:
                    return run_dir, prefix
        raise RunError(f"{run_or_checkpoint}: the run has no checkpoint yet (looked in {CHECKPOINT_DIR}/)")
    if os.path.isfile(path + ".index"):
        run_dir = _find_run_dir(os.path.dirname(path))
        if run_dir is None:
            raise RunError(f"{run_or_checkpoint}: no {CONFIG_FILE} next to or above the checkpoint")
        return run_dir, path
    raise RunError(f"{run_or_checkpoint}: neither a run folder nor a checkpoint prefix (no {path}.index)")


def _tokens(config: TrainConfig, run_dir: str) -> tuple[list[str], str, bytes | None]:
    from rnnt.tokens import load_tokenizer

    if not config.tokenizer:
        raise RunError(f"{run_dir}/{CONFIG_FILE} names no tokenizer")
    candidates = [config.tokenizer, os.path.join(run_dir, config.tokenizer),
                  os.path.join(run_dir, os.path.basename(config.tokenizer))]
    for path in candidates:
        if os.path.isfile(path):
            tokenizer = load_tokenizer(path)
            sp = None
            if path.endswith(".model"):
                with open(path, "rb") as f:
                    sp = f.read()
            return list(tokenizer.tokens), os.path.abspath(path), sp
    raise RunError(f"tokenizer {config.tokenizer} of run {run_dir} not found")


def checkpoint_date(prefix: str) -> str:
    """When a checkpoint was written (its index file's time, UTC, to the second): the bundle's ``training.date``."""
    mtime = os.path.getmtime(prefix + ".index")
    return _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).isoformat(timespec="seconds")


def _step(reader, prefix: str) -> int | None:
    for key in ("step/.ATTRIBUTES/VARIABLE_VALUE", "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE",
                "optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE"):
        if reader.has_tensor(key):
            return int(reader.get_tensor(key))
    m = re.search(r"-(\d+)$", prefix)
    return int(m.group(1)) if m else None


def load_run(run_or_checkpoint: str) -> tuple[RNNT, TrainConfig, list[str], dict]:
    """(model with restored weights, TrainConfig, tokens, info) of a run folder or checkpoint prefix.

    info: {"run_dir", "checkpoint", "step", "date", "train_manifest", "tokenizer", "qat", "sentencepiece"
    (bytes of a sentencepiece model or None)}.
    """
    run_dir, prefix = resolve_checkpoint(run_or_checkpoint)
    try:
        config = load_config_file(TrainConfig, os.path.join(run_dir, CONFIG_FILE))
    except (OSError, ValueError, TypeError) as e:
        raise RunError(f"{run_dir}/{CONFIG_FILE}: {e}") from None
    tokens, tokenizer_path, sp = _tokens(config, run_dir)
    if len(tokens) != config.model.vocab_size:
        raise RunError(f"tokenizer has {len(tokens)} tokens, the model's vocab_size is {config.model.vocab_size}")
    model = RNNT(config.model)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # NotFoundError, DataLossError...
        raise RunError(f"{prefix}: cannot read checkpoint: {e}") from None
    keys = [k for k in reader.get_variable_to_shape_map()
            if k.startswith("model/") and k.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and ".OPTIMIZER_SLOT" not in k]
    if len(keys) < len(model.variables):
        raise RunError(
            f"{prefix}: holds {len(keys)} model variables, this model config has {len(model.variables)}: "
            "not a checkpoint of this run's model"
        )
    status = tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise RunError(f"{prefix}: checkpoint does not match the model: {e}") from None
    step = _step(reader, prefix)
    info = {
        "run_dir": run_dir,
        "checkpoint": prefix,
        "step": step,
        "date": checkpoint_date(prefix),
        "train_manifest": config.train_manifest,
        "dev_manifest": config.dev_manifest,
        "tokenizer": tokenizer_path,
        "qat": bool(config.qat_start_step >= 0 and step is not None and step >= config.qat_start_step),
        "qat_start_step": config.qat_start_step,
        "sentencepiece": sp,
    }
    return model, config, tokens, info


def training_info(config: TrainConfig, info: dict) -> dict:
    """The bundle's "training" provenance object."""
    keys = ("run_dir", "checkpoint", "step", "date", "train_manifest", "dev_manifest", "tokenizer", "qat",
            "qat_start_step")
    out = {k: info.get(k) for k in keys}
    train = config_to_dict(config)
    for k in ("model", "features"):
        train.pop(k, None)
    out["config"] = train
    return out
