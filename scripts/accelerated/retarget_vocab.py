"""Move trained weights to another token vocabulary (characters to word pieces): the encoder kept, the rest mapped.

Only the layers indexed by token change: the joint's output, the CTC head (columns and biases) and the predictor's
embedding (rows). Each new token takes the old token it most resembles where it enters the network:

- an output column (joint, CTC) is that of the piece's first character, its bias lowered by log n where n pieces
  share that first character, so the pieces together get the probability the character had (the blank's column and
  the blank/non-blank balance are kept as they were);
- an embedding row is that of the piece's last character: the predictor goes on as it did after spelling the piece.

Pieces of characters the old vocabulary lacks take ``<unk>``'s. The result is a start for fine-tuning with the new
tokenizer's packed labels (`pack_features.py --recipe wordpiece`), written as weights-*.npz with its model.json:

    python scripts/accelerated/retarget_vocab.py runs/accel/init runs/recipe-wordpiece/tokenizer.model \\
        -o runs/accel/wp-init
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from import_weights import read_weights, write_weights  # noqa: E402

# (weights name, axis indexed by token, "first" or "last" character of a piece)
TOKEN_AXES = (("joint/out/w", 1, "first"), ("joint/out/b", 0, "first"), ("ctc_head/w", 1, "first"),
              ("ctc_head/b", 0, "first"), ("predictor/embedding", 0, "last"))
SPECIALS_KEPT = 2  # <blk> and <unk> keep their own rows in both vocabularies


def source_tokens(old: Sequence[str], new: Sequence[str], end: str) -> np.ndarray:
    """For each token of `new`, the index in `old` of its `end` ("first" or "last") character."""
    index = {t: i for i, t in enumerate(old)}
    unk = 1  # <unk> (SPECIALS_KEPT)
    out = np.empty(len(new), np.int64)
    for i, piece in enumerate(new):
        if i < SPECIALS_KEPT or (piece.startswith("<") and piece.endswith(">")):
            out[i] = index.get(piece, unk)
            continue
        ch = piece[0] if end == "first" else piece[-1]
        out[i] = index.get(ch, unk)
    return out


def retarget(weights: dict[str, np.ndarray], config: dict, old: Sequence[str],
             new: Sequence[str]) -> tuple[dict[str, np.ndarray], dict]:
    """Copies of `weights` and `config` for vocabulary `new` (see the module docstring)."""
    if list(old[:SPECIALS_KEPT]) != list(new[:SPECIALS_KEPT]):
        raise ValueError(f"both vocabularies must start with {list(old[:SPECIALS_KEPT])}, not {list(new[:SPECIALS_KEPT])}")
    if config["vocab_size"] != len(old):
        raise ValueError(f"the weights have {config['vocab_size']} tokens, the old vocabulary {len(old)}")
    out, cfg = dict(weights), dict(config, vocab_size=len(new))
    first, last = source_tokens(old, new, "first"), source_tokens(old, new, "last")
    # pieces sharing a first character split its probability: lower each one's bias by log(their number)
    share = np.bincount(first[SPECIALS_KEPT:], minlength=len(old)).astype(np.float64)
    offset = np.zeros(len(new))
    offset[SPECIALS_KEPT:] = np.log(share[first[SPECIALS_KEPT:]])
    for name, axis, end in TOKEN_AXES:
        if name not in weights:
            continue
        w = np.take(weights[name], first if end == "first" else last, axis=axis)
        if name.endswith("/b"):
            w = (w - offset).astype(weights[name].dtype)
        out[name] = w
    return out, cfg


def main(argv: list[str] | None = None) -> int:
    from rnnt.tokens import load_tokenizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="weights-*.npz and model.json (train_torch.py's --out, or weights_from_bundle.py's)")
    p.add_argument("tokenizer", help="the new tokenizer (.model or .json)")
    p.add_argument("--old-tokenizer", help="the weights' tokenizer (default: the characters of the default recipe)")
    p.add_argument("-o", "--out", required=True, help="folder for the new weights-*.npz and model.json")
    args = p.parse_args(argv)
    with open(os.path.join(args.folder, "model.json"), encoding="utf-8") as f:
        config = json.load(f)
    if args.old_tokenizer:
        old = list(load_tokenizer(args.old_tokenizer).tokens)
    else:
        from rnnt.tokens import CHAR_BASE
        old = list(CHAR_BASE)
    new = list(load_tokenizer(args.tokenizer).tokens)
    weights, step = read_weights(args.folder)
    try:
        moved, cfg = retarget(weights, config, old, new)
    except ValueError as e:
        p.error(str(e))
    write_weights(args.out, moved, step, cfg)
    print(f"wrote weights for {len(new)} tokens (from {len(old)}, step {step}) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
