"""Write weights from `train_torch.py` as a checkpoint of a recipe's TensorFlow run folder.

The checkpoint is the one `rnnt.training.trainer.Trainer` writes (model, a fresh optimizer, step, CTC head), in
the recipe's `run/` folder, so `rnnt recipe NAME --stages export,evaluate,install` exports it and
`--stages train` could fine-tune it further on the CPU.

    python scripts/accelerated/import_weights.py runs/accel/out --recipe default
    python scripts/accelerated/import_weights.py runs/accel/out --continues --device "2 CPU cores, 105 minutes" \\
        --command "resumed from its full state with --minutes 105" --data "the same clips"
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def assign(variables: dict[str, object], weights: dict[str, np.ndarray]) -> None:
    """Assign every weight by name; a missing, extra or misshapen one is an error."""
    missing = sorted(set(variables) - set(weights))
    extra = sorted(set(weights) - set(variables))
    if missing or extra:
        raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, var in variables.items():
        value = weights[name]
        if tuple(var.shape) != value.shape:
            raise ValueError(f"{name}: shape {value.shape}, the model has {tuple(var.shape)}")
        var.assign(value.astype(np.float32))


def named_variables(model, ctc_head=None) -> dict[str, object]:
    """`rnnt.model.RNNT` (and CTC head) variables by the names train_torch.py writes."""
    enc, pred, joint = model.encoder, model.predictor, model.joint
    out = {"encoder/feature_mean": enc.feature_mean, "encoder/feature_std": enc.feature_std,
           "predictor/embedding": pred.embedding, "joint/enc_proj/w": joint.enc_proj.w,
           "joint/enc_proj/b": joint.enc_proj.b, "joint/pred_proj/w": joint.pred_proj.w,
           "joint/out/w": joint.out.w, "joint/out/b": joint.out.b}
    if ctc_head is not None:
        out.update({"ctc_head/w": ctc_head.w, "ctc_head/b": ctc_head.b})
    for part, layers in (("encoder", enc.layers), ("predictor", pred.layers)):
        for i, layer in enumerate(layers):
            key = f"{part}/lstm{i}"
            out.update({f"{key}/input_kernel/w": layer.input_kernel.w, f"{key}/input_kernel/b": layer.input_kernel.b,
                        f"{key}/recurrent_kernel/w": layer.recurrent_kernel.w, f"{key}/projection/w": layer.projection.w,
                        f"{key}/norm/gamma": layer.norm.gamma, f"{key}/norm/beta": layer.norm.beta})
    return out


def read_weights(folder: str) -> tuple[dict[str, np.ndarray], int]:
    """The weights (by TF name, float16 read as float32) and step in the weights-*.npz files `write_weights` wrote."""
    paths = sorted(glob.glob(os.path.join(folder, "weights-*.npz")))
    if not paths:
        raise FileNotFoundError(f"no weights-*.npz in {folder}")
    out, step = {}, 0
    for path in paths:
        z = np.load(path)
        step = int(z["step"])
        # float16 (average_weights.py --float16, to travel lighter) comes back as float32
        out.update({k.replace("|", "/"): z[k].astype(np.float32) if z[k].dtype == np.float16 else z[k]
                    for k in z.files if k != "step"})
    return out, step


def write_weights(folder: str, weights: dict[str, np.ndarray], step: int, model_config: dict | None = None,
                  limit_mb: float = 15.0) -> None:
    """TF-named weights as weights-*.npz files of at most limit_mb each (a device call returns files up to 16 MB),
    replacing any there, and the ModelConfig as model.json where given: what `read_weights`, `main` and
    `train_torch.py --init` read."""
    os.makedirs(folder, exist_ok=True)
    if model_config is not None:
        with open(os.path.join(folder, "model.json"), "w", encoding="utf-8") as f:
            json.dump(model_config, f)
    for old in glob.glob(os.path.join(folder, "weights-*.npz")):
        os.remove(old)
    parts: list[dict] = [{}]
    size = 0
    for k, v in weights.items():
        if size + v.nbytes > limit_mb * 1e6 and parts[-1]:
            parts.append({})
            size = 0
        parts[-1][k] = v
        size += v.nbytes
    for n, part in enumerate(parts):
        named = {k.replace("/", "|"): v for k, v in part.items()}  # npz keys cannot hold "/"
        np.savez(os.path.join(folder, f"weights-{n}.npz"), step=np.int64(step), **named)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="folder of weights-*.npz (and model.json) from train_torch.py")
    p.add_argument("--recipe", default="default", help="recipe preset whose run folder receives the checkpoint")
    p.add_argument("--work-dir", help="recipe work folder (default: runs/recipe-NAME)")
    p.add_argument("--device", help="what trained it, for RESULTS.md (default: from train.json)")
    p.add_argument("--command", help="how it was trained, for RESULTS.md (default: from train.json)")
    p.add_argument("--data", help="what it was trained on, for RESULTS.md (default: train.json's hours)")
    p.add_argument("--continues", action="store_true",
                   help="the weights went on from the recorded training: append device, command and data to the "
                        "recipe's train record instead of replacing it")
    args = p.parse_args(argv)

    from rnnt.config import ModelConfig, config_from_dict
    from rnnt.recipe import PRESETS, Recipe
    from rnnt.training.trainer import Trainer

    recipe = Recipe(PRESETS[args.recipe], args.work_dir or f"runs/recipe-{args.recipe}", progress=False)
    if args.continues:  # refused before the checkpoint is written
        try:
            recipe.training_to_continue()
        except ValueError as e:
            raise SystemExit(f"--continues: {e}") from None
    cfg = recipe.train_config()
    with open(os.path.join(args.weights, "model.json"), encoding="utf-8") as f:
        trained = config_from_dict(ModelConfig, json.load(f))
    # the cell clip applies at inference (the PyTorch trainer's fused LSTM has none): not a model difference here
    if dataclasses.replace(trained, cell_clip=cfg.model.cell_clip) != cfg.model:
        raise SystemExit(f"the weights are of model {trained}, the recipe trains {cfg.model}")
    weights, step = read_weights(args.weights)
    trainer = Trainer(cfg, str(recipe.run_dir), progress=False)
    if trainer.keeper.latest:
        raise SystemExit(f"{recipe.run_dir} already has checkpoints; move them away first")
    assign(named_variables(trainer.model, trainer.ctc_head), weights)
    trainer.step.assign(step)
    path = trainer.keeper.save(step)
    provenance = {}
    if os.path.exists(os.path.join(args.weights, "train.json")):
        with open(os.path.join(args.weights, "train.json"), encoding="utf-8") as f:
            provenance = json.load(f)
    recipe.record_training({
        "step": step, "parameters": sum(int(v.shape.num_elements()) for v in trainer.model.trainable_variables),
        "trainer": "scripts/accelerated/train_torch.py", "device": args.device or provenance.get("device", "?"),
        "command": args.command or f"`{provenance.get('command', '?')}`",
        "data": args.data or (f"{provenance['train_hours']} h" if "train_hours" in provenance else "?"),
    }, continues=args.continues)
    print(f"wrote {path} (step {step})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
