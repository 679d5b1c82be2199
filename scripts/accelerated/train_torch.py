"""Train the recipe's RNN-T on a lent GPU with PyTorch, from packed features; write weights in TensorFlow's layout.

The TensorFlow trainer (`rnnt train`) is the project's trainer; this script is its accelerated twin for a lent
GPU machine, which has PyTorch but no TensorFlow and no way to fetch it. It trains exactly `rnnt.model.RNNT`'s
network (LSTMP layers with layer norm on their outputs, the same joint, blank 0 as start symbol; cuDNN's LSTM
with `proj_size` is the same cell), from the shards of `pack_features.py`, with feature-level augmentation
(speed as a joint time/mel warp, noise mixed in the power domain, reverberation tails, gain, SpecAugment).
`import_weights.py` turns the written weights into a checkpoint of a recipe run folder, from which
`rnnt recipe ... --stages export,evaluate,install` go on as usual.

    python scripts/accelerated/train_torch.py --data runs/accel/data --model-json runs/accel/data/model.json \
        --state /tmp/accel --out runs/accel/out --minutes 8 --total-steps 4000

Each call trains until `--minutes` have passed or `--total-steps` is reached, resuming from `--state`
(full state) or else from `--init` (weights only, e.g. those a previous machine returned).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import lzma
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from import_weights import read_weights  # noqa: E402  (numpy only, like rnnt.data.batching)
from rnnt.data.batching import plan_batches  # noqa: E402

LOG_FLOOR = math.log(1e-6)


# ---------------------------------------------------------------- the network (rnnt.model.RNNT in PyTorch)
class ProjectedLSTM(nn.Module):
    def __init__(self, in_dim: int, units: int, proj: int):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, units, proj_size=proj, batch_first=True)
        with torch.no_grad():
            self.lstm.bias_hh_l0.zero_()
            self.lstm.bias_ih_l0.zero_()
            self.lstm.bias_ih_l0[units:2 * units] = 1.0  # forget gate, as rnnt.model
        self.norm = nn.LayerNorm(proj, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.lstm(x)[0])


class Transducer(nn.Module):
    def __init__(self, cfg: dict, dropout: float):
        super().__init__()
        self.cfg = cfg
        if cfg["time_reduction_after"] != -1:
            raise ValueError("the accelerated trainer supports time_reduction_after=-1 only")
        self.register_buffer("feature_mean", torch.zeros(cfg["num_mels"]))
        self.register_buffer("feature_std", torch.ones(cfg["num_mels"]))
        dims = [cfg["num_mels"] * cfg["frame_stack"]] + [cfg["encoder_proj"]] * cfg["encoder_layers"]
        self.encoder = nn.ModuleList(
            ProjectedLSTM(dims[i], cfg["encoder_units"], cfg["encoder_proj"]) for i in range(cfg["encoder_layers"])
        )
        self.embedding = nn.Embedding(cfg["vocab_size"], cfg["embed_dim"])
        pdims = [cfg["embed_dim"]] + [cfg["predictor_proj"]] * cfg["predictor_layers"]
        self.predictor = nn.ModuleList(
            ProjectedLSTM(pdims[i], cfg["predictor_units"], cfg["predictor_proj"])
            for i in range(cfg["predictor_layers"])
        )
        self.enc_proj = nn.Linear(cfg["encoder_proj"], cfg["joint_dim"])
        self.pred_proj = nn.Linear(cfg["predictor_proj"], cfg["joint_dim"], bias=False)
        self.out = nn.Linear(cfg["joint_dim"], cfg["vocab_size"])
        self.ctc_head = nn.Linear(cfg["encoder_proj"], cfg["vocab_size"])
        self.drop = nn.Dropout(dropout)

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        """feats [B, T, mels] (T a multiple of frame_stack) -> [B, T / frame_stack, proj]."""
        x = (feats - self.feature_mean) / self.feature_std
        b, t, d = x.shape
        x = x.reshape(b, t // self.cfg["frame_stack"], d * self.cfg["frame_stack"])
        for i, layer in enumerate(self.encoder):
            x = layer(self.drop(x) if i else x)
        return x

    def predict(self, labels: torch.Tensor) -> torch.Tensor:
        x = self.embedding(F.pad(labels, (1, 0)))
        for layer in self.predictor:
            x = layer(self.drop(x))
        return x

    def lattice(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.enc_proj(self.drop(enc))[:, :, None] + self.pred_proj(self.drop(pred))[:, None]))

    def tf_weights(self) -> dict[str, np.ndarray]:
        """Every weight under its `rnnt.model.RNNT` name (see import_weights.py), TF layout ([in, out])."""
        out = {"encoder/feature_mean": self.feature_mean, "encoder/feature_std": self.feature_std,
               "predictor/embedding": self.embedding.weight,
               "joint/enc_proj/w": self.enc_proj.weight.T, "joint/enc_proj/b": self.enc_proj.bias,
               "joint/pred_proj/w": self.pred_proj.weight.T,
               "joint/out/w": self.out.weight.T, "joint/out/b": self.out.bias,
               "ctc_head/w": self.ctc_head.weight.T, "ctc_head/b": self.ctc_head.bias}
        for part, layers in (("encoder", self.encoder), ("predictor", self.predictor)):
            for i, layer in enumerate(layers):
                lstm, key = layer.lstm, f"{part}/lstm{i}"
                out[f"{key}/input_kernel/w"] = lstm.weight_ih_l0.T
                out[f"{key}/input_kernel/b"] = lstm.bias_ih_l0 + lstm.bias_hh_l0
                out[f"{key}/recurrent_kernel/w"] = lstm.weight_hh_l0.T
                out[f"{key}/projection/w"] = lstm.weight_hr_l0.T
                out[f"{key}/norm/gamma"] = layer.norm.weight
                out[f"{key}/norm/beta"] = layer.norm.bias
        return {k: v.detach().float().cpu().numpy().copy() for k, v in out.items()}

    def load_tf_weights(self, w: dict[str, np.ndarray]) -> None:
        def put(param: torch.Tensor, value: np.ndarray) -> None:
            param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype))

        with torch.no_grad():
            put(self.feature_mean, w["encoder/feature_mean"])
            put(self.feature_std, w["encoder/feature_std"])
            put(self.embedding.weight, w["predictor/embedding"])
            for name, lin in (("joint/enc_proj", self.enc_proj), ("joint/out", self.out), ("ctc_head", self.ctc_head)):
                put(lin.weight, w[f"{name}/w"].T)
                put(lin.bias, w[f"{name}/b"])
            put(self.pred_proj.weight, w["joint/pred_proj/w"].T)
            for part, layers in (("encoder", self.encoder), ("predictor", self.predictor)):
                for i, layer in enumerate(layers):
                    lstm, key = layer.lstm, f"{part}/lstm{i}"
                    put(lstm.weight_ih_l0, w[f"{key}/input_kernel/w"].T)
                    put(lstm.bias_ih_l0, w[f"{key}/input_kernel/b"])
                    lstm.bias_hh_l0.zero_()
                    put(lstm.weight_hh_l0, w[f"{key}/recurrent_kernel/w"].T)
                    put(lstm.weight_hr_l0, w[f"{key}/projection/w"].T)
                    put(layer.norm.weight, w[f"{key}/norm/gamma"])
                    put(layer.norm.bias, w[f"{key}/norm/beta"])


# ---------------------------------------------------------------- losses
def rnnt_nll(logits: torch.Tensor, labels: torch.Tensor, t_len: torch.Tensor, u_len: torch.Tensor) -> torch.Tensor:
    """Per-utterance transducer NLL. Rows of the lattice are walked over t; inside a row the label moves are a
    log-space prefix sum, so one row is a `logcumsumexp`: alpha[t, u] = C[u] + logcumsumexp_k(A[k] - C[k])."""
    lp = logits.float().log_softmax(-1)
    b, t_max, u1, _ = lp.shape
    blank = lp[..., 0]
    lab = lp[:, :, :-1].gather(-1, labels[:, None, :, None].expand(b, t_max, u1 - 1, 1)).squeeze(-1)
    zeros = lab.new_zeros(b, t_max, 1)
    csum = torch.cat([zeros, lab.cumsum(-1)], dim=-1)  # [B, T, U+1]: label moves within row t
    alpha = csum[:, 0]
    rows = [alpha]
    for t in range(1, t_max):
        a = alpha + blank[:, t - 1]
        alpha = csum[:, t] + torch.logcumsumexp(a - csum[:, t], dim=-1)
        rows.append(alpha)
    alphas = torch.stack(rows, 1)
    idx = torch.arange(b, device=lp.device)
    return -(alphas[idx, t_len - 1, u_len] + blank[idx, t_len - 1, u_len])


# ---------------------------------------------------------------- data
def load_shards(folder: str) -> dict[str, list]:
    out: dict[str, list] = {"feats": [], "tokens": [], "split": [], "source": []}
    for path in sorted(glob.glob(os.path.join(folder, "shard-*.npz.xz"))):
        with open(path, "rb") as f:
            z = np.load(io.BytesIO(lzma.decompress(f.read())))
            feats, lengths = z["feats"], z["lengths"]
            tokens, tlen = z["tokens"], z["token_lengths"]
            fo, to = np.concatenate([[0], np.cumsum(lengths)]), np.concatenate([[0], np.cumsum(tlen)])
            for i in range(len(lengths)):
                out["feats"].append(feats[fo[i]:fo[i + 1]])
                out["tokens"].append(tokens[to[i]:to[i + 1]].astype(np.int64))
            out["split"] += z["split"].tolist()
            out["source"] += z["source"].tolist()
        print(f"loaded {path}", file=sys.stderr)
    return out


def pad_batch(items: list[np.ndarray], dtype, multiple: int = 1, value: float = 0) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray([len(x) for x in items])
    t = int(math.ceil(max(lengths.max(), 1) / multiple) * multiple)
    out = np.full((len(items), t) + items[0].shape[1:], value, dtype)
    for i, x in enumerate(items):
        out[i, :len(x)] = x
    return out, lengths


# ---------------------------------------------------------------- feature-level augmentation
def mel_centers_hz(num_mels: int = 80, lower: float = 20.0, upper: float = 7600.0) -> np.ndarray:
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)  # noqa: E731
    edges = np.linspace(mel(lower), mel(upper), num_mels + 2)
    return 700.0 * np.expm1(edges[1:-1] / 1127.0)


class Augmenter:
    """Augmentation of dequantized log-mel batches [B, T, M] on the GPU."""

    def __init__(self, noise: list[torch.Tensor], device: torch.device, num_mels: int, args):
        self.bank = torch.cat(noise) if noise else None  # the noise clips end to end [frames, mels]
        self.device = device
        self.args = args
        centers = mel_centers_hz(num_mels)
        self.centers = torch.tensor(centers, dtype=torch.float32, device=device)
        self.mel_lo = 1127.0 * math.log1p(20.0 / 700.0)
        self.mel_step = (1127.0 * math.log1p(7600.0 / 700.0) - self.mel_lo) / (num_mels + 1)

    def speed(self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Speed factor s: time axis shrinks by s, every frequency moves up by s (the mel bins follow)."""
        b, t, m = x.shape
        lo, hi = self.args.speed
        s = torch.empty(b, device=self.device).uniform_(lo, hi, generator=g)
        new_len = torch.clamp((lengths.float() / s).floor().long(), min=1)
        t_out = int(new_len.max())
        # time: output frame j reads input frame j * s
        tj = torch.arange(t_out, device=self.device, dtype=torch.float32)[None] * s[:, None]  # [B, T']
        gx_t = 2 * tj / max(t - 1, 1) - 1
        # mel: output bin at centre f reads the input at f / s
        f_in = self.centers[None] / s[:, None]
        pos = (1127.0 * torch.log1p(f_in / 700.0) - self.mel_lo) / self.mel_step - 1  # fractional input bin
        gy_m = 2 * pos / max(m - 1, 1) - 1  # [B, M]
        grid = torch.stack(torch.broadcast_tensors(gy_m[:, None, :], gx_t[:, :, None]), -1)  # [B, T', M, 2] (x=mel, y=time)
        out = F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]
        valid = torch.arange(t_out, device=self.device)[None] < new_len[:, None]
        return torch.where(valid[..., None], out, torch.full_like(out, LOG_FLOOR)), new_len

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

    def __call__(self, x, lengths, g):
        x, lengths = self.speed(x, lengths, g)
        x = self.reverb(x, g)
        x = self.noise_mix(x, lengths, g)
        gain = torch.empty(x.shape[0], 1, 1, device=self.device).uniform_(-1.0, 1.0, generator=g)
        x = torch.clamp(x + gain, min=LOG_FLOOR)
        return x, lengths


# ---------------------------------------------------------------- evaluation
def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@torch.no_grad()
def evaluate(model: Transducer, data: dict, dev: list[int], args, device) -> dict:
    model.eval()
    stats: dict[str, list[float]] = {}
    fs = model.cfg["frame_stack"]
    for k in range(0, len(dev), 64):
        idx = dev[k:k + 64]
        feats, flen = pad_batch([data["feats"][i] for i in idx], np.uint8, fs)
        x = torch.as_tensor(feats, device=device).float() * args.step + args.floor
        x = torch.where(torch.arange(x.shape[1], device=device)[None, :, None] < torch.as_tensor(flen, device=device)[:, None, None], x, torch.full_like(x, LOG_FLOOR))
        labels, ulen = pad_batch([data["tokens"][i] for i in idx], np.int64)
        labels, ulen_t = torch.as_tensor(labels, device=device), torch.as_tensor(ulen, device=device)
        enc = model.encode(x)
        tlen = torch.clamp(torch.as_tensor(flen, device=device) // fs, min=1)
        nll = rnnt_nll(model.lattice(enc, model.predict(labels)), labels, tlen, ulen_t)
        best = model.ctc_head(enc).argmax(-1).cpu().numpy()
        for n, i in enumerate(idx):
            src = data["source"][i]
            hyp = [int(c) for j, c in enumerate(best[n, : int(tlen[n])]) if c != 0 and (j == 0 or c != best[n, j - 1])]
            ref = data["tokens"][i].tolist()
            s = stats.setdefault(src, [0.0, 0.0, 0.0, 0.0])
            s[0] += float(nll[n])
            s[1] += len(ref)
            s[2] += edit_distance(hyp, ref)
            s[3] += len(ref)
    model.train()
    return {src: {"loss_per_token": round(s[0] / max(s[1], 1), 3), "ctc_greedy_cer": round(s[2] / max(s[3], 1), 4)}
            for src, s in stats.items()}


# ---------------------------------------------------------------- training
def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(args.total_steps - args.warmup, 1))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))


def save_weights(model: Transducer, folder: str, step: int, limit_mb: float = 15.0) -> None:
    """TF-layout weights as npz files of at most limit_mb each (a device call returns files up to 16 MB)."""
    os.makedirs(folder, exist_ok=True)
    for old in glob.glob(os.path.join(folder, "weights-*.npz")):
        os.remove(old)
    parts: list[dict] = [{}]
    size = 0
    for k, v in model.tf_weights().items():
        if size + v.nbytes > limit_mb * 1e6 and parts[-1]:
            parts.append({})
            size = 0
        parts[-1][k] = v
        size += v.nbytes
    for n, part in enumerate(parts):
        np.savez(os.path.join(folder, f"weights-{n}.npz"), step=np.int64(step), **{k.replace("/", "|"): v for k, v in part.items()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="folders with shard-*.npz.xz and meta.json")
    p.add_argument("--model-json", required=True, help="the ModelConfig as JSON")
    p.add_argument("--state", required=True, help="folder for the full training state on this machine")
    p.add_argument("--out", required=True, help="folder for weights-*.npz and log.jsonl")
    p.add_argument("--init", help="folder of weights-*.npz to start from when --state has none")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--total-steps", type=int, default=4000)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=2e-5)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--batch-seconds", type=float, default=600.0)
    p.add_argument("--max-batch", type=int, default=128)
    p.add_argument("--max-seconds", type=float, default=16.0)
    p.add_argument("--ctc-weight", type=float, default=0.3)
    p.add_argument("--ctc-only-steps", type=int, default=0, help="train the encoder on CTC alone this long first")
    p.add_argument("--dropout", type=float, default=0.15)
    p.add_argument("--speed", type=float, nargs=2, default=(0.85, 1.15))
    p.add_argument("--snr", type=float, nargs=2, default=(0.0, 25.0))
    p.add_argument("--noise-share", type=float, default=0.35)
    p.add_argument("--reverb-share", type=float, default=0.2)
    p.add_argument("--time-masks", type=int, default=5)
    p.add_argument("--freq-width", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    t_start = time.time()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    with open(os.path.join(args.data[0], "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    args.floor, args.step = meta["floor"], meta["step"]
    with open(args.model_json, encoding="utf-8") as f:
        cfg = json.load(f)
    data: dict[str, list] = {"feats": [], "tokens": [], "split": [], "source": []}
    for folder in args.data:
        part = load_shards(folder)
        for k in data:
            data[k] += part[k]
    fs = cfg["frame_stack"]
    split = np.asarray(data["split"])
    lengths = np.asarray([len(x) for x in data["feats"]])
    max_frames = int(args.max_seconds * 100)
    train = np.flatnonzero((split == meta["splits"]["train"]) & (lengths <= max_frames) & (lengths >= fs))
    dev = np.flatnonzero(split == meta["splits"]["dev"]).tolist()
    noise = [torch.as_tensor(data["feats"][i], device=device).float() * args.step + args.floor
             for i in np.flatnonzero(split == meta["splits"]["noise"])]
    print(f"train {len(train)} utterances ({lengths[train].sum() / 360000:.2f} h), dev {len(dev)}, noise {len(noise)}",
          file=sys.stderr)

    torch.manual_seed(args.seed)
    model = Transducer(cfg, args.dropout).to(device)
    decay = [p_ for n, p_ in model.named_parameters() if p_.dim() > 1]
    other = [p_ for n, p_ in model.named_parameters() if p_.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    os.makedirs(args.state, exist_ok=True)
    state_path = os.path.join(args.state, "state.pt")
    step, epoch = 0, 0
    if os.path.exists(state_path):
        st = torch.load(state_path, map_location=device)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, epoch = st["step"], st["epoch"]
        print(f"resumed full state at step {step}", file=sys.stderr)
    elif args.init and glob.glob(os.path.join(args.init, "weights-*.npz")):
        w, step = read_weights(args.init)
        model.load_tf_weights(w)
        print(f"started from weights of step {step} (fresh optimizer)", file=sys.stderr)
        args.warmup = step + 100  # a short re-warmup for the fresh optimizer state
    else:
        sample = np.concatenate([data["feats"][i] for i in train[:400]]).astype(np.float32) * args.step + args.floor
        model.feature_mean.copy_(torch.as_tensor(sample.mean(0)))
        model.feature_std.copy_(torch.as_tensor(np.maximum(sample.std(0), 1e-3)))
    model.train()
    aug = Augmenter(noise, device, cfg["num_mels"], args)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed * 1000003 + step)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "log.jsonl"), "a", encoding="utf-8")
    deadline = t_start + args.minutes * 60
    audio_seconds, t0, avg = 0.0, time.time(), None
    done = False
    while not done:
        plan = plan_batches(lengths[train] / 100, batch_seconds=args.batch_seconds, max_batch_size=args.max_batch,
                            max_duration=args.max_seconds, seed=args.seed, epoch=epoch, sort_window=args.max_batch * 20)
        for batch in plan:
            idx = train[batch]
            feats, flen = pad_batch([data["feats"][i] for i in idx], np.uint8)
            x = torch.as_tensor(feats, device=device).float() * args.step + args.floor
            flen_t = torch.as_tensor(flen, device=device)
            x = torch.where(torch.arange(x.shape[1], device=device)[None, :, None] < flen_t[:, None, None], x,
                            torch.full_like(x, LOG_FLOOR))
            x, flen_t = aug(x, flen_t, gen)
            pad = (-x.shape[1]) % fs
            x = F.pad(x, (0, 0, 0, pad), value=LOG_FLOOR)
            # SpecAugment on normalized features, masks set to the mean (0 after normalization)
            x = aug.spec_augment(x, flen_t, gen, model.feature_mean.expand_as(x))
            labels, ulen = pad_batch([data["tokens"][i] for i in idx], np.int64)
            labels, ulen_t = torch.as_tensor(labels, device=device), torch.as_tensor(ulen, device=device)
            tlen = torch.clamp(flen_t // fs, min=1)
            enc = model.encode(x)
            if step < args.ctc_only_steps:  # encoder warm-up on CTC alone; the transducer loss is only watched
                with torch.no_grad():
                    nll = rnnt_nll(model.lattice(enc, model.predict(labels)), labels, tlen, ulen_t)
            else:
                nll = rnnt_nll(model.lattice(enc, model.predict(labels)), labels, tlen, ulen_t)
            ctc = F.ctc_loss(model.ctc_head(enc).log_softmax(-1).transpose(0, 1), labels, tlen, ulen_t,
                             blank=0, reduction="none", zero_infinity=True)
            tokens = ulen_t.sum().clamp(min=1)
            if step < args.ctc_only_steps:
                loss = ctc.sum() / tokens
            else:
                loss = (nll.sum() + args.ctc_weight * ctc.sum()) / tokens
            for group in opt.param_groups:
                group["lr"] = lr_at(step, args)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            if torch.isfinite(loss) and torch.isfinite(gnorm):
                opt.step()
            step += 1
            audio_seconds += float(flen.sum()) / 100
            per_token = float(nll.detach().sum() / tokens)
            avg = per_token if avg is None else 0.98 * avg + 0.02 * per_token
            if step % 50 == 0:
                rate = audio_seconds / (time.time() - t0)
                rec = {"step": step, "loss_per_token": round(avg, 4), "ctc_per_token": round(float(ctc.sum() / tokens), 4),
                       "lr": lr_at(step, args), "grad_norm": round(float(gnorm), 3), "audio_x": round(rate, 1),
                       "minutes": round((time.time() - t_start) / 60, 2)}
                print(json.dumps(rec), file=sys.stderr, flush=True)
                log.write(json.dumps(rec) + "\n")
            if step % args.eval_every == 0:
                rec = {"step": step, "dev": evaluate(model, data, dev, args, device)}
                print(json.dumps(rec), file=sys.stderr, flush=True)
                log.write(json.dumps(rec) + "\n")
            if time.time() > deadline or step >= args.total_steps:
                done = True
                break
        else:
            epoch += 1
    rec = {"step": step, "final": True, "dev": evaluate(model, data, dev, args, device),
           "train_hours_seen": round(audio_seconds / 3600, 2)}
    print(json.dumps(rec), file=sys.stderr, flush=True)
    log.write(json.dumps(rec) + "\n")
    log.close()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "epoch": epoch}, state_path)
    save_weights(model, args.out, step)
    with open(os.path.join(args.out, "model.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    provenance = {"step": step, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
                  "train_hours": round(float(lengths[train].sum()) / 360000, 2),
                  "hours_seen_this_call": round(audio_seconds / 3600, 1),
                  "minutes_this_call": round((time.time() - t_start) / 60, 1),
                  "command": "train_torch.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    with open(os.path.join(args.out, "train.json"), "w", encoding="utf-8") as f:
        json.dump(provenance, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
