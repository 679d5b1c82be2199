"""Post-training quantization: converter settings per mode and int8 calibration data.

Modes (docs/bundle.md):
- ``float32``  built-in ops, float weights.
- ``dynamic``  int8 weights, float activations (dynamic-range quantization; no calibration).
- ``int8``     int8 weights and activations with float32 inputs and outputs (states included, so they can be
               fed back unchanged); calibrated on real features run through the three signatures.
- ``float16``  float16 weights, float32 compute.
The log-mel front end is not in the bundle (the app computes it in float), so it always stays float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from rnnt.bundle import QUANTIZATION_MODES
from rnnt.config import FeatureConfig
from rnnt.model import RNNT, TFStepModel

__all__ = ["MODES", "configure_converter", "CalibrationData", "calibration_samples"]

MODES = QUANTIZATION_MODES


def configure_converter(converter, mode: str, representative_dataset=None) -> None:
    """Set `converter` (a `tf.lite.TFLiteConverter`) up for `mode`: built-in ops only, never SELECT_TF_OPS."""
    if mode not in MODES:
        raise ValueError(f"unknown quantization mode {mode!r} (one of {', '.join(MODES)})")
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if representative_dataset is None:
            raise ValueError("int8 needs a representative dataset")
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32


class _Recorder:
    """A StepModel proxy that records the inputs of `predict` and `joint` calls made by the decoder."""

    def __init__(self, inner: TFStepModel):
        self.inner = inner
        self.config = inner.config
        self.predict_calls: list[dict] = []
        self.joint_calls: list[dict] = []

    def initial_encoder_state(self):
        return self.inner.initial_encoder_state()

    def initial_predictor_state(self, n):
        return self.inner.initial_predictor_state(n)

    def encode(self, feats, state):
        return self.inner.encode(feats, state)

    def predict(self, tokens, state):
        self.predict_calls.append(
            {"tokens": np.asarray(tokens, np.int32).reshape(-1).copy(), "state": np.asarray(state, np.float32).copy()}
        )
        return self.inner.predict(tokens, state)

    def joint(self, enc, pred):
        self.joint_calls.append(
            {"encoder": np.asarray(enc, np.float32).copy(), "predictor": np.asarray(pred, np.float32).copy()}
        )
        return self.inner.joint(enc, pred)


@dataclass
class CalibrationData:
    """Representative inputs of each signature, recorded from the float TF model on real features."""

    encode: list[dict] = field(default_factory=list)
    predict: list[dict] = field(default_factory=list)
    joint: list[dict] = field(default_factory=list)
    utterances: int = 0
    emitted_tokens: int = 0

    def dataset(self):
        """The converter's representative dataset: ``(signature_key, {input_name: array})`` pairs, interleaved."""
        n = max(len(self.encode), len(self.predict), len(self.joint))
        for i in range(n):
            for key, samples in (("encode", self.encode), ("predict", self.predict), ("joint", self.joint)):
                if i < len(samples):
                    yield key, samples[i]

    def summary(self) -> dict:
        return {
            "calibration": {
                "utterances": self.utterances,
                "encode_chunks": len(self.encode),
                "predict_batches": len(self.predict),
                "joint_batches": len(self.joint),
                "decoded_tokens": self.emitted_tokens,
            }
        }


def _spread(samples: list, limit: int) -> list:
    if len(samples) <= limit:
        return samples
    keep = np.linspace(0, len(samples) - 1, limit).round().astype(int)
    return [samples[i] for i in keep]


def calibration_samples(
    model: RNNT,
    features: Iterable[np.ndarray],
    feature_cfg: FeatureConfig,
    *,
    tokens: Iterable[Sequence[int]] | None = None,
    max_chunks: int = 400,
    beam: int = 4,
) -> CalibrationData:
    """Run the float model over `features` (log-mel ``[frames, num_mels]`` per utterance) the way the runtime
    does: encode chunk by chunk carrying the real states, and beam-search decode, recording the inputs of every
    `encode`, `predict` and `joint` call (so batch sizes and states are those of real decoding). `tokens`
    (token id sequences, e.g. tokenized transcripts) add teacher-forced `predict` inputs. Every utterance is run;
    at most `max_chunks` encode samples and `max_chunks * beam` predict and joint rows are kept, evenly spread
    over all of them (not the first utterances only).
    """
    from rnnt.decoding import DecodingOptions, encode_features, make_decoder

    cfg = model.cfg
    inner = TFStepModel(model)
    rec = _Recorder(inner)
    data = CalibrationData()
    decoder = make_decoder(rec, DecodingOptions(beam=beam))

    class _EncodeRecorder:
        """encode_features drives this to record encode inputs with their real running state.

        The last, padded chunk of an utterance is run but not recorded: its silence padding (log of the log
        floor) lies far below real speech features and would stretch the int8 input ranges for every chunk.
        """

        config = cfg

        def __init__(self, full_chunks: int):
            self.remaining = full_chunks

        def initial_encoder_state(self):
            return inner.initial_encoder_state()

        def encode(self, feats, state):
            if self.remaining > 0:
                data.encode.append({"features": np.asarray(feats, np.float32).copy(), "state": np.asarray(state).copy()})
            self.remaining -= 1
            return inner.encode(feats, state)

    for feats in features:
        feats = np.asarray(feats, np.float32)
        if feats.ndim != 2 or feats.shape[1] != cfg.num_mels or len(feats) == 0:
            continue
        data.utterances += 1
        state = decoder.start()
        for enc in encode_features(_EncodeRecorder(len(feats) // cfg.chunk_frames), feats, feature_cfg):
            decoder.advance(state, enc)
        data.emitted_tokens += len(decoder.best(state).tokens)
    if data.utterances == 0:
        raise ValueError(f"no calibration features of shape [frames, {cfg.num_mels}]")
    data.encode = _spread(data.encode, max_chunks)
    predict_calls, joint_calls = rec.predict_calls, rec.joint_calls
    if tokens is not None:
        for seq in tokens:
            seq = [0] + [int(t) for t in seq]
            st = inner.initial_predictor_state(1)
            for t in seq:
                sample = {"tokens": np.array([t], np.int32), "state": st}
                predict_calls.append(sample)
                _, st = inner.predict(sample["tokens"], st)
            if len(predict_calls) >= 4 * max_chunks:
                break
    # The calibrator cannot change an input's batch size between samples of one signature, so the recorded
    # rows (independent in predict and joint) are regrouped into batches of `beam` rows.
    predict_rows = [(c["tokens"][i], c["state"][i]) for c in predict_calls for i in range(len(c["tokens"]))]
    joint_rows = [(c["encoder"][i], c["predictor"][i]) for c in joint_calls for i in range(len(c["encoder"]))]
    if not predict_rows:  # nothing decoded at all: still calibrate the start symbol
        predict_rows = [(np.int32(0), inner.initial_predictor_state(1)[0])]
    data.predict = [
        {"tokens": np.array([r[0] for r in rows], np.int32), "state": np.stack([r[1] for r in rows])}
        for rows in _batches(_spread(predict_rows, max_chunks * beam), beam)
    ]
    data.joint = [
        {"encoder": np.stack([r[0] for r in rows]), "predictor": np.stack([r[1] for r in rows])}
        for rows in _batches(_spread(joint_rows, max_chunks * beam), beam)
    ]
    return data


def _batches(rows: list, size: int) -> list[list]:
    """Consecutive groups of exactly `size` rows (the last one filled up by repeating rows from the start)."""
    if not rows:
        return []
    out = [rows[i : i + size] for i in range(0, len(rows), size)]
    if len(out[-1]) < size:
        out[-1] = (out[-1] + rows * size)[:size]
    return out
