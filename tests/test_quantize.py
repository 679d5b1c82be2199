"""Quantized bundles (dynamic, int8, float16), `rnnt quantize`, and quantization-aware training."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # export/ when not installed

from export.tflite import export_bundle  # noqa: E402
from quantize import qat  # noqa: E402
from rnnt.bundle import TFLiteStepModel, op_counts, read_bundle_info, read_metadata  # noqa: E402
from rnnt.config import FeatureConfig, ModelConfig, TrainConfig, config_to_dict  # noqa: E402
from rnnt.decoding import encode_features  # noqa: E402
from rnnt.model import RNNT, TFStepModel  # noqa: E402

# Big enough that weights dominate the file (float ~4.3 MB), small enough to convert in seconds.
BIG = ModelConfig(
    vocab_size=64, num_mels=80, encoder_layers=2, encoder_units=256, encoder_proj=128, time_reduction_after=0,
    embed_dim=32, predictor_units=256, predictor_proj=128, joint_dim=128, chunk_frames=12,
)
SMALL = ModelConfig(
    vocab_size=20, num_mels=20, encoder_layers=2, encoder_units=32, encoder_proj=32, time_reduction_after=0,
    embed_dim=16, predictor_units=32, predictor_proj=32, joint_dim=32, chunk_frames=12,
)
TOKENS_SMALL = ["<blk>", "<unk>", "\u2581", "'"] + list("abcdefghijklmnop")


def synthetic_audio(seconds: float, seed: int, sample_rate: int = 16000) -> np.ndarray:
    """Voiced-like harmonics with on/off envelope plus noise: speech-like dynamics for log-mel features."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = rng.uniform(100, 250) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.2 + 0.8 * (np.sin(2 * np.pi * rng.uniform(2, 4) * t) > 0)
    return (0.1 * x * envelope + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def synthetic_features(cfg: FeatureConfig, count: int, seconds: float = 1.5, seed: int = 0) -> list[np.ndarray]:
    from rnnt.features import log_mel

    return [log_mel(synthetic_audio(seconds, seed + i, cfg.sample_rate), cfg) for i in range(count)]


def rel_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quant")
    fcfg = FeatureConfig(num_mels=BIG.num_mels)
    model = RNNT(BIG, seed=1)
    feats = synthetic_features(fcfg, 6)
    stacked = np.concatenate(feats)
    model.set_feature_stats(stacked.mean(0), stacked.std(0))
    tokens = ["<blk>"] + [f"t{i}" for i in range(1, BIG.vocab_size)]
    paths, reports = {}, {}
    for mode in ("float32", "int8", "dynamic", "float16"):
        paths[mode] = str(folder / f"{mode}.tflite")
        reports[mode] = export_bundle(model, tokens, fcfg, paths[mode], quantization=mode,
                                      calibration_features=feats if mode == "int8" else None, max_calibration_chunks=60)
    test_feats = synthetic_features(fcfg, 1, seed=100)[0]
    return {"model": model, "paths": paths, "reports": reports, "feats": test_feats, "fcfg": fcfg}


def test_int8_bundle_is_at_most_30_percent_of_float(big):
    float_size = os.path.getsize(big["paths"]["float32"])
    params = sum(int(np.prod(v.shape)) for v in big["model"].variables)
    assert float_size >= 0.98 * 4 * params  # every weight is in the file (a few constants fold away)
    sizes = {mode: os.path.getsize(p) / float_size for mode, p in big["paths"].items()}
    assert sizes["int8"] <= 0.30, sizes
    assert sizes["dynamic"] <= 0.30, sizes
    assert 0.45 <= sizes["float16"] <= 0.60, sizes


def test_quantized_bundles_keep_float_interfaces_and_builtin_ops(big):
    for mode, path in big["paths"].items():
        info = read_bundle_info(path)
        assert info.metadata.quantization_mode == mode
        for sig in info.signatures:
            for t in sig.inputs + sig.outputs:
                assert t.dtype == ("int32" if t.name == "tokens" else "float32"), (mode, sig.key, t)
        ops = op_counts(path)
        assert not [k for k in ops if k.startswith(("custom:", "Flex")) or k == "WHILE"], (mode, ops)
    int8_meta = read_metadata(big["paths"]["int8"])
    calib = int8_meta.quantization["calibration"]
    assert 1 <= calib["utterances"] <= 6 and calib["encode_chunks"] <= 60 and calib["encode_chunks"] > 0 and calib["joint_batches"] > 0
    assert "QUANTIZE" in op_counts(big["paths"]["int8"])


def test_quantized_outputs_stay_close_to_float(big):
    ref = np.stack(list(encode_features(TFStepModel(big["model"]), big["feats"], big["fcfg"])))
    limits = {"float32": 1e-4, "float16": 0.01, "dynamic": 0.05, "int8": 0.35}
    for mode, path in big["paths"].items():
        step = TFLiteStepModel(path)
        got = np.stack(list(encode_features(step, big["feats"])))
        assert np.all(np.isfinite(got))
        assert rel_rms(got, ref) <= limits[mode], (mode, rel_rms(got, ref))
        pred, _ = step.predict(np.array([0, 5, 9], np.int32), step.initial_predictor_state(3))
        lp = step.joint(np.repeat(got[0, :1], 3, axis=0), pred)
        assert lp.shape == (3, BIG.vocab_size) and np.all(np.isfinite(lp))
        np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0, atol=0.02)


# --- quantization-aware training -----------------------------------------------------------------------------


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    feats = tf.constant(rng.normal(size=(2, 30, SMALL.num_mels)).astype(np.float32))
    lengths = tf.constant([30, 24])
    labels = tf.constant(rng.integers(1, SMALL.vocab_size, size=(2, 5)).astype(np.int32))
    return feats, lengths, labels


def test_calibration_chunks_are_spread_over_every_utterance():
    from quantize.ptq import calibration_samples

    fcfg = FeatureConfig(num_mels=SMALL.num_mels)
    model = RNNT(SMALL, seed=0)
    # four utterances of five full chunks each, every frame of utterance k holding the value k
    feats = [np.full((5 * SMALL.chunk_frames, SMALL.num_mels), float(k), np.float32) for k in range(4)]
    data = calibration_samples(model, feats, fcfg, max_chunks=8)
    assert data.utterances == 4
    assert len(data.encode) == 8
    sources = sorted({float(e["features"][0, 0, 0]) for e in data.encode})
    assert sources == [0.0, 1.0, 2.0, 3.0]  # not the first utterances' chunks only


def test_fake_quant_weight_is_on_the_int8_grid_with_identity_gradient():
    w = tf.Variable(np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32))
    with tf.GradientTape() as tape:
        q = qat.fake_quant_weight(w)
        loss = tf.reduce_sum(q * tf.range(8, dtype=tf.float32))
    scale = np.abs(w.numpy()).max(axis=0) / 127.0
    steps = q.numpy() / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.abs(q.numpy() - w.numpy()).max() <= scale.max() / 2 + 1e-6
    grad = tape.gradient(loss, w).numpy()
    np.testing.assert_allclose(grad, np.tile(np.arange(8, dtype=np.float32), (16, 1)))


def test_qat_outputs_close_to_float_and_gradients_flow():
    model = RNNT(SMALL, seed=2)
    feats, lengths, labels = _batch()
    float_logits, _ = model.logits(feats, lengths, labels)
    qat.enable_fake_quant(model)
    assert qat.is_fake_quant_enabled(model)
    with tf.GradientTape() as tape:
        logits, _ = model.logits(feats, lengths, labels)
        loss = tf.reduce_mean(tf.square(logits))
    assert rel_rms(logits.numpy(), float_logits.numpy()) < 0.1
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    assert all(np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in grads) >= len(grads) - 1
    quantizers = [d.input_quant for d in model.dense_layers()]
    assert all(q.updates.numpy() > 0 and q.min.numpy() < q.max.numpy() for q in quantizers)
    # the step interface (unrolled encoder, as exported) runs under fake quant too
    step = TFStepModel(model)
    enc, _ = step.encode(np.zeros([1, 12, SMALL.num_mels], np.float32), step.initial_encoder_state())
    assert np.all(np.isfinite(enc))
    with qat.fake_quant_disabled(model):
        assert not qat.is_fake_quant_enabled(model)
        np.testing.assert_allclose(model.logits(feats, lengths, labels)[0].numpy(), float_logits.numpy(), atol=1e-5)
    assert qat.is_fake_quant_enabled(model)
    qat.freeze_ranges(model)
    before = quantizers[0].updates.numpy()
    model.logits(feats, lengths, labels)
    assert quantizers[0].updates.numpy() == before
    qat.disable_fake_quant(model)
    np.testing.assert_allclose(model.logits(feats, lengths, labels)[0].numpy(), float_logits.numpy(), atol=1e-5)


def test_qat_in_a_traced_train_step_and_export(tmp_path):
    model = RNNT(SMALL, seed=4)
    qat.enable_fake_quant(model)
    feats, lengths, labels = _batch(1)

    @tf.function
    def train_step():  # plain SGD: a Keras optimizer would only add tracing time
        with tf.GradientTape() as tape:
            logits, _ = model.logits(feats, lengths, labels)
            loss = tf.reduce_mean(tf.square(logits))
        grads = tape.gradient(loss, model.trainable_variables)
        for v, g in zip(model.trainable_variables, grads):
            v.assign_sub(0.05 * tf.convert_to_tensor(g))
        return loss

    losses = [float(train_step()) for _ in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    # QAT ranges are saved with the model
    ckpt_path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    assert any("input_quant" in name for name, _ in tf.train.list_variables(ckpt_path))
    # export converts the float graph (no fake-quant ops) and leaves QAT enabled afterwards
    path = str(tmp_path / "qat.tflite")
    export_bundle(model, TOKENS_SMALL, FeatureConfig(num_mels=SMALL.num_mels), path, training_info={"qat": True})
    assert qat.is_fake_quant_enabled(model)
    assert read_metadata(path).quantization.get("qat") is True
    ops = op_counts(path)
    assert not [k for k in ops if "FAKE_QUANT" in k or k in ("QUANTIZE", "DEQUANTIZE")]
    with qat.fake_quant_disabled(model):
        ref = TFStepModel(model)
        x = np.random.default_rng(0).normal(size=(1, 12, SMALL.num_mels)).astype(np.float32)
        want, _ = ref.encode(x, ref.initial_encoder_state())
    step = TFLiteStepModel(path)
    np.testing.assert_allclose(step.encode(x, step.initial_encoder_state())[0], want, atol=1e-4)


# --- rnnt quantize ------------------------------------------------------------------------------------------


def _make_run(folder: str, model: RNNT, fcfg: FeatureConfig) -> str:
    from rnnt.tokens import CharTokenizer

    os.makedirs(folder, exist_ok=True)
    CharTokenizer(TOKENS_SMALL).save(os.path.join(folder, "tokens.json"))
    config = TrainConfig(tokenizer="tokens.json", model=model.cfg, features=fcfg)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config_to_dict(config), f)
    ckpt = tf.train.Checkpoint(model=model)
    tf.train.CheckpointManager(ckpt, os.path.join(folder, "checkpoints"), max_to_keep=1).save()
    return folder


def _make_manifest(folder: str, count: int) -> str:
    import soundfile

    lines = []
    for i in range(count):
        path = os.path.join(folder, f"utt{i}.wav")
        audio = synthetic_audio(1.0 + 0.3 * i, seed=50 + i)
        soundfile.write(path, audio, 16000)
        lines.append(json.dumps({"audio": os.path.basename(path), "text": "a b c", "duration": len(audio) / 16000}))
    manifest = os.path.join(folder, "calib.jsonl")
    with open(manifest, "w") as f:
        f.write("\n".join(lines) + "\n")
    return manifest


def test_cli_quantize(tmp_path, capsys):
    from rnnt.cli import main

    fcfg = FeatureConfig(num_mels=SMALL.num_mels)
    model = RNNT(SMALL, seed=6)
    model.joint.out.w.assign(model.joint.out.w * 6.0)
    run = _make_run(str(tmp_path / "run"), model, fcfg)
    manifest = _make_manifest(str(tmp_path), 3)
    float_path, int8_path = str(tmp_path / "float.tflite"), str(tmp_path / "int8.tflite")
    assert main(["export", run, "-o", float_path]) == 0
    capsys.readouterr()

    code = main(["quantize", float_path, "--mode", "int8", "--calibration", manifest, "-o", int8_path,
                 "--latency-runs", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "% of float" in out and "us per 120 ms chunk" in out and "WER int8 vs float32 bundle" in out
    meta = read_metadata(int8_path)
    assert meta.quantization["mode"] == "int8" and meta.quantization["calibration"]["utterances"] == 3
    assert meta.tokens == read_metadata(float_path).tokens

    assert main(["quantize", float_path, "--mode", "int8", "-o", int8_path]) == 2  # int8 needs calibration
    assert main(["quantize", int8_path, "--mode", "dynamic", "-o", str(tmp_path / "x.tflite")]) == 1
    capsys.readouterr()

    # source checkpoint gone: a clear message, then --checkpoint works
    moved = str(tmp_path / "moved")
    os.rename(run, moved)
    dyn = str(tmp_path / "dyn.tflite")
    assert main(["quantize", float_path, "--mode", "dynamic", "-o", dyn]) == 1
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["quantize", float_path, "--mode", "dynamic", "-o", dyn, "--checkpoint", moved,
                 "--latency-runs", "5"]) == 0
    assert read_metadata(dyn).quantization_mode == "dynamic"


def test_int8_of_a_trained_model_decodes_like_float(trained_rnnt, trained_bundle, tone_manifest_items, tmp_path):
    """On a model that actually recognizes something (conftest's tone-speech model), int8 keeps the text."""
    from conftest import TINY_FEATURES, TONE_TOKENS, tone_utterance
    from quantize.report import compare_transcripts, transcribe
    from rnnt.features import log_mel
    from rnnt.tokens import TokenTable

    rng = np.random.default_rng(99)
    calibration = [log_mel(tone_utterance(rng, noise=0.01)[0], TINY_FEATURES) for _ in range(8)]
    path = str(tmp_path / "tone-int8.tflite")
    report = export_bundle(trained_rnnt, TONE_TOKENS, TINY_FEATURES, path, quantization="int8",
                           calibration_features=calibration)
    assert report.size_bytes < 0.6 * os.path.getsize(trained_bundle)  # tiny model: structure is a large share
    feats = [log_mel(x, TINY_FEATURES) for x, _, _ in tone_manifest_items]
    refs = [TokenTable(TONE_TOKENS).decode(ids) for _, ids, _ in tone_manifest_items]
    float_hyps = transcribe(TFLiteStepModel(trained_bundle), feats)
    int8_hyps = transcribe(TFLiteStepModel(path), feats)
    result = compare_transcripts(refs, float_hyps, int8_hyps)
    assert result["wer_vs_float"] <= 0.1, (float_hyps, int8_hyps)
    assert result["wer_quantized"] <= result["wer_float"] + 0.1
