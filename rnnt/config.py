"""Frozen configuration dataclasses; feature and model configs travel inside the bundle."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Type, TypeVar

T = TypeVar("T")


def config_to_dict(config: Any) -> dict:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(config)


def config_from_dict(cls: Type[T], data: dict) -> T:
    """Build `cls` from a dict, rejecting unknown keys with a clear message."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(unknown)}")
    kwargs = {}
    for key, value in data.items():
        ftype = names[key].type
        sub = _NESTED.get(ftype) if isinstance(ftype, str) else None
        kwargs[key] = config_from_dict(sub, value) if sub and isinstance(value, dict) else value
    return cls(**kwargs)


def load_config_file(cls: Type[T], path: str) -> T:
    """Read a JSON config file into `cls`."""
    with open(path, encoding="utf-8") as f:
        return config_from_dict(cls, json.load(f))


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end. Runtime (numpy) and training (TF) implement exactly this."""

    sample_rate: int = 16000
    num_mels: int = 80
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    fft_length: int = 512
    lower_hz: float = 20.0
    upper_hz: float = 7600.0
    log_floor: float = 1e-6

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the RNN-T network. Blank is token id 0; vocab_size counts it."""

    vocab_size: int = 257
    num_mels: int = 80
    frame_stack: int = 3  # input frames stacked and subsampled: 30 ms
    encoder_layers: int = 4
    encoder_units: int = 512
    encoder_proj: int = 256
    time_reduction_after: int = 1  # index of the encoder layer after which time is reduced; -1 for none
    time_reduction_factor: int = 2
    embed_dim: int = 128
    predictor_layers: int = 1
    predictor_units: int = 512
    predictor_proj: int = 256
    joint_dim: int = 320
    chunk_frames: int = 12  # feature frames per streaming encoder call (120 ms)
    cell_clip: float = 0.0  # LSTM cell states clipped to [-cell_clip, cell_clip] each step; 0: no clip

    @property
    def reduction(self) -> int:
        """Feature frames per encoder output frame."""
        tr = self.time_reduction_factor if self.time_reduction_after >= 0 else 1
        return self.frame_stack * tr

    @property
    def encoder_state_size(self) -> int:
        return self.encoder_layers * (self.encoder_units + self.encoder_proj)

    @property
    def predictor_state_size(self) -> int:
        return self.predictor_layers * (self.predictor_units + self.predictor_proj)

    def __post_init__(self) -> None:
        if self.chunk_frames % self.reduction:
            raise ValueError(
                f"chunk_frames={self.chunk_frames} must be a multiple of the reduction {self.reduction}"
            )
        if self.cell_clip < 0:
            raise ValueError(f"cell_clip={self.cell_clip} must be 0 (no clip) or positive")
        if not -1 <= self.time_reduction_after < self.encoder_layers - 1:
            raise ValueError(
                f"time_reduction_after={self.time_reduction_after} must be -1 or name an encoder layer before the last"
            )
        if self.vocab_size < 2:
            raise ValueError("vocab_size must count blank and at least one token")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and data settings for `rnnt train`."""

    train_manifest: str = ""  # a manifest, or a mix: "a.jsonl,b.jsonl@0.25" (see rnnt.data.mix)
    dev_manifest: str = ""
    tokenizer: str = ""  # path of a tokenizer model (.model for sentencepiece, .json for chars)
    batch_seconds: float = 200.0  # audio seconds per batch (length bucketing)
    max_batch_size: int = 32
    max_duration: float = 20.0
    learning_rate: float = 1e-3
    warmup_steps: int = 1000
    decay_steps: int = 100000
    min_learning_rate: float = 1e-5
    weight_decay: float = 1e-6
    clip_norm: float = 5.0
    steps: int = 10000
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 1000
    eval_utterances: int = 200
    log_every: int = 20
    spec_augment: bool = True
    spec_augment_time_masks: int = 10  # time bands per utterance, each up to 5% of its length
    spec_augment_freq_width: int = 27  # two frequency bands, each up to this many mel bins
    ctc_weight: float = 0.0  # auxiliary CTC loss on the encoder output (a training-only head); 0 for none
    speed_perturb: bool = False  # speeds 0.9 / 1.0 / 1.1 on the fly
    augment_share: float = 0.0  # share of utterances given noise/reverb/telephone/gain on the fly
    seed: int = 0
    qat_start_step: int = -1  # quantization-aware training from this step on; -1 for never
    model: ModelConfig = field(default_factory=ModelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)


_NESTED = {"ModelConfig": ModelConfig, "FeatureConfig": FeatureConfig}
