"""Endpoint detection: when does a segment (utterance) end? Rules in the manner of Kaldi / sherpa-onnx.

A segment ends as soon as any rule holds:

1. `rule1_min_trailing_silence` seconds of trailing silence, whether or not anything was decoded yet
   (cuts long stretches of silence or noise);
2. `rule2_min_trailing_silence` seconds of trailing silence after speech (at least one token decoded);
3. the segment has lasted `rule3_max_utterance_length` seconds.

"Trailing silence" is the time since the frame of the last emitted (non-blank) token of the best hypothesis,
or since the segment start when nothing was emitted: a run of frames on which the decoder chose blank.
Set a rule to None to disable it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EndpointConfig", "detect", "trailing_silence_frames"]


@dataclass(frozen=True)
class EndpointConfig:
    """Endpoint rules in seconds (None disables a rule)."""

    rule1_min_trailing_silence: float | None = 2.4
    rule2_min_trailing_silence: float | None = 1.2
    rule3_max_utterance_length: float | None = 20.0

    def __post_init__(self) -> None:
        for name in ("rule1_min_trailing_silence", "rule2_min_trailing_silence", "rule3_max_utterance_length"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"EndpointConfig.{name} must be a positive number of seconds or None, got {value!r}")


def trailing_silence_frames(frames_decoded: int, last_emission_frame: int | None, start_frame: int = 0) -> int:
    """Decoder frames since the last emitted token (or since `start_frame` when none was emitted).

    `frames_decoded` counts frames since `start_frame`; frame indices are absolute.
    """
    if last_emission_frame is None:
        return frames_decoded
    return max(0, start_frame + frames_decoded - (last_emission_frame + 1))


def detect(
    config: EndpointConfig,
    frames_decoded: int,
    last_emission_frame: int | None,
    frame_seconds: float,
    start_frame: int = 0,
) -> bool:
    """True when the segment that started at absolute frame `start_frame` and has decoded `frames_decoded`
    encoder frames (each `frame_seconds` long) has reached an endpoint. `last_emission_frame` is the absolute
    frame of the best hypothesis' last token, None if it has none."""
    length = frames_decoded * frame_seconds
    silence = trailing_silence_frames(frames_decoded, last_emission_frame, start_frame) * frame_seconds
    eps = 1e-9
    if config.rule1_min_trailing_silence is not None and silence + eps >= config.rule1_min_trailing_silence:
        return True
    if (
        config.rule2_min_trailing_silence is not None
        and last_emission_frame is not None
        and silence + eps >= config.rule2_min_trailing_silence
    ):
        return True
    if config.rule3_max_utterance_length is not None and length + eps >= config.rule3_max_utterance_length:
        return True
    return False
