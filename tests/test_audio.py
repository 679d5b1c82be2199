"""rnnt.audio: loading, downmixing, resampling, streaming blocks and errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf

from rnnt import audio
from rnnt.audio import AudioError, Resampler, iter_audio_blocks, load_audio, resample

RATES = [(8000, 16000), (44100, 16000), (22050, 16000), (48000, 16000), (16000, 8000), (11025, 16000)]


def _tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _stream(r: Resampler, x: np.ndarray, sizes) -> np.ndarray:
    out, i = [], 0
    for s in sizes:
        if i >= x.size:
            break
        out.append(r.process(x[i:i + s]))
        i += s
    out.append(r.process(x[i:]))
    out.append(r.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("from_rate,to_rate", RATES)
def test_resampler_matches_scipy(from_rate, to_rate):
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(from_rate + 17) * 0.3).astype(np.float32)
    up, down = audio._ratio(from_rate, to_rate)
    ref = signal.resample_poly(x, up, down)
    y = _stream(Resampler(from_rate, to_rate), x, rng.integers(1, 3000, 200))
    assert y.dtype == np.float32 and y.size == ref.size == -(-x.size * to_rate // from_rate)
    assert np.abs(y - ref).max() < 1e-5


def test_resample_without_scipy_matches(monkeypatch):
    x = _tone(22050, 0.5)
    with_scipy = resample(x, 22050, 16000)
    monkeypatch.setitem(sys.modules, "scipy.signal", None)  # import fails
    without = resample(x, 22050, 16000)
    assert without.shape == with_scipy.shape
    assert np.abs(without - with_scipy).max() < 1e-5


def test_resampler_reuse_and_identity():
    x = _tone(8000, 0.3)
    r = Resampler(8000, 16000)
    a = np.concatenate([r.process(x), r.flush()])
    b = np.concatenate([r.process(x), r.flush()])  # reset after flush
    np.testing.assert_array_equal(a, b)
    same = Resampler(16000, 16000)
    np.testing.assert_array_equal(np.concatenate([same.process(x), same.flush()]), x)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)
    with pytest.raises(ValueError):
        Resampler(0, 16000)


def test_resample_quality():
    # passband: a 1 kHz tone survives 44.1k -> 16k; stopband: a 12 kHz tone is filtered out, not aliased
    x = _tone(44100, 1.0, 1000.0)
    y = resample(x, 44100, 16000)
    ref = _tone(16000, 1.0, 1000.0)
    mid = slice(200, -200)
    assert np.abs(y[mid] - ref[: y.size][mid]).max() < 1e-2
    alias = resample(_tone(44100, 1.0, 12000.0), 44100, 16000)  # above the new Nyquist: removed
    assert np.abs(alias[mid]).max() < 1e-2


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg")])
def test_load_formats_and_downmix(tmp_path, fmt, ext):
    left, right = _tone(16000, 0.5, 300), _tone(16000, 0.5, 500)
    path = tmp_path / f"stereo.{ext}"
    sf.write(path, np.stack([left, right], axis=1), 16000, format=fmt)
    x = load_audio(str(path), 16000)
    assert x.dtype == np.float32 and x.ndim == 1 and x.size == left.size
    tol = 1e-3 if ext != "ogg" else 0.1  # vorbis is lossy
    assert np.abs(x - (left + right) / 2).max() < tol


def test_load_resamples(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(8000, 1.0), 8000, subtype="FLOAT")
    x = load_audio(str(path), 16000)
    assert x.size == 16000
    np.testing.assert_allclose(x, resample(_tone(8000, 1.0), 8000, 16000), atol=1e-6)


@pytest.mark.parametrize("from_rate", [8000, 16000, 22050, 44100])
def test_iter_blocks_match_whole_file(tmp_path, from_rate):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(int(from_rate * 2.3)) * 0.2).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, np.stack([x, -0.5 * x], axis=1), from_rate)
    whole = load_audio(str(path), 16000)
    blocks = list(iter_audio_blocks(str(path), 0.37, 16000))
    assert all(b.dtype == np.float32 for b in blocks)
    assert all(b.size == 5920 for b in blocks[:-1]) and 0 < blocks[-1].size <= 5920
    joined = np.concatenate(blocks)
    assert joined.size == whole.size
    assert np.abs(joined - whole).max() < 1e-3


def test_errors(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(str(tmp_path / "missing.wav"))
    with pytest.raises(AudioError, match="folder"):
        load_audio(str(tmp_path))
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(str(tmp_path / "empty.wav"))
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 50)
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(str(tmp_path / "junk.wav"))
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(str(tmp_path / "zero.wav"))
    with pytest.raises(AudioError, match="no samples"):
        list(iter_audio_blocks(str(tmp_path / "zero.wav"), 1.0))
    bad = _tone(16000, 0.2)
    bad[100] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(str(tmp_path / "nan.wav"))
    with pytest.raises(AudioError, match="NaN"):
        list(iter_audio_blocks(str(tmp_path / "nan.wav"), 0.05))
    bad[100] = np.inf
    sf.write(tmp_path / "inf.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="infinite"):
        load_audio(str(tmp_path / "inf.wav"))


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_truncated(tmp_path, ext):
    full = tmp_path / f"full.{ext}"
    sf.write(full, _tone(16000, 2.0), 16000)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated|corrupt"):
        load_audio(str(cut))
    with pytest.raises(AudioError, match="truncated|corrupt"):
        list(iter_audio_blocks(str(cut), 0.5))


def test_audio_info(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros((8000, 2), np.float32), 8000)
    assert audio.audio_info(str(tmp_path / "a.wav")) == (8000, 8000, 2)
