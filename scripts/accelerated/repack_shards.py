"""Repack `pack_features.py` shards smaller for a lent GPU machine: a chosen subset, another tokenizer, coarser codes.

Each device call carries at most 64 MiB, so a whole 29-hour pack (600 MB) is twelve calls. This writes a smaller pack
from one already made, without computing features again: the clips of each source up to a number of hours (seeded
choice; dev and noise clips always), their texts tokenized again with ``--recipe``'s tokenizer (the ids come from
``packed-ids.txt``, the texts from the recipe's corpus manifests), the codes divided by ``--coarsen`` (4: steps of
0.34 instead of 0.085, error at most 0.17) and stored as differences along the mel axis: lzma packs them to 0.46 of
their raw bytes, against 0.71 for pack_features.py's codes (13.5 MB an hour of audio against 21).
``train_torch.py`` reads either kind.

    python scripts/accelerated/repack_shards.py runs/accel/data-wp runs/recipe-default runs/accel/gpu29/data \\
        --keep real-train.jsonl=all train.jsonl=5.3 --coarsen 4 --shard-mb 45 52
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import multiprocessing
import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rnnt.data.manifest import read_manifest  # noqa: E402
from rnnt.recipe import PRESETS, Recipe  # noqa: E402
from rnnt.tokens import load_tokenizer  # noqa: E402
from shard_format import (read_shard, shard_bytes, shard_codes, shard_number, shard_origins,  # noqa: E402
                          write_shard)

SPLIT_TRAIN = 0


def read_pack(folder: str) -> list[dict]:
    """Every clip of a pack, in packing order: its id, codes, split, source and origin."""
    with open(os.path.join(folder, "packed-ids.txt"), encoding="utf-8") as f:
        ids = f.read().split()
    paths = sorted(glob.glob(os.path.join(folder, "shard-*.npz.xz")), key=shard_number)
    clips: list[dict] = []
    for path in paths:
        z = read_shard(path)
        feats = shard_codes(z)
        offsets = np.concatenate([[0], np.cumsum(z["lengths"])])
        origin = shard_origins(z)
        for i in range(len(z["lengths"])):
            clips.append({"id": ids[len(clips)], "q": feats[offsets[i]:offsets[i + 1]], "split": int(z["split"][i]),
                          "source": str(z["source"][i]), "origin": str(origin[i])})
        print(f"read {path}", file=sys.stderr)
    if len(clips) != len(ids):
        raise ValueError(f"{folder}: packed-ids.txt names {len(ids)} clips, the shards hold {len(clips)}")
    return clips


def choose(clips: list[dict], keep: dict[str, float], seed: int) -> list[dict]:
    """Dev and noise clips, and each kept source's training clips up to its hours (``inf``: all), in a seeded order."""
    rng = np.random.default_rng(seed)
    out = [c for c in clips if c["split"] != SPLIT_TRAIN]
    for source, hours in keep.items():
        pool = [c for c in clips if c["split"] == SPLIT_TRAIN and c["source"] == source]
        if not pool:
            raise ValueError(f"no training clips from {source!r} in the pack")
        total = 0.0
        for k in rng.permutation(len(pool)):
            if total >= hours * 3600:
                break
            out.append(pool[k])
            total += len(pool[k]["q"]) / 100
        print(f"{source}: {total / 3600:.2f} h of {sum(len(c['q']) for c in pool) / 360000:.2f}", file=sys.stderr)
    return [out[k] for k in rng.permutation(len(out))]


def encode_shard(rows: list[dict], coarsen: int) -> bytes:
    """One shard: codes divided by `coarsen`, stored as differences along the mel axis, lzma-compressed."""
    q = np.concatenate([r["q"] for r in rows]) // coarsen
    return shard_bytes(rows, {"feats_dfreq": np.diff(q.astype(np.int16), axis=1, prepend=0).astype(np.int8)})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pack", help="folder of pack_features.py's shards, meta.json and packed-ids.txt")
    p.add_argument("work", help="recipe work folder whose corpus manifests hold the clips' texts")
    p.add_argument("out", help="folder for the new shards, meta.json and model.json")
    p.add_argument("--recipe", default="default", help="recipe preset: its tokenizer and ModelConfig")
    p.add_argument("--keep", nargs="+", required=True, metavar="SOURCE=HOURS",
                   help="training clips to keep, e.g. real-train.jsonl=all train.jsonl=6")
    p.add_argument("--coarsen", type=int, default=4, choices=(1, 2, 4, 8), help="divide the codes by this")
    p.add_argument("--shard-mb", type=float, nargs="+", default=[50.0],
                   help="compressed size of each shard in turn (the last repeats): one device call each, beside "
                        "whatever else that call carries")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    keep = {}
    for item in args.keep:
        source, _, hours = item.partition("=")
        keep[source] = float("inf") if hours == "all" else float(hours)
    with open(os.path.join(args.pack, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    recipe = Recipe(PRESETS[args.recipe], args.work, progress=False)
    tokenizer = load_tokenizer(str(recipe.tokenizer_path))
    corpus = os.path.join(args.work, "corpus")
    texts = {u.id: u.text for path in glob.glob(os.path.join(corpus, "*.jsonl")) if not
             os.path.basename(path).startswith("items-") for u in read_manifest(path)}
    rows = choose(read_pack(args.pack), keep, args.seed)
    for r in rows:
        if r["id"] not in texts:
            raise ValueError(f"clip {r['id']} is in no manifest of {corpus}")
        r["tokens"] = np.asarray(tokenizer.encode(texts[r["id"]]), np.int64)

    os.makedirs(args.out, exist_ok=True)
    for old in glob.glob(os.path.join(args.out, "shard-*.npz.xz")):
        os.remove(old)
    # the codes' compressed share: measured about 0.46 at coarseness 4 (0.56 at 2, 0.67 at 1), a guess at 8
    ratio = {1: 0.70, 2: 0.58, 4: 0.47, 8: 0.37}[args.coarsen]
    bounds, start = [], 0  # each shard's clips, from the estimate
    while start < len(rows):
        limit = args.shard_mb[min(len(bounds), len(args.shard_mb) - 1)] * 1e6
        end, raw = start, 0
        while end < len(rows) and (raw + rows[end]["q"].size) * ratio < limit * 0.97:
            raw += rows[end]["q"].size
            end += 1
        bounds.append((start, max(end, start + 1), limit))
        start = bounds[-1][1]
    with multiprocessing.get_context("fork").Pool(min(len(bounds), os.cpu_count() or 1)) as pool:
        shards = pool.starmap(encode_shard, [(rows[a:b], args.coarsen) for a, b, _ in bounds])
    sizes = []
    for n, ((a, b, limit), data) in enumerate(zip(bounds, shards)):
        if len(data) > limit:
            print(f"warning: shard {n} came to {len(data) / 1e6:.1f} MB, over the {limit / 1e6:.0f} asked",
                  file=sys.stderr)
        path = os.path.join(args.out, f"shard-{n}.npz.xz")
        sizes.append(write_shard(path, data))
        print(f"{path}: {b - a} clips, {len(data) / 1e6:.1f} MB", file=sys.stderr)
    step = meta["step"] * args.coarsen
    out_meta = {"floor": meta["floor"] + meta["step"] * (args.coarsen - 1) / 2, "step": step,
                "splits": meta["splits"], "tokens": tokenizer.tokens, "megabytes": [round(s / 1e6, 1) for s in sizes],
                "hours": round(sum(len(r["q"]) for r in rows) / 360000, 2), "shards": len(sizes),
                "repacked_from": os.path.abspath(args.pack), "keep": args.keep, "coarsen": args.coarsen}
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(out_meta, f, indent=1)
    with open(os.path.join(args.out, "model.json"), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(recipe.train_config().model), f, indent=1)
    print(json.dumps({k: v for k, v in out_meta.items() if k != "tokens"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
