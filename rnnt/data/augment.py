"""Training-time augmentation: SpecAugment masks (TensorFlow) and speed perturbation (numpy)."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["spec_augment", "spec_augment_batch"]


def _uniform(shape, seed, generator: tf.random.Generator | None) -> tf.Tensor:
    if seed is not None:
        return tf.random.stateless_uniform(shape, seed=tf.cast(seed, tf.int64))
    if generator is not None:
        return generator.uniform(shape)
    return tf.random.uniform(shape)


def _bands(u_width: tf.Tensor, u_start: tf.Tensor, max_width: tf.Tensor, size: tf.Tensor, dim: tf.Tensor) -> tf.Tensor:
    """[B, dim] bool: the union of n random bands per row. u_* [B, n] in [0, 1); max_width, size [B] int32.

    Band width is uniform in [0, max_width], start uniform so the band fits in [0, size).
    """
    max_width = tf.minimum(max_width, size)[:, None]
    width = tf.cast(tf.floor(u_width * tf.cast(max_width + 1, tf.float32)), tf.int32)
    width = tf.minimum(width, max_width)
    room = size[:, None] - width + 1
    start = tf.minimum(tf.cast(tf.floor(u_start * tf.cast(room, tf.float32)), tf.int32), room - 1)
    r = tf.range(dim)[None, None, :]
    inside = (r >= start[:, :, None]) & (r < (start + width)[:, :, None])
    return tf.reduce_any(inside, axis=1)


def spec_augment_batch(
    features: tf.Tensor,
    lengths: tf.Tensor,
    *,
    num_freq_masks: int = 2,
    freq_width: int = 27,
    num_time_masks: int = 10,
    time_width_ratio: float = 0.05,
    max_time_width: int | None = None,
    mask_value: float | None = None,
    seed=None,
    generator: tf.random.Generator | None = None,
) -> tf.Tensor:
    """SpecAugment on padded features [B, T, F] with valid lengths [B]; padding frames stay untouched.

    Each row gets `num_freq_masks` frequency bands of width <= `freq_width` and `num_time_masks` time bands
    of width <= `time_width_ratio * length` (and <= `max_time_width`), set to `mask_value` (by default the
    row's mean over its valid frames). Randomness: stateless from `seed` (shape [2] ints) if given, else
    from `generator`, else the global TF generator.
    """
    x = tf.convert_to_tensor(features, dtype=tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    shape = tf.shape(x)
    b, t, f = shape[0], shape[1], shape[2]
    nf, nt = int(num_freq_masks), int(num_time_masks)
    u = _uniform(tf.stack([b, 2 * (nf + nt)]), seed, generator)
    valid = tf.sequence_mask(lengths, t)  # [B, T]
    mask = tf.zeros([b, t, f], tf.bool)
    if nf:
        fmask = _bands(u[:, :nf], u[:, nf:2 * nf], tf.fill([b], int(freq_width)), tf.fill([b], f), f)
        mask |= fmask[:, None, :]
    if nt:
        tmax = tf.cast(tf.floor(time_width_ratio * tf.cast(lengths, tf.float32)), tf.int32)
        if max_time_width is not None:
            tmax = tf.minimum(tmax, int(max_time_width))
        tmask = _bands(u[:, 2 * nf:2 * nf + nt], u[:, 2 * nf + nt:], tmax, lengths, t)
        mask |= tmask[:, :, None]
    mask &= valid[:, :, None]
    if mask_value is None:
        valid_f = tf.cast(valid, tf.float32)[:, :, None]
        count = tf.maximum(tf.reduce_sum(valid_f, axis=[1, 2]) * tf.cast(f, tf.float32), 1.0)
        fill = (tf.reduce_sum(x * valid_f, axis=[1, 2]) / count)[:, None, None]
    else:
        fill = tf.constant(float(mask_value), tf.float32)
    return tf.where(mask, fill * tf.ones_like(x), x)


def spec_augment(
    features: tf.Tensor,
    num_freq_masks: int = 2,
    freq_width: int = 27,
    num_time_masks: int = 10,
    time_width_ratio: float = 0.05,
    *,
    max_time_width: int | None = None,
    mask_value: float | None = None,
    seed=None,
    generator: tf.random.Generator | None = None,
) -> tf.Tensor:
    """SpecAugment on one utterance's features [T, F]; see `spec_augment_batch`."""
    x = tf.convert_to_tensor(features, dtype=tf.float32)
    out = spec_augment_batch(
        x[None], tf.shape(x)[:1], num_freq_masks=num_freq_masks, freq_width=freq_width,
        num_time_masks=num_time_masks, time_width_ratio=time_width_ratio, max_time_width=max_time_width,
        mask_value=mask_value, seed=seed, generator=generator,
    )
    return out[0]


