"""Average the weights of several runs of the same network, element by element (a uniform model soup).

Fine-tunes that start from the same weights stay in one basin, and their mean can decode better than either (runs 9
and 10: docs/default-model.md). Every folder holds the `weights-*.npz` that `train_torch.py` writes; the mean
keeps the latest step and the first folder's `model.json`, and `import_weights.py` takes it like any run's output.

    python scripts/accelerated/average_weights.py runs/accel/cpu9/out runs/accel/cpu10/out -o runs/accel/avg910
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from import_weights import read_weights, write_weights  # noqa: E402


def average(runs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The element-wise mean of weights with the same names and shapes; anything else is an error."""
    if not runs:
        raise ValueError("nothing to average")
    names = set(runs[0])
    for other in runs[1:]:
        if set(other) != names:
            raise ValueError(f"the runs name different weights: {sorted(names ^ set(other))[:5]}")
    out = {}
    for name, first in runs[0].items():
        stack = [r[name] for r in runs]
        if any(w.shape != first.shape for w in stack):
            raise ValueError(f"{name}: shapes {[w.shape for w in stack]} differ")
        out[name] = np.mean(np.stack(stack).astype(np.float64), axis=0).astype(first.dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders of weights-*.npz (train_torch.py's --out)")
    p.add_argument("-o", "--out", required=True, help="folder for the mean's weights-*.npz and model.json")
    p.add_argument("--float16", action="store_true",
                   help="write the mean in float16, half the bytes (a device call returns 64 MB at most); "
                        "read_weights gives float32 back")
    args = p.parse_args(argv)
    read = [read_weights(folder) for folder in args.folders]
    mean, step = average([w for w, _ in read]), max(s for _, s in read)
    model_json = os.path.join(args.folders[0], "model.json")
    config = None
    if os.path.exists(model_json):
        with open(model_json, encoding="utf-8") as f:
            config = json.load(f)
    if args.float16:
        mean = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in mean.items()}
    write_weights(args.out, mean, step, config)
    print(f"wrote the mean of {len(read)} runs ({len(mean)} weights, step {step}) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
