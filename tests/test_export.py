"""Export: the float bundle agrees with the TF model, decodes the same text, uses built-in ops only."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # export/ when not installed

from export.tflite import ExportError, check_ops, embed_metadata, export_bundle  # noqa: E402
from rnnt.bundle import TFLiteStepModel, op_counts, read_bundle_info, read_metadata  # noqa: E402
from rnnt.config import FeatureConfig, ModelConfig, TrainConfig, config_to_dict  # noqa: E402
from rnnt.decoding import DecodingOptions, decode_features  # noqa: E402
from rnnt.model import RNNT, TFStepModel  # noqa: E402
from rnnt.version import BUNDLE_FORMAT_VERSION  # noqa: E402

CFG = ModelConfig(
    vocab_size=20, num_mels=20, encoder_layers=2, encoder_units=32, encoder_proj=32, time_reduction_after=0,
    embed_dim=16, predictor_units=32, predictor_proj=24, joint_dim=32, chunk_frames=12,
)
FEATURES = FeatureConfig(num_mels=20)
TOKENS = ["<blk>", "<unk>", "\u2581", "'"] + list("abcdefghijklmnop")


def tiny_model(seed: int = 3) -> RNNT:
    """A random model whose greedy output is not all blanks (sharper joint, mild blank bias)."""
    model = RNNT(CFG, seed=seed)
    model.joint.out.w.assign(model.joint.out.w * 6.0)
    bias = np.zeros(CFG.vocab_size, np.float32)
    bias[0] = 1.0
    model.joint.out.b.assign(bias)
    rng = np.random.default_rng(seed)
    model.set_feature_stats(rng.normal(size=CFG.num_mels) * 0.1, 1.0 + rng.uniform(size=CFG.num_mels))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    path = str(tmp_path_factory.mktemp("export") / "model.tflite")
    report = export_bundle(model, TOKENS, FEATURES, path, training_info={"step": 7, "run_dir": "runs/x"},
                           source_checkpoint="runs/x/checkpoints/ckpt-1")
    return model, path, report


def test_float_bundle_matches_tf_model_chunk_by_chunk(exported):
    model, path, _ = exported
    ref, step = TFStepModel(model), TFLiteStepModel(path)
    rng = np.random.default_rng(0)
    s_ref, s_lite = ref.initial_encoder_state(), step.initial_encoder_state()
    for _ in range(5):  # states carried from call to call, each side its own
        feats = rng.normal(size=(1, CFG.chunk_frames, CFG.num_mels)).astype(np.float32) * 2
        e_ref, s_ref = ref.encode(feats, s_ref)
        e_lite, s_lite = step.encode(feats, s_lite)
        assert e_lite.shape == (1, CFG.chunk_frames // CFG.reduction, CFG.encoder_proj)
        np.testing.assert_allclose(e_lite, e_ref, atol=1e-4)
        np.testing.assert_allclose(s_lite, s_ref, atol=1e-4)
    for n in (1, 3, 5, 3):  # the beam: batch size changes from call to call
        tokens = rng.integers(0, CFG.vocab_size, n).astype(np.int32)
        state = rng.normal(size=(n, CFG.predictor_state_size)).astype(np.float32) * 0.5
        p_ref, ps_ref = ref.predict(tokens, state)
        p_lite, ps_lite = step.predict(tokens, state)
        assert p_lite.shape == (n, CFG.predictor_proj) and ps_lite.shape == (n, CFG.predictor_state_size)
        np.testing.assert_allclose(p_lite, p_ref, atol=1e-4)
        np.testing.assert_allclose(ps_lite, ps_ref, atol=1e-4)
        enc = rng.normal(size=(n, CFG.encoder_proj)).astype(np.float32)
        lp_lite = step.joint(enc, p_ref)
        np.testing.assert_allclose(lp_lite, ref.joint(enc, p_ref), atol=1e-4)
        assert lp_lite.shape == (n, CFG.vocab_size) and np.all(np.isfinite(lp_lite))
        np.testing.assert_allclose(np.exp(lp_lite).sum(-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("beam", [1, 3])
def test_float_bundle_decodes_the_same_tokens(exported, beam):
    model, path, _ = exported
    ref, step = TFStepModel(model), TFLiteStepModel(path)
    rng = np.random.default_rng(1)
    for _ in range(2):
        feats = rng.normal(size=(70, CFG.num_mels)).astype(np.float32)  # 70 frames: last chunk padded
        want = decode_features(ref, feats, DecodingOptions(beam=beam), FEATURES).tokens
        got = decode_features(step, feats, DecodingOptions(beam=beam)).tokens
        assert len(want) > 0 and len(set(want)) > 1
        assert got == want


def test_ops_are_builtin_without_loops(exported):
    _, path, report = exported
    ops = op_counts(path)
    assert ops == report.ops
    assert {"FULLY_CONNECTED", "LOGISTIC", "TANH", "GATHER", "LOG_SOFTMAX"} <= set(ops)
    assert not [k for k in ops if k.startswith(("custom:", "Flex")) or k in ("WHILE", "CUSTOM", "CALL_ONCE")]


def _convert_with(fn, *, custom: bool) -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([4], tf.float32)])
    def f(x):
        return {"y": fn(x)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    converter.allow_custom_ops = custom
    return converter.convert()


def test_check_ops_rejects_flex_and_custom_ops():
    flex = _convert_with(lambda x: tf.linalg.det(tf.reshape(x, [2, 2])), custom=False)
    with pytest.raises(ExportError, match="FlexMatrixDeterminant"):
        check_ops(flex)
    custom = _convert_with(lambda x: tf.raw_ops.Betainc(a=x, b=x, x=tf.sigmoid(x)), custom=True)
    with pytest.raises(ExportError, match="custom:Betainc"):
        check_ops(custom)


def test_size_holds_every_weight_and_signatures(exported):
    model, path, report = exported
    params = sum(int(np.prod(v.shape)) for v in model.variables)
    size = os.path.getsize(path)
    assert report.size_bytes == size and report.params == params
    assert 0.98 * 4 * params <= size <= 4 * params * 1.6 + 60_000  # weights present, no duplication
    info = read_bundle_info(path)
    sigs = {s.key: s for s in info.signatures}
    assert set(sigs) == {"encode", "predict", "joint"}
    shapes = {(k, t.name): (t.shape, t.dtype) for k, s in sigs.items() for t in s.inputs + s.outputs}
    S_enc, S_pred = CFG.encoder_state_size, CFG.predictor_state_size
    assert shapes == {
        ("encode", "features"): ((1, 12, 20), "float32"),
        ("encode", "state"): ((1, S_enc), "float32"),
        ("encode", "encoded"): ((1, 2, 32), "float32"),
        ("encode", "new_state"): ((1, S_enc), "float32"),
        ("predict", "tokens"): ((None,), "int32"),
        ("predict", "state"): ((None, S_pred), "float32"),
        ("predict", "output"): ((None, 24), "float32"),
        ("predict", "new_state"): ((None, S_pred), "float32"),
        ("joint", "encoder"): ((None, 32), "float32"),
        ("joint", "predictor"): ((None, 24), "float32"),
        ("joint", "log_probs"): ((None, 20), "float32"),
    }


def test_metadata_round_trip(exported):
    _, path, _ = exported
    meta = read_metadata(path)
    assert meta.format_version == BUNDLE_FORMAT_VERSION
    assert list(meta.tokens) == TOKENS
    assert meta.model == CFG and meta.features == FEATURES and meta.chunk_frames == 12
    assert meta.quantization_mode == "float32"
    assert meta.training == {"step": 7, "run_dir": "runs/x"}
    assert meta.extra["source_checkpoint"] == "runs/x/checkpoints/ckpt-1"


def test_embedded_buffers_stay_16_byte_aligned(exported):
    _, path, _ = exported
    from ai_edge_litert import schema_py_generated as schema

    data = open(path, "rb").read()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.DataLength() > 0:
            start = b._tab.Vector(b._tab.Offset(4))
            assert start % 16 == 0, f"buffer {i} at {start}"


def test_embed_metadata_replaces_an_existing_entry(exported):
    _, path, _ = exported
    data = open(path, "rb").read()
    meta = read_metadata(path).to_dict()
    meta["training"] = {"note": "again"}
    again = embed_metadata(data, meta)
    assert read_metadata(again).training == {"note": "again"}
    assert read_bundle_info(again).metadata_names.count("rnnt") == 1


def test_export_refuses_mismatched_tokens_and_features(tmp_path):
    model = RNNT(CFG)
    with pytest.raises(ExportError, match="tokens"):
        export_bundle(model, TOKENS[:-1], FEATURES, str(tmp_path / "a.tflite"))
    with pytest.raises(ExportError, match="mels"):
        export_bundle(model, TOKENS, FeatureConfig(num_mels=40), str(tmp_path / "a.tflite"))
    with pytest.raises(ExportError, match="calibration"):
        export_bundle(model, TOKENS, FEATURES, str(tmp_path / "a.tflite"), quantization="int8")
    assert not os.path.exists(tmp_path / "a.tflite")


def make_run(folder, model: RNNT, steps: int = 3) -> str:
    """A fake training run: config.json, a chars tokenizer and CheckpointManager checkpoints."""
    from rnnt.tokens import CharTokenizer

    os.makedirs(folder, exist_ok=True)
    tok_path = os.path.join(folder, "tokens.json")
    CharTokenizer(TOKENS, tok_path).save(tok_path)
    config = TrainConfig(tokenizer="tokens.json", train_manifest="train.jsonl", model=model.cfg, features=FEATURES)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config_to_dict(config), f)
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=model, step=step)
    manager = tf.train.CheckpointManager(ckpt, os.path.join(folder, "checkpoints"), max_to_keep=2)
    for i in range(steps):
        step.assign(100 * (i + 1))
        manager.save()
    return folder


def test_load_run_and_cli_export(tmp_path, capsys):
    from export.checkpoint import RunError, load_run
    from rnnt.cli import main

    model = tiny_model(seed=5)
    run = make_run(str(tmp_path / "run"), model)
    loaded, config, tokens, info = load_run(run)
    assert tokens == TOKENS and config.model == CFG and info["step"] == 300
    for a, b in zip(model.variables, loaded.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    prefix = info["checkpoint"]
    assert load_run(prefix)[3]["checkpoint"] == prefix
    with pytest.raises(RunError, match="config.json"):
        load_run(str(tmp_path))

    out = str(tmp_path / "m.tflite")
    assert main(["export", run, "-o", out]) == 0
    printed = capsys.readouterr().out
    assert "encode(" in printed and "FULLY_CONNECTED" in printed
    meta = read_metadata(out)
    assert meta.extra["source_checkpoint"] == prefix
    assert meta.training["step"] == 300 and meta.training["run_dir"] == run
    feats = np.random.default_rng(2).normal(size=(40, CFG.num_mels)).astype(np.float32)
    want = decode_features(TFStepModel(model), feats, DecodingOptions(beam=1), FEATURES).tokens
    assert decode_features(TFLiteStepModel(out), feats, DecodingOptions(beam=1)).tokens == want

    assert main(["export", str(tmp_path / "nothing"), "-o", out]) == 2


def test_cli_inspect(exported, capsys):
    from rnnt.cli import main

    _, path, _ = exported
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    for text in ("encode", "predict", "joint", "features", "new_state", "log_probs", "FULLY_CONNECTED",
                 "float32", "tokens: 20", "chunk: 12 feature frames", "source_checkpoint"):
        assert text in out, text
    assert main(["inspect", "--json", path]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metadata"]["tokens"] == TOKENS and data["size_bytes"] == os.path.getsize(path)
    assert data["signatures"]["predict"]["inputs"][1] == {"name": "tokens", "shape": [None], "dtype": "int32"}
