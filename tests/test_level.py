"""The recording-level control (rnnt.level): one gain a stream, set from its first window of speech."""

from __future__ import annotations

import numpy as np
import pytest

from rnnt.config import FeatureConfig, ModelConfig
from rnnt.features import log_mel
from rnnt.level import LevelConfig, loud_level, stream_gain, window_gain
from rnnt.runtime import Recognizer

FEATURES = FeatureConfig(num_mels=20)
MODEL = ModelConfig(
    vocab_size=3, num_mels=20, encoder_layers=3, encoder_units=4, encoder_proj=4,
    predictor_units=4, predictor_proj=4, embed_dim=4, joint_dim=4,
)


class FeatureRecorder:
    """A step model that keeps every feature chunk it is given and never emits a token."""

    config = MODEL

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []

    def initial_encoder_state(self) -> np.ndarray:
        return np.zeros((1, 1), np.float32)

    def initial_predictor_state(self, n: int) -> np.ndarray:
        return np.zeros((n, 1), np.float32)

    def encode(self, feats, state):
        self.chunks.append(np.array(feats[0]))
        return np.zeros((1, MODEL.chunk_frames // MODEL.reduction, MODEL.encoder_proj), np.float32), state

    def predict(self, tokens, state):
        return np.zeros((len(tokens), MODEL.predictor_proj), np.float32), state

    def joint(self, enc, pred):
        out = np.full((enc.shape[0], MODEL.vocab_size), -30.0, np.float32)
        out[:, 0] = 0.0
        return out

    def features(self) -> np.ndarray:
        return np.concatenate(self.chunks)


def _speech(seconds: float, seed: int = 0, amplitude: float = 0.3, hiss: float = 1e-3) -> np.ndarray:
    """Syllables of broadband sound, four a second, over a faint hiss (float32 at 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = np.maximum(0.0, np.sin(2 * np.pi * 4 * t)) ** 2
    return (amplitude * envelope * rng.standard_normal(t.size) + hiss * rng.standard_normal(t.size)).astype(np.float32)


def _hiss(seconds: float, seed: int = 1, level: float = 1e-3) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


def _recognizer(level: LevelConfig | None = LevelConfig()):
    model = FeatureRecorder()
    return Recognizer.from_step_model(model, ["<blk>", "a", "b"], FEATURES, beam=2, endpoint=None, level=level), model


def _run(rec: Recognizer, x: np.ndarray, blocks: int = 1, seed: int = 0):
    stream = rec.create_stream()
    cuts = np.sort(np.random.default_rng(seed).integers(0, max(x.size, 1), blocks - 1))
    for block in np.split(x, cuts):
        stream.accept_waveform(block, 16000)
        while rec.is_ready(stream):
            rec.decode(stream)
    stream.input_finished()
    while rec.is_ready(stream):
        rec.decode(stream)
    return stream


def test_window_gain_brings_loud_frames_into_the_band_within_its_limits():
    cfg = LevelConfig()
    x = _speech(1.5, amplitude=0.003)
    gain = window_gain(log_mel(x, FEATURES), cfg)
    assert 0.0 < gain < cfg.max_boost
    assert loud_level(log_mel(x * np.exp(gain / 2), FEATURES)) == pytest.approx(cfg.low, abs=0.05)
    within = log_mel(_speech(1.5, amplitude=0.02), FEATURES)
    assert cfg.low < loud_level(within) < cfg.high and window_gain(within, cfg) == 0.0
    loud = _speech(1.5, amplitude=0.05)
    gain = window_gain(log_mel(loud, FEATURES), cfg)
    assert -cfg.max_cut < gain < 0.0
    assert loud_level(log_mel(loud * np.exp(gain / 2), FEATURES)) == pytest.approx(cfg.high, abs=0.05)
    assert window_gain(log_mel(_speech(1.5, amplitude=0.0005, hiss=1e-5), FEATURES), cfg) == cfg.max_boost
    assert window_gain(log_mel(_speech(1.5, amplitude=0.9), FEATURES), LevelConfig(max_cut=0.5)) == -0.5
    # no speech: a steady hiss, or digital silence
    assert window_gain(log_mel(_hiss(1.5), FEATURES), cfg) is None
    assert window_gain(log_mel(np.zeros(24000, np.float32), FEATURES), cfg) is None


def test_a_quiet_stream_reaches_the_model_as_a_loud_one_whatever_the_blocks():
    x = _speech(3.0, seed=3, amplitude=0.01)
    rec, model = _recognizer()
    loud = _run(rec, x)
    loud_feats = model.features()
    model.chunks.clear()
    quiet = _run(rec, x / 8, blocks=17, seed=4)
    assert quiet.gain - loud.gain == pytest.approx(2 * np.log(8), abs=0.05)
    heard = model.features()
    # exactly the features of the quiet audio made louder by the gain, and close to those of the loud audio
    np.testing.assert_allclose(heard[:290], log_mel(x / 8 * np.exp(quiet.gain / 2), FEATURES)[:290], atol=1e-4)
    np.testing.assert_allclose(heard[:290], loud_feats[:290], atol=0.06)
    # without the control the model hears the quiet stream 4.2 nats down
    plain, plain_model = _recognizer(level=None)
    stream = _run(plain, x / 8)
    assert stream.gain == 0.0
    assert (loud_feats - plain_model.features()).mean() > 3.5


def test_the_gain_waits_for_a_window_of_speech():
    cfg = LevelConfig(window_seconds=1.0)
    rec, model = _recognizer(level=cfg)
    x = np.concatenate([_hiss(2.2), _speech(2.0, amplitude=0.003)])
    stream = rec.create_stream()
    stream.accept_waveform(x[:16000 * 2], 16000)  # two windows of hiss
    while rec.is_ready(stream):
        rec.decode(stream)
    assert stream.gain is None and len(model.chunks) >= 1  # the hiss is decoded as it is
    np.testing.assert_array_equal(model.chunks[0], log_mel(x, FEATURES)[: MODEL.chunk_frames])
    stream.accept_waveform(x[16000 * 2 :], 16000)
    stream.input_finished()
    while rec.is_ready(stream):
        rec.decode(stream)
    assert stream.gain == pytest.approx(window_gain(log_mel(x, FEATURES)[200:300], cfg), abs=1e-6)
    assert stream.gain == pytest.approx(stream_gain(log_mel(x, FEATURES), cfg, 100), abs=1e-6)  # the offline rule
    assert stream.gain > 2.0
    heard = model.features()
    np.testing.assert_array_equal(heard[:200], log_mel(x, FEATURES)[:200])  # the released windows as they were
    louder = log_mel(x[200 * FEATURES.hop_length :] * np.exp(stream.gain / 2), FEATURES)
    np.testing.assert_allclose(heard[200 : 200 + louder.shape[0]], louder, atol=1e-4)  # the rest made louder
    # a stream of speech is not decoded before its first window is in
    rec2, _ = _recognizer(level=cfg)
    speech = rec2.create_stream()
    speech.accept_waveform(_speech(0.8), 16000)
    assert not rec2.is_ready(speech) and speech.gain is None
    plain, _ = _recognizer(level=None)
    unheld = plain.create_stream()
    unheld.accept_waveform(_speech(0.8), 16000)
    assert plain.is_ready(unheld)


@pytest.mark.parametrize("seconds", [0.0, 0.3, 1.0, 3.7])
def test_silent_and_short_streams_are_decoded_to_the_end(seconds):
    rec, model = _recognizer(level=LevelConfig(window_seconds=1.0))
    x = np.zeros(int(seconds * 16000), np.float32)
    stream = _run(rec, x, blocks=3)
    assert stream.gain == 0.0 and rec.get_result(stream).is_final
    assert sum(c.shape[0] for c in model.chunks) == -(-log_mel(x, FEATURES).shape[0] // MODEL.chunk_frames) * MODEL.chunk_frames


def test_level_settings_are_checked():
    with pytest.raises(ValueError, match="window_seconds"):
        LevelConfig(window_seconds=0)
    with pytest.raises(ValueError, match="max_boost"):
        LevelConfig(max_boost=-1.0)
    with pytest.raises(ValueError, match="percentile"):
        LevelConfig(percentile=20.0)
    with pytest.raises(ValueError, match="low"):
        LevelConfig(low=float("nan"))
    with pytest.raises(ValueError, match="must not be above"):
        LevelConfig(low=0.5, high=0.0)
    with pytest.raises(TypeError, match="LevelConfig"):
        _recognizer(level="loud")
