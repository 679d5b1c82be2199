"""Waveform augmentation (numpy and scipy only): usable offline by the corpus builder or on the fly inside a
`tf.numpy_function` / data loader.

- `speed_perturb`: play faster or slower by resampling (pitch moves with it; Kaldi-style); length / factor.
- `add_colored_noise`: white, pink, brown, blue or violet noise at a given SNR.
- `add_babble`: a sum of other utterances (other voices) at a given SNR.
- `reverberate` with `synthetic_rir`: exponentially decaying noise tail plus sparse early reflections for a
  random RT60 (a cheap stand-in for an image-method room simulation).
- `telephone`: 300-3400 Hz band-pass, 8 kHz round trip and optional mu-law 8-bit companding.
- `apply_gain`: random gain in dB.

`augment(x, rng, sample_rate, babble_pool, config)` applies a random subset by the probabilities of an
`AugmentConfig`; every function other than `speed_perturb` keeps the length. Outputs are float32, finite and
within [-1, 1] (`augment` scales a louder result down instead of clipping it). All randomness comes from
the `numpy.random.Generator` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import signal

__all__ = [
    "AugmentConfig",
    "NOISE_COLORS",
    "speed_perturb",
    "colored_noise",
    "mix_at_snr",
    "add_colored_noise",
    "make_babble",
    "add_babble",
    "synthetic_rir",
    "reverberate",
    "telephone",
    "apply_gain",
    "augment",
    "Augmenter",
]

#: spectral slope exponent alpha of each colour: power ~ 1 / f**alpha
NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0, "violet": -2.0}


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (each is drawn independently)."""

    speed_prob: float = 0.2
    speed_range: tuple[float, float] = (0.9, 1.1)
    reverb_prob: float = 0.3
    rt60_range: tuple[float, float] = (0.15, 0.9)
    noise_prob: float = 0.4
    noise_snr_db: tuple[float, float] = (0.0, 30.0)
    noise_colors: tuple[str, ...] = ("white", "pink", "brown", "blue")
    babble_prob: float = 0.2
    babble_snr_db: tuple[float, float] = (5.0, 25.0)
    babble_talkers: tuple[int, int] = (3, 7)
    telephone_prob: float = 0.1
    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-15.0, 6.0)

    def __post_init__(self) -> None:
        for name in ("speed_prob", "reverb_prob", "noise_prob", "babble_prob", "telephone_prob", "gain_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        unknown = set(self.noise_colors) - set(NOISE_COLORS)
        if unknown:
            raise ValueError(f"unknown noise colours: {', '.join(sorted(unknown))}")


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1)


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to n samples."""
    if y.size >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - y.size, y.dtype)])


def speed_perturb(x: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """`x` played `factor` times faster (factor > 1: shorter and higher); about len / factor samples.

    x is treated as if recorded at round(sample_rate * factor) and resampled to sample_rate with
    `rnnt.audio.resample`. The training pipeline uses it for on-the-fly speed perturbation too.
    """
    from rnnt.audio import resample

    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return resample(_f32(x), int(round(sample_rate * factor)), sample_rate)


def colored_noise(n: int, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """n samples of unit-RMS noise whose power spectrum falls as 1 / f**alpha for the colour."""
    alpha = NOISE_COLORS[color]
    if n <= 0:
        return np.zeros(0, np.float32)
    white = rng.standard_normal(n)
    if alpha:
        spec = np.fft.rfft(white)
        f = np.arange(spec.size, dtype=np.float64)
        f[0] = 1.0
        spec *= f ** (-alpha / 2)
        spec[0] = 0.0
        white = np.fft.irfft(spec, n)
    rms = np.sqrt(np.mean(white ** 2))
    return (white / rms if rms > 0 else white).astype(np.float32)


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """x + noise scaled so that 10 log10(P_x / P_noise) = snr_db (noise fitted to len(x))."""
    x = _f32(x)
    noise = _fit(_f32(noise), x.size)
    px, pn = _power(x), _power(noise)
    if px == 0 or pn == 0:
        return x.copy()
    scale = np.sqrt(px / (pn * 10 ** (snr_db / 10)))
    return (x + scale * noise).astype(np.float32)


def add_colored_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float, color: str = "white") -> np.ndarray:
    x = _f32(x)
    return mix_at_snr(x, colored_noise(x.size, rng, color), snr_db)


def make_babble(n: int, rng: np.random.Generator, pool: Sequence[np.ndarray], talkers: int = 4) -> np.ndarray:
    """n samples of babble: `talkers` random clips of `pool`, each looped, randomly shifted, at unit RMS."""
    out = np.zeros(n, np.float64)
    clips = [c for c in pool if np.asarray(c).size > 0]
    if n <= 0 or not clips:
        return out.astype(np.float32)
    for _ in range(talkers):
        clip = _f32(clips[int(rng.integers(len(clips)))])
        reps = -(-(n + clip.size) // clip.size)
        tiled = np.tile(clip, reps)
        start = int(rng.integers(clip.size))
        seg = tiled[start:start + n].astype(np.float64)
        p = _power(seg)
        out += seg / np.sqrt(p) if p > 0 else seg
    return out.astype(np.float32)


def add_babble(x: np.ndarray, rng: np.random.Generator, pool: Sequence[np.ndarray], snr_db: float,
               talkers: int = 4) -> np.ndarray:
    x = _f32(x)
    return mix_at_snr(x, make_babble(x.size, rng, pool, talkers), snr_db)


def synthetic_rir(rng: np.random.Generator, sample_rate: int = 16000, rt60: float = 0.5,
                  reflections: int = 8) -> np.ndarray:
    """A room impulse response: direct path, sparse early reflections (first 50 ms) and a noise tail whose
    energy falls 60 dB in `rt60` seconds, gently low-passed; normalized so the direct path is 1."""
    rt60 = max(0.05, float(rt60))
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    decay = np.exp(-6.9078 * t / rt60)  # amplitude: 60 dB over rt60
    tail = rng.standard_normal(n) * decay
    b, a = signal.butter(1, min(0.99, 6000 / (sample_rate / 2)))
    tail = signal.lfilter(b, a, tail)
    onset = int(0.003 * sample_rate)  # diffuse tail starts a few ms after the direct sound
    tail[:onset] = 0.0
    h = 0.3 * tail / (np.sqrt(np.sum(tail ** 2)) + 1e-12) * np.sqrt(rt60 * 4)
    h[0] = 1.0
    for _ in range(reflections):
        lo = int(0.002 * sample_rate)
        k = int(rng.integers(lo, max(lo + 1, min(n, int(0.05 * sample_rate)))))
        h[k] += rng.uniform(-0.6, 0.6) * decay[k]
    return h.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """x convolved with `rir`, cut to len(x) and rescaled to x's RMS."""
    x = _f32(x)
    if x.size == 0:
        return x.copy()
    y = signal.fftconvolve(x, _f32(rir))[: x.size]
    px, py = _power(x), _power(y)
    if py > 0:
        y = y * np.sqrt(px / py)
    return y.astype(np.float32)


def telephone(x: np.ndarray, sample_rate: int = 16000, mu_law: bool = True) -> np.ndarray:
    """Telephone quality: 300-3400 Hz band-pass, down to 8 kHz (mu-law 8-bit) and back; same length."""
    x = _f32(x)
    if x.size == 0:
        return x.copy()
    nyq = sample_rate / 2
    sos = signal.butter(4, [300 / nyq, min(3400 / nyq, 0.99)], btype="bandpass", output="sos")
    y = signal.sosfilt(sos, x)
    if sample_rate != 8000:
        y = signal.resample_poly(y, 8000, sample_rate)
    if mu_law:
        mu = 255.0
        c = np.sign(y) * np.log1p(mu * np.minimum(np.abs(y), 1.0)) / np.log1p(mu)
        c = np.round(c * 127) / 127
        y = np.sign(c) * np.expm1(np.abs(c) * np.log1p(mu)) / mu
    if sample_rate != 8000:
        y = signal.resample_poly(y, sample_rate, 8000)
    return _fit(y.astype(np.float32), x.size)


def apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    return (_f32(x) * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000,
            babble_pool: Sequence[np.ndarray] | None = None, config: AugmentConfig = AugmentConfig(),
            applied: list | None = None) -> np.ndarray:
    """A random subset of the augmentations, by `config`'s probabilities, in the order speed, reverberation,
    noise, babble, telephone, gain. Appends a description of each to `applied` when given."""
    y = _f32(x)
    note = applied.append if applied is not None else (lambda _: None)
    if rng.random() < config.speed_prob:
        factor = float(rng.uniform(*config.speed_range))
        y = speed_perturb(y, factor, sample_rate)
        note(f"speed={factor:.3f}")
    if rng.random() < config.reverb_prob:
        rt60 = float(rng.uniform(*config.rt60_range))
        y = reverberate(y, synthetic_rir(rng, sample_rate, rt60))
        note(f"reverb_rt60={rt60:.2f}")
    if rng.random() < config.noise_prob and config.noise_colors:
        color = config.noise_colors[int(rng.integers(len(config.noise_colors)))]
        snr = float(rng.uniform(*config.noise_snr_db))
        y = add_colored_noise(y, rng, snr, color)
        note(f"noise={color}@{snr:.1f}dB")
    if babble_pool and rng.random() < config.babble_prob:
        snr = float(rng.uniform(*config.babble_snr_db))
        talkers = int(rng.integers(config.babble_talkers[0], config.babble_talkers[1] + 1))
        y = add_babble(y, rng, babble_pool, snr, talkers)
        note(f"babble={talkers}@{snr:.1f}dB")
    if rng.random() < config.telephone_prob:
        y = telephone(y, sample_rate)
        note("telephone")
    if rng.random() < config.gain_prob:
        g = float(rng.uniform(*config.gain_db))
        y = apply_gain(y, g)
        note(f"gain={g:.1f}dB")
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.99:  # scale down rather than clip: gain and noise must not distort
        y = y * np.float32(0.99 / peak)
    return y.astype(np.float32)


class Augmenter:
    """A picklable callable `x -> augment(x, ...)` with its own generator, for data pipelines:

        aug = Augmenter(seed=0, babble_pool=clips)
        tf.numpy_function(aug, [audio], tf.float32)
    """

    def __init__(self, seed: int = 0, sample_rate: int = 16000, babble_pool: Sequence[np.ndarray] | None = None,
                 config: AugmentConfig = AugmentConfig()) -> None:
        self.rng = np.random.default_rng(seed)
        self.sample_rate = sample_rate
        self.babble_pool = list(babble_pool or [])
        self.config = config

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return augment(x, self.rng, self.sample_rate, self.babble_pool, self.config)
