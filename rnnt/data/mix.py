"""Mixing several manifests into one training set at chosen shares of audio time.

A mix spec is a comma-separated list of manifests, each optionally followed by `@SHARE`, the fraction of the
mixed audio time it should make up: `corpus/train.jsonl,corpus/real-train.jsonl@0.25`. Manifests without a
share fill what the others leave. A manifest given a share larger than its natural one is repeated (whole copies
plus a seeded random part), one with a smaller share is subsampled, so every batch draws from each source at
about its share in expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnt.data.manifest import Utterance, read_manifest


@dataclass(frozen=True)
class MixPart:
    path: str
    share: float | None


def parse_mix(spec: str) -> list[MixPart]:
    """Parse `path[@share],path[@share]...`."""
    parts = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        path, _, share = item.rpartition("@") if "@" in item else (item, "", "")
        if share:
            try:
                value = float(share)
            except ValueError:
                raise ValueError(f"bad share {share!r} in mix spec {spec!r}") from None
            if not 0.0 < value < 1.0:
                raise ValueError(f"share must lie between 0 and 1, got {value} in {spec!r}")
            parts.append(MixPart(path, value))
        else:
            parts.append(MixPart(path, None))
    if not parts:
        raise ValueError("empty mix spec")
    fixed = sum(p.share for p in parts if p.share is not None)
    if fixed >= 1.0 + 1e-9 or (fixed > 1.0 - 1e-9 and any(p.share is None for p in parts)):
        raise ValueError(f"shares in {spec!r} leave nothing for the other manifests")
    return parts


def _resample(utts: list[Utterance], seconds: float, rng: np.random.Generator) -> list[Utterance]:
    """About `seconds` of audio from `utts`: whole copies, then a random subset."""
    total = sum(u.duration for u in utts)
    if total <= 0 or seconds <= 0:
        return []
    copies, fraction = divmod(seconds / total, 1.0)
    picked = list(utts) * int(copies)
    order = rng.permutation(len(utts))
    budget = fraction * total
    for i in order:
        if budget <= 0:
            break
        picked.append(utts[i])
        budget -= utts[i].duration
    return picked


def mix_manifests(spec: str, seed: int = 0) -> list[Utterance]:
    """The utterances of a mix spec, repeated or subsampled to the requested shares of audio time."""
    parts = parse_mix(spec)
    sets = [read_manifest(p.path) for p in parts]
    if all(p.share is None for p in parts):
        return [u for s in sets for u in s]
    free_seconds = sum(sum(u.duration for u in s) for p, s in zip(parts, sets) if p.share is None)
    fixed = sum(p.share for p in parts if p.share is not None)
    if free_seconds > 0:
        total = free_seconds / (1.0 - fixed)
    else:  # only shared parts: scale to the largest one's natural size
        total = max(sum(u.duration for u in s) / p.share for p, s in zip(parts, sets))
    rng = np.random.default_rng(seed)
    mixed: list[Utterance] = []
    for p, s in zip(parts, sets):
        mixed.extend(s if p.share is None else _resample(s, p.share * total, rng))
    return mixed
