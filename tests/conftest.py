"""Shared fixtures: tiny models and bundles, and a synthetic "tone speech" corpus they can recognize.

Tone speech: every token is a tone of its own frequency (120-200 ms), tokens of one word are 40 ms apart and
words 120-300 ms apart (never the same word twice in a row), so a tiny RNN-T learns it in a few hundred steps.
The vocabulary is sentencepiece style: four word pieces ``▁lo ▁hi ▁mid ▁ka`` and a suffix ``s`` (``▁lo s`` ->
"los"). Training mixes in digital silence (noise 0) and noise up to 0.06.

Fixtures (session scope, built on first use):
- `tiny_rnnt`: an untrained `RNNT` with `TINY_MODEL` (random weights; emits garbage).
- `trained_rnnt`: `TINY_MODEL` trained on tone speech (about 20 s of CPU; the weights are cached in the
  pytest cache, keyed by the sources they depend on, so later runs skip training).
- `tiny_bundle`: path of the float32 TFLite bundle of `tiny_rnnt`.
- `trained_bundle`: path of the float32 TFLite bundle of `trained_rnnt`.
- `tone_manifest`: a JSONL manifest of held-out tone-speech wav files (`tone_manifest_items` has the samples).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os

import numpy as np
import pytest

from rnnt.config import FeatureConfig, ModelConfig

TONE_TOKENS = ["<blk>", "\u2581lo", "\u2581hi", "\u2581mid", "\u2581ka", "s"]
TONE_FREQS = {1: 400.0, 2: 750.0, 3: 1300.0, 4: 2200.0, 5: 3500.0}
TINY_FEATURES = FeatureConfig(num_mels=20)
TINY_MODEL = ModelConfig(
    vocab_size=len(TONE_TOKENS),
    num_mels=20,
    frame_stack=3,
    encoder_layers=2,
    encoder_units=48,
    encoder_proj=32,
    time_reduction_after=0,
    time_reduction_factor=2,
    embed_dim=16,
    predictor_layers=1,
    predictor_units=32,
    predictor_proj=32,
    joint_dim=48,
    chunk_frames=12,
)
_TRAIN_STEPS = 250
_HERE = os.path.dirname(os.path.abspath(__file__))


def tone_utterance(rng: np.random.Generator, noise: float = 0.003, sample_rate: int = 16000, words=(2, 5)):
    """A random tone-speech utterance: (float32 samples, token ids, [(word start s, word end s), ...])."""
    sr = sample_rate
    ids: list[int] = []
    spans: list[tuple[float, float]] = []
    parts = [np.zeros(int(rng.uniform(0.15, 0.4) * sr))]
    pos = parts[0].size
    for w in range(int(rng.integers(*words))):
        if w:
            parts.append(np.zeros(int(rng.uniform(0.12, 0.3) * sr)))
            pos += parts[-1].size
        first = int(rng.integers(1, 5))
        while ids and first == ids[-1 - (ids[-1] == 5)]:  # no word right after itself (too hard for the tiny model)
            first = int(rng.integers(1, 5))
        toks = [first] + ([5] if rng.random() < 0.35 else [])
        start = pos
        for j, t in enumerate(toks):
            if j:
                parts.append(np.zeros(int(0.04 * sr)))
                pos += parts[-1].size
            n = int(rng.uniform(0.12, 0.2) * sr)
            tt = np.arange(n) / sr
            env = np.minimum(1.0, np.minimum(tt, tt[::-1]) / 0.01)
            parts.append(0.3 * env * np.sin(2 * np.pi * TONE_FREQS[t] * tt + rng.uniform(0, 6)))
            pos += n
            ids.append(t)
        spans.append((start / sr, pos / sr))
    parts.append(np.zeros(int(rng.uniform(0.2, 0.4) * sr)))
    x = np.concatenate(parts)
    x = x + noise * rng.standard_normal(x.size)
    return x.astype(np.float32), ids, spans


def tone_text(ids) -> str:
    from rnnt.tokens import TokenTable

    return TokenTable(TONE_TOKENS).decode(ids)


def _train_tone_model(steps: int = _TRAIN_STEPS, pool: int = 160, batch: int = 16, seed: int = 0):
    import tensorflow as tf

    from rnnt.features import log_mel
    from rnnt.loss import rnnt_loss
    from rnnt.model import RNNT

    rng = np.random.default_rng(seed)
    data = [tone_utterance(rng, noise=float(rng.choice([0.0, 0.003, 0.01, 0.03, 0.06]))) for _ in range(pool)]
    feats = [log_mel(x, TINY_FEATURES) for x, _, _ in data]
    model = RNNT(TINY_MODEL, seed=seed)
    stacked = np.concatenate(feats)
    model.set_feature_stats(stacked.mean(0), stacked.std(0))
    frames = max(f.shape[0] for f in feats)
    frames += (-frames) % TINY_MODEL.reduction
    labels_max = max(len(ids) for _, ids, _ in data)
    F = np.full((pool, frames, TINY_MODEL.num_mels), np.log(TINY_FEATURES.log_floor), np.float32)
    L = np.zeros((pool, labels_max), np.int32)
    for i, (f, (_, ids, _)) in enumerate(zip(feats, data)):
        F[i, : f.shape[0]] = f
        L[i, : len(ids)] = ids
    F_len = np.array([f.shape[0] for f in feats], np.int32)
    L_len = np.array([len(ids) for _, ids, _ in data], np.int32)
    optimizer = tf.keras.optimizers.Adam(2e-3)
    variables = model.trainable_variables

    @tf.function
    def step(f, f_len, lab, lab_len):
        with tf.GradientTape() as tape:
            logits, enc_len = model.logits(f, f_len, lab)
            loss = tf.reduce_mean(rnnt_loss(logits, lab, enc_len, lab_len))
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), 5.0)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    for _ in range(steps):
        idx = rng.choice(pool, batch, replace=False)
        step(F[idx], F_len[idx], L[idx], L_len[idx])
    return model


def _weights_key() -> str:
    """Hash of everything the trained weights depend on."""
    import tensorflow as tf

    h = hashlib.sha256(tf.__version__.encode())
    recipe = [inspect.getsource(tone_utterance), inspect.getsource(_train_tone_model), TONE_TOKENS, TONE_FREQS]
    h.update(repr(recipe + [TINY_MODEL, TINY_FEATURES, _TRAIN_STEPS]).encode())
    root = os.path.dirname(_HERE)
    for rel in ("rnnt/model.py", "rnnt/loss.py", "rnnt/features.py", "rnnt/config.py"):
        with open(os.path.join(root, rel), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_rnnt():
    """An untrained `RNNT` with `TINY_MODEL`."""
    pytest.importorskip("tensorflow")
    from rnnt.model import RNNT

    return RNNT(TINY_MODEL, seed=3)


@pytest.fixture(scope="session")
def trained_rnnt(request):
    """`TINY_MODEL` trained on tone speech (weights cached across runs in the pytest cache)."""
    pytest.importorskip("tensorflow")
    from rnnt.model import RNNT

    cache = getattr(request.config, "cache", None)
    path = None
    if cache is not None:
        path = os.path.join(str(cache.mkdir("rnnt_tone_model")), f"weights-{_weights_key()}.npz")
        if os.path.exists(path):
            model = RNNT(TINY_MODEL, seed=0)
            try:
                with np.load(path) as saved:
                    values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
                if len(values) == len(model.variables) and all(
                    tuple(v.shape) == w.shape for v, w in zip(model.variables, values)
                ):
                    for v, w in zip(model.variables, values):
                        v.assign(w)
                    return model
            except (OSError, ValueError, KeyError):
                pass
    model = _train_tone_model()
    if path is not None:
        tmp = path + f".{os.getpid()}.tmp.npz"
        np.savez(tmp, *[v.numpy() for v in model.variables])
        os.replace(tmp, path)
        folder = os.path.dirname(path)
        for name in os.listdir(folder):  # weights of older recipes
            if name.startswith("weights-") and name.endswith(".npz") and name != os.path.basename(path):
                os.remove(os.path.join(folder, name))
    return model


@pytest.fixture(scope="session")
def tiny_bundle(tiny_rnnt, tmp_path_factory) -> str:
    """Path of the float32 bundle of the untrained `tiny_rnnt` (no training cost)."""
    from export.tflite import export_bundle

    path = str(tmp_path_factory.mktemp("bundle") / "tiny.tflite")
    export_bundle(tiny_rnnt, TONE_TOKENS, TINY_FEATURES, path)
    return path


@pytest.fixture(scope="session")
def trained_bundle(trained_rnnt, tmp_path_factory) -> str:
    """Path of the float32 bundle of `trained_rnnt`."""
    from export.tflite import export_bundle

    path = str(tmp_path_factory.mktemp("bundle") / "tone.tflite")
    export_bundle(trained_rnnt, TONE_TOKENS, TINY_FEATURES, path)
    return path


@pytest.fixture(scope="session")
def tone_manifest_items():
    """Held-out tone speech: list of (samples at 16 kHz, token ids, word spans)."""
    rng = np.random.default_rng(2024)
    return [tone_utterance(rng, noise=0.01) for _ in range(4)]


@pytest.fixture(scope="session")
def tone_manifest(tone_manifest_items, tmp_path_factory) -> str:
    """A JSONL manifest of `tone_manifest_items` written as 16 kHz wav files."""
    import soundfile

    folder = tmp_path_factory.mktemp("tone_corpus")
    lines = []
    for i, (x, ids, _) in enumerate(tone_manifest_items):
        name = f"utt{i}.wav"
        soundfile.write(str(folder / name), x, 16000, subtype="PCM_16")
        lines.append(json.dumps({"audio": name, "text": tone_text(ids), "duration": x.size / 16000, "id": f"utt{i}"}))
    path = folder / "test.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)
