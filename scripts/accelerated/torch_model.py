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
