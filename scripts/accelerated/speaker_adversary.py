"""A speaker classifier behind a gradient reversal, for `train_torch.py --speaker-adversary` (Meng et al. 2018).

The classifier reads the encoder's output frames and learns which speaker (a real reader or a synthesized voice)
each one is from; the reversal hands the encoder the opposite of that gradient, scaled, so the encoder learns to
keep who speaks out of what the joint reads. `clip_speakers` names each packed clip's speaker from the recipe's
corpus manifests (their ``speaker`` field) through the pack's ``packed-ids.txt``.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """`x` going forward; minus `scale` times the gradient going back."""
    return _Reverse.apply(x, scale)


class SpeakerAdversary(nn.Module):
    """Two layers from an encoder frame to speaker logits."""

    def __init__(self, dim: int, speakers: int, hidden: int = 256):
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, speakers)

    def forward(self, enc: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor,
                scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean cross-entropy over the valid frames of clips with a known speaker (``speaker >= 0``) and its
        frame accuracy; the encoder `enc` [B, T, D] gets the cross-entropy's gradient reversed and times `scale`."""
        logits = self.out(F.relu(self.hidden(reverse_gradient(enc, scale))))
        frames = torch.arange(enc.shape[1], device=enc.device)[None] < lengths[:, None]
        valid = frames & (speaker[:, None] >= 0)
        target = speaker.clamp(min=0)[:, None].expand(-1, enc.shape[1])
        ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        count = valid.sum().clamp(min=1)
        right = (logits.argmax(-1) == target) & valid
        return (ce * valid).sum() / count, right.sum() / count


def pack_ids(folder: str, counts: dict[int, int], order: list[int]) -> list[str] | None:
    """The ids of a pack's clips in the order its shards were read (`order`, shard numbers; `counts`, clips a shard),
    from ``packed-ids.txt`` (written in shard-number order); None where the file is missing or does not match."""
    path = os.path.join(folder, "packed-ids.txt")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        ids = f.read().split()
    if len(ids) != sum(counts.values()):
        return None
    start, offset = {}, 0
    for number in sorted(counts):
        start[number], offset = offset, offset + counts[number]
    return [ids[k] for number in order for k in range(start[number], start[number] + counts[number])]


def clip_speakers(ids: list[str], corpus: str) -> tuple[np.ndarray, list[str]]:
    """Each clip's speaker index (-1: not named by any manifest of `corpus`) and the speakers' names, sorted."""
    named: dict[str, str] = {}
    for path in sorted(glob.glob(os.path.join(corpus, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if "speaker" in row and "id" in row:
                    named[row["id"]] = str(row["speaker"])
    names = sorted({named[i] for i in ids if i in named})
    index = {name: k for k, name in enumerate(names)}
    return np.asarray([index[named[i]] if i in named else -1 for i in ids], np.int64), names
