"""Recording-level control: one gain a stream, set from the loud frames of its first window of speech.

The network is trained on speech whose loud frames lie between about -3.5 and 0 nats; a quiet microphone (24 dB
down) costs most of the words. Quieter speech is brought up to `LevelConfig.low`, louder speech down to `high`, and
speech between is left as it is (bringing loud synthesized speech down to -1.6 cost it 4 points). A gain that
moves within an utterance costs short clips as much as it saves, so this one is set once, from the first window
that holds speech, and held for the rest of the stream. Until it is set the recognizer looks one window ahead;
windows without speech are decoded as they are. The gain scales the samples (`rnnt.runtime.Stream`), so the
model gets exactly the features of a louder recording.

Levels are in nats of log-mel power (the mean over the bands of a frame); a waveform scaled by ``a`` moves
them by ``2 ln a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rnnt.config import FeatureConfig

__all__ = ["LevelConfig", "loud_level", "window_gain", "window_frames", "stream_gain"]


@dataclass(frozen=True)
class LevelConfig:
    """How the stream's gain is chosen.

    Attributes:
      low: quieter speech is brought up to this loud-frame level (nats).
      high: louder speech is brought down to this one; between the two the gain is 0.
      window_seconds: audio looked at before the gain is set; decoding waits that long at the start.
      max_boost: largest gain (nats) for quiet speech; 6 nats is 26 dB.
      max_cut: largest attenuation (nats) for loud speech.
      speech_range: loud minus quiet frames (nats) that says a window holds speech.
      percentile: the frames' percentile that is the loud level (the quiet level is its mirror).
    """

    low: float = -1.6
    high: float = 0.0
    window_seconds: float = 1.5
    max_boost: float = 6.0
    max_cut: float = 2.0
    speech_range: float = 2.3
    percentile: float = 95.0

    def __post_init__(self) -> None:
        for name in ("low", "high", "window_seconds", "max_boost", "max_cut", "speech_range", "percentile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"LevelConfig.{name} must be a finite number, got {value!r}")
        if self.low > self.high:
            raise ValueError(f"LevelConfig.low ({self.low}) must not be above high ({self.high})")
        if self.window_seconds <= 0:
            raise ValueError(f"LevelConfig.window_seconds must be positive, got {self.window_seconds}")
        if self.max_boost < 0 or self.max_cut < 0 or self.speech_range < 0:
            raise ValueError("LevelConfig.max_boost, max_cut and speech_range must not be negative")
        if not 50.0 <= self.percentile <= 100.0:
            raise ValueError(f"LevelConfig.percentile must lie in [50, 100], got {self.percentile}")


def loud_level(features: np.ndarray, percentile: float = 95.0) -> float:
    """The loud-frame level (nats) of log-mel features ``[frames, mels]``: a percentile of the frames' means."""
    if features.shape[0] == 0:
        raise ValueError("no frames to measure")
    return float(np.percentile(features.mean(axis=-1), percentile))


def window_gain(features: np.ndarray, cfg: LevelConfig) -> float | None:
    """The gain (nats) for a window of log-mel features, or None when the window holds no speech."""
    if features.shape[0] == 0:
        return None
    means = features.mean(axis=-1)
    loud, quiet = np.percentile(means, [cfg.percentile, 100.0 - cfg.percentile])
    if loud - quiet < cfg.speech_range:
        return None
    if loud < cfg.low:
        return float(min(cfg.low - loud, cfg.max_boost))
    if loud > cfg.high:
        return float(max(cfg.high - loud, -cfg.max_cut))
    return 0.0


def window_frames(cfg: LevelConfig, features: FeatureConfig) -> int:
    """Feature frames in one window of `cfg.window_seconds`."""
    return max(1, round(cfg.window_seconds * features.sample_rate / features.hop_length))


def stream_gain(features: np.ndarray, cfg: LevelConfig, window: int) -> float:
    """The gain a whole stream of log-mel features gets (as `rnnt.runtime.Stream` sets it): its first window of
    `window` frames from the start that holds speech (the last window is what remains), 0.0 when none does."""
    for start in range(0, features.shape[0], window):
        gain = window_gain(features[start : start + window], cfg)
        if gain is not None:
            return gain
    return 0.0
