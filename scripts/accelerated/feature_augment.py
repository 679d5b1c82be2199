"""Augmentation of log-mel batches on the GPU: speed, vocal-tract and pitch warps, a channel transfer, a spectral
tilt, reverberation, noise and babble, gain, SpecAugment.

Everything works on features, since the GPU machine gets packed features, not audio: speed as a joint warp of the
time axis and the mel axis, a vocal-tract length warp (VTLP) as a warp of the mel axis alone, tempo as a warp of the
time axis alone, pitch as a warp of the harmonics alone (the fine structure left when a lifter takes the spectral
envelope out of each frame), noise mixed in the power domain at a random SNR, reverberation as exponential power
tails, gain as a shift of the log, a channel (microphone, room colour, long-term voice timbre) as a fixed curve
over the mel bands taken from another clip, a tilt as the curve of a random first-order filter.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rnnt.config import FeatureConfig
from rnnt.level import LevelConfig, stream_gain, window_frames

LOG_FLOOR = math.log(1e-6)


def level_features(x: torch.Tensor, lengths: torch.Tensor, cfg: LevelConfig = LevelConfig(),
                   features: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Each clip of a batch [B, T, M] at the level the runtime's level control gives it (`rnnt.level.stream_gain`
    on its frames), a shift of its log-mels; bands at the floor stay there (digital silence stays silent)."""
    window = window_frames(cfg, features)
    frames = x.detach().float().cpu().numpy()
    gains = [stream_gain(clip[:n], cfg, window) for clip, n in zip(frames, lengths.tolist())]
    shift = torch.tensor(gains, dtype=x.dtype, device=x.device)[:, None, None]
    return torch.where(x <= LOG_FLOOR + 1e-3, x, torch.clamp(x + shift, min=LOG_FLOOR))


def _mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale, as `rnnt.features` builds its filterbank."""
    return 1127.0 * torch.log1p(hz / 700.0)


SPEECH_RANGE = math.log(1e3)  # frames within 30 dB of a clip's loudest (by mean log-mel) count as its speech
ENVELOPE_COEFFICIENTS = 16  # a frame's spectral envelope: its first 16 DCT coefficients over the 80 mel bands


def _lifter(num_mels: int, keep: int) -> torch.Tensor:
    """[M, M] projection of a log-mel frame (a row) onto its first `keep` DCT-II coefficients: the envelope that
    formants shape, without the harmonics' ripple (below 1 kHz, one harmonic every 2 to 9 bands for voices of 100
    to 250 Hz)."""
    n = torch.arange(num_mels, dtype=torch.float64)
    basis = torch.cos(math.pi / num_mels * (n[None] + 0.5) * torch.arange(keep, dtype=torch.float64)[:, None])
    basis *= math.sqrt(2.0 / num_mels)
    basis[0] /= math.sqrt(2.0)  # orthonormal rows
    return (basis.T @ basis).float()


class Augmenter:
    """Augmentation of dequantized log-mel batches [B, T, M] on the GPU."""

    def __init__(self, noise: list[torch.Tensor], device: torch.device, num_mels: int, args,
                 features: FeatureConfig = FeatureConfig()):
        self.bank = torch.cat(noise) if noise else None  # the noise clips end to end [frames, mels]
        self.device = device
        self.args = args
        lo, hi = _mel(torch.tensor([features.lower_hz, features.upper_hz], dtype=torch.float64)).tolist()
        self.mel_lo, self.mel_step = lo, (hi - lo) / (num_mels + 1)  # band k is centred on mel_lo + (k+1) * mel_step
        centres = lo + self.mel_step * torch.arange(1, num_mels + 1, dtype=torch.float64)
        self.centers = (700.0 * torch.expm1(centres / 1127.0)).float().to(device)
        self.cos_w = (2.0 * math.pi / features.sample_rate * self.centers).cos()  # cos(w) at each band's centre
        self.envelope = _lifter(num_mels, ENVELOPE_COEFFICIENTS).to(device)

    def _factors(self, name: str, b: int, g: torch.Generator) -> torch.Tensor:
        """One factor a clip from the range `args.<name>`; ones, and no draw, when the range is (1, 1)."""
        lo, hi = getattr(self.args, name, (1.0, 1.0))
        if (lo, hi) == (1.0, 1.0):
            return torch.ones(b, device=self.device)
        return torch.empty(b, device=self.device).uniform_(lo, hi, generator=g)

    def _source_bands(self, factor: torch.Tensor) -> torch.Tensor:
        """[B, M] fractional input band each output band reads when every frequency moves up by `factor` [B]: the
        band centred on f reads the input at f / factor."""
        return (_mel(self.centers[None] / factor[:, None]) - self.mel_lo) / self.mel_step - 1

    @staticmethod
    def _resample(x: torch.Tensor, frames: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        """x [B, T, M] read at fractional input frames [B, T'] and bands [B, M]: bilinear, the edges held."""
        _, t, m = x.shape
        gx_t = 2 * frames / max(t - 1, 1) - 1
        gy_m = 2 * bands / max(m - 1, 1) - 1
        grid = torch.stack(torch.broadcast_tensors(gy_m[:, None, :], gx_t[:, :, None]), -1)  # [B, T', M, (mel, time)]
        return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]

    def speed(self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Generator,
              tempo_ranges: torch.Tensor | None = None, paired: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Speed factor s: time axis shrinks by s, every frequency moves up by s (the mel bins follow). A vocal-tract
        factor w from `args.vtlp` (if set) moves every frequency up by w more with the tempo kept: another speaker.
        A tempo factor r from `args.tempo` (if set), or from each clip's own range in `tempo_ranges` [B, 2] when
        given, shrinks the time axis by r more with the frequencies kept: the same voice reading faster (r > 1) or
        slower. `paired`: the batch is two views of the same clips, [A; B]; B's clips take A's time warp, so the
        views' frames stay aligned, and keep their own frequency warp."""
        b = x.shape[0]
        lo, hi = self.args.speed
        s = torch.empty(b, device=self.device).uniform_(lo, hi, generator=g)
        w = self._factors("vtlp", b, g)
        if tempo_ranges is None:
            r = self._factors("tempo", b, g)
        else:
            lo_r, hi_r = tempo_ranges.to(self.device, torch.float32).unbind(-1)
            r = lo_r + (hi_r - lo_r) * torch.rand(b, generator=g, device=self.device)
        step = s * r  # input frames an output frame
        if paired:
            step = step[: b // 2].repeat(2)
        new_len = torch.clamp((lengths.float() / step).floor().long(), min=1)
        t_out = int(new_len.max())
        # time: output frame j reads input frame j * s * r; mel: every frequency up by s * w
        frames = torch.arange(t_out, device=self.device, dtype=torch.float32)[None] * step[:, None]  # [B, T']
        out = self._resample(x, frames, self._source_bands(s * w))
        valid = torch.arange(t_out, device=self.device)[None] < new_len[:, None]
        return torch.where(valid[..., None], out, torch.full_like(out, LOG_FLOOR)), new_len

    def pitch(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Pitch factor p from `args.pitch` (if set): the harmonics move up by p, the envelope (formants) and the
        tempo stay: the same speaker's vocal tract at another voice pitch. The fine structure (each frame less its
        envelope, `_lifter`) is read at f / p, its own envelope taken out again, and added back to the envelope."""
        b, t, _ = x.shape
        p = self._factors("pitch", b, g)
        if bool((p == 1.0).all()):
            return x
        envelope = x @ self.envelope
        frames = torch.arange(t, device=self.device, dtype=torch.float32).expand(b, t)
        moved = self._resample(x - envelope, frames, self._source_bands(p))
        return envelope + moved - moved @ self.envelope

    def channel(self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Channel transfer (`args.channel_share` of the clips): a clip's long-term spectrum moves a random part of
        the way to another clip's of the batch, as if heard through that clip's microphone and room, or read with
        its speaker's timbre. The long-term spectrum is the mean over the speech frames (digital silence left out),
        smoothed to its envelope (`_lifter`); the curve added to every frame is the difference of the two, less its
        mean over the bands (the level is `gain`'s)."""
        b, t, _ = x.shape
        share = getattr(self.args, "channel_share", 0.0)
        if share <= 0 or b < 2:
            return x  # nothing drawn: runs without it keep their random streams
        pick = torch.rand(b, device=self.device, generator=g) < share
        valid = torch.arange(t, device=self.device)[None] < lengths[:, None]
        energy = x.mean(-1).masked_fill(~valid, -math.inf)
        speech = (energy > energy.amax(1, keepdim=True) - SPEECH_RANGE).float()[..., None]
        spectrum = (x * speech).sum(1) / speech.sum(1).clamp(min=1) @ self.envelope  # [B, M]
        other = (torch.arange(b, device=self.device)
                 + torch.randint(1, b, (b,), generator=g, device=self.device)) % b
        part = torch.rand(b, 1, device=self.device, generator=g)
        return self._add_curve(x, valid, pick, part * (spectrum[other] - spectrum))

    def tilt(self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Spectral tilt (`args.tilt_share` of the clips): every frame through a first-order filter, the power curve
        ``+-log(1 + a^2 - 2 a cos w)`` with ``a`` drawn from ``[-args.tilt_max, args.tilt_max]`` and the sign at
        random: ``y[n] = x[n] - a x[n-1]`` (a > 0 brightens, a < 0 darkens) or its inverse, ``y[n] = x[n] + a
        y[n-1]``. Unlike the channel transfer, it reaches beyond the training clips' own spectra; the curve's mean
        over the bands is taken out (the level is `gain`'s)."""
        b, t, _ = x.shape
        share = getattr(self.args, "tilt_share", 0.0)
        if share <= 0:
            return x  # nothing drawn: runs without it keep their random streams
        pick = torch.rand(b, device=self.device, generator=g) < share
        reach = getattr(self.args, "tilt_max", 0.9)
        a = (torch.rand(b, 1, device=self.device, generator=g) * 2.0 - 1.0) * reach
        sign = torch.where(torch.rand(b, 1, device=self.device, generator=g) < 0.5, -1.0, 1.0)
        curve = sign * torch.log(1.0 + a * a - 2.0 * a * self.cos_w[None])
        valid = torch.arange(t, device=self.device)[None] < lengths[:, None]
        return self._add_curve(x, valid, pick, curve)

    @staticmethod
    def _add_curve(x: torch.Tensor, valid: torch.Tensor, pick: torch.Tensor, curve: torch.Tensor) -> torch.Tensor:
        """Add each picked clip's curve over the bands [B, M], less its mean (the level is `gain`'s), to every one
        of its valid frames."""
        curve = curve - curve.mean(-1, keepdim=True)
        return torch.where(pick[:, None, None], x + curve[:, None, :] * valid[..., None], x)

    def noise_mix(self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Mix in the power domain, at a random SNR, the noise bank or another utterance of the batch (babble)."""
        b, t, m = x.shape
        pick = torch.rand(b, device=self.device, generator=g) < self.args.noise_share
        if not pick.any():
            return x
        ar = torch.arange(t, device=self.device)[None]
        # babble: utterance (i + shift) % b, read circularly from a random frame
        other = (torch.arange(b, device=self.device) + int(torch.randint(1, max(b, 2), (1,), generator=g,
                                                                          device=self.device))) % b
        other_len = lengths[other].clamp(min=1)
        start = (torch.rand(b, generator=g, device=self.device) * other_len).long()
        idx = (ar + start[:, None]) % other_len[:, None]
        noise = torch.gather(x[other], 1, idx[..., None].expand(b, t, m))
        if self.bank is not None:
            start = torch.randint(self.bank.shape[0], (b,), generator=g, device=self.device)
            from_bank = self.bank[(ar + start[:, None]) % self.bank.shape[0]]
            use_bank = torch.rand(b, generator=g, device=self.device) < 0.5
            noise = torch.where(use_bank[:, None, None], from_bank, noise)
        p_x, p_n = x.exp(), noise.exp()
        valid = (torch.arange(t, device=self.device)[None] < lengths[:, None]).float()[..., None]
        mean_x = (p_x * valid).sum((1, 2)) / (valid.sum((1, 2)) * m).clamp(min=1)
        mean_n = (p_n * valid).sum((1, 2)) / (valid.sum((1, 2)) * m).clamp(min=1)
        lo, hi = self.args.snr
        snr = torch.empty(b, device=self.device).uniform_(lo, hi, generator=g)
        gain = mean_x / mean_n.clamp(min=1e-12) * 10 ** (-snr / 10)
        mixed = torch.log(p_x + gain[:, None, None] * p_n)
        return torch.where(pick[:, None, None], mixed, x)

    def reverb(self, x: torch.Tensor, g: torch.Generator, taps: int = 48) -> torch.Tensor:
        b, t, m = x.shape
        pick = torch.rand(b, device=self.device, generator=g) < self.args.reverb_share
        if not pick.any():
            return x
        tau = torch.empty(b, device=self.device).uniform_(3.0, 25.0, generator=g)  # frames: RT60 0.2 - 1.7 s
        level = torch.empty(b, device=self.device).uniform_(0.1, 0.6, generator=g)
        k = torch.arange(1, taps + 1, device=self.device, dtype=torch.float32)
        tail = level[:, None] * torch.exp(-k[None] / tau[:, None]) / tau[:, None]  # [B, taps]
        kernel = torch.cat([tail.flip(-1), torch.ones(b, 1, device=self.device)], -1)  # causal: past frames
        p = x.exp().transpose(1, 2).reshape(1, b * m, t)
        w = kernel[:, None, None, :].expand(b, m, 1, taps + 1).reshape(b * m, 1, taps + 1)
        y = F.conv1d(F.pad(p, (taps, 0)), w, groups=b * m).reshape(b, m, t).transpose(1, 2)
        return torch.where(pick[:, None, None], torch.log(y.clamp(min=1e-12)), x)

    def gain(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Every clip louder or quieter by a shift of its log-mels drawn from `args.gain` (nats; default ±1, about
        ±4.3 dB), the log floor kept: a recording level."""
        lo, hi = getattr(self.args, "gain", (-1.0, 1.0))
        shift = torch.empty(x.shape[0], 1, 1, device=self.device).uniform_(lo, hi, generator=g)
        return torch.clamp(x + shift, min=LOG_FLOOR)

    def spec_augment(self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Generator, fill: torch.Tensor):
        b, t, m = x.shape
        ar_t = torch.arange(t, device=self.device)[None]
        ar_m = torch.arange(m, device=self.device)[None]
        mask = torch.zeros(b, t, m, dtype=torch.bool, device=self.device)
        for _ in range(2):
            w = torch.randint(0, self.args.freq_width + 1, (b, 1), generator=g, device=self.device)
            s = (torch.rand(b, 1, generator=g, device=self.device) * (m - w)).long()
            mask |= ((ar_m >= s) & (ar_m < s + w))[:, None, :]
        for _ in range(self.args.time_masks):
            w = (torch.rand(b, 1, generator=g, device=self.device) * 0.05 * lengths[:, None]).long()
            s = (torch.rand(b, 1, generator=g, device=self.device) * (lengths[:, None] - w).clamp(min=1)).long()
            mask |= ((ar_t >= s) & (ar_t < s + w))[:, :, None]
        return torch.where(mask, fill, x)

    def __call__(self, x, lengths, g, tempo_ranges: torch.Tensor | None = None, paired: bool = False):
        x, lengths = self.speed(x, lengths, g, tempo_ranges, paired)
        x = self.pitch(x, g)
        x = self.channel(x, lengths, g)
        x = self.tilt(x, lengths, g)
        x = self.reverb(x, g)
        x = self.noise_mix(x, lengths, g)
        x = self.gain(x, g)
        return (level_features(x, lengths) if getattr(self.args, "level", False) else x), lengths
