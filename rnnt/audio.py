"""Audio input: read any libsndfile format, downmix to mono, resample (numpy; no TensorFlow).

`load_audio` reads a whole file; `iter_audio_blocks` streams a long file block by block; `Resampler` is a
stateful polyphase resampler whose output matches whole-signal `resample` (and `scipy.signal.resample_poly`,
whose filter it reproduces) sample for sample, however the input is split into blocks.
"""

from __future__ import annotations

import math
import os
import re
from typing import Iterator

import numpy as np
import soundfile

__all__ = ["AudioError", "Resampler", "resample", "load_audio", "iter_audio_blocks", "audio_info"]

_OUTPUTS_PER_STEP = 1 << 15  # bounds the [outputs, taps] gather matrix


class AudioError(Exception):
    """An audio file could not be used: missing, unreadable, empty or holding non-finite samples."""


def _ratio(from_rate: int, to_rate: int) -> tuple[int, int]:
    if int(from_rate) != from_rate or int(to_rate) != to_rate or from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive integers, got {from_rate} and {to_rate}")
    g = math.gcd(int(from_rate), int(to_rate))
    return int(to_rate) // g, int(from_rate) // g


def _design_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """Kaiser-windowed sinc low-pass (beta 5, 10 zero crossings per side) scaled by `up`.

    The same filter as `scipy.signal.resample_poly(x, up, down)` with its default window.
    """
    max_rate = max(up, down)
    half_len = 10 * max_rate
    cutoff = 1.0 / max_rate  # relative to Nyquist
    m = np.arange(2 * half_len + 1, dtype=np.float64) - half_len
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half_len + 1, 5.0)
    h /= h.sum()
    return h * up, half_len


class Resampler:
    """Streaming polyphase resampler from `from_rate` to `to_rate` (integer rates, reduced by their gcd).

    Output sample n is `sum_k x[k] * h[half_len + n*down - k*up]` with x zero outside the signal, so feeding
    blocks through `process` and ending with `flush` gives exactly `resample(whole_signal)`: n_out =
    ceil(n_in * to_rate / from_rate) samples. After `flush` the resampler is reset and can be reused.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        self.up, self.down = _ratio(from_rate, to_rate)
        self.identity = self.up == self.down == 1
        if not self.identity:
            h, self.half_len = _design_filter(self.up, self.down)
            self.taps = -(-h.size // self.up)  # taps per polyphase branch
            padded = np.zeros(self.taps * self.up)
            padded[: h.size] = h
            # phases[p, j] = h[p + j*up]: the coefficient of x[k_hi - j] for an output of phase p
            self.phases = padded.reshape(self.taps, self.up).T.astype(np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget all input: the next sample is the start of a new signal."""
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples produced
        if not self.identity:
            self._buf = np.zeros(self.taps, dtype=np.float32)  # x[buf_start:], zeros before the signal
            self._buf_start = -self.taps

    def _outputs(self, start: int, stop: int) -> np.ndarray:
        """Outputs [start, stop); the input they need must be in the buffer (zeros past the end)."""
        parts = []
        for s in range(start, stop, _OUTPUTS_PER_STEP):
            n = np.arange(s, min(stop, s + _OUTPUTS_PER_STEP), dtype=np.int64)
            t = n * self.down + self.half_len
            k_hi, phase = t // self.up, t % self.up
            idx = (k_hi - self._buf_start)[:, None] - np.arange(self.taps)[None, :]
            parts.append(np.einsum("nj,nj->n", self._buf[idx], self.phases[phase]))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _k_hi(self, n: int) -> int:
        return (n * self.down + self.half_len) // self.up

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed the next input samples (1-D); returns every output sample that is now determined."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._n_in += block.size
        if self.identity:
            self._n_out += block.size
            return block.copy()
        self._buf = np.concatenate([self._buf, block])
        # output n is ready once x[k_hi(n)] has arrived: n*down + half_len < n_in*up
        ready = max(self._n_out, -(-(self._n_in * self.up - self.half_len) // self.down))
        out = self._outputs(self._n_out, ready)
        self._n_out = ready
        self._trim()
        return out

    def flush(self) -> np.ndarray:
        """Returns the remaining output (the signal is zero after its end) and resets."""
        if self.identity:
            self.reset()
            return np.zeros(0, np.float32)
        total = -(-(self._n_in * self.up) // self.down)
        out = np.zeros(0, np.float32)
        if total > self._n_out:
            need = self._k_hi(total - 1) + 1 - (self._buf_start + self._buf.size)
            if need > 0:
                self._buf = np.concatenate([self._buf, np.zeros(need, np.float32)])
            out = self._outputs(self._n_out, total)
        self.reset()
        return out

    def _trim(self) -> None:
        keep_from = self._k_hi(self._n_out) - self.taps + 1  # oldest sample the next output needs
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start = keep_from


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a 1-D float signal; ceil(len * to_rate / from_rate) float32 samples.

    Uses `scipy.signal.resample_poly` when scipy is installed, else the numpy `Resampler` (same filter).
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    up, down = _ratio(from_rate, to_rate)
    if up == down:
        return x.copy()
    try:
        from scipy.signal import resample_poly
    except ImportError:
        r = Resampler(from_rate, to_rate)
        return np.concatenate([r.process(x), r.flush()])
    return resample_poly(x, up, down).astype(np.float32, copy=False)


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise AudioError(f"not an audio file (a folder): {path}")
    if os.path.getsize(path) == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes)")


def _open(path: str) -> soundfile.SoundFile:
    _check_path(path)
    try:
        return soundfile.SoundFile(path)
    except (RuntimeError, TypeError, ValueError) as e:  # LibsndfileError is a RuntimeError
        raise AudioError(f"cannot read audio file {path}: not audio, corrupt or unsupported ({e})") from e


def _mono(data: np.ndarray, path: str) -> np.ndarray:
    mono = data.mean(axis=1, dtype=np.float32) if data.ndim == 2 else data.astype(np.float32, copy=False)
    if not np.isfinite(mono).all():
        raise AudioError(f"audio file {path} contains NaN or infinite samples")
    return mono


_CHUNK_SIZE = re.compile(r"^(?:data|SSND)\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)


def _truncation(f: soundfile.SoundFile, decoded: int, path: str) -> None:
    """Raise AudioError if the file holds less audio than its header promises."""
    expected = f.frames
    # compressed formats may only estimate their length: allow 1% slack
    if 0 < expected < (1 << 62) and decoded < expected - max(1, expected // 100):
        raise AudioError(f"audio file {path} is truncated: {decoded} of {expected} frames decoded")
    try:
        log = f.extra_info
    except Exception:  # pragma: no cover - informational only
        return
    m = _CHUNK_SIZE.search(log)
    # a chunk size the header claims but the file lacks; 0 and ~4 GiB are placeholders of streaming writers
    if m and 0 < int(m.group(2)) < int(m.group(1)) < 0xFFFFFF00:
        raise AudioError(
            f"audio file {path} is truncated: header promises {m.group(1)} data bytes, the file holds {m.group(2)}"
        )


def audio_info(path: str) -> tuple[int, int, int]:
    """(sample_rate, frames, channels) from the file header; raises AudioError."""
    with _open(path) as f:
        return f.samplerate, f.frames, f.channels


def load_audio(path: str, sample_rate: int = 16000) -> np.ndarray:
    """Whole file as float32 mono samples at `sample_rate` (channels averaged); raises AudioError."""
    path = os.fspath(path)
    with _open(path) as f:
        rate = f.samplerate
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as e:
            raise AudioError(f"cannot decode audio file {path}: corrupt or truncated ({e})") from e
        if data.shape[0] == 0:
            raise AudioError(f"audio file {path} contains no samples")
        _truncation(f, data.shape[0], path)
    return resample(_mono(data, path), rate, sample_rate)


def iter_audio_blocks(path: str, block_seconds: float = 10.0, sample_rate: int = 16000) -> Iterator[np.ndarray]:
    """Stream a file as float32 mono blocks of `block_seconds` at `sample_rate` (the last one shorter).

    Reads the file incrementally; the concatenated blocks equal `load_audio(path, sample_rate)` up to
    float rounding. Raises AudioError (possibly after some blocks for a file that is corrupt part way).
    """
    path = os.fspath(path)
    block_out = max(1, int(round(block_seconds * sample_rate)))
    pending: list[np.ndarray] = []
    pending_len = 0
    produced = decoded = 0
    with _open(path) as f:
        resampler = Resampler(f.samplerate, sample_rate)
        block_in = max(1, int(round(block_seconds * f.samplerate)))
        while True:
            try:
                data = f.read(block_in, dtype="float32", always_2d=True)
            except (RuntimeError, ValueError) as e:
                raise AudioError(f"cannot decode audio file {path}: corrupt or truncated ({e})") from e
            decoded += data.shape[0]
            last = data.shape[0] == 0
            if last:
                _truncation(f, decoded, path)
            out = resampler.flush() if last else resampler.process(_mono(data, path))
            if out.size:
                pending.append(out)
                pending_len += out.size
            while pending_len >= block_out or (last and pending_len):
                joined = np.concatenate(pending)
                size = min(block_out, joined.size)
                yield joined[:size]
                produced += size
                pending, pending_len = [joined[size:]], joined.size - size
            if last:
                break
    if produced == 0:
        raise AudioError(f"audio file {path} contains no samples")
