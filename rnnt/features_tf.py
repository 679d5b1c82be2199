"""Log-mel front end in TensorFlow (training side); same math as the numpy `rnnt.features`.

Uses the very mel matrix of `rnnt.features.mel_matrix` (equal to ``tf.signal.linear_to_mel_weight_matrix``)
as a constant, so training and runtime share one filterbank. All ops convert to TFLite built-ins.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from rnnt.config import FeatureConfig
from rnnt.features import mel_matrix

__all__ = ["log_mel_tf", "num_frames"]


def num_frames(num_samples, cfg: FeatureConfig):
    """Frames in `num_samples` samples (0 when shorter than a window); ints, numpy arrays or tensors."""
    if isinstance(num_samples, (int, np.integer)):
        return max(0, 1 + (int(num_samples) - cfg.win_length) // cfg.hop_length)
    if isinstance(num_samples, np.ndarray):
        return np.maximum(0, 1 + (num_samples - cfg.win_length) // cfg.hop_length)
    n = tf.convert_to_tensor(num_samples)
    return tf.maximum(tf.zeros_like(n), 1 + (n - cfg.win_length) // cfg.hop_length)


def log_mel_tf(samples, cfg: FeatureConfig = FeatureConfig()) -> tf.Tensor:
    """Log-mel ``[..., frames, num_mels]`` float32 of float signals ``[..., N]`` (e.g. ``[B, N]`` or ``[N]``)."""
    x = tf.convert_to_tensor(samples, dtype=tf.float32)
    # tf.signal.stft(frame_length=win, frame_step=hop, fft_length, hann, pad_end=False) spelled out, with the
    # zero padding to fft_length made explicit: TF's RFFT fails on zero frames when it has to pad itself.
    frames = tf.signal.frame(x, cfg.win_length, cfg.hop_length, pad_end=False)
    window = tf.signal.hann_window(cfg.win_length, periodic=True, dtype=tf.float32)
    pad = [[0, 0]] * (frames.shape.rank - 1) + [[0, cfg.fft_length - cfg.win_length]]
    stft = tf.signal.rfft(tf.pad(frames * window, pad), fft_length=[cfg.fft_length])
    power = tf.math.square(tf.math.abs(stft))
    mel = tf.tensordot(power, tf.constant(mel_matrix(cfg)), axes=1)
    mel.set_shape(power.shape[:-1].concatenate([cfg.num_mels]))
    return tf.math.log(tf.maximum(mel, cfg.log_floor))
