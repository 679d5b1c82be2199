"""Widen the LSTM cells of trained weights without changing what the network computes: a larger model's start.

Each widened layer gets new cell units: gate weights drawn like the layer's own (normal, each matrix's standard
deviation), a forget-gate bias of 1 as at initialization, and zero rows in the layer's projection, so the new cells
add nothing to its output until training moves those rows (their gradient is not zero: the new cells run from the
first step). With `--split` the new units are copies of old ones instead (Net2Net's wider layers): each copies an old
unit's gate weights, plus a little noise (`--split-noise`, a share of each matrix's standard deviation) so the two can
part, and the unit's projection row is halved between the two, so both are used from the first step (the network
computes the same up to the noise: exactly without it). Only cell units grow; the projections, layer norms and joint
keep their sizes, so every other weight is copied as it is. The result is a folder of weights-*.npz and the widened
model.json, for `train_torch.py --init FOLDER --model-json FOLDER/model.json`.

    python scripts/accelerated/widen_weights.py runs/accel/init -o runs/accel/wide --encoder-units 768
    python scripts/accelerated/widen_weights.py runs/accel/init -o runs/accel/split --encoder-units 1024 --split
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from import_weights import read_weights, write_weights  # noqa: E402

GATES = 4  # i, f, g, o: the column blocks of the input and recurrent kernels and of the bias


def _widen_gate_columns(w: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """[..., 4 * units] and [..., 4 * added] -> [..., 4 * (units + added)]: each gate's columns, then `fill`'s."""
    old = np.split(w, GATES, axis=-1)
    extra = np.split(fill, GATES, axis=-1)
    return np.concatenate([np.concatenate([o, e], axis=-1) for o, e in zip(old, extra)], axis=-1)


def _split_gate_columns(w: np.ndarray, sources: np.ndarray, noise: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Copies of the gate columns of units `sources` (each gate's block), plus noise of `noise` times `w`'s std."""
    units = w.shape[-1] // GATES
    copies = np.concatenate([w[..., g * units + sources] for g in range(GATES)], axis=-1)
    if noise > 0:
        copies = copies + rng.normal(0.0, noise * w.std(), size=copies.shape).astype(w.dtype)
    return copies


def widen_lstm(weights: dict[str, np.ndarray], key: str, new_units: int, rng: np.random.Generator, *,
               split: bool = False, split_noise: float = 0.0) -> None:
    """Widen the projected LSTM `key` (e.g. ``encoder/lstm0``) in place to `new_units` cell units.

    New units are fresh (zero projection rows) or, with `split`, copies of old units that share their projection rows.
    """
    proj = weights[f"{key}/projection/w"]
    units = proj.shape[0]
    if new_units < units:
        raise ValueError(f"{key}: {new_units} units would narrow the layer's {units}")
    add = new_units - units
    if add == 0:
        return
    if split:
        # Each old unit is split at most once per `units` added; which ones, at random.
        sources = np.concatenate([rng.permutation(units) for _ in range(-(-add // units))])[:add]
        for name in ("input_kernel/w", "recurrent_kernel/w"):
            w = weights[f"{key}/{name}"]
            weights[f"{key}/{name}"] = _widen_gate_columns(w, _split_gate_columns(w, sources, split_noise, rng))
        bias = weights[f"{key}/input_kernel/b"]
        weights[f"{key}/input_kernel/b"] = _widen_gate_columns(bias, _split_gate_columns(bias, sources, 0.0, rng))
        share = np.ones(units, proj.dtype)
        np.add.at(share, sources, 1.0)  # how many units now carry each old unit's row
        halved = proj / share[:, None]
        weights[f"{key}/projection/w"] = np.concatenate([halved, halved[sources]], axis=0)
        return
    for name in ("input_kernel/w", "recurrent_kernel/w"):
        w = weights[f"{key}/{name}"]
        fill = rng.normal(0.0, w.std(), size=(w.shape[0], GATES * add)).astype(w.dtype)
        weights[f"{key}/{name}"] = _widen_gate_columns(w, fill)
    bias = weights[f"{key}/input_kernel/b"]
    fill = np.zeros(GATES * add, bias.dtype)
    fill[add:2 * add] = 1.0  # the forget gate's block
    weights[f"{key}/input_kernel/b"] = _widen_gate_columns(bias, fill)
    weights[f"{key}/projection/w"] = np.concatenate([proj, np.zeros((add, proj.shape[1]), proj.dtype)], axis=0)


def widen(weights: dict[str, np.ndarray], config: dict, *, encoder_units: int | None = None,
          predictor_units: int | None = None, seed: int = 0, split: bool = False,
          split_noise: float = 0.0) -> tuple[dict[str, np.ndarray], dict]:
    """Copies of `weights` and `config` (a ModelConfig as a dict) with the named parts' cells widened."""
    rng = np.random.default_rng(seed)
    out, cfg = dict(weights), dict(config)
    for part, units in (("encoder", encoder_units), ("predictor", predictor_units)):
        if units is None:
            continue
        for i in range(cfg[f"{part}_layers"]):
            widen_lstm(out, f"{part}/lstm{i}", units, rng, split=split, split_noise=split_noise)
        cfg[f"{part}_units"] = units
    return out, cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="a folder of weights-*.npz and model.json (train_torch.py's --out, or --init)")
    p.add_argument("-o", "--out", required=True, help="folder for the widened weights-*.npz and model.json")
    p.add_argument("--encoder-units", type=int, help="cell units of every encoder layer")
    p.add_argument("--predictor-units", type=int, help="cell units of every predictor layer")
    p.add_argument("--split", action="store_true",
                   help="new units copy old ones and share their projection rows (used from the first step) instead "
                        "of fresh units with zero rows")
    p.add_argument("--split-noise", type=float, default=0.05,
                   help="with --split, noise on the copies' gate weights, a share of each matrix's std "
                        "(default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.encoder_units is None and args.predictor_units is None:
        p.error("nothing to widen: give --encoder-units and/or --predictor-units")
    model_json = os.path.join(args.folder, "model.json")
    if not os.path.exists(model_json):
        p.error(f"{model_json} is missing: the widened config is written from it")
    with open(model_json, encoding="utf-8") as f:
        config = json.load(f)
    weights, step = read_weights(args.folder)
    try:
        wide, wide_cfg = widen(weights, config, encoder_units=args.encoder_units,
                               predictor_units=args.predictor_units, seed=args.seed, split=args.split,
                               split_noise=args.split_noise)
    except ValueError as e:
        p.error(str(e))
    write_weights(args.out, wide, step, wide_cfg)
    before = sum(w.size for w in weights.values())
    after = sum(w.size for w in wide.values())
    print(f"wrote {after / 1e6:.2f} M weights (from {before / 1e6:.2f} M, step {step}) to {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
