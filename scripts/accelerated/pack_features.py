"""Pack a recipe corpus as quantized log-mel features for the accelerated (PyTorch) trainer.

A lent GPU machine has no TensorFlow, no TTS engines and a 64 MiB limit on what travels with each call, so the
corpus goes there as features: the project's numpy log-mel front end (`rnnt.features.log_mel`), quantized to
uint8 (steps of 0.085 from log(1e-6); error at most 0.043), token ids from the recipe's tokenizer, and
lzma-compressed shards of at most ``--shard-mb``. ``train_torch.py`` reads every ``shard-*.npz.xz`` it finds, and
the network's sizes from ``model.json`` (the recipe preset's ModelConfig).
``packed-ids.txt`` lists what the folder holds; a later run (after the corpus grew) packs only the new training
clips into new shards, and a run after an interrupted first one (no ``meta.json`` yet) packs the rest, dev and noise
clips included. ``--jobs`` processes compute the features. Each clip's ``source`` is its corpus manifest
(``train.jsonl``, ``real-train.jsonl``, ...) and its ``origin`` where its text came from: a synthesized clip's text
source (``shared``, ``generated``, ..., from ``items-*.jsonl``), else the manifest again; ``train_torch.py
--repeat`` weights either.

    python scripts/accelerated/pack_features.py runs/recipe-default runs/accel/data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
from typing import Iterator

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rnnt.audio import load_audio  # noqa: E402
from rnnt.data.manifest import read_manifest  # noqa: E402
from rnnt.features import log_mel  # noqa: E402
from rnnt.recipe import PRESETS, Recipe  # noqa: E402
from rnnt.tokens import load_tokenizer  # noqa: E402
from shard_format import shard_bytes, write_shard  # noqa: E402

FLOOR = -14.0
STEP = 0.085
SPLITS = {"train": 0, "dev": 1, "noise": 2}


def quantize(feats: np.ndarray) -> np.ndarray:
    return np.clip(np.round((feats - FLOOR) / STEP), 0, 255).astype(np.uint8)


def dequantize(q: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * STEP + FLOOR


def clip_features(audio: str) -> np.ndarray:
    """The quantized log-mels of one audio file."""
    return quantize(log_mel(load_audio(audio, 16000)))


def features_of(paths: list[str], jobs: int) -> Iterator[np.ndarray]:
    """`clip_features` of each file, in order, from `jobs` worker processes (1 or fewer: in this one)."""
    if jobs <= 1:
        yield from map(clip_features, paths)
        return
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(clip_features, paths, chunksize=16)


def text_origins(corpus: str, manifest: str) -> dict[str, str]:
    """Clip id -> text source for a synthesized manifest (from its ``items-*.jsonl``); empty for the others."""
    path = os.path.join(corpus, "items-" + manifest)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return {rec["id"]: rec["source"] for rec in map(json.loads, f)}


def _entries(work: str, dev_per_set: int, seed: int) -> list[tuple[str, int, object]]:
    corpus = os.path.join(work, "corpus")
    with open(os.path.join(corpus, "mix.json"), encoding="utf-8") as f:
        mix = json.load(f)
    rng = np.random.default_rng(seed)
    out: list[tuple[str, int, object]] = []
    for part in mix["train"]:
        out += [(part["manifest"], SPLITS["train"], u) for u in read_manifest(os.path.join(corpus, part["manifest"]))]
    for name in mix["dev"]:
        utts = read_manifest(os.path.join(corpus, name))
        pick = rng.permutation(len(utts))[:dev_per_set]
        out += [(name, SPLITS["dev"], utts[i]) for i in sorted(pick)]
    if mix.get("babble"):  # a corpus built without offline augmentation has none
        out += [(mix["babble"], SPLITS["noise"], u) for u in read_manifest(os.path.join(corpus, mix["babble"]))]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", help="recipe work folder (corpus/ and the tokenizer inside)")
    p.add_argument("out", help="folder for shard-*.npz.xz and meta.json")
    p.add_argument("--shard-mb", type=float, default=56.0, help="compressed size per shard (one device call each)")
    p.add_argument("--dev-per-set", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes computing features (default: "
                                                                            "one a CPU core)")
    p.add_argument("--recipe", default="default", help="recipe preset: its tokenizer, and its ModelConfig for model.json")
    p.add_argument("--source-prefix", default="", help="put before each clip's source (its manifest), e.g. 'accent/' "
                   "to tell a second corpus's train.jsonl apart in train_torch.py --repeat")
    args = p.parse_args(argv)

    recipe = Recipe(PRESETS[args.recipe], args.work, progress=False)
    tokenizer = load_tokenizer(str(recipe.tokenizer_path))
    os.makedirs(args.out, exist_ok=True)
    model = recipe.train_config().model
    with open(os.path.join(args.out, "model.json"), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(model), f, indent=1)
    ids_path = os.path.join(args.out, "packed-ids.txt")
    packed = set(open(ids_path, encoding="utf-8").read().split()) if os.path.exists(ids_path) else set()
    meta_path = os.path.join(args.out, "meta.json")
    entries = _entries(args.work, args.dev_per_set, args.seed)
    # dev and noise utterances are packed by the first run (meta.json marks it done; an interrupted one is completed)
    first_done = os.path.exists(meta_path)
    entries = [e for e in entries if e[2].id not in packed and not (first_done and e[1] != SPLITS["train"])]
    if not entries:
        print("nothing new to pack", file=sys.stderr)
        return 0
    corpus = os.path.join(args.work, "corpus")
    origins = {name: text_origins(corpus, name) for name in {e[0] for e in entries}}
    order = np.random.default_rng(args.seed + len(packed)).permutation(len(entries))
    first_shard = len([n for n in os.listdir(args.out) if n.startswith("shard-")])
    # compression ratio measured on speechocean clips: ~0.76 of the raw uint8 bytes
    raw_limit = args.shard_mb * 1e6 / 0.8
    shard, rows, raw, sizes, seconds = first_shard, [], 0, [], 0.0
    features = features_of([entries[k][2].audio for k in order], min(args.jobs, len(order)))
    for n, (k, q) in enumerate(zip(order, features), 1):
        source, split, utt = entries[k]
        seconds += utt.duration
        rows.append({"q": q, "tokens": np.asarray(tokenizer.encode(utt.text), np.int32), "split": split,
                     "source": args.source_prefix + source,
                     "origin": origins[source].get(utt.id, args.source_prefix + source), "id": utt.id})
        raw += q.size
        if raw >= raw_limit or n == len(order):
            feats = {"feats": np.concatenate([r["q"] for r in rows])}
            sizes.append(write_shard(os.path.join(args.out, f"shard-{shard}.npz.xz"), shard_bytes(rows, feats)))
            with open(ids_path, "a", encoding="utf-8") as f:
                f.writelines(r["id"] + "\n" for r in rows)
            print(f"shard {shard}: {len(rows)} utterances, {sizes[-1] / 1e6:.1f} MB", file=sys.stderr)
            shard, rows, raw = shard + 1, [], 0
    meta = {"floor": FLOOR, "step": STEP, "splits": SPLITS, "tokens": tokenizer.tokens, "megabytes": [], "hours": 0.0}
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    meta["megabytes"] += [round(s / 1e6, 1) for s in sizes]
    meta["hours"] = round(meta["hours"] + seconds / 3600, 2)
    meta["shards"] = len(meta["megabytes"])
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps({k: v for k, v in meta.items() if k != "tokens"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
