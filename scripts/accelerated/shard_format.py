"""The packed-feature shard format (numpy and lzma only, so the GPU machine reads it without the project's audio I/O).

A shard is an lzma-compressed ``.npz``: every clip's feature codes one after another, as ``feats`` (uint8,
`pack_features.py`) or as differences along the mel axis, ``feats_dfreq`` (int8, `repack_shards.py`), with
``lengths``, ``tokens``, ``token_lengths``, ``split``, ``source`` and ``origin`` a clip.
"""

from __future__ import annotations

import io
import lzma
import os

import numpy as np


def shard_bytes(rows: list[dict], feats: dict[str, np.ndarray]) -> bytes:
    """A shard of `rows` (each with ``q``, ``tokens``, ``split``, ``source``, ``origin``) whose codes are `feats`."""
    arrays = {
        **feats,
        "lengths": np.asarray([len(r["q"]) for r in rows], np.int32),
        "tokens": np.concatenate([r["tokens"] for r in rows]).astype(np.uint16),
        "token_lengths": np.asarray([len(r["tokens"]) for r in rows], np.int32),
        "split": np.asarray([r["split"] for r in rows], np.uint8),
        "source": np.asarray([r["source"] for r in rows]),
        "origin": np.asarray([r["origin"] for r in rows]),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return lzma.compress(buf.getvalue(), preset=6)


def shard_number(path: str) -> int:
    """N of a ``shard-N.npz.xz`` path: the order the shards were packed in, and ``packed-ids.txt`` lists them in."""
    return int(os.path.basename(path)[len("shard-"):-len(".npz.xz")])


def write_shard(path: str, data: bytes) -> int:
    """Write a shard's bytes atomically (a stopped run leaves no half shard); its size."""
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return len(data)


def read_shard(path: str):
    """A shard's arrays (a loaded npz)."""
    with open(path, "rb") as f:
        return np.load(io.BytesIO(lzma.decompress(f.read())))


def shard_codes(z) -> np.ndarray:
    """A shard's feature codes (uint8), stored either way."""
    if "feats_dfreq" in z.files:
        return np.cumsum(z["feats_dfreq"].astype(np.int16), axis=1).astype(np.uint8)
    return z["feats"]


def shard_origins(z) -> np.ndarray:
    """Each clip's text origin (shards packed before origins were kept: its source)."""
    return z["origin"] if "origin" in z.files else z["source"]
