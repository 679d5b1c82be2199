"""Log-mel front end: numpy framing and streaming, and agreement with the TensorFlow version."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from rnnt.config import FeatureConfig
from rnnt.features import FeatureStream, hann_window, log_mel, mel_matrix, num_frames

CFG = FeatureConfig()
REAL_DEV = sorted(glob.glob("/work/shared/data/real-dev/audio/*.flac"))


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / CFG.sample_rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def _real_speech(seconds: float = 3.0) -> np.ndarray:
    if not REAL_DEV:
        pytest.skip("no real-dev audio")
    sf = pytest.importorskip("soundfile")
    x, sr = sf.read(REAL_DEV[0], dtype="float32")
    assert sr == CFG.sample_rate and x.ndim == 1
    return x[: int(seconds * sr)]


@pytest.mark.parametrize(
    "n, expected", [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98)]
)
def test_num_frames(n, expected):
    assert num_frames(n, CFG) == expected
    assert log_mel(np.zeros(n, np.float32), CFG).shape == (expected, CFG.num_mels)


def test_shapes_and_dtype():
    feats = log_mel(_signal(16000), CFG)
    assert feats.shape == (98, 80) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert mel_matrix(CFG).shape == (257, 80) and mel_matrix(CFG).dtype == np.float32


def test_mel_matrix_properties():
    m = mel_matrix(CFG)
    assert (m >= 0).all() and (m <= 1).all()
    assert not m[0].any()  # DC row zeroed
    assert (m.sum(axis=0) > 0).all()  # every filter has weight
    peaks = m.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # centres increase


def test_hann_is_periodic():
    w = hann_window(400)
    assert w[0] == 0.0 and abs(w[200] - 1.0) < 1e-12
    np.testing.assert_allclose(w[1:], w[1:][::-1], atol=1e-12)


def test_frame_covers_its_samples():
    """Frame i depends only on samples [i*hop, i*hop+win)."""
    x = _signal(4000)
    base = log_mel(x, CFG)
    y = x.copy()
    y[5 * 160 + 400 :] = 0.0  # change samples after frame 5
    y[: 5 * 160] = 0.0  # and before it
    np.testing.assert_array_equal(log_mel(y, CFG)[5], base[5])


def test_silence_hits_the_floor():
    feats = log_mel(np.zeros(1000, np.float32), CFG)
    np.testing.assert_allclose(feats, np.log(CFG.log_floor), rtol=1e-6)


def test_tone_peaks_in_the_right_band():
    t = np.arange(8000) / CFG.sample_rate
    feats = log_mel(0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32), CFG)
    band = int(feats.mean(axis=0).argmax())
    m = mel_matrix(CFG)
    bin_1k = round(1000 * CFG.fft_length / CFG.sample_rate)
    assert m[bin_1k, band] == m[bin_1k].max()


def test_rejects_2d():
    with pytest.raises(ValueError):
        log_mel(np.zeros((2, 1000), np.float32), CFG)


@pytest.mark.parametrize("seed", range(4))
def test_stream_matches_whole(seed):
    rng = np.random.default_rng(seed)
    x = _signal(int(rng.integers(5000, 20000)), seed)
    whole = log_mel(x, CFG)
    stream = FeatureStream(CFG)
    parts, pos = [], 0
    while pos < len(x):
        size = int(rng.choice([1, 2, 7, 159, 160, 161, 399, 400, 401, 1000, 4096, len(x)]))
        size = int(rng.integers(1, size + 1))
        parts.append(stream.accept(x[pos : pos + size]))
        pos += size
    got = np.concatenate(parts)
    assert got.shape == whole.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)
    assert stream.frames_out == len(whole)
    assert stream.pending_samples == len(x) - len(whole) * CFG.hop_length


def test_stream_one_sample_at_a_time_and_reset():
    x = _signal(2000, 7)
    stream = FeatureStream(CFG)
    got = np.concatenate([stream.accept(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(got, log_mel(x, CFG), rtol=0, atol=1e-6)
    stream.reset()
    assert stream.pending_samples == 0 and stream.frames_out == 0
    assert stream.accept(np.zeros(0, np.float32)).shape == (0, 80)
    np.testing.assert_allclose(stream.accept(x), log_mel(x, CFG), rtol=0, atol=1e-6)


def test_stream_real_speech_whole_chunk():
    x = _real_speech(2.0)
    stream = FeatureStream(CFG)
    got = np.concatenate([stream.accept(x[:1234]), stream.accept(x[1234:])])
    np.testing.assert_allclose(got, log_mel(x, CFG), rtol=0, atol=1e-6)


def test_stream_hop_longer_than_window():
    cfg = FeatureConfig(win_length=200, hop_length=300, fft_length=256)
    x = _signal(5000, 3)
    stream = FeatureStream(cfg)
    got = np.concatenate([stream.accept(x[i : i + 37]) for i in range(0, len(x), 37)])
    np.testing.assert_allclose(got, log_mel(x, cfg), rtol=0, atol=1e-6)


# --- TensorFlow agreement -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def test_mel_matrix_matches_tf(tf):
    ref = tf.signal.linear_to_mel_weight_matrix(
        CFG.num_mels, CFG.fft_length // 2 + 1, CFG.sample_rate, CFG.lower_hz, CFG.upper_hz
    ).numpy()
    np.testing.assert_allclose(mel_matrix(CFG), ref, rtol=0, atol=1e-4)


def test_tf_matches_numpy_on_real_speech(tf):
    from rnnt.features_tf import log_mel_tf

    x = _real_speech(3.0)
    ref = log_mel(x, CFG)
    got = log_mel_tf(x, CFG).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-3
    batch = log_mel_tf(np.stack([x, x[::-1].copy()]), CFG).numpy()
    assert batch.shape == (2,) + ref.shape
    assert np.abs(batch[0] - ref).max() < 1e-3
    assert np.abs(batch[1] - log_mel(x[::-1].copy(), CFG)).max() < 1e-3


def test_tf_num_frames(tf):
    from rnnt.features_tf import log_mel_tf
    from rnnt.features_tf import num_frames as tf_num_frames

    lengths = [0, 399, 400, 559, 560, 16000]
    got = tf_num_frames(tf.constant(lengths), CFG).numpy().tolist()
    assert got == [num_frames(n, CFG) for n in lengths]
    assert tf_num_frames(560, CFG) == 2
    assert tf_num_frames(np.array(lengths), CFG).tolist() == got
    for n in lengths:
        assert log_mel_tf(np.zeros(n, np.float32), CFG).shape == (num_frames(n, CFG), CFG.num_mels)


def test_tf_equals_plain_stft(tf):
    """`log_mel_tf` is tf.signal.stft + linear_to_mel_weight_matrix, spelled out."""
    from rnnt.features_tf import log_mel_tf

    x = _real_speech(1.0)
    stft = tf.signal.stft(x, CFG.win_length, CFG.hop_length, CFG.fft_length, tf.signal.hann_window)
    weights = tf.signal.linear_to_mel_weight_matrix(
        CFG.num_mels, CFG.fft_length // 2 + 1, CFG.sample_rate, CFG.lower_hz, CFG.upper_hz
    )
    mel = tf.tensordot(tf.square(tf.abs(stft)), weights, axes=1)
    ref = tf.math.log(tf.maximum(mel, CFG.log_floor)).numpy()
    assert np.abs(log_mel_tf(x, CFG).numpy() - ref).max() < 1e-3
