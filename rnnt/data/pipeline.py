"""Training input pipeline: length-bucketed, deterministic, resumable batches of log-mel features and labels.

The batches of an epoch are planned in pure Python (`plan_batches`) from the durations, the seed and the epoch
number, so a resumed run reproduces the same batch order and can skip the batches it has already seen.
`make_dataset` then loads audio (`rnnt.audio.load_audio`) and computes features (`features_tf.log_mel_tf`).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow as tf

from rnnt.config import FeatureConfig
from rnnt.data.batching import plan_batches
from rnnt.data.manifest import Utterance

__all__ = ["plan_batches", "make_dataset", "feature_lengths"]


def feature_lengths(num_samples, cfg: FeatureConfig):
    """Frames of `num_samples` samples (ints, numpy arrays or tensors); see `features_tf.num_frames`."""
    from rnnt.features_tf import num_frames

    return num_frames(num_samples, cfg)


def _pad(rows: list[np.ndarray], dtype) -> np.ndarray:
    out = np.zeros((len(rows), max((r.size for r in rows), default=0)), dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


def make_dataset(
    utterances: Sequence[Utterance],
    tokenizer: Any,
    feature_cfg: FeatureConfig,
    *,
    batch_seconds: float,
    max_batch_size: int,
    max_duration: float,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    spec_augment: bool | dict = False,
    skip_batches: int = 0,
    repeat: bool = False,
    sort_window: int | None = None,
    speed_factors: Sequence[float] = (),
    num_parallel_calls: int | None = None,
    shard: tuple[int, int, int] = (1, 0, 1),
    augment_share: float = 0.0,
) -> tf.data.Dataset:
    """A dataset of padded batches: dicts of
    `features` [B, T, num_mels] float32 (0 past each length), `feature_lengths` [B] int32,
    `labels` [B, U] int32 (0-padded token ids from `tokenizer.encode(text)`), `label_lengths` [B] int32.

    Batches follow `plan_batches` for `epoch` (then epoch + 1, ... when `repeat`), after skipping the first
    `skip_batches` (counted from the start of `epoch`, across epochs when `repeat`). Utterances too short for
    one feature frame or longer than `max_duration` are left out. `spec_augment` is True or a dict of
    `spec_augment_batch` options; `speed_factors` (e.g. (0.9, 1.0, 1.1)) picks a speed per utterance and
    epoch. All randomness derives from (seed, epoch, batch position), so the output is deterministic.

    `augment_share` of the utterances (drawn per epoch) get a random waveform augmentation on the fly
    (`rnnt.corpus.augment.augment`: speed, reverberation, noise, telephone band, gain).

    `shard=(num_workers, worker, replicas_per_worker)` keeps, of the batch stream counted from the start of
    `epoch`, the groups of `replicas_per_worker` consecutive batches that belong to `worker` (round robin), so the
    workers of a multi-worker run together consume consecutive batches, one per replica per step.
    """
    from rnnt.audio import load_audio
    from rnnt.features_tf import log_mel_tf, num_frames

    utterances = list(utterances)
    durations = [u.duration for u in utterances]
    plan_args = dict(
        batch_seconds=batch_seconds, max_batch_size=max_batch_size, max_duration=max_duration,
        min_duration=feature_cfg.win_length / feature_cfg.sample_rate, shuffle=shuffle, seed=seed,
        sort_window=sort_window,
    )
    first = plan_batches(durations, epoch=epoch, **plan_args)
    if not first:
        raise ValueError(f"no utterances between {plan_args['min_duration']:g} and {max_duration:g} seconds")
    labels: dict[int, np.ndarray] = {}
    for batch in first:
        for i in batch:
            labels[i] = np.asarray(tokenizer.encode(utterances[i].text), dtype=np.int32)
    factors = np.asarray(speed_factors or (1.0,), dtype=np.float64)
    sr = feature_cfg.sample_rate

    def batches() -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        e, skip, plan = epoch, int(skip_batches), first
        num_workers, worker, per_worker = shard
        stream_index = -1
        while True:
            speeds = np.random.default_rng([int(seed) & 0xFFFFFFFF, e, 1]).choice(factors, size=len(utterances))
            for pos, batch in enumerate(plan):
                stream_index += 1
                if skip > 0:
                    skip -= 1
                    continue
                if (stream_index // per_worker) % num_workers != worker:
                    continue
                yield e, pos, np.asarray(batch, np.int32), speeds[batch].astype(np.float32)
            if not repeat:
                return
            e += 1
            plan = plan_batches(durations, epoch=e, **plan_args)

    def load(indices: np.ndarray, speeds: np.ndarray, e: np.ndarray):
        from rnnt.corpus.augment import augment, speed_perturb

        audio, label_rows = [], []
        for i, speed in zip(indices.tolist(), speeds.tolist()):
            x = load_audio(utterances[i].audio, sr)
            x = speed_perturb(x, speed, sr) if speed != 1.0 else x
            if augment_share > 0:
                rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(e), i, 2])
                if rng.random() < augment_share:
                    x = augment(x, rng, sr)
            audio.append(x)
            label_rows.append(labels[i])
        n = np.asarray([a.size for a in audio], np.int32)
        u = np.asarray([r.size for r in label_rows], np.int32)
        return _pad(audio, np.float32), n, _pad(label_rows, np.int32), u

    aug_options = spec_augment if isinstance(spec_augment, dict) else {}
    seed_hi = int(seed) & 0x7FFFFFFF

    def to_batch(e, pos, indices, speeds):
        samples, n, lab, u = tf.numpy_function(load, [indices, speeds, e], [tf.float32, tf.int32, tf.int32, tf.int32])
        samples.set_shape([None, None])
        lab.set_shape([None, None])
        n.set_shape([None])
        u.set_shape([None])
        feats = log_mel_tf(samples, feature_cfg)
        flen = tf.cast(num_frames(n, feature_cfg), tf.int32)
        valid = tf.sequence_mask(flen, tf.shape(feats)[1])[:, :, None]
        feats = tf.where(valid, feats, tf.zeros_like(feats))
        if spec_augment:
            from rnnt.data.augment import spec_augment_batch

            aug_seed = tf.stack([tf.constant(seed_hi, tf.int64), e * (1 << 32) + pos])
            feats = spec_augment_batch(feats, flen, seed=aug_seed, **aug_options)
        return {"features": feats, "feature_lengths": flen, "labels": lab, "label_lengths": u}

    ds = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec([], tf.int64),
            tf.TensorSpec([], tf.int64),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
        ),
    )
    ds = ds.map(to_batch, num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)
