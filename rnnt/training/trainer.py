"""The training loop: distributed steps, NaN guard, clipping, schedule, checkpoints, summaries, dev WER.

A run directory holds everything needed to resume or export:
`config.json` (the TrainConfig), the tokenizer file, `checkpoints/`, `tensorboard/` and `log.jsonl`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from rnnt.config import TrainConfig, config_from_dict, config_to_dict
from rnnt.data.manifest import read_manifest
from rnnt.data.mix import mix_manifests
from rnnt.loss import ctc_loss, rnnt_loss
from rnnt.model import RNNT, ctc_head
from rnnt.tokens import load_tokenizer
from rnnt.training.checkpoints import CheckpointKeeper
from rnnt.training.distribute import is_chief, make_strategy, worker_index
from rnnt.training.evaluate import evaluate_model, feature_statistics
from rnnt.training.optimizer import AdamW, learning_rate

MAX_BAD_STEPS = 50  # consecutive non-finite steps before the run gives up


@dataclass(frozen=True)
class TrainResult:
    step: int
    loss: float
    dev_wer: float | None
    checkpoint: str | None
    skipped_steps: int


def save_run_config(run_dir: str, cfg: TrainConfig) -> TrainConfig:
    """Write `config.json` into a new run (copying the tokenizer in), or check it against an existing one.

    Returns the config the run uses (with the tokenizer path inside the run directory).
    """
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            saved = config_from_dict(TrainConfig, json.load(f))
        if saved.model != cfg.model or saved.features != cfg.features:
            raise ValueError(f"{run_dir} was started with another model or feature config; use a new run directory")
        # optimisation settings such as steps may change on resume; the model may not
        return dataclasses.replace(cfg, tokenizer=saved.tokenizer)
    if not cfg.tokenizer or not os.path.exists(cfg.tokenizer):
        raise ValueError(f"tokenizer file not found: {cfg.tokenizer!r}")
    local_tok = os.path.join(run_dir, "tokenizer" + os.path.splitext(cfg.tokenizer)[1])
    if os.path.abspath(cfg.tokenizer) != os.path.abspath(local_tok):
        shutil.copyfile(cfg.tokenizer, local_tok)
    cfg = dataclasses.replace(cfg, tokenizer=os.path.abspath(local_tok))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(config_to_dict(cfg), f, indent=2)
    os.replace(tmp, path)
    return cfg


def _aggregate_variables(next_creator, **kwargs):
    # every replica computes identical updates from all-reduced gradients: keep the first replica's value
    kwargs["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
    return next_creator(**kwargs)


class Trainer:
    """Builds model, optimizer and data for a run directory and trains it."""

    def __init__(self, cfg: TrainConfig, run_dir: str, *, strategy: tf.distribute.Strategy | None = None,
                 progress: bool | None = None):
        self.strategy = strategy or make_strategy("auto")
        self.chief = is_chief(self.strategy)
        self.worker, self.num_workers = worker_index(self.strategy)
        self.run_dir = run_dir
        self.cfg = save_run_config(run_dir, cfg) if self.chief else self._wait_for_config(run_dir, cfg)
        self.tokenizer = load_tokenizer(self.cfg.tokenizer)
        if self.tokenizer.vocab_size != self.cfg.model.vocab_size:
            raise ValueError(
                f"tokenizer has {self.tokenizer.vocab_size} tokens but model.vocab_size is {self.cfg.model.vocab_size}"
            )
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.train_set = mix_manifests(self.cfg.train_manifest, seed=self.cfg.seed)
        self.dev_set = read_manifest(self.cfg.dev_manifest) if self.cfg.dev_manifest else []
        with self.strategy.scope(), tf.variable_creator_scope(_aggregate_variables):
            self.model = RNNT(self.cfg.model, seed=self.cfg.seed)
            self.ctc_head = ctc_head(self.cfg.model, seed=self.cfg.seed) if self.cfg.ctc_weight > 0 else None
            self.variables = list(self.model.trainable_variables)
            if self.ctc_head is not None:  # appended, so the model's optimizer slots keep their positions
                self.variables += list(self.ctc_head.trainable_variables)
            self.optimizer = AdamW(self.variables, weight_decay=self.cfg.weight_decay)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.batches_consumed = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_consumed")
        extra = {"ctc_head": self.ctc_head} if self.ctc_head is not None else {}
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step, batches_consumed=self.batches_consumed,
            **extra,
        )
        self.keeper = CheckpointKeeper(
            self.checkpoint, run_dir, keep=self.cfg.keep_checkpoints, chief=self.chief, worker=self.worker
        )
        self._train_step = None

    @staticmethod
    def _wait_for_config(run_dir: str, cfg: TrainConfig, timeout: float = 120.0) -> TrainConfig:
        path = os.path.join(run_dir, "config.json")
        deadline = time.time() + timeout
        while not os.path.exists(path):
            if time.time() > deadline:
                raise TimeoutError(f"chief did not write {path}")
            time.sleep(0.2)
        with open(path, encoding="utf-8") as f:
            saved = config_from_dict(TrainConfig, json.load(f))
        return dataclasses.replace(cfg, tokenizer=saved.tokenizer)

    # --- data ---
    def _dataset(self) -> Any:
        from rnnt.data.pipeline import make_dataset

        cfg = self.cfg
        replicas = self.strategy.num_replicas_in_sync
        local = replicas // self.num_workers
        start = int(self.batches_consumed.numpy())

        def dataset_fn(_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
            return make_dataset(
                self.train_set, self.tokenizer, cfg.features,
                batch_seconds=cfg.batch_seconds, max_batch_size=cfg.max_batch_size, max_duration=cfg.max_duration,
                seed=cfg.seed, epoch=0, skip_batches=start, repeat=True, spec_augment=_spec_augment_options(cfg),
                speed_factors=(0.9, 1.0, 1.1) if cfg.speed_perturb else (), augment_share=cfg.augment_share,
                shard=(self.num_workers, self.worker, local),
            )

        if replicas == 1:
            return iter(dataset_fn())
        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    # --- the step ---
    def _replica_step(self, batch: dict) -> tuple[tf.Tensor, ...]:
        cfg = self.cfg
        ctx = tf.distribute.get_replica_context()
        labels, label_lengths = batch["labels"], batch["label_lengths"]
        with tf.GradientTape() as tape:
            enc, enc_lengths = self.model.encode(batch["features"], batch["feature_lengths"])
            enc_lengths = tf.maximum(enc_lengths, 1)
            nll = rnnt_loss(self.model.lattice(enc, labels), labels, enc_lengths, label_lengths)
            local_sum = tf.reduce_sum(nll)
            ctc_sum = tf.constant(0.0)
            if self.ctc_head is not None:
                ctc_sum = tf.reduce_sum(ctc_loss(self.ctc_head(enc), labels, enc_lengths, label_lengths))
            count = ctx.all_reduce("sum", tf.cast(tf.size(nll), tf.float32))
            loss = (local_sum + cfg.ctc_weight * ctc_sum) / count
        grads = ctx.all_reduce("sum", tape.gradient(loss, self.variables))
        total_loss = ctx.all_reduce("sum", local_sum) / count
        total_ctc = ctx.all_reduce("sum", ctc_sum) / count
        tokens_per_utterance = ctx.all_reduce("sum", tf.cast(tf.reduce_sum(label_lengths), tf.float32)) / count
        audio_frames = ctx.all_reduce("sum", tf.cast(tf.reduce_sum(batch["feature_lengths"]), tf.float32))
        grad_norm = tf.linalg.global_norm(grads)
        finite = tf.math.is_finite(total_loss) & tf.math.is_finite(grad_norm)
        scale = tf.minimum(1.0, cfg.clip_norm / tf.maximum(grad_norm, 1e-12))
        grads = [tf.where(finite, g * scale, tf.zeros_like(g)) for g in grads]
        lr = learning_rate(self.step, cfg.learning_rate, cfg.warmup_steps, cfg.decay_steps, cfg.min_learning_rate)
        self.optimizer.apply(grads, self.variables, lr, apply=finite)
        self.step.assign_add(1)
        return total_loss, grad_norm, tf.cast(finite, tf.float32), audio_frames, total_ctc, tokens_per_utterance

    def _build_step(self):
        strategy = self.strategy

        @tf.function(reduce_retracing=True)
        def step_fn(batch):
            out = strategy.run(self._replica_step, args=(batch,))
            # every replica returns the same all-reduced values
            return tuple(strategy.experimental_local_results(o)[0] for o in out)

        return step_fn

    # --- the loop ---
    def _enable_qat(self) -> None:
        from quantize.qat import enable_fake_quant, is_fake_quant_enabled

        if not is_fake_quant_enabled(self.model):
            with self.strategy.scope(), tf.variable_creator_scope(_aggregate_variables):
                enable_fake_quant(self.model)
            self._train_step = None  # a traced step keeps the graph it was traced with

    def _qat_due(self, step: int) -> bool:
        return 0 <= self.cfg.qat_start_step <= step

    def _initialise(self) -> str | None:
        latest = self.keeper.latest
        if latest and self._qat_due(int(tf.train.load_checkpoint(latest).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))):
            self._enable_qat()  # so that the checkpoint's activation ranges have variables to land in
        restored = self.keeper.restore_latest()
        if restored is None:
            mean, std = feature_statistics(self.train_set, self.cfg.features, limit=200, seed=self.cfg.seed)
            self.model.set_feature_stats(mean, std)
        return restored

    def train(self, steps: int | None = None) -> TrainResult:
        """Train until `steps` (default cfg.steps) total steps; resumes from the latest checkpoint."""
        cfg = self.cfg
        total = int(steps or cfg.steps)
        restored = self._initialise()
        start = int(self.step.numpy())
        if self.chief:
            print(f"{'resuming from ' + restored if restored else 'new run'} at step {start} of {total}",
                  file=sys.stderr)
        if start >= total:
            return TrainResult(start, float("nan"), None, self.keeper.latest, 0)
        writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "tensorboard")) if self.chief else None
        data = self._dataset()
        replicas = self.strategy.num_replicas_in_sync
        bar = _progress_bar(start, total, self.progress and self.chief)
        loss_avg, bad_run, skipped, dev_wer, last_ckpt = None, 0, 0, None, self.keeper.latest
        frames_seen, t0 = 0.0, time.perf_counter()
        for step in range(start + 1, total + 1):
            if self._qat_due(step - 1):
                self._enable_qat()
            self._train_step = self._train_step or self._build_step()
            loss, grad_norm, finite, frames, ctc, tokens_per_utt = (t.numpy() for t in self._train_step(next(data)))
            self.batches_consumed.assign_add(replicas)
            if finite < 0.5:
                skipped += 1
                bad_run += 1
                if bad_run >= MAX_BAD_STEPS:
                    raise FloatingPointError(f"{bad_run} consecutive non-finite steps at step {step}; stopping")
            else:
                bad_run = 0
                loss_avg = loss if loss_avg is None else 0.95 * loss_avg + 0.05 * loss
            frames_seen += frames
            speed = frames_seen * cfg.features.frame_seconds / max(time.perf_counter() - t0, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_avg if loss_avg is not None else float('nan'):.3f}", audio=f"{speed:.1f}x")
            if writer is not None and (step % cfg.log_every == 0 or step == total):
                with writer.as_default(step=step):
                    tf.summary.scalar("loss", loss)  # per utterance
                    tf.summary.scalar("loss_per_token", loss / max(tokens_per_utt, 1e-9))
                    if self.ctc_head is not None:
                        tf.summary.scalar("ctc_loss_per_token", ctc / max(tokens_per_utt, 1e-9))
                    tf.summary.scalar("grad_norm", grad_norm)
                    tf.summary.scalar("audio_seconds_per_second", speed)
                    tf.summary.scalar("skipped_steps", skipped)
            if step % cfg.checkpoint_every == 0 or step == total:
                last_ckpt = self.keeper.save(step)
            if self.chief and self.dev_set and (step % cfg.eval_every == 0 or step == total):
                dev_wer = self._evaluate(step, writer, float(loss))
        bar.close()
        return TrainResult(int(self.step.numpy()), float(loss_avg or float("nan")), dev_wer, last_ckpt, skipped)

    def _evaluate(self, step: int, writer, loss: float) -> float:
        result = evaluate_model(self.model, self.tokenizer.tokens, self.dev_set[: self.cfg.eval_utterances],
                                self.cfg.features)
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.scalar("dev_wer", result.wer)
                tf.summary.scalar("dev_cer", result.cer)
        record = {"step": step, "loss": loss, "dev_wer": result.wer, "dev_cer": result.cer, "time": time.time()}
        with open(os.path.join(self.run_dir, "log.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        print(f"step {step}: dev WER {100 * result.wer:.2f}% CER {100 * result.cer:.2f}%", file=sys.stderr)
        return result.wer


def _spec_augment_options(cfg: TrainConfig) -> dict | bool:
    if not cfg.spec_augment:
        return False
    return {"num_time_masks": cfg.spec_augment_time_masks, "freq_width": cfg.spec_augment_freq_width}


def _progress_bar(start: int, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, file=sys.stderr)
