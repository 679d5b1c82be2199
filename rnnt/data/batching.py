"""Length-bucketed batch plans: a pure function of durations, seed and epoch (numpy only, no TensorFlow)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["plan_batches"]


def plan_batches(
    durations: Sequence[float],
    *,
    batch_seconds: float,
    max_batch_size: int,
    max_duration: float,
    min_duration: float = 0.0,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    sort_window: int | None = None,
) -> list[list[int]]:
    """Batches of utterance indices for one epoch; a pure function of its arguments.

    Utterances outside [min_duration, max_duration] are left out. The rest are shuffled (if `shuffle`),
    cut into windows of `sort_window` utterances (default 50 * max_batch_size), sorted by duration inside
    each window and packed greedily so that batch_size * longest duration <= batch_seconds (padded audio
    seconds; a single longer utterance still makes a batch) and batch_size <= max_batch_size. With
    `shuffle` the batch order is shuffled too. Without it, windows keep the input order.
    """
    if batch_seconds <= 0 or max_batch_size < 1:
        raise ValueError("batch_seconds must be positive and max_batch_size at least 1")
    d = np.asarray(durations, dtype=np.float64)
    keep = np.flatnonzero((d <= max_duration) & (d >= min_duration))
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)])
    if shuffle:
        keep = rng.permutation(keep)
    window = int(sort_window or 50 * max_batch_size)
    batches: list[list[int]] = []
    for w in range(0, keep.size, window):
        chunk = keep[w:w + window]
        chunk = chunk[np.argsort(d[chunk], kind="stable")]
        current: list[int] = []
        for i in chunk.tolist():
            # sorted ascending: d[i] is the batch's longest so far
            if current and (len(current) >= max_batch_size or (len(current) + 1) * d[i] > batch_seconds):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
