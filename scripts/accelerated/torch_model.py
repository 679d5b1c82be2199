"""`rnnt.model.RNNT`'s network in PyTorch, and the transducer loss, for the accelerated trainer.

cuDNN's LSTM with `proj_size` is the project's projected cell (gates i, f, g, o; one bias: bias_ih + bias_hh), layer
norm follows each layer's output, the joint and the blank-as-start predictor are the same. `tf_weights` and
`load_tf_weights` convert to and from the TensorFlow model's variable names and layout ([in, out]).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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

    def joint_inputs(self, enc: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint's projections of encoder [B, T, J] and predictor [B, U+1, J] outputs (dropout on the inputs)."""
        return self.enc_proj(self.drop(enc)), self.pred_proj(self.drop(pred))

    def joint(self, enc_j: torch.Tensor, pred_j: torch.Tensor) -> torch.Tensor:
        """Logits of broadcast projections (e.g. [B, T, 1, J] + [B, 1, U+1, J] -> [B, T, U+1, V])."""
        return self.out(torch.tanh(enc_j + pred_j))

    def lattice(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        enc_j, pred_j = self.joint_inputs(enc, pred)
        return self.joint(enc_j[:, :, None], pred_j[:, None])

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


_UNREACHABLE = -1e30  # log-probability of a lattice node outside the band


def _edges(log_probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [B, T, K, V] at lattice nodes whose next label is labels [B, T, K-1] -> blank moves [B, T, K]
    and label moves [B, T, K-1]."""
    return log_probs[..., 0], log_probs[:, :, :-1].gather(-1, labels[..., None]).squeeze(-1)


def band_nll(blank: torch.Tensor, lab: torch.Tensor, start: torch.Tensor, t_len: torch.Tensor,
             u_len: torch.Tensor) -> torch.Tensor:
    """Per-utterance transducer NLL over a band of the lattice: row t holds the nodes u = start[b, t] + k, k < K.

    blank [B, T, K] and lab [B, T, K-1] are the blank and label moves' log-probs at those nodes; start [B, T] is
    non-decreasing, rises by at most K-1 a row and starts at 0 (all zeros with K = U+1: the whole lattice). Rows are
    walked over t; inside a row the label moves are a log-space prefix sum, so one row is a `logcumsumexp`:
    alpha[t, k] = C[k] + logcumsumexp_j(A[j] - C[j]), A the blank moves in from row t-1 (shifted by the band's rise).
    """
    b, t_max, k_max = blank.shape
    csum = torch.cat([lab.new_zeros(b, t_max, 1), lab.cumsum(-1)], dim=-1)  # [B, T, K]: label moves within row t
    rise = (start[:, 1:] - start[:, :-1]).clamp(max=k_max)  # a rise of k_max or more: the band left the path
    k = torch.arange(k_max, device=blank.device)
    outside = blank.new_full((b, k_max), _UNREACHABLE)
    alpha = csum[:, 0]
    rows = [alpha]
    for t in range(1, t_max):
        came = torch.cat([alpha + blank[:, t - 1], outside], dim=-1).gather(1, k[None] + rise[:, t - 1, None])
        alpha = csum[:, t] + torch.logcumsumexp(came - csum[:, t], dim=-1)
        rows.append(alpha)
    alphas = torch.stack(rows, 1)
    idx = torch.arange(b, device=blank.device)
    last = t_len - 1
    end = (u_len - start[idx, last]).clamp(0, k_max - 1)
    return -(alphas[idx, last, end] + blank[idx, last, end])


def lattice_edges(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole lattice's moves: logits [B, T, U+1, V], labels [B, U] -> blank [B, T, U+1], label [B, T, U]."""
    b, t_max, u1, _ = logits.shape
    return _edges(logits.float().log_softmax(-1), labels[:, None].expand(b, t_max, u1 - 1))


def rnnt_nll(logits: torch.Tensor, labels: torch.Tensor, t_len: torch.Tensor, u_len: torch.Tensor) -> torch.Tensor:
    """Per-utterance transducer NLL of the whole lattice (logits [B, T, U+1, V], labels [B, U])."""
    blank, lab = lattice_edges(logits, labels)
    return band_nll(blank, lab, labels.new_zeros(blank.shape[:2]), t_len, u_len)


def ctc_nll(log_probs: torch.Tensor, labels: torch.Tensor, t_len: torch.Tensor, u_len: torch.Tensor) -> torch.Tensor:
    """Per-utterance CTC negative log-likelihood of `log_probs` [B, T, V] (blank 0); an utterance that cannot be aligned
    in its frames counts 0."""
    return F.ctc_loss(log_probs.transpose(0, 1), labels, t_len, u_len, blank=0, reduction="none", zero_infinity=True)


def prune_starts(blank: torch.Tensor, lab: torch.Tensor, t_len: torch.Tensor, u_len: torch.Tensor,
                 width: int) -> torch.Tensor:
    """Where each row's band of `width` nodes starts [B, T]: the window holding the most posterior occupancy of
    the whole lattice (blank [B, T, U+1], lab [B, T, U], no gradient needed), then made a valid band (see
    `band_nll`): the last row holds u_len, each row overlaps the next, the first starts at 0."""
    b, t_max, u1 = blank.shape
    blank, lab = blank.detach().requires_grad_(True), lab.detach().requires_grad_(True)
    with torch.enable_grad():
        nll = band_nll(blank, lab, u_len.new_zeros(b, t_max), t_len, u_len)
        d_blank, d_lab = torch.autograd.grad(nll.sum(), (blank, lab))
    occupancy = -d_blank  # a node's posterior: the sum of its two outgoing moves' posteriors
    occupancy[..., :-1] -= d_lab
    mass = F.pad(occupancy.cumsum(-1), (1, 0))
    start = (mass[..., width:] - mass[..., :-width]).argmax(-1)  # window [s, s + width) with the most mass
    top = (u_len + 1 - width).clamp(min=0)[:, None]
    t = torch.arange(t_max, device=blank.device)[None]
    start = torch.where(t >= (t_len - 1)[:, None], top, torch.minimum(start, top))
    slope = (width - 1) * t  # s[t] >= s[t+1] - (width-1): a running max from the end
    start = torch.flip(torch.cummax(torch.flip(start - slope, [1]), 1).values, [1]) + slope
    start[:, 0] = 0
    return torch.cummax(start, 1).values


def pruned_rnnt_nll(joint, enc_j: torch.Tensor, pred_j: torch.Tensor, labels: torch.Tensor, t_len: torch.Tensor,
                    u_len: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Transducer NLL over a band of `width` label positions a frame (k2's pruned loss, with the band read off the
    full model's own lattice): the whole lattice once without gradient picks the band, the joint runs with gradient
    on [B, T, width] nodes only. `joint(enc_j, pred_j)` maps broadcast projections to logits; enc_j [B, T, J],
    pred_j [B, U+1, J]. Returns the NLL [B] and which utterances the band could hold [B]: one whose likely path emits
    more than width-1 labels in one frame cannot be, and counts 0."""
    b, t_max, dim = enc_j.shape
    u1 = pred_j.shape[1]
    if width >= u1:
        nll = rnnt_nll(joint(enc_j[:, :, None], pred_j[:, None]), labels, t_len, u_len)
        return nll, torch.ones_like(nll, dtype=torch.bool)
    with torch.no_grad():
        blank, lab = lattice_edges(joint(enc_j[:, :, None], pred_j[:, None]), labels)
    start = prune_starts(blank, lab, t_len, u_len, width)
    del blank, lab
    node = start[..., None] + torch.arange(width, device=start.device)  # [B, T, width]: u of each band node
    pred_band = pred_j.gather(1, node.clamp(max=u1 - 1).reshape(b, -1, 1).expand(-1, -1, dim))
    log_probs = joint(enc_j[:, :, None], pred_band.reshape(b, t_max, width, dim)).float().log_softmax(-1)
    next_label = labels.gather(1, node[..., :-1].clamp(max=u1 - 2).reshape(b, -1)).reshape(b, t_max, width - 1)
    nll = band_nll(*_edges(log_probs, next_label), start, t_len, u_len)
    reachable = (start[:, 1:] - start[:, :-1]).le(width - 1).all(1)
    return torch.where(reachable, nll, torch.zeros_like(nll)), reachable
