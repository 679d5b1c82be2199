"""Does the encoder learn acoustics? Train the encoder alone with a CTC head and print the loss and dev CER.

    python scripts/ctc_probe.py runs/recipe-default tts 300 --run run2/run --chars model.frame_stack=4

Uses a recipe work directory's corpus (`tts`: train.jsonl, `real`: speechocean762 clips of real-train.jsonl,
`digits`: FSDD clips, `mix`: tts and real) and the model settings of one of its runs (`--run RUN`:
WORK/RUN/config.json) or, without one, of the `default` preset (KEY=VALUE overrides,
`model.` for model settings, `max_duration=2.5` to keep short clips, `learning_rate=...`). `--chars` swaps the
sentencepiece tokenizer for characters. No predictor, no augmentation: the RNN-T loss can fall by memorizing
the transcripts in the predictor, the CTC loss only by hearing them. Prints the running CTC loss per token every
25 steps, then the greedy CTC WER/CER on 30 synthetic dev utterances of at most 5 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import tensorflow as tf

from rnnt.audio import load_audio
from rnnt.config import TrainConfig, config_from_dict
from rnnt.data.manifest import read_manifest
from rnnt.data.pipeline import make_dataset
from rnnt.features import log_mel
from rnnt.loss import ctc_loss
from rnnt.metrics import corpus_error_rates
from rnnt.model import RNNT, ctc_head
from rnnt.recipe import PRESETS
from rnnt.text import normalize_text
from rnnt.tokens import CharTokenizer, TokenTable, load_tokenizer
from rnnt.training.evaluate import feature_statistics

from overfit_check import split_overrides  # scripts/ is on sys.path when a script runs


def _clips(corpus: Path, which: str) -> list:
    real = read_manifest(str(corpus / "real-train.jsonl"))
    sets = {
        "tts": lambda: read_manifest(str(corpus / "train.jsonl")),
        "real": lambda: [u for u in real if "fsdd" not in u.audio],
        "digits": lambda: [u for u in real if "fsdd" in u.audio],
    }
    sets["mix"] = lambda: sets["tts"]() + sets["real"]()
    return sets[which]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work_dir")
    parser.add_argument("clips", choices=["tts", "real", "digits", "mix"])
    parser.add_argument("steps", type=int)
    parser.add_argument("--chars", action="store_true")
    parser.add_argument("--run", help="run folder in WORK_DIR whose model settings to use (default: the preset's)")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE (JSON values)")
    args = parser.parse_intermixed_args()  # overrides may follow the options

    work = Path(args.work_dir)
    tokenizer = CharTokenizer() if args.chars else load_tokenizer(str(work / "tokenizer.model"))
    train = PRESETS["default"].train
    if args.run:
        run_config = work / args.run / "config.json"
        if not run_config.exists():
            raise SystemExit(f"{run_config} not found")
        train = config_from_dict(TrainConfig, json.loads(run_config.read_text()))
    model_over, train_over = split_overrides(args.overrides)
    model_over["vocab_size"] = tokenizer.vocab_size
    cfg = dataclasses.replace(train, model=dataclasses.replace(train.model, **model_over))
    max_duration = float(train_over.pop("max_duration", cfg.max_duration))
    learning_rate = float(train_over.pop("learning_rate", 1e-3))
    if train_over:
        raise SystemExit(f"unknown settings: {sorted(train_over)}")

    clips = [u for u in _clips(work / "corpus", args.clips) if u.duration <= max_duration]
    print(f"{len(clips)} clips, {sum(u.duration for u in clips) / 3600:.2f} h", flush=True)
    data = iter(make_dataset(clips, tokenizer, cfg.features, batch_seconds=120, max_batch_size=32,
                             max_duration=max_duration, repeat=True))
    model, head = RNNT(cfg.model), ctc_head(cfg.model)
    model.set_feature_stats(*feature_statistics(clips, cfg.features, limit=100))
    variables = list(model.encoder.trainable_variables) + list(head.trainable_variables)
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function(reduce_retracing=True)
    def step(batch):
        with tf.GradientTape() as tape:
            enc, lengths = model.encode(batch["features"], batch["feature_lengths"])
            nll = ctc_loss(head(enc), batch["labels"], tf.maximum(lengths, 1), batch["label_lengths"])
            loss = tf.reduce_sum(nll) / tf.cast(tf.reduce_sum(batch["label_lengths"]), tf.float32)
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), 5.0)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    started, average = time.time(), None
    for i in range(1, args.steps + 1):
        loss = float(step(next(data)))
        average = loss if average is None else 0.9 * average + 0.1 * loss
        if i % 25 == 0:
            print(f"step {i}: CTC loss per token {average:.3f} ({time.time() - started:.0f} s)", flush=True)

    table = TokenTable(list(tokenizer.tokens))
    pairs = []
    for utt in [u for u in read_manifest(str(work / "corpus" / "dev.jsonl")) if u.duration <= 5][:30]:
        feats = log_mel(load_audio(utt.audio, cfg.features.sample_rate), cfg.features)
        enc, _ = model.encode(tf.constant(feats[None]), tf.constant([feats.shape[0]]))
        best = head(enc).numpy()[0].argmax(-1)
        ids = [int(k) for j, k in enumerate(best) if k != 0 and (j == 0 or k != best[j - 1])]
        pairs.append((normalize_text(utt.text), table.decode(ids)))
    words, chars = corpus_error_rates(pairs)
    print(f"dev (greedy CTC, {len(pairs)} utterances): WER {100 * words.rate:.1f}% CER {100 * chars.rate:.1f}%")
    for ref, hyp in pairs[:3]:
        print(f"  {ref!r} -> {hyp!r}")


if __name__ == "__main__":
    main()
