"""Training: overfitting a tiny model, kill -9 and resume, two logical devices, two worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from rnnt.config import ModelConfig, TrainConfig, config_to_dict  # noqa: E402
from rnnt.data.manifest import Utterance, write_manifest  # noqa: E402
from rnnt.tokens import CharTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RNNT_SHARED", REPO.parent / "shared"))
FSDD = SHARED / "data" / "fsdd"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

TINY_MODEL = ModelConfig(
    vocab_size=30, frame_stack=3, encoder_layers=2, encoder_units=64, encoder_proj=48, time_reduction_after=0,
    embed_dim=16, predictor_units=64, predictor_proj=48, joint_dim=64, chunk_frames=12,
)


def make_run_inputs(tmp: Path, digits=(0, 1, 2, 3), speaker: str = "jackson", take: int = 1, **overrides) -> TrainConfig:
    """A manifest of real FSDD clips, a character tokenizer and a tiny TrainConfig."""
    if not FSDD.exists():
        pytest.skip(f"shared data not found at {FSDD}")
    import soundfile as sf

    utts = []
    for d in digits:
        for k in range(take):
            path = FSDD / "audio" / f"{d}_{speaker}_{k}.wav"
            utts.append(Utterance(str(path), WORDS[d], sf.info(str(path)).duration))
    write_manifest(str(tmp / "train.jsonl"), utts)
    tok = CharTokenizer()
    tok.save(str(tmp / "chars.json"))
    settings = dict(
        train_manifest=str(tmp / "train.jsonl"), dev_manifest=str(tmp / "train.jsonl"),
        tokenizer=str(tmp / "chars.json"), batch_seconds=100.0, max_batch_size=len(utts), learning_rate=3e-3,
        warmup_steps=20, decay_steps=400, steps=200, checkpoint_every=50, eval_every=10_000, log_every=10,
        spec_augment=False, model=TINY_MODEL,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def write_config(tmp: Path, cfg: TrainConfig) -> Path:
    path = tmp / "config.json"
    path.write_text(json.dumps(config_to_dict(cfg)))
    return path


def test_tiny_model_learns_its_utterances(tmp_path):
    from rnnt.training.trainer import Trainer

    cfg = make_run_inputs(tmp_path, steps=250)
    trainer = Trainer(cfg, str(tmp_path / "run"), progress=False)
    result = trainer.train()
    assert result.step == 250 and result.skipped_steps == 0
    from rnnt.data.manifest import read_manifest
    from rnnt.training.evaluate import evaluate_model

    ev = evaluate_model(trainer.model, trainer.tokenizer.tokens, read_manifest(cfg.train_manifest), cfg.features)
    assert list(ev.hypotheses) == list(ev.references), ev
    assert ev.wer == 0.0


def _train_cmd(run_dir: Path, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rnnt", "train", str(run_dir), "--config", str(config), "--no-progress", *extra]


def _env() -> dict:
    env = dict(os.environ, TF_DETERMINISTIC_OPS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _final_weights(run_dir: Path) -> dict[str, np.ndarray]:
    ckpt = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    reader = tf.train.load_checkpoint(ckpt)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if "model" in name}


def test_kill_minus_nine_resumes_exactly(tmp_path):
    cfg = make_run_inputs(tmp_path, steps=40, checkpoint_every=4, take=2)
    config = write_config(tmp_path, cfg)
    reference = tmp_path / "reference"
    subprocess.run(_train_cmd(reference, config), env=_env(), check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(killed, config), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    index = killed / "checkpoints" / "checkpoint"
    while time.time() < deadline and proc.poll() is None:
        if index.exists() and "ckpt-12" in index.read_text():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    time.sleep(float(np.random.default_rng().uniform(0, 0.5)))  # somewhere mid-step or mid-save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = tf.train.latest_checkpoint(str(killed / "checkpoints"))
    assert resumed_from is not None
    out = subprocess.run(_train_cmd(killed, config), env=_env(), check=True, capture_output=True, text=True,
                         timeout=600)
    assert "resuming from" in out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["step"] == 40

    ref, got = _final_weights(reference), _final_weights(killed)
    assert ref.keys() == got.keys() and len(ref) > 10
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_two_logical_devices(tmp_path):
    cfg = make_run_inputs(tmp_path, steps=3, checkpoint_every=3, take=2, max_batch_size=2, dev_manifest="")
    out = subprocess.run(
        _train_cmd(tmp_path / "run", write_config(tmp_path, cfg), "--logical-cpus", "2"),
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["step"] == 3 and np.isfinite(result["loss"])
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints"))
    # two replicas consumed two batches per step
    assert int(reader.get_tensor("batches_consumed/.ATTRIBUTES/VARIABLE_VALUE")) == 6


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_worker_processes(tmp_path):
    cfg = make_run_inputs(tmp_path, steps=3, checkpoint_every=3, take=2, max_batch_size=2, dev_manifest="")
    config = write_config(tmp_path, cfg)
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(_train_cmd(tmp_path / "run", config), env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    result = json.loads(outs[0][0].strip().splitlines()[-1])
    assert result["step"] == 3
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert int(reader.get_tensor("batches_consumed/.ATTRIBUTES/VARIABLE_VALUE")) == 6
    assert not list((tmp_path / "run").glob(".worker*"))


def test_quantization_aware_training_starts_and_resumes(tmp_path):
    from quantize.qat import is_fake_quant_enabled
    from rnnt.training.trainer import Trainer

    cfg = make_run_inputs(tmp_path, steps=4, checkpoint_every=2, qat_start_step=2, dev_manifest="")
    first = Trainer(cfg, str(tmp_path / "run"), progress=False)
    assert first.train().step == 4 and is_fake_quant_enabled(first.model)
    names = tf.train.list_variables(str(tmp_path / "run" / "checkpoints"))
    assert any("input_quant" in name for name, _ in names)

    second = Trainer(cfg, str(tmp_path / "run"), progress=False)
    result = second.train(6)
    assert result.step == 6 and np.isfinite(result.loss) and is_fake_quant_enabled(second.model)


def test_auxiliary_ctc_head_is_trained_checkpointed_and_left_out_of_the_model(tmp_path):
    from export.checkpoint import load_run
    from rnnt.training.trainer import Trainer

    cfg = make_run_inputs(tmp_path, steps=3, checkpoint_every=3, ctc_weight=0.5, dev_manifest="")
    trainer = Trainer(cfg, str(tmp_path / "run"), progress=False)
    before = trainer.ctc_head.w.numpy().copy()
    assert trainer.train().step == 3
    assert not np.allclose(trainer.ctc_head.w.numpy(), before)  # the head gets gradients
    names = [name for name, _ in tf.train.list_variables(str(tmp_path / "run" / "checkpoints"))]
    assert any(name.startswith("ctc_head/") for name in names)
    resumed = Trainer(cfg, str(tmp_path / "run"), progress=False)
    assert resumed.train(5).step == 5
    model, *_ = load_run(str(tmp_path / "run"))
    assert not any("ctc" in v.name for v in model.variables)
