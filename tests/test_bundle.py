"""The bundle loader: clear errors for bad files, a runtime that works where TensorFlow cannot be imported."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rnnt.bundle import BundleError, TFLiteStepModel, read_bundle_info, read_metadata, read_tflite_info
from rnnt.version import BUNDLE_FORMAT_VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # export/ when not installed


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A float bundle, the same model converted without metadata, the TF model's decoded tokens."""
    pytest.importorskip("tensorflow")
    from export.tflite import convert, export_bundle
    from rnnt.decoding import DecodingOptions, decode_features
    from rnnt.config import FeatureConfig, ModelConfig
    from rnnt.model import RNNT, TFStepModel

    cfg = ModelConfig(
        vocab_size=12, num_mels=16, encoder_layers=2, encoder_units=24, encoder_proj=16, time_reduction_after=0,
        embed_dim=8, predictor_units=24, predictor_proj=16, joint_dim=24, chunk_frames=6,
    )
    model = RNNT(cfg, seed=11)
    model.joint.out.w.assign(model.joint.out.w * 8.0)
    folder = tmp_path_factory.mktemp("bundle")
    bundle = str(folder / "model.tflite")
    tokens = ["<blk>", "<unk>", "\u2581"] + list("abcdefghi")
    export_bundle(model, tokens, FeatureConfig(num_mels=16), bundle)
    plain = str(folder / "plain.tflite")
    with open(plain, "wb") as f:
        f.write(convert(model))
    feats = np.random.default_rng(4).normal(size=(50, 16)).astype(np.float32)
    np.save(folder / "feats.npy", feats)
    expected = list(decode_features(TFStepModel(model), feats, DecodingOptions(beam=1), FeatureConfig(num_mels=16)).tokens)
    assert expected, "test model should emit tokens"
    return {"bundle": bundle, "plain": plain, "feats": str(folder / "feats.npy"), "expected": expected,
            "folder": folder}


def _write(folder, name, data: bytes) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BundleError, match="no such file"):
        read_metadata(str(tmp_path / "nope.tflite"))
    with pytest.raises(BundleError, match="folder"):
        read_metadata(str(tmp_path))
    with pytest.raises(BundleError, match="no such file"):
        TFLiteStepModel(str(tmp_path / "nope.tflite"))


def test_not_a_tflite_file(tmp_path):
    rng = np.random.default_rng(0)
    for name, data in (("random.tflite", rng.bytes(5000)), ("text.tflite", b'{"format": "rnnt-bundle"}\n')):
        with pytest.raises(BundleError, match="not a TFLite file"):
            read_metadata(_write(tmp_path, name, data))
    with pytest.raises(BundleError, match="empty file"):
        read_metadata(_write(tmp_path, "empty.tflite", b""))


def test_truncated_bundle(files, tmp_path):
    data = open(files["bundle"], "rb").read()
    for keep in (len(data) - 1, len(data) - 7, len(data) - 300, len(data) // 2, 64, 9):
        path = _write(tmp_path, f"cut{keep}.tflite", data[:keep])
        with pytest.raises(BundleError, match="truncated or corrupt"):
            read_metadata(path)
        with pytest.raises(BundleError, match="truncated or corrupt"):
            TFLiteStepModel(path)


def test_tflite_without_rnnt_metadata(files):
    with pytest.raises(BundleError, match="a TFLite file but not an rnnt bundle"):
        read_metadata(files["plain"])
    with pytest.raises(BundleError, match="not an rnnt bundle"):
        TFLiteStepModel(files["plain"])
    info = read_tflite_info(files["plain"])  # inspect still shows what is there
    assert info.metadata is None and {s.key for s in info.signatures} == {"encode", "predict", "joint"}


def _with_metadata(files, tmp_path, name, change) -> str:
    from export.tflite import embed_metadata

    data = open(files["bundle"], "rb").read()
    meta = read_metadata(files["bundle"]).to_dict()
    change(meta)
    return _write(tmp_path, name, embed_metadata(data, meta))


def test_other_format_versions(files, tmp_path):
    pytest.importorskip("tensorflow")
    newer = _with_metadata(files, tmp_path, "v99.tflite", lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match=f"bundle format version 99, this rnnt .* reads version {BUNDLE_FORMAT_VERSION}"):
        read_metadata(newer)
    older = _with_metadata(files, tmp_path, "v0.tflite", lambda m: m.update(format_version=0))
    with pytest.raises(BundleError, match="re-export"):
        TFLiteStepModel(older)


def test_inconsistent_metadata(files, tmp_path):
    pytest.importorskip("tensorflow")
    cases = {
        "tokens": (lambda m: m["tokens"].pop(), "tokens but the model's vocab_size"),
        "config": (lambda m: m["model"].update(unknown_setting=1), "unknown ModelConfig settings"),
        "format": (lambda m: m.update(format="other"), "'format'"),
        "mels": (lambda m: m["features"].update(num_mels=80), "mels"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(BundleError, match=message):
            read_metadata(_with_metadata(files, tmp_path, f"{name}.tflite", change))


def test_signatures_resize_only_as_needed(files):
    step = TFLiteStepModel(files["bundle"])
    cfg = step.config
    rng = np.random.default_rng(3)
    results = {}
    for n in (1, 4, 2, 4, 1):
        tokens = rng.integers(0, cfg.vocab_size, n).astype(np.int32)
        state = rng.normal(size=(n, cfg.predictor_state_size)).astype(np.float32)
        out, new_state = step.predict(tokens, state)
        assert out.shape == (n, cfg.predictor_proj) and new_state.shape == state.shape
        results[n] = (tokens, state, out)
    slow = TFLiteStepModel(files["bundle"])
    for sig in (slow._encode, slow._predict, slow._joint):
        sig._fast = False  # the public SignatureRunner path
    for n, (tokens, state, out) in results.items():
        np.testing.assert_allclose(slow.predict(tokens, state)[0], out, atol=1e-6)


def test_bundle_info(files):
    info = read_bundle_info(files["bundle"])
    assert info.size_bytes == os.path.getsize(files["bundle"])
    assert "FULLY_CONNECTED" in info.ops and info.metadata.model.vocab_size == 12
    with pytest.raises(BundleError, match="not an rnnt bundle"):
        read_bundle_info(files["plain"])


def test_inspect_errors(files, tmp_path, capsys):
    from rnnt.commands import inspect

    args = argparse.Namespace(bundle=files["plain"], json=False, tokens=False)
    assert inspect.run(args) == 1
    out = capsys.readouterr().out
    assert "not an rnnt bundle" in out and "FULLY_CONNECTED" in out
    args.bundle = _write(tmp_path, "junk.tflite", b"junk" * 100)
    assert inspect.run(args) == 1
    assert "not a TFLite file" in capsys.readouterr().err


NO_TF_SCRIPT = textwrap.dedent(
    """
    import argparse, importlib.abc, json, sys

    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith(("tensorflow.", "tf_keras", "keras")):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())
    try:
        import tensorflow  # noqa: F401
        raise SystemExit("tensorflow import was not blocked")
    except ImportError:
        pass

    import numpy as np
    from rnnt.bundle import TFLiteStepModel, read_metadata
    from rnnt.decoding import DecodingOptions, decode_features
    from rnnt.commands import inspect

    bundle, feats_path = sys.argv[1], sys.argv[2]
    meta = read_metadata(bundle)
    step = TFLiteStepModel(bundle)
    feats = np.load(feats_path)
    greedy = decode_features(step, feats, DecodingOptions(beam=1)).tokens
    beam = decode_features(step, feats, DecodingOptions(beam=3)).tokens
    code = inspect.run(argparse.Namespace(bundle=bundle, json=False, tokens=False))
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
    print(json.dumps({"greedy": list(greedy), "beam": list(beam), "vocab": len(meta.tokens),
                      "inspect": code, "tf_modules": loaded}))
    """
)


def test_loads_and_decodes_without_tensorflow(files, tmp_path):
    script = _write(tmp_path, "no_tf.py", NO_TF_SCRIPT.encode())
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, script, files["bundle"], files["feats"]], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tf_modules"] == []
    assert result["greedy"] == files["expected"]
    assert result["beam"] and result["vocab"] == 12 and result["inspect"] == 0
