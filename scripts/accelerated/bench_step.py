"""Time one training step of the accelerated trainer's network, float32 against a bfloat16 joint (`--joint-bf16`).

A batch of random features and labels of a typical shape (by default 48 clips of 8 s, 110 characters each) goes
through the encoder, the pruned transducer loss and the CTC head, forward and backward, in the modes given, one
after another, `--rounds` times. Prints each step's seconds by part and the medians.

    python scripts/accelerated/bench_step.py --model-json runs/accel/data/model.json --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.abspath(os.path.dirname(__file__)))

from import_weights import read_weights  # noqa: E402
from torch_model import Transducer, ctc_nll, pruned_rnnt_nll  # noqa: E402

MODES = {"float32": (False, False), "joint-bf16": (False, True), "all-bf16": (True, True)}


def step(model: Transducer, x, labels, t_len, u_len, width: int, mode: str) -> dict[str, float]:
    """One forward and backward pass; seconds for the encoder and predictor, the losses, and the backward pass."""
    everything, joint = MODES[mode]
    t0 = time.perf_counter()
    with torch.autocast("cpu", torch.bfloat16, enabled=everything):
        enc = model.encode(x)
        pred = model.predict(labels)
        t1 = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=joint):
            enc_j, pred_j = model.joint_inputs(enc, pred)
            nll, _ = pruned_rnnt_nll(model.joint, enc_j, pred_j, labels, t_len, u_len, width)
        ctc = ctc_nll(model.ctc_head(enc).float().log_softmax(-1), labels, t_len, u_len).sum()
    loss = (nll.sum() + 0.5 * ctc) / u_len.sum()
    t2 = time.perf_counter()
    model.zero_grad(set_to_none=True)
    loss.backward()
    t3 = time.perf_counter()
    return {"networks": t1 - t0, "losses": t2 - t1, "backward": t3 - t2, "step": t3 - t0,
            "loss_per_token": float(nll.detach().sum() / u_len.sum())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-json", required=True, help="the ModelConfig as JSON (pack_features.py writes it)")
    p.add_argument("--init", help="folder of weights-*.npz to time (default: random weights)")
    p.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True)")
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--seconds", type=float, default=8.0, help="clip length")
    p.add_argument("--labels", type=int, default=110, help="labels a clip")
    p.add_argument("--prune", type=int, default=8)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=["float32", "joint-bf16"], choices=sorted(MODES))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.model_json, encoding="utf-8") as f:
        cfg = json.load(f)
    model = Transducer(cfg, dropout=0.0)
    if args.init:
        model.load_tf_weights(read_weights(args.init)[0])
    torch.set_flush_denormal(args.flush_denormal)
    frames = int(args.seconds * 100) // cfg["frame_stack"] * cfg["frame_stack"]
    x = torch.randn(args.batch, frames, cfg["num_mels"]) - 5
    labels = torch.randint(2, cfg["vocab_size"], (args.batch, args.labels))
    t_len = torch.full((args.batch,), frames // cfg["frame_stack"])
    u_len = torch.full((args.batch,), args.labels)
    times: dict[str, list[float]] = {m: [] for m in args.modes}
    for _ in range(args.rounds):
        for mode in args.modes:  # alternated, so a noisy machine slows every mode alike
            r = step(model, x, labels, t_len, u_len, args.prune, mode)
            times[mode].append(r["step"])
            print(json.dumps({"mode": mode, **{k: round(v, 3) for k, v in r.items()}}), flush=True)
    base = statistics.median(times[args.modes[0]])
    for mode in args.modes:
        med = statistics.median(times[mode])
        print(f"{mode}: median step {med:.2f} s ({base / med:.2f}x {args.modes[0]}), {args.threads} threads, "
              f"{'trained' if args.init else 'random'} weights, flush denormals {args.flush_denormal}, "
              f"batch {args.batch} x {args.seconds:g} s, {args.labels} labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
