"""Log-mel front end in numpy (runtime side).

Frame i covers samples ``[i*hop, i*hop+win)``; there is no padding, so a signal of N samples has
``num_frames(N)`` frames and streaming (`FeatureStream`) gives exactly the frames of `log_mel` on the
whole signal. The math matches `rnnt.features_tf.log_mel_tf`: periodic Hann window, ``fft_length``-point
rfft, power spectrum, HTK mel filterbank equal to ``tf.signal.linear_to_mel_weight_matrix`` (DC row
zeroed), then ``log(max(mel, log_floor))``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rnnt.config import FeatureConfig

__all__ = ["num_frames", "hann_window", "mel_matrix", "log_mel", "FeatureStream"]


def num_frames(num_samples: int, cfg: FeatureConfig) -> int:
    """Frames in a signal of `num_samples` samples (0 when shorter than one window)."""
    if num_samples < cfg.win_length:
        return 0
    return 1 + (num_samples - cfg.win_length) // cfg.hop_length


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window (as ``tf.signal.hann_window(length, periodic=True)``), float64."""
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(cfg: FeatureConfig) -> np.ndarray:
    """Mel weights ``[fft_length//2 + 1, num_mels]`` float32, as ``tf.signal.linear_to_mel_weight_matrix``."""
    return _mel_matrix64(cfg).astype(np.float32)


@lru_cache(maxsize=8)
def _mel_matrix64(cfg: FeatureConfig) -> np.ndarray:
    bins = cfg.fft_length // 2 + 1
    if not 0.0 <= cfg.lower_hz < cfg.upper_hz <= cfg.sample_rate / 2:
        raise ValueError(f"need 0 <= lower_hz < upper_hz <= {cfg.sample_rate / 2}")
    # The DC bin gets no weight (TF zeroes it); the others are triangles on the HTK mel scale.
    freqs = np.linspace(0.0, cfg.sample_rate / 2.0, bins)[1:]
    mels = _hz_to_mel(freqs)[:, None]
    edges = np.linspace(_hz_to_mel(cfg.lower_hz), _hz_to_mel(cfg.upper_hz), cfg.num_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (mels - lower) / (center - lower)
    falling = (upper - mels) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    out = np.zeros((bins, cfg.num_mels), dtype=np.float64)
    out[1:] = weights
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def _window64(length: int) -> np.ndarray:
    w = hann_window(length)
    w.flags.writeable = False
    return w


def _frames_to_log_mel(frames: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """``frames [n, win]`` -> log-mel ``[n, num_mels]`` float32 (float64 inside)."""
    if frames.shape[0] == 0:
        return np.zeros((0, cfg.num_mels), dtype=np.float32)
    spec = np.fft.rfft(frames * _window64(cfg.win_length), n=cfg.fft_length, axis=-1)
    power = spec.real**2 + spec.imag**2
    mel = power @ _mel_matrix64(cfg)
    return np.log(np.maximum(mel, cfg.log_floor)).astype(np.float32)


def _frame(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Strided view ``[num_frames, win]`` of a 1-D signal (no copy)."""
    n = num_frames(samples.shape[0], cfg)
    if n == 0:
        return np.zeros((0, cfg.win_length), dtype=samples.dtype)
    view = np.lib.stride_tricks.sliding_window_view(samples, cfg.win_length)
    return view[:: cfg.hop_length][:n]


def _as_signal(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected 1-D samples, got shape {x.shape}")
    return x


def log_mel(samples: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Log-mel features ``[frames, num_mels]`` float32 of a 1-D float signal in [-1, 1]."""
    return _frames_to_log_mel(_frame(_as_signal(samples), cfg), cfg)


class FeatureStream:
    """Incremental `log_mel`: feed audio in chunks of any size, get each frame once it is complete."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self._pending = np.zeros(0, dtype=np.float32)
        self._skip = 0  # samples still to drop (only when hop_length > win_length)
        self.frames_out = 0  # frames returned since the last reset

    def reset(self) -> None:
        """Forget buffered samples (start a new utterance)."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._skip = 0
        self.frames_out = 0

    @property
    def pending_samples(self) -> int:
        """Samples buffered towards frames not yet complete."""
        return int(self._pending.shape[0])

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; return the newly completed frames ``[new_frames, num_mels]``."""
        x = _as_signal(samples)
        if self._skip:
            dropped = min(self._skip, x.shape[0])
            x, self._skip = x[dropped:], self._skip - dropped
        buf = np.concatenate([self._pending, x]) if self._pending.size else x
        n = num_frames(buf.shape[0], self.cfg)
        feats = _frames_to_log_mel(_frame(buf, self.cfg), self.cfg)
        # Keep everything from the start of the next (incomplete) frame on.
        start = n * self.cfg.hop_length
        self._pending = buf[start:].copy()
        self._skip += max(0, start - buf.shape[0])
        self.frames_out += n
        return feats
