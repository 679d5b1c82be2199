"""Time `rnnt.loss.rnnt_loss` forward and forward+backward on random logits.

    python3 scripts/bench_loss.py --batch 8 --frames 200 --labels 40 --vocab 512
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnnt.loss import rnnt_loss  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=200, help="T")
    parser.add_argument("--labels", type=int, default=40, help="U")
    parser.add_argument("--vocab", type=int, default=512, help="V")
    parser.add_argument("--runs", type=int, default=7, help="timed runs (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-jit", action="store_true", help="skip the jit_compile=True line")
    return parser.parse_args()


def make_inputs(args: argparse.Namespace) -> tuple[tf.Tensor, ...]:
    """Random logits and labels; lengths vary a little so the masks are exercised."""
    rng = np.random.default_rng(0)
    shape = (args.batch, args.frames, args.labels + 1, args.vocab)
    logits = tf.constant(rng.normal(size=shape).astype(np.float32))
    labels = tf.constant(rng.integers(1, args.vocab, size=(args.batch, args.labels)), tf.int32)
    t_lens = tf.constant(rng.integers(args.frames * 3 // 4, args.frames + 1, size=args.batch), tf.int32)
    u_lens = tf.constant(rng.integers(args.labels * 3 // 4, args.labels + 1, size=args.batch), tf.int32)
    t_lens = tf.tensor_scatter_nd_update(t_lens, [[0]], [args.frames])
    u_lens = tf.tensor_scatter_nd_update(u_lens, [[0]], [args.labels])
    return logits, labels, t_lens, u_lens


def build(jit: bool) -> tuple[Callable, Callable]:
    """Forward and forward+backward `tf.function`s."""

    @tf.function(jit_compile=jit)
    def forward(logits, labels, t_lens, u_lens):
        return rnnt_loss(logits, labels, t_lens, u_lens, reduction="sum")

    @tf.function(jit_compile=jit)
    def forward_backward(logits, labels, t_lens, u_lens):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = rnnt_loss(logits, labels, t_lens, u_lens, reduction="sum")
        return loss, tape.gradient(loss, logits)

    return forward, forward_backward


def time_ms(fn: Callable, inputs: tuple, runs: int, warmup: int) -> tuple[float, float]:
    """(median, min) wall milliseconds per call after `warmup` untimed calls."""
    for _ in range(warmup):
        _block(fn(*inputs))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _block(fn(*inputs))
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times), min(times)


def _block(result) -> None:
    """Force the computation to finish (copies results to host)."""
    tf.nest.map_structure(lambda t: t.numpy(), result)


def report(name: str, jit: bool, inputs: tuple, args: argparse.Namespace) -> None:
    forward, forward_backward = build(jit)
    fwd = time_ms(forward, inputs, args.runs, args.warmup)
    both = time_ms(forward_backward, inputs, args.runs, args.warmup)
    print(
        f"{name:<22} forward {fwd[0]:8.1f} ms (min {fwd[1]:6.1f})   "
        f"forward+backward {both[0]:8.1f} ms (min {both[1]:6.1f})"
    )


def main() -> None:
    args = parse_args()
    inputs = make_inputs(args)
    devices = ", ".join(d.device_type for d in tf.config.list_logical_devices())
    print(
        f"rnnt_loss  B={args.batch} T={args.frames} U={args.labels} V={args.vocab}  "
        f"median (and min) of {args.runs} runs after {args.warmup} warmup  (devices: {devices})"
    )
    report("tf.function", False, inputs, args)
    if args.no_jit:
        return
    try:
        report("tf.function(jit=True)", True, inputs, args)
    except Exception as error:  # XLA may be unavailable or reject an op; say so and go on
        print(f"tf.function(jit=True)  skipped: {type(error).__name__}: {str(error).splitlines()[0][:200]}")


if __name__ == "__main__":
    main()
