"""scripts/accelerated: packed features, the PyTorch twin of the model, its loss and augmentation, the weight import."""

from __future__ import annotations

import dataclasses
import io
import json
import lzma
import os
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from rnnt.config import ModelConfig
from rnnt.model import RNNT, ctc_head
from rnnt.tokens import CharTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "accelerated"))

import import_weights  # noqa: E402
import pack_features  # noqa: E402

TINY = ModelConfig(vocab_size=30, frame_stack=4, encoder_layers=2, encoder_units=24, encoder_proj=16,
                   time_reduction_after=-1, embed_dim=8, predictor_units=20, predictor_proj=12, joint_dim=16,
                   chunk_frames=12)


def test_quantize_error_is_half_a_step_inside_the_range():
    x = np.linspace(pack_features.FLOOR, pack_features.FLOOR + 255 * pack_features.STEP, 1000).astype(np.float32)
    back = pack_features.dequantize(pack_features.quantize(x))
    assert np.abs(back - x).max() <= pack_features.STEP / 2 + 1e-5
    assert pack_features.dequantize(pack_features.quantize(np.float32([-50.0, 50.0]))).tolist() == pytest.approx(
        [pack_features.FLOOR, pack_features.FLOOR + 255 * pack_features.STEP])


def _clip(path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)


def _write_manifest(path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def _read_shard(path) -> dict:
    with open(path, "rb") as f:
        z = np.load(io.BytesIO(lzma.decompress(f.read())))
        return {k: z[k] for k in z.files}


def _tiny_work(tmp_path, train_texts):
    corpus = tmp_path / "work" / "corpus"
    corpus.mkdir(parents=True)
    rows = {}
    for name, texts in (("train", train_texts), ("dev", ["a dev line"]), ("babble", ["noise"])):
        rows[name] = []
        for i, text in enumerate(texts):
            audio = corpus / f"{name}-{i}.wav"
            _clip(str(audio), 0.5 + 0.1 * i, seed=hash((name, i)) % 1000)
            rows[name].append({"audio": audio.name, "text": text, "duration": 0.5 + 0.1 * i, "id": f"{name}-{i}",
                               "speaker": f"voice-{i % 2}"})
        _write_manifest(corpus / f"{name}.jsonl", rows[name])
    (corpus / "mix.json").write_text(json.dumps(
        {"train": [{"manifest": "train.jsonl", "share": 1.0}], "dev": ["dev.jsonl"], "babble": "babble.jsonl"}))
    CharTokenizer().save(str(tmp_path / "work" / "tokenizer.json"))
    return tmp_path / "work", rows


def test_pack_features_then_only_new_clips_after_the_corpus_grew(tmp_path):
    work, rows = _tiny_work(tmp_path, ["one two", "three"])
    out = tmp_path / "data"
    assert pack_features.main([str(work), str(out)]) == 0
    first = _read_shard(out / "shard-0.npz.xz")
    assert sorted(first["split"].tolist()) == [0, 0, 1, 2]  # two train, one dev, one noise clip
    assert first["lengths"].sum() == first["feats"].shape[0] and first["feats"].dtype == np.uint8
    tokenizer = CharTokenizer()
    assert sorted(first["token_lengths"].tolist()) == sorted(len(tokenizer.encode(t)) for t in
                                                             ["one two", "three", "a dev line", "noise"])
    # the corpus grows by one training clip: a second shard holds it alone
    audio = work / "corpus" / "train-2.wav"
    _clip(str(audio), 0.7, seed=5)
    _write_manifest(work / "corpus" / "train.jsonl",
                    rows["train"] + [{"audio": audio.name, "text": "four", "duration": 0.7, "id": "train-2"}])
    _write_manifest(work / "corpus" / "items-train.jsonl", [{"id": "train-2", "source": "generated"}])
    assert pack_features.main([str(work), str(out)]) == 0
    second = _read_shard(out / "shard-1.npz.xz")
    assert second["split"].tolist() == [0] and second["tokens"].tolist() == tokenizer.encode("four")
    assert second["origin"].tolist() == ["generated"]  # a synthesized clip's text source, from items-train.jsonl
    meta = json.loads((out / "meta.json").read_text())
    assert meta["shards"] == 2 and meta["floor"] == pack_features.FLOOR
    from rnnt.recipe import PRESETS

    assert json.loads((out / "model.json").read_text())["encoder_units"] == PRESETS["default"].train.model.encoder_units
    assert (out / "packed-ids.txt").read_text().split()[-1] == "train-2"
    assert sorted(first["origin"].tolist()) == ["babble.jsonl", "dev.jsonl", "train.jsonl", "train.jsonl"]
    assert pack_features.main([str(work), str(out)]) == 0  # nothing new: no third shard
    assert not (out / "shard-2.npz.xz").exists()


def test_pack_features_source_prefix_names_a_second_corpus(tmp_path):
    work, _ = _tiny_work(tmp_path, ["one two", "three"])
    assert pack_features.main([str(work), str(tmp_path / "data"), "--source-prefix", "accent/"]) == 0
    shard = _read_shard(tmp_path / "data" / "shard-0.npz.xz")
    train = shard["split"] == 0
    assert shard["source"][train].tolist() == ["accent/train.jsonl"] * 2
    assert shard["origin"][train].tolist() == ["accent/train.jsonl"] * 2  # no items-*.jsonl: the source again


def test_pack_features_completes_an_interrupted_first_run_dev_and_noise_included(tmp_path):
    work, _ = _tiny_work(tmp_path, ["one two", "three"])
    out = tmp_path / "data"
    out.mkdir()
    (out / "packed-ids.txt").write_text("train-0\n")  # a first run stopped after its first shard: no meta.json
    assert pack_features.main([str(work), str(out), "--jobs", "2"]) == 0
    shard = _read_shard(out / "shard-0.npz.xz")
    assert sorted(shard["split"].tolist()) == [0, 1, 2]  # the other training clip, the dev and the noise clip
    assert sorted((out / "packed-ids.txt").read_text().split()) == ["babble-0", "dev-0", "train-0", "train-1"]


def test_repack_shards_keeps_codes_within_a_step_relabels_and_chooses_by_source(tmp_path):
    import repack_shards

    work, _ = _tiny_work(tmp_path, ["one two", "three", "four five"])
    pack, out = tmp_path / "data", tmp_path / "small"
    assert pack_features.main([str(work), str(pack)]) == 0
    # a word-piece-like tokenizer stands in for another recipe's: the texts are found again by clip id
    argv = [str(pack), str(work), str(out), "--keep", "train.jsonl=0.5", "--coarsen", "4"]
    assert repack_shards.main(argv) == 0
    old, new = _read_shard(pack / "shard-0.npz.xz"), _read_shard(out / "shard-0.npz.xz")
    assert "feats" not in new and new["feats_dfreq"].dtype == np.int8
    # 0.5 h asked of 1.6 s: every training clip, with the dev and noise clips
    assert sorted(new["split"].tolist()) == sorted(old["split"].tolist())
    meta, old_meta = json.loads((out / "meta.json").read_text()), json.loads((pack / "meta.json").read_text())
    assert meta["step"] == pytest.approx(4 * old_meta["step"])

    def values(shard, m):
        codes = shard["feats"] if "feats" in shard else np.cumsum(shard["feats_dfreq"].astype(np.int16), 1)
        return codes * m["step"] + m["floor"], shard["lengths"]

    def by_text(shard, m):  # each clip's values, by its tokens (the texts differ)
        v, lens = values(shard, m)
        tokens = np.split(shard["tokens"], np.cumsum(shard["token_lengths"])[:-1])
        return {tuple(t.tolist()): x for t, x in zip(tokens, np.split(v, np.cumsum(lens)[:-1]))}

    a, b = by_text(old, old_meta), by_text(new, meta)
    assert set(a) == set(b)
    for key in a:
        assert a[key].shape == b[key].shape and np.abs(a[key] - b[key]).max() <= 1.5 * old_meta["step"] + 1e-4
    assert max(np.abs(a[k] - b[k]).max() for k in a) > 0  # coarser: not the same codes
    tokenizer = CharTokenizer()
    assert sorted(new["token_lengths"].tolist()) == sorted(len(tokenizer.encode(t)) for t in
                                                           ["one two", "three", "four five", "a dev line", "noise"])
    # a share of a source: one clip of three is kept at most 0.6 s of training clips
    assert repack_shards.main(argv[:4] + ["train.jsonl=0.0001"]) == 0
    assert _read_shard(out / "shard-0.npz.xz")["split"].tolist().count(0) == 1
    with pytest.raises(ValueError, match="no training clips"):
        repack_shards.main(argv[:4] + ["real-train.jsonl=all"])


def test_shard_codes_reads_either_kind_of_shard(tmp_path):
    import shard_format

    codes = np.random.default_rng(0).integers(0, 64, (7, 5)).astype(np.uint8)
    rows = [{"q": codes[:3], "tokens": np.array([1, 2]), "split": 0, "source": "a", "origin": "a"},
            {"q": codes[3:], "tokens": np.array([3]), "split": 1, "source": "b", "origin": "b"}]
    stored = {"plain": {"feats": codes},
              "dfreq": {"feats_dfreq": np.diff(codes.astype(np.int16), axis=1, prepend=0).astype(np.int8)}}
    for name, feats in stored.items():
        (tmp_path / name).write_bytes(shard_format.shard_bytes(rows, feats))
        z = shard_format.read_shard(str(tmp_path / name))
        got = shard_format.shard_codes(z)
        assert got.dtype == np.uint8 and np.array_equal(got, codes)
        assert z["lengths"].tolist() == [3, 4] and z["tokens"].tolist() == [1, 2, 3]


def test_float16_weights_read_back_as_float32(tmp_path):
    import average_weights

    w = {"encoder/kernel": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "step_like": np.int64(3)}
    import_weights.write_weights(str(tmp_path / "a"), {"encoder/kernel": w["encoder/kernel"]}, 7, {"x": 1})
    assert average_weights.main([str(tmp_path / "a"), "-o", str(tmp_path / "b"), "--float16"]) == 0
    assert np.load(tmp_path / "b" / "weights-0.npz")["encoder|kernel"].dtype == np.float16
    back, step = import_weights.read_weights(str(tmp_path / "b"))
    assert step == 7 and back["encoder/kernel"].dtype == np.float32
    assert np.abs(back["encoder/kernel"] - w["encoder/kernel"]).max() < 1e-3


def test_named_variables_cover_every_trainable_variable():
    model, head = RNNT(TINY), ctc_head(TINY)
    named = import_weights.named_variables(model, head)
    trainable = {id(v) for v in list(model.trainable_variables) + list(head.trainable_variables)}
    assert trainable <= {id(v) for v in named.values()}
    assert {"encoder/feature_mean", "encoder/feature_std"} <= set(named)


def test_assign_copies_weights_and_rejects_mismatches():
    source, target = RNNT(TINY, seed=1), RNNT(TINY, seed=2)
    weights = {k: v.numpy() for k, v in import_weights.named_variables(source).items()}
    import_weights.assign(import_weights.named_variables(target), weights)
    feats = tf.random.normal([1, 24, 80], seed=3)
    a, _ = source.encode(feats, tf.constant([24]))
    b, _ = target.encode(feats, tf.constant([24]))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="missing"):
        import_weights.assign(import_weights.named_variables(target),
                              {k: v for k, v in weights.items() if k != "joint/out/b"})
    bad = dict(weights, **{"joint/out/b": np.zeros([3], np.float32)})
    with pytest.raises(ValueError, match="shape"):
        import_weights.assign(import_weights.named_variables(target), bad)


# ---- the PyTorch side (skipped where PyTorch is not installed)

def _torch_model():
    torch = pytest.importorskip("torch")
    import torch_model

    cfg = {k: getattr(TINY, k) for k in ("vocab_size", "num_mels", "frame_stack", "encoder_layers", "encoder_units",
                                          "encoder_proj", "time_reduction_after", "embed_dim", "predictor_layers",
                                          "predictor_units", "predictor_proj", "joint_dim")}
    torch.manual_seed(0)
    model = torch_model.Transducer(cfg, dropout=0.0).eval()
    with torch.no_grad():
        model.feature_mean.normal_()
        model.feature_std.uniform_(0.5, 2.0)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return torch, torch_model, model


def test_torch_twin_computes_what_the_tensorflow_model_computes():
    torch, _, tmodel = _torch_model()
    model, head = RNNT(TINY), ctc_head(TINY)
    import_weights.assign(import_weights.named_variables(model, head), tmodel.tf_weights())
    rng = np.random.default_rng(0)
    feats = (3 * rng.standard_normal((2, 24, 80)) - 5).astype(np.float32)
    labels = rng.integers(1, 30, size=(2, 5))
    with torch.no_grad():
        enc_t = tmodel.encode(torch.tensor(feats))
        lattice_t = tmodel.lattice(enc_t, tmodel.predict(torch.tensor(labels)))
    enc, _ = model.encode(tf.constant(feats), tf.constant([24, 24]))
    np.testing.assert_allclose(enc_t.numpy(), enc.numpy(), atol=1e-5)
    np.testing.assert_allclose(lattice_t.numpy(), model.lattice(enc, tf.constant(labels, tf.int32)).numpy(), atol=1e-5)
    np.testing.assert_allclose(tmodel.ctc_head(enc_t).detach().numpy(), head(enc).numpy(), atol=1e-5)


def test_torch_weights_round_trip():
    torch, torch_model, tmodel = _torch_model()
    copy = torch_model.Transducer(tmodel.cfg, dropout=0.0)
    copy.load_tf_weights(tmodel.tf_weights())
    for (name, a), (_, b) in zip(tmodel.state_dict().items(), copy.state_dict().items()):
        if name.endswith("bias_hh_l0"):  # folded into bias_ih on the way out
            continue
        if name.endswith("bias_ih_l0"):
            a = a + tmodel.state_dict()[name.replace("ih", "hh")]
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=name)


def test_torch_transducer_loss_matches_the_tensorflow_loss_and_gradient():
    torch, torch_model, _ = _torch_model()
    from rnnt.loss import rnnt_loss

    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 10, 6, 7)).astype(np.float32)
    labels = rng.integers(1, 7, size=(3, 5))
    t_len, u_len = np.array([10, 7, 3]), np.array([5, 2, 0])
    x = torch.tensor(logits, requires_grad=True)
    nll = torch_model.rnnt_nll(x, torch.tensor(labels), torch.tensor(t_len), torch.tensor(u_len))
    nll.sum().backward()
    y = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(y)
        expected = rnnt_loss(y, labels, t_len, u_len)
        total = tf.reduce_sum(expected)
    np.testing.assert_allclose(nll.detach().numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), tape.gradient(total, y).numpy(), atol=1e-5)


def test_speed_warp_is_the_identity_at_speed_one_and_shortens_faster_speech():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(speed=(1.0, 1.0))
    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, args)
    x = torch.randn(2, 40, 80) - 5
    lengths = torch.tensor([40, 30])
    g = torch.Generator().manual_seed(0)
    y, new_lengths = aug.speed(x, lengths, g)
    assert new_lengths.tolist() == [40, 30]
    torch.testing.assert_close(y[0], x[0], atol=1e-4, rtol=0)
    args.speed = (1.25, 1.25)
    _, faster = aug.speed(x, lengths, g)
    assert faster.tolist() == [32, 24]


def test_vocal_tract_warp_moves_the_spectrum_up_and_keeps_the_tempo():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(speed=(1.0, 1.0), vtlp=(1.2, 1.2))
    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, args)
    x = torch.full((1, 20, 80), -10.0)
    x[:, :, 30] = 0.0  # one formant-like band
    y, lengths = aug.speed(x, torch.tensor([20]), torch.Generator().manual_seed(0))
    assert lengths.tolist() == [20]
    peak = int(y[0, 5].argmax())
    assert 32 <= peak <= 40  # 20% higher in Hz: a few mel bands up
    args.vtlp = (0.8, 0.8)
    y, _ = aug.speed(x, torch.tensor([20]), torch.Generator().manual_seed(0))
    assert 20 <= int(y[0, 5].argmax()) <= 28


def test_tempo_warp_slows_only_the_marked_clips_and_keeps_the_spectrum():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(speed=(1.0, 1.0), vtlp=(1.0, 1.0), tempo=(0.8, 0.8))
    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, args)
    x = torch.full((2, 40, 80), -10.0)
    x[:, :, 30] = 0.0  # one formant-like band
    x[:, 10, :] = 1.0  # one loud frame
    y, lengths = aug.speed(x, torch.tensor([40, 40]), torch.Generator().manual_seed(0),
                           torch.tensor([[0.8, 0.8], [1.0, 1.0]]))
    assert lengths.tolist() == [50, 40]  # 20% slower: a quarter more frames
    assert int(y[0, 5].argmax()) == 30 and int(y[1, 5].argmax()) == 30
    assert int(y[0, :, 0].argmax()) in (12, 13) and int(y[1, :, 0].argmax()) == 10
    torch.testing.assert_close(y[1, :40], x[1], atol=1e-4, rtol=0)
    # a clip's own range: twice as fast, half the frames, the loud frame at half its place
    y, lengths = aug.speed(x, torch.tensor([40, 40]), torch.Generator().manual_seed(0),
                           torch.tensor([[2.0, 2.0], [0.8, 0.8]]))
    assert lengths.tolist() == [20, 50]
    assert int(y[0, :, 0].argmax()) == 5 and int(y[0, 5].argmax()) == 30


def test_pitch_warp_moves_the_harmonics_and_keeps_the_envelope():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(pitch=(1.0, 1.0))
    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, args)
    bands = torch.arange(80, dtype=torch.float32)
    envelope = -4.0 - 0.05 * bands + torch.exp(-((bands - 25) / 6) ** 2)  # a tilt and one formant

    def harmonics(f0: float) -> torch.Tensor:  # a ripple with a peak at each multiple of f0 (Hz)
        return torch.cos(2 * torch.pi * aug.centers / f0)

    x = (envelope + harmonics(200.0)).expand(2, 10, 80).clone()
    g = torch.Generator().manual_seed(0)
    assert aug.pitch(x, g) is x  # no factor range: nothing drawn, nothing changed
    args.pitch = (1.25, 1.25)
    y = aug.pitch(x, g)
    torch.testing.assert_close(y @ aug.envelope, x @ aug.envelope, atol=1e-4, rtol=0)
    low = aug.centers < 1000  # where the bands resolve the harmonics
    fine = (y - y @ aug.envelope)[0, 0, low]

    def agreement(f0: float) -> float:
        ripple = harmonics(f0) - harmonics(f0) @ aug.envelope
        return float(torch.nn.functional.cosine_similarity(fine, ripple[low], dim=0))

    assert agreement(250.0) > 0.8 > 0.2 > agreement(200.0)  # the harmonics now sit at multiples of 250 Hz


def test_channel_transfer_moves_a_clips_long_term_spectrum_towards_another_and_keeps_its_level():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(channel_share=0.0)
    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, args)
    bands = torch.arange(80, dtype=torch.float32)
    x = torch.full((2, 30, 80), feature_augment.LOG_FLOOR)  # digital silence around the speech
    x[0, 5:20] = -3.0 - 0.04 * bands + 0.3 * torch.randn(15, 80)  # a dark voice
    x[1, 5:25] = -4.6 + 0.3 * torch.randn(20, 80)  # a flat one, as loud on average
    lengths = torch.tensor([22, 30])
    g = torch.Generator().manual_seed(0)
    assert aug.channel(x, lengths, g) is x  # share 0: nothing drawn, nothing changed
    args.channel_share = 1.0
    y = aug.channel(x, lengths, g)

    def tilt(clip: "torch.Tensor") -> float:  # high bands less low ones, over the speech frames
        return float(clip[5:20, 60:].mean() - clip[5:20, :20].mean())

    assert tilt(x[0]) < tilt(y[0]) < 0.5  # the dark voice brightened towards the flat one, not past it
    assert tilt(x[1]) > tilt(y[1]) > tilt(x[0])  # and the flat one darkened
    torch.testing.assert_close(y[:, 5:20].mean(-1), x[:, 5:20].mean(-1), atol=1e-4, rtol=0)  # same level
    torch.testing.assert_close(y[0, 22:], x[0, 22:])  # padding untouched


def test_tilt_passes_a_clip_through_a_first_order_filter_and_keeps_its_level():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(tilt_share=0.0, tilt_max=0.9)
    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, args)
    x = -4.0 + 0.3 * torch.randn(64, 30, 80)
    lengths = torch.full((64,), 30)
    lengths[0] = 20
    g = torch.Generator().manual_seed(0)
    assert aug.tilt(x, lengths, g) is x  # share 0: nothing drawn, nothing changed
    args.tilt_share = 1.0
    curve = (aug.tilt(x, lengths, g) - x)[:, 0]  # [B, M], the same curve on every frame of a clip
    torch.testing.assert_close(curve.mean(-1), torch.zeros(64), atol=1e-5, rtol=0)  # level kept
    # the curve of y[n] = x[n] - a x[n-1] at the bands' centres, less its mean, for the clips' own a
    cos_w = torch.cos(2 * torch.pi * aug.centers.double() / 16000)

    def filter_curve(a: "torch.Tensor") -> "torch.Tensor":
        power = torch.log(1 + a * a - 2 * a * cos_w)
        return power - power.mean()

    for row in curve[:8]:
        best = min(float((sign * filter_curve(a) - row.double()).abs().max())
                   for a in torch.linspace(-0.9, 0.9, 721).double() for sign in (-1.0, 1.0))
        assert best < 0.02  # each clip's curve is a first-order filter's within the reach
    spread = curve.amax(-1) - curve.amin(-1)
    assert 0.1 < float(spread.median()) < float(spread.max()) <= 5.9  # up to |a| = 0.9: 5.85 nats
    tops = curve[:, 60:].mean(-1) - curve[:, :20].mean(-1)
    assert (tops > 0.3).sum() > 10 and (tops < -0.3).sum() > 10  # brighter and darker both drawn
    assert torch.equal(aug.tilt(x, lengths, g)[0, 20:], x[0, 20:])  # padding untouched


def test_gain_shifts_each_clip_by_a_level_from_the_asked_range_above_the_floor():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, types.SimpleNamespace())  # default: +-1 nat
    x = -4.0 + 0.3 * torch.randn(256, 10, 80)
    x[:, :2] = feature_augment.LOG_FLOOR  # digital silence
    shift = (aug.gain(x, torch.Generator().manual_seed(0)) - x)[:, 2:]
    torch.testing.assert_close(shift, shift[:, :1, :1].expand_as(shift))  # one level a clip
    assert 0.9 < float(shift.abs().max()) <= 1.0
    aug.args.gain = (-3.0, 3.0)
    y = aug.gain(x, torch.Generator().manual_seed(0))
    shift = (y - x)[:, 2:, 0]
    assert float(shift.min()) >= -3.0 and float(shift.max()) <= 3.0
    assert (shift[:, 0] < -2.0).sum() > 20 and (shift[:, 0] > 2.0).sum() > 20  # the whole range drawn
    assert float(y.min()) >= feature_augment.LOG_FLOOR - 1e-5  # nothing below the floor (float32)


def test_level_brings_each_clip_where_the_runtime_would_and_keeps_digital_silence():
    torch, _, _ = _torch_model()
    import feature_augment
    from rnnt.features import log_mel
    from rnnt.level import LevelConfig, stream_gain

    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    sound = np.maximum(0.0, np.sin(2 * np.pi * 4 * t)) ** 2 * rng.standard_normal(t.size)
    speech = (sound + 1e-3 * rng.standard_normal(t.size)).astype(np.float32)
    clips = np.stack([log_mel(a * speech) for a in (0.001, 0.04, 0.1)])  # quiet, within the band, loud
    clips[0, :30] = feature_augment.LOG_FLOOR  # digital silence ahead of the quiet clip
    clips[1, 100:] = 5.0  # past the middle clip's length: padding, which must not count
    lengths = torch.tensor([clips.shape[1], 100, clips.shape[1]])
    out = feature_augment.level_features(torch.tensor(clips), lengths).numpy()
    gains = [stream_gain(c[:n], LevelConfig(), 150) for c, n in zip(clips, lengths.tolist())]
    assert gains[0] > 3.0 and gains[1] == 0.0 and -2.0 <= gains[2] < -0.5
    floor = feature_augment.LOG_FLOOR
    for clip, leveled, gain in zip(clips, out, gains):  # each band shifted by the clip's gain, none below the floor
        expected = np.where(clip <= floor + 1e-3, clip, np.maximum(clip + gain, floor))
        np.testing.assert_allclose(leveled, expected, atol=1e-5)
    assert (out[0, :30] == floor).all()


def test_tempo_sources_mark_the_clips_of_the_named_manifests():
    pytest.importorskip("torch")
    import train_torch

    train = np.array([0, 1, 2])
    sources = np.array(["real.jsonl", "tts.jsonl", "real.jsonl", "tts.jsonl"])
    ranges = train_torch.tempo_clip_ranges(train, sources, ["tts.jsonl"], (0.8, 0.9))
    assert ranges.tolist() == [[1, 1], [0.8, 0.9], [1, 1], [0.8, 0.9]]
    ranges = train_torch.tempo_clip_ranges(train, sources, ["tts.jsonl", "real.jsonl=1.1:1.7"], (0.8, 0.9))
    assert ranges.tolist() == [[1.1, 1.7], [0.8, 0.9], [1.1, 1.7], [0.8, 0.9]]
    assert train_torch.tempo_clip_ranges(train, sources, [], (0.8, 0.9)) is None
    with pytest.raises(SystemExit, match="no training clip comes from .other.jsonl. .sources and origins: "
                                         "real.jsonl, tts.jsonl"):
        train_torch.tempo_clip_ranges(train, sources, ["other.jsonl"], (0.8, 0.9))
    for bad in ("real.jsonl=1.7:1.1", "real.jsonl=0:1", "real.jsonl=1.2", "real.jsonl=a:b"):
        with pytest.raises(SystemExit, match="SOURCE=LO:HI"):
            train_torch.tempo_clip_ranges(train, sources, [bad], (0.8, 0.9))


def test_repeated_sources_appear_that_many_times_an_epoch():
    pytest.importorskip("torch")
    import train_torch

    train = np.array([0, 1, 2, 4])
    sources = np.array(["real.jsonl", "tts.jsonl", "real.jsonl", "real.jsonl", "tts.jsonl"])
    out = train_torch.repeat_sources(train, sources, ["real.jsonl=3"])
    assert sorted(out.tolist()) == [0, 0, 0, 1, 2, 2, 2, 4]  # clip 3 is not a training clip
    assert train_torch.repeat_sources(train, sources, []) is train
    with pytest.raises(SystemExit, match="no training clip"):
        train_torch.repeat_sources(train, sources, ["other.jsonl=2"])
    with pytest.raises(SystemExit, match="SOURCE=N"):
        train_torch.repeat_sources(train, sources, ["real.jsonl=0"])
    with pytest.raises(SystemExit, match="SOURCE=N"):
        train_torch.repeat_sources(train, sources, ["real.jsonl=x"])


def test_a_fractional_repeat_keeps_a_seeded_share_of_a_text_origin():
    pytest.importorskip("torch")
    import train_torch

    n = 2000
    train = np.arange(n)
    sources = np.array(["tts.jsonl"] * (n // 2) + ["real.jsonl"] * (n // 2))
    origins = np.array(["generated", "shared"] * (n // 4) + ["real.jsonl"] * (n // 2))
    out = train_torch.repeat_sources(train, sources, ["generated=0.3", "real.jsonl=2.5"], origins, seed=1)
    counts = np.bincount(out, minlength=n)
    generated, shared, real = counts[origins == "generated"], counts[origins == "shared"], counts[n // 2:]
    assert set(generated.tolist()) == {0, 1} and 0.25 < generated.mean() < 0.35
    assert shared.tolist() == [1] * len(shared)
    assert set(real.tolist()) == {2, 3} and 2.45 < real.mean() < 2.55
    again = train_torch.repeat_sources(train, sources, ["generated=0.3", "real.jsonl=2.5"], origins, seed=1)
    assert again.tolist() == out.tolist()  # the same draw on a resume
    # overlapping items multiply; an origin names its clips for the tempo warp too
    both = train_torch.repeat_sources(train, sources, ["tts.jsonl=2", "generated=0.5"], origins)
    assert np.bincount(both, minlength=n)[origins == "generated"].tolist() == [1] * (n // 4)
    ranges = train_torch.tempo_clip_ranges(train, sources, ["generated"], (0.8, 0.9), origins)
    assert (ranges[:, 0] == 0.8).tolist() == (origins == "generated").tolist()


def test_readers_of_an_age_band_are_weighed_by_their_speakers_table(tmp_path):
    pytest.importorskip("torch")
    import train_torch

    table = tmp_path / "speakers.tsv"
    table.write_text("000010011\t0001\t6\tm\n000020001\t0002\t30\tf\nid\tspeaker\tage\tgender\n")
    ids = ["speechocean762-000010011", "speechocean762-000020001", "fsdd-0_jackson_1", "tts-000010011x"]
    ages = train_torch.clip_ages(ids, str(table))
    assert ages[:2].tolist() == [6.0, 30.0] and np.isnan(ages[2:]).all()
    masks = train_torch.age_repeats(["16:99=2", "0:15=0.5"], ages)
    assert [m.tolist() for m, _ in masks] == [[False, True, False, False], [True, False, False, False]]
    train, sources = np.arange(4), np.array(["real.jsonl"] * 3 + ["tts.jsonl"])
    counts = np.bincount(train_torch.repeat_sources(train, sources, ["real.jsonl=2"], masks=masks), minlength=4)
    assert counts.tolist() == [1, 4, 2, 1]  # the weights multiply with --repeat's
    with pytest.raises(SystemExit, match="no clip's speaker is aged"):
        train_torch.age_repeats(["40:50=2"], ages)
    for bad in ("16-99=2", "16:99=0", "99:16=2", "16:99"):
        with pytest.raises(SystemExit, match="LO:HI=N"):
            train_torch.age_repeats([bad], ages)


def test_bf16_support_is_read_from_the_cpu_flags():
    pytest.importorskip("torch")
    import train_torch

    assert train_torch.cpu_multiplies_bf16("processor : 0\nflags : fpu sse avx2 fma amx_bf16 amx_tile\n")
    assert train_torch.cpu_multiplies_bf16("flags : fpu avx512f avx512_bf16\n")
    assert not train_torch.cpu_multiplies_bf16("processor : 0\nflags : fpu sse avx2 fma\n")
    assert train_torch.cpu_multiplies_bf16("processor : 0\n")  # no flags line (not x86): cannot tell


def test_noise_mixing_adds_power_at_the_asked_snr_range():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(noise_share=1.0, snr=(10.0, 10.0))
    bank = [torch.full((7, 80), -2.0)]
    aug = feature_augment.Augmenter(bank, torch.device("cpu"), 80, args)
    x = torch.randn(4, 30, 80) - 4
    lengths = torch.tensor([30, 25, 20, 12])
    mixed = aug.noise_mix(x, lengths, torch.Generator().manual_seed(0))
    assert mixed.shape == x.shape and bool((mixed >= x - 1e-5).all())  # power only adds
    added = (mixed.exp() - x.exp()).mean((1, 2)) / x.exp().mean((1, 2))
    assert bool((added > 0.01).all()) and bool((added < 0.5).all())  # about -10 dB of added power
    args.noise_share = 0.0
    torch.testing.assert_close(aug.noise_mix(x, lengths, torch.Generator().manual_seed(0)), x)


def test_learning_rate_warms_up_again_from_the_step_a_fine_tune_starts_at():
    pytest.importorskip("torch")
    import types

    import train_torch

    args = types.SimpleNamespace(lr=1e-3, min_lr=1e-5, warmup=300, warmup_from=0, total_steps=1000)
    assert train_torch.lr_at(0, args) == pytest.approx(1e-3 / 300)
    assert train_torch.lr_at(299, args) == pytest.approx(1e-3)
    assert train_torch.lr_at(1000, args) == pytest.approx(1e-5)
    args.warmup_from, args.warmup = 600, 100  # weights of step 600, a fresh optimizer
    assert train_torch.lr_at(600, args) == pytest.approx(1e-5)
    assert train_torch.lr_at(699, args) == pytest.approx(1e-3)
    later = [train_torch.lr_at(s, args) for s in range(700, 1001, 50)]
    assert later == sorted(later, reverse=True) and later[-1] == pytest.approx(1e-5)
    # --cosine-by-time: the share of the call's minutes spent sets the cosine, whatever the step
    assert train_torch.lr_at(5000, args, time_share=0.0) == pytest.approx(1e-3)
    assert train_torch.lr_at(701, args, time_share=0.5) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert train_torch.lr_at(701, args, time_share=1.7) == pytest.approx(1e-5)
    assert train_torch.lr_at(650, args, time_share=0.9) < 1e-3  # still warming up


def test_training_resumes_its_full_state_where_the_last_call_stopped(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    import train_torch

    work, _ = _tiny_work(tmp_path, ["one two", "three", "four five", "six"])
    data = tmp_path / "data"
    assert pack_features.main([str(work), str(data)]) == 0
    model_json = tmp_path / "model.json"
    model_json.write_text(json.dumps({k: getattr(TINY, k) for k in json.loads((data / "model.json").read_text())}))
    common = ["--data", str(data), "--model-json", str(model_json), "--state", str(tmp_path / "state"),
              "--out", str(tmp_path / "out"), "--device", "cpu", "--batch-seconds", "1.2", "--max-batch", "2",
              "--warmup", "2", "--eval-every", "1000", "--noise-share", "0", "--reverb-share", "0",
              "--snapshot-every", "2"]
    assert train_torch.main(common + ["--total-steps", "3"]) == 0
    first = torch.load(tmp_path / "state" / "state.pt")
    assert first["step"] == 3 and first["warmup"] == [0, 2]
    capsys.readouterr()
    # the level rule and the two-view consistency loss too
    # and a speaker adversary, its head kept in the full state, every batch's clips joined in pairs
    assert train_torch.main(common + ["--total-steps", "5", "--joint-bf16", "--level", "--consistency", "0.2",
                                      "--join-share", "1",
                                      "--speaker-adversary", "0.1", "--speaker-corpus", str(work / "corpus")]) == 0
    err = capsys.readouterr().err
    assert "resumed full state at step 3" in err and "speakers: 2, 100.0% of the training clips named" in err
    second = torch.load(tmp_path / "state" / "state.pt")
    assert second["step"] == 5 and second["adversary"]["head"]["out.weight"].shape[0] == 2
    assert (second["epoch"], second["position"]) != (first["epoch"], first["position"])
    assert json.loads((tmp_path / "out" / "train.json").read_text())["step"] == 5
    # --snapshot-every 2: the weights of steps 2 and 4 beside the final ones, each a run average_weights.py takes
    snapshots = sorted(p.name for p in (tmp_path / "out" / "snapshots").iterdir())
    assert snapshots == ["step-2", "step-4"]
    final, _ = import_weights.read_weights(str(tmp_path / "out"))
    step4, n = import_weights.read_weights(str(tmp_path / "out" / "snapshots" / "step-4"))
    assert n == 4 and final.keys() == step4.keys() and any(not np.array_equal(final[k], step4[k]) for k in final)
    assert (tmp_path / "out" / "snapshots" / "step-2" / "model.json").read_text() == (
        tmp_path / "out" / "model.json").read_text()
    # --init with a zero CTC head (a bundle's weights): --ctc-head-fit fits it first; a trained head is kept
    zero_head = dict(final, **{k: np.zeros_like(v) for k, v in final.items() if k.startswith("ctc_head/")})
    train_torch.write_weights(str(tmp_path / "init"), zero_head, 5, json.loads(model_json.read_text()))
    fresh = ["--data", str(data), "--model-json", str(model_json), "--device", "cpu", "--batch-seconds", "1.2",
             "--max-batch", "2", "--eval-every", "1000", "--noise-share", "0", "--reverb-share", "0",
             "--total-steps", "6", "--ctc-head-fit", "2"]
    capsys.readouterr()
    assert train_torch.main(fresh + ["--init", str(tmp_path / "init"), "--state", str(tmp_path / "s2"),
                                     "--out", str(tmp_path / "o2")]) == 0
    assert '{"ctc_head_fit": 2' in capsys.readouterr().err
    assert train_torch.main(fresh + ["--init", str(tmp_path / "out"), "--state", str(tmp_path / "s3"),
                                     "--out", str(tmp_path / "o3")]) == 0
    err = capsys.readouterr().err
    assert "ctc_head_fit" not in err and "the CTC head is trained already" in err


def test_ctc_head_fit_trains_only_a_zero_head_and_lowers_its_loss(tmp_path):
    torch = pytest.importorskip("torch")
    import types

    import train_torch
    from torch_model import Transducer

    model = Transducer(dataclasses.asdict(TINY), 0.0)
    torch.nn.init.zeros_(model.ctc_head.weight)
    torch.nn.init.zeros_(model.ctc_head.bias)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 48, TINY.num_mels, generator=g)
    labels = torch.randint(1, TINY.vocab_size, (3, 4), generator=g)

    def prepare(idx, step, paired):  # one fixed batch: the head can learn it
        return idx, x, torch.full((3,), 48), labels, torch.full((3,), 4), torch.full((3,), 12), 1.44

    log = io.StringIO()
    args = types.SimpleNamespace(ctc_head_fit=100, ctc_head_lr=0.03)
    train_torch.fit_ctc_head(model, prepare, [np.arange(3)] * 150, np.arange(3), args, 0, log)
    records = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [r["ctc_head_fit"] for r in records] == [50, 100]  # stops at --ctc-head-fit batches
    assert records[1]["ctc_per_token"] < 0.7 * records[0]["ctc_per_token"]
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"ctc_head.weight", "ctc_head.bias"}
    assert all(p.grad is None for p in model.parameters())


def test_join_pairs_puts_each_pairs_features_and_tokens_end_to_end_and_counts_the_second_clip():
    pytest.importorskip("torch")
    import train_torch

    rng = np.random.default_rng(0)
    feats = [rng.integers(0, 255, (n, 3), dtype=np.uint8) for n in (5, 7, 4, 6, 9)]
    tokens = [np.asarray([2] + [4 + k] * (k + 1)) for k in range(5)]
    idx = np.asarray([3, 0, 4, 1, 2])
    joined_feats, joined_tokens, rows = train_torch.join_pairs(idx, feats, tokens)
    assert rows.tolist() == [0, 1, 2]  # the second clip of each pair; the odd last clip alone
    assert [len(f) for f in joined_feats] == [6 + 5, 9 + 7, 4]
    np.testing.assert_array_equal(joined_feats[1], np.concatenate([feats[4], feats[1]]))
    np.testing.assert_array_equal(joined_feats[2], feats[2])
    assert joined_tokens[0].tolist() == tokens[3].tolist() + tokens[0].tolist()
    assert sum(len(t) for t in joined_tokens) == sum(len(t) for t in tokens)


def test_gradient_reversal_passes_values_and_hands_back_the_scaled_opposite_gradient():
    torch = pytest.importorskip("torch")
    from speaker_adversary import reverse_gradient

    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, -0.25 * torch.arange(4.0).expand(3, 4))


def test_speaker_adversary_counts_valid_frames_of_named_speakers_and_reverses_the_encoders_gradient():
    torch = pytest.importorskip("torch")
    from speaker_adversary import SpeakerAdversary

    torch.manual_seed(0)
    head = SpeakerAdversary(8, 3, hidden=16)
    enc = torch.randn(3, 5, 8, requires_grad=True)
    lengths, speaker = torch.tensor([5, 2, 4]), torch.tensor([2, 0, -1])  # the third clip's speaker unknown
    ce, acc = head(enc, lengths, speaker, 0.5)
    logits = head.out(torch.relu(head.hidden(enc)))
    expected = torch.cat([torch.nn.functional.cross_entropy(logits[0], torch.full((5,), 2), reduction="none"),
                          torch.nn.functional.cross_entropy(logits[1, :2], torch.zeros(2, dtype=torch.long),
                                                            reduction="none")]).mean()
    assert ce.item() == pytest.approx(expected.item(), rel=1e-5)
    assert 0.0 <= acc.item() <= 1.0 and (acc * 7).item() == pytest.approx(round((acc * 7).item()))
    reversed_grad = torch.autograd.grad(ce, enc, retain_graph=True)[0]
    plain_grad = torch.autograd.grad(expected, enc)[0]
    assert torch.allclose(reversed_grad, -0.5 * plain_grad, atol=1e-6)
    assert reversed_grad[1, 2:].abs().sum() == 0 and reversed_grad[2].abs().sum() == 0  # padding, unknown speaker
    # the head itself learns to tell the speakers apart: its own gradient is not reversed
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        head(enc.detach(), lengths, speaker, 1.0)[0].backward()
        opt.step()
    assert head(enc.detach(), lengths, speaker, 1.0)[1].item() == 1.0


def test_pack_ids_follow_the_order_the_shards_were_read_and_speakers_come_from_the_manifests(tmp_path):
    from speaker_adversary import clip_speakers, pack_ids

    (tmp_path / "packed-ids.txt").write_text("a b c d e f g\n")  # shards 0 (2 clips), 1 (1), 2 (3), 10 (1)
    counts = {0: 2, 1: 1, 2: 3, 10: 1}
    assert pack_ids(str(tmp_path), counts, [0, 1, 10, 2]) == ["a", "b", "c", "g", "d", "e", "f"]
    assert pack_ids(str(tmp_path), {0: 2}, [0]) is None  # the file names other clips
    assert pack_ids(str(tmp_path / "none"), counts, [0]) is None
    _write_manifest(tmp_path / "train.jsonl", [{"id": "a", "speaker": "flite:rms"}, {"id": "b", "speaker": "theo"},
                                               {"id": "c", "speaker": "flite:rms"}])
    index, names = clip_speakers(["c", "x", "b", "a"], str(tmp_path))
    assert names == ["flite:rms", "theo"] and index.tolist() == [0, -1, 1, 0]


def test_dev_loss_per_utterance_is_the_token_loss_times_the_tokens_of_an_utterance(tmp_path):
    pytest.importorskip("torch")
    import types

    import train_torch
    from torch_model import Transducer

    work, _ = _tiny_work(tmp_path, ["one two", "three", "four five", "six"])
    assert pack_features.main([str(work), str(tmp_path / "data")]) == 0
    data = train_torch.load_shards(str(tmp_path / "data"))
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    dev = [i for i, s in enumerate(data["split"]) if s == meta["splits"]["dev"]]
    args = types.SimpleNamespace(floor=meta["floor"], step=meta["step"])
    model = Transducer(dataclasses.asdict(TINY), 0.0)
    (src, stats), = train_torch.evaluate(model, data, dev, args, "cpu").items()
    tokens = sum(len(data["tokens"][i]) for i in dev)
    assert stats["loss_per_utt"] > 0
    assert stats["loss_per_utt"] == pytest.approx(stats["loss_per_token"] * tokens / len(dev), rel=2e-3, abs=0.01)


def _random_lattice(torch, seed: int, b: int = 3, t: int = 12, u: int = 7, v: int = 6, peak: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    enc_j = torch.randn(b, t, 8, generator=g)
    pred_j = torch.randn(b, u + 1, 8, generator=g)
    w = torch.randn(8, v, generator=g) * (1.0 + peak)
    labels = torch.randint(1, v, (b, u), generator=g)
    t_len, u_len = torch.tensor([t, t - 3, 4][:b]), torch.tensor([u, u - 2, 1][:b])
    return enc_j, pred_j, (lambda e, p: torch.tanh(e + p) @ w), labels, t_len, u_len


def _band_of_lattice(torch, torch_model, blank, lab, start, width, t_len, u_len):
    """band_nll of the nodes start[b, t] + k, k < width, gathered from the whole lattice's moves (blank [B, T, U+1])."""
    u1 = blank.shape[-1]
    node = start[..., None] + torch.arange(width)
    band_blank, band_lab = blank.gather(2, node.clamp(max=u1 - 1)), lab.gather(2, node[..., :-1].clamp(max=u1 - 2))
    return torch_model.band_nll(band_blank, band_lab, start, t_len, u_len)


def test_pruned_loss_is_the_full_loss_when_the_band_covers_the_lattice():
    torch, torch_model, _ = _torch_model()
    enc_j, pred_j, joint, labels, t_len, u_len = _random_lattice(torch, 0)
    enc_j.requires_grad_(True)
    full = torch_model.rnnt_nll(joint(enc_j[:, :, None], pred_j[:, None]), labels, t_len, u_len)
    (g_full,) = torch.autograd.grad(full.sum(), enc_j)
    # a band as wide as the lattice, started at 0 on every row: the same nodes, walked through band_nll's shifts
    b, t_max, u1 = enc_j.shape[0], enc_j.shape[1], pred_j.shape[1]
    blank, lab = torch_model.lattice_edges(joint(enc_j[:, :, None], pred_j[:, None]), labels)
    banded = torch_model.band_nll(blank, lab, torch.zeros(b, t_max, dtype=torch.long), t_len, u_len)
    np.testing.assert_allclose(banded.detach().numpy(), full.detach().numpy(), rtol=1e-6)
    wide, held = torch_model.pruned_rnnt_nll(joint, enc_j, pred_j, labels, t_len, u_len, width=u1)
    assert held.all()
    (g_wide,) = torch.autograd.grad(wide.sum(), enc_j)
    np.testing.assert_allclose(wide.detach().numpy(), full.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(g_wide.numpy(), g_full.numpy(), atol=1e-6)


def test_pruned_loss_bounds_the_full_loss_and_its_band_is_valid():
    torch, torch_model, _ = _torch_model()
    checked = 0
    for seed in range(4):
        enc_j, pred_j, joint, labels, t_len, u_len = _random_lattice(torch, seed, peak=3.0)
        logits = joint(enc_j[:, :, None], pred_j[:, None])
        full = torch_model.rnnt_nll(logits, labels, t_len, u_len)
        blank, lab = torch_model.lattice_edges(logits, labels)
        b = enc_j.shape[0]
        for width in (2, 3, 5):
            start = torch_model.prune_starts(blank, lab, t_len, u_len, width)
            rise = start[:, 1:] - start[:, :-1]
            assert (start[:, 0] == 0).all() and (rise >= 0).all()
            last = start[torch.arange(b), t_len - 1]
            assert ((u_len - last >= 0) & (u_len - last < width)).all()  # the end node is in the last row's band
            pruned, held = torch_model.pruned_rnnt_nll(joint, enc_j, pred_j, labels, t_len, u_len, width)
            assert torch.equal(held, (rise <= width - 1).all(1))  # a band that rises too fast is not a band
            checked += int(held.sum())
            # fewer paths: never more likely than the whole lattice
            assert (pruned[held] >= full[held] - 1e-4).all(), (seed, width)
            assert (pruned[~held] == 0).all()
            # the same band read off the whole lattice's moves: pruned_rnnt_nll's joint saw the right nodes
            band = _band_of_lattice(torch, torch_model, blank, lab, start, width, t_len, u_len)
            np.testing.assert_allclose(pruned[held].detach().numpy(), band[held].detach().numpy(), rtol=1e-5)
    assert checked >= 24  # most bands held


def test_band_around_a_dominant_path_keeps_nearly_all_of_its_mass():
    torch, torch_model, _ = _torch_model()
    rng = np.random.default_rng(3)
    t_max, u_max = 30, 16
    emit = np.sort(rng.integers(0, t_max, size=u_max))  # frame of each label: bursts of up to a few labels
    burst = np.bincount(emit, minlength=t_max).max()
    done = np.searchsorted(emit, np.arange(t_max), side="right")  # labels emitted by the end of frame t
    u = np.arange(u_max + 1)[None]
    want_label = u < done[:, None]  # [T, U+1]: on the path, node (t, u) moves up, else it waits for the next frame
    blank = np.where(want_label, np.log(0.01), np.log(0.95))
    lab = np.where(want_label[:, :-1], np.log(0.95), np.log(0.01))
    blank_t = torch.tensor(blank, dtype=torch.float32)[None]
    lab_t = torch.tensor(lab, dtype=torch.float32)[None]
    t_len, u_len = torch.tensor([t_max]), torch.tensor([u_max])
    full = torch_model.band_nll(blank_t, lab_t, torch.zeros(1, t_max, dtype=torch.long), t_len, u_len)
    width = int(burst) + 2
    start = torch_model.prune_starts(blank_t, lab_t, t_len, u_len, width)
    band = _band_of_lattice(torch, torch_model, blank_t, lab_t, start, width, t_len, u_len)
    assert 0 <= float(band - full) < 0.05, (float(band), float(full), width)


@pytest.mark.parametrize("quantization, atol", [("float32", 1e-4), ("dynamic", 0.15), ("int8", 0.15)])
def test_weights_recovered_from_a_bundle_compute_what_the_model_computed(tmp_path, quantization, atol):
    pytest.importorskip("ai_edge_litert")
    import weights_from_bundle
    from export.tflite import export_bundle
    from rnnt.features import FeatureConfig
    from rnnt.model import TFStepModel

    # big enough for dynamic-range int8 weights (tensors over 1024 values), norms away from 1 and 0
    cfg = ModelConfig(vocab_size=30, frame_stack=4, encoder_layers=3, encoder_units=64, encoder_proj=32,
                      time_reduction_after=-1, embed_dim=40, predictor_units=48, predictor_proj=24, joint_dim=36,
                      chunk_frames=12)
    source = RNNT(cfg, seed=5)
    rng = np.random.default_rng(5)
    for name, var in import_weights.named_variables(source).items():
        if name.endswith(("gamma", "beta", "feature_mean")):
            var.assign(var.numpy() + rng.uniform(-0.5, 0.5, var.shape).astype(np.float32))
    path = str(tmp_path / f"{quantization}.tflite")
    # full int8 also stores the biases as int32 codes, which must come back scaled
    calibration = ([(2 * rng.standard_normal((48, 80)) - 6).astype(np.float32) for _ in range(4)]
                   if quantization == "int8" else None)
    export_bundle(source, CharTokenizer().tokens, FeatureConfig(), path, quantization=quantization,
                  training_info={"step": 123}, max_calibration_chunks=16, calibration_features=calibration)
    weights, model_cfg, step = weights_from_bundle.recover(path)
    assert step == 123 and model_cfg["encoder_layers"] == 3
    assert not weights["ctc_head/w"].any()  # not in a bundle: zeros
    target = RNNT(cfg, seed=9)
    import_weights.assign(import_weights.named_variables(target), {k: v for k, v in weights.items()
                                                                    if not k.startswith("ctc_head")})
    a, b = TFStepModel(source), TFStepModel(target)
    feats = (2 * rng.standard_normal((1, 12, 80)) - 6).astype(np.float32)
    state = a.initial_encoder_state() + 0.1
    enc_a, state_a = a.encode(feats, state)
    enc_b, state_b = b.encode(feats, state)
    assert np.abs(enc_a).max() > 0.5
    np.testing.assert_allclose(enc_b, enc_a, atol=atol)
    np.testing.assert_allclose(state_b, state_a, atol=atol)
    tokens, pstate = np.array([0, 7], np.int32), a.initial_predictor_state(2) + 0.1
    pred_a, _ = a.predict(tokens, pstate)
    pred_b, _ = b.predict(tokens, pstate)
    np.testing.assert_allclose(pred_b, pred_a, atol=atol)
    np.testing.assert_allclose(b.joint(enc_b[0], pred_b[:1].repeat(3, 0)), a.joint(enc_a[0], pred_a[:1].repeat(3, 0)),
                               atol=atol)


def test_bfloat16_joint_keeps_the_pruned_loss_and_its_gradient_close_to_float32():
    torch, torch_model, model = _torch_model()
    rng = np.random.default_rng(1)
    feats = torch.tensor((3 * rng.standard_normal((3, 48, 80)) - 5).astype(np.float32))
    labels = torch.tensor(rng.integers(1, 30, size=(3, 6)))
    t_len, u_len = torch.tensor([12, 10, 7]), torch.tensor([6, 4, 2])

    def loss_and_grad(bf16: bool):
        model.zero_grad()
        enc = model.encode(feats)
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            enc_j, pred_j = model.joint_inputs(enc, model.predict(labels))
            nll, _ = torch_model.pruned_rnnt_nll(model.joint, enc_j, pred_j, labels, t_len, u_len, 3)
        nll.sum().backward()
        return nll.detach(), model.out.weight.grad.clone()

    nll32, grad32 = loss_and_grad(False)
    nll16, grad16 = loss_and_grad(True)
    assert nll16.dtype == torch.float32
    np.testing.assert_allclose(nll16.numpy(), nll32.numpy(), rtol=0.02)
    cosine = float((grad16 * grad32).sum() / (grad16.norm() * grad32.norm()))
    assert cosine > 0.99


def test_average_weights_writes_the_elementwise_mean_and_rejects_other_networks(tmp_path):
    import average_weights

    rng = np.random.default_rng(0)
    runs = [{"enc/kernel": rng.normal(size=(3, 4)).astype(np.float32),
             "joint/bias": rng.normal(size=5).astype(np.float32)} for _ in range(3)]
    for n, (weights, step) in enumerate(zip(runs, (120, 300, 200))):
        import_weights.write_weights(str(tmp_path / f"run{n}"), weights, step)
    (tmp_path / "run0" / "model.json").write_text('{"vocab_size": 30}')
    assert average_weights.main([str(tmp_path / f"run{n}") for n in range(3)] + ["-o", str(tmp_path / "mean")]) == 0
    mean, step = import_weights.read_weights(str(tmp_path / "mean"))
    assert step == 300
    assert (tmp_path / "mean" / "model.json").read_text() == '{"vocab_size": 30}'
    for name in runs[0]:
        assert mean[name].dtype == np.float32
        np.testing.assert_allclose(mean[name], (runs[0][name] + runs[1][name] + runs[2][name]) / 3, rtol=1e-6)
    with pytest.raises(ValueError, match="different weights"):
        average_weights.average([runs[0], {"enc/kernel": runs[1]["enc/kernel"]}])
    with pytest.raises(ValueError, match="shapes"):
        average_weights.average([runs[0], {**runs[1], "joint/bias": np.zeros(6, np.float32)}])


def _assert_computes_the_same(narrow: tuple, wide: tuple, seed: int) -> None:
    """Two (RNNT, CTC head) pairs give the same encoder output, lattice and CTC logits on random features."""
    rng = np.random.default_rng(seed)
    feats = tf.constant((3 * rng.standard_normal((2, 24, 80)) - 5).astype(np.float32))
    labels = tf.constant(rng.integers(1, 30, size=(2, 5)), tf.int32)
    outputs = []
    for m, h in (narrow, wide):
        enc, _ = m.encode(feats, tf.constant([24, 24]))
        outputs.append((enc.numpy(), m.lattice(enc, labels).numpy(), h(enc).numpy()))
    for narrow_out, wide_out in zip(*outputs):
        np.testing.assert_allclose(wide_out, narrow_out, atol=1e-5)


def test_widened_cells_compute_what_the_narrow_network_computed(tmp_path):
    import widen_weights

    model, head = RNNT(TINY, seed=3), ctc_head(TINY, seed=4)
    weights = {k: v.numpy() for k, v in import_weights.named_variables(model, head).items()}
    config = dataclasses.asdict(TINY)
    import_weights.write_weights(str(tmp_path / "narrow"), weights, 700, config)
    assert widen_weights.main([str(tmp_path / "narrow"), "-o", str(tmp_path / "wide"), "--encoder-units", "40",
                               "--predictor-units", "28"]) == 0
    wide, step = import_weights.read_weights(str(tmp_path / "wide"))
    wide_cfg = ModelConfig(**json.loads((tmp_path / "wide" / "model.json").read_text()))
    assert (step, wide_cfg.encoder_units, wide_cfg.predictor_units) == (700, 40, 28)
    assert wide["encoder/lstm1/input_kernel/w"].shape == (TINY.encoder_proj, 4 * 40)
    wide_model, wide_head = RNNT(wide_cfg), ctc_head(wide_cfg)
    import_weights.assign(import_weights.named_variables(wide_model, wide_head), wide)

    _assert_computes_the_same((model, head), (wide_model, wide_head), seed=0)
    # The new cells are live (their gate weights are not zero) but reach nothing through the zero projection rows.
    new_gates = wide["encoder/lstm0/input_kernel/w"][:, TINY.encoder_units:40]
    assert np.abs(new_gates).min() > 0
    assert not wide["encoder/lstm0/projection/w"][TINY.encoder_units:].any()
    with pytest.raises(SystemExit):
        widen_weights.main([str(tmp_path / "wide"), "-o", str(tmp_path / "narrower"), "--encoder-units", "24"])
    assert not (tmp_path / "narrower").exists()


def test_split_cells_compute_what_the_narrow_network_computed_and_share_its_rows(tmp_path):
    import widen_weights

    model, head = RNNT(TINY, seed=5), ctc_head(TINY, seed=6)
    weights = {k: v.numpy() for k, v in import_weights.named_variables(model, head).items()}
    config = dataclasses.asdict(TINY)
    units = TINY.encoder_units
    exact, exact_cfg = widen_weights.widen(weights, config, encoder_units=units + 8, split=True, split_noise=0.0)
    noisy, _ = widen_weights.widen(weights, config, encoder_units=units + 8, split=True, split_noise=0.05)
    wide_model, wide_head = RNNT(ModelConfig(**exact_cfg)), ctc_head(ModelConfig(**exact_cfg))
    import_weights.assign(import_weights.named_variables(wide_model, wide_head), exact)

    _assert_computes_the_same((model, head), (wide_model, wide_head), seed=1)
    # Every new unit carries a copy of an old unit's projection row, halved between the two: none is zero.
    proj = exact["encoder/lstm0/projection/w"]
    assert np.abs(proj[units:]).sum(axis=1).min() > 0
    old = weights["encoder/lstm0/projection/w"]
    np.testing.assert_allclose(proj[:units].sum(axis=0) + proj[units:].sum(axis=0), old.sum(axis=0), atol=1e-5)
    # The noise parts the copies from their sources (and only the gate weights, not the rows they share).
    gates, noisy_gates = exact["encoder/lstm0/input_kernel/w"], noisy["encoder/lstm0/input_kernel/w"]
    assert not np.array_equal(gates, noisy_gates)
    np.testing.assert_array_equal(noisy["encoder/lstm0/projection/w"], proj)


def test_retargeted_vocabulary_keeps_the_encoder_and_gives_each_first_character_its_probability(tmp_path):
    import retarget_vocab
    from rnnt.tokens import CHAR_BASE

    model, head = RNNT(TINY, seed=7), ctc_head(TINY, seed=8)
    weights = {k: v.numpy() for k, v in import_weights.named_variables(model, head).items()}
    weights["joint/out/b"] = np.random.default_rng(0).standard_normal(TINY.vocab_size).astype(np.float32)
    old = list(CHAR_BASE)
    new = ["<blk>", "<unk>", "\u2581the", "\u2581t", "\u2581", "s", "ab", "\u00e9t", "a"]
    moved, cfg = retarget_vocab.retarget(weights, dataclasses.asdict(TINY), old, new)
    assert cfg["vocab_size"] == len(new) and moved["predictor/embedding"].shape == (len(new), TINY.embed_dim)
    new_model, new_head = RNNT(ModelConfig(**cfg)), ctc_head(ModelConfig(**cfg))
    import_weights.assign(import_weights.named_variables(new_model, new_head), moved)
    feats = tf.constant(np.random.default_rng(1).standard_normal((1, 24, 80)).astype(np.float32) - 5)
    enc_old, _ = model.encode(feats, tf.constant([24]))
    enc_new, _ = new_model.encode(feats, tf.constant([24]))
    np.testing.assert_allclose(enc_new.numpy(), enc_old.numpy(), atol=1e-6)
    # The joint's output at any hidden state: the pieces of one first character share that character's probability.
    hidden = np.random.default_rng(2).standard_normal((5, TINY.joint_dim)).astype(np.float32)
    old_logits = hidden @ weights["joint/out/w"] + weights["joint/out/b"]
    new_logits = hidden @ moved["joint/out/w"] + moved["joint/out/b"]
    ids = {t: i for i, t in enumerate(old)}
    np.testing.assert_allclose(new_logits[:, 0], old_logits[:, 0], atol=1e-5)  # blank
    word_start = np.logaddexp.reduce(new_logits[:, [2, 3, 4]], axis=1)  # the three pieces that start a word
    np.testing.assert_allclose(word_start, old_logits[:, ids["\u2581"]], atol=1e-5)
    np.testing.assert_allclose(np.logaddexp(new_logits[:, 6], new_logits[:, 8]), old_logits[:, ids["a"]], atol=1e-5)
    np.testing.assert_allclose(new_logits[:, 5], old_logits[:, ids["s"]], atol=1e-5)
    np.testing.assert_allclose(new_logits[:, 7], old_logits[:, 1], atol=1e-5)  # unknown first character: <unk>'s
    # The predictor goes on from a piece's last character.
    emb = weights["predictor/embedding"]
    np.testing.assert_array_equal(moved["predictor/embedding"][6], emb[ids["b"]])
    np.testing.assert_array_equal(moved["predictor/embedding"][2], emb[ids["e"]])
    np.testing.assert_array_equal(moved["ctc_head/w"][:, 5], weights["ctc_head/w"][:, ids["s"]])
    with pytest.raises(ValueError, match="start with"):
        retarget_vocab.retarget(weights, dataclasses.asdict(TINY), old, ["<unk>", "<blk>", "a"])


def test_retarget_vocab_command_writes_weights_for_a_sentencepiece_tokenizer(tmp_path):
    pytest.importorskip("sentencepiece")
    import retarget_vocab
    from rnnt.tokens import train_sentencepiece

    train_sentencepiece(["the cat sat on the mat", "a dog ran far away", "then the cat ran too"] * 20, 20,
                             str(tmp_path / "sp"))
    model, head = RNNT(TINY, seed=9), ctc_head(TINY, seed=10)
    weights = {k: v.numpy() for k, v in import_weights.named_variables(model, head).items()}
    import_weights.write_weights(str(tmp_path / "chars"), weights, 321, dataclasses.asdict(TINY))
    assert retarget_vocab.main([str(tmp_path / "chars"), str(tmp_path / "sp.model"), "-o", str(tmp_path / "wp")]) == 0
    moved, step = import_weights.read_weights(str(tmp_path / "wp"))
    cfg = json.loads((tmp_path / "wp" / "model.json").read_text())
    assert (step, cfg["vocab_size"]) == (321, 20) and moved["joint/out/w"].shape == (TINY.joint_dim, 20)


def test_screen_weights_decodes_the_means_of_snapshots_in_a_row_once_each(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    import screen_weights
    import weights_from_bundle
    from rnnt.config import config_to_dict

    work, _ = _tiny_work(tmp_path, ["one two"])
    snapshots = []
    for n, step in enumerate((300, 100, 200)):  # listed out of order: candidates follow the step
        model = RNNT(TINY, seed=n)
        weights = {k: v.numpy() for k, v in import_weights.named_variables(model).items()}
        snapshots.append((weights, step))
        import_weights.write_weights(str(tmp_path / f"snap{n}"), weights, step, config_to_dict(TINY))
    folders = [str(tmp_path / f"snap{n}") for n in range(3)]
    argv = folders + ["--mean", "2", "--recipe", "tiny", "--work-dir", str(work), "--sets",
                      f"dev={work / 'corpus' / 'dev.jsonl'}", "--mode", "float32", "--out", str(tmp_path / "screen")]
    assert screen_weights.main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "screen" / "screen.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == ["steps-100-200-2", "steps-200-300-2"]
    assert all(set(r["wer"]) == {"dev"} and r["wer"]["dev"] >= 0 and r["cer"]["dev"] >= 0 for r in rows)
    recovered, _, step = weights_from_bundle.recover(str(tmp_path / "screen" / "steps-100-200-2-float32.tflite"))
    assert step == 200
    (w100, _), (w200, _) = snapshots[1], snapshots[2]
    for name in w100:
        np.testing.assert_allclose(recovered[name], (w100[name] + w200[name]) / 2, atol=1e-6)
    assert "best on dev (mean WER)" in capsys.readouterr().out
    bundle = tmp_path / "screen" / "steps-200-300-2-float32.tflite"
    before = bundle.stat().st_mtime_ns
    assert screen_weights.main(argv) == 0  # screened already: nothing exported or decoded again
    assert bundle.stat().st_mtime_ns == before
    assert len((tmp_path / "screen" / "screen.jsonl").read_text().splitlines()) == 2
    # two single folders of the same step (a snapshot and a mean written at its step) are two candidates
    import_weights.write_weights(str(tmp_path / "soup"), snapshots[0][0], 200, config_to_dict(TINY))
    assert screen_weights.main([folders[2], str(tmp_path / "soup")] + argv[len(folders) + 2:]) == 0
    rows = [json.loads(line) for line in (tmp_path / "screen" / "screen.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows[2:]] == ["snap2-step-200", "soup-step-200"]
    assert (tmp_path / "screen" / "soup-step-200-float32.tflite").exists()
    capsys.readouterr()
    assert screen_weights.main(argv + ["--baseline", "steps-100-200-2"]) == 0  # compared, nothing decoded again
    compared = capsys.readouterr().out.split("against steps-100-200-2")[1].splitlines()[1:]
    assert [line.split()[0] for line in compared] == ["steps-200-300-2", "snap2-step-200", "soup-step-200"]
    assert all("dev " in line and "worse in" in line for line in compared)
    asked = []
    real_mean_bootstrap = screen_weights.mean_bootstrap

    def counted(pairs, draws=screen_weights.DRAWS, seed=0):
        asked.append(draws)
        return real_mean_bootstrap(pairs, draws, seed)
    monkeypatch.setattr(screen_weights, "mean_bootstrap", counted)
    assert screen_weights.main(argv + ["--baseline", "steps-100-200-2", "--draws", "300"]) == 0
    assert asked and set(asked) == {300}  # every set's bootstrap, and the mean's, over the draws asked for
    assert "300 resamples" in capsys.readouterr().out
    for bad in (folders + ["--mean", "4"], [str(tmp_path / "no-such-run")]):  # usage errors, no traceback
        with pytest.raises(SystemExit):
            screen_weights.main(bad + ["--work-dir", str(work), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit):
        screen_weights.main(argv + ["--baseline", "not-screened"])
    with pytest.raises(SystemExit):
        screen_weights.main(argv + ["--baseline", "steps-100-200-2", "--draws", "0"])
    # the same weights screened as another bundle mode keep the first mode's results files
    float_results = tmp_path / "screen" / "soup-step-200-float32-beam2-dev.jsonl"
    kept = float_results.read_text()
    dynamic = [str(tmp_path / "soup")] + argv[len(folders) + 2:]
    dynamic[dynamic.index("float32")] = "dynamic"
    assert screen_weights.main(dynamic) == 0
    assert float_results.read_text() == kept
    assert (tmp_path / "screen" / "soup-step-200-dynamic-beam2-dev.jsonl").exists()
    # a folder trained further (a run's --out at a later step) is screened again, not taken from the log
    import_weights.write_weights(str(tmp_path / "soup"), snapshots[1][0], 400, config_to_dict(TINY))
    assert screen_weights.main(dynamic) == 0
    rows = [json.loads(line) for line in (tmp_path / "screen" / "screen.jsonl").read_text().splitlines()]
    assert [(r["name"], r["step"]) for r in rows[-2:]] == [("soup-step-200", 200), ("soup-step-400", 400)]


def test_paired_bootstrap_tells_a_consistent_difference_from_none():
    import screen_weights

    base = [(2, 10), (5, 10), (1, 8), (3, 12)]
    assert screen_weights.paired_bootstrap(base, base) == (0.0, 0.0, 0.0)
    worse = [(e + 1, n) for e, n in base]  # one more error in every utterance
    diff, sd, share = screen_weights.paired_bootstrap(base, worse)
    assert diff == pytest.approx(4 / 40) and sd > 0 and share == 1.0
    mixed = [(e + (1 if i % 2 else -1), n) for i, (e, n) in enumerate(base)]  # as many errors gained as lost
    diff, sd, share = screen_weights.paired_bootstrap(base, mixed)
    assert diff == 0 and sd > 0 and 0.2 < share < 0.8
    with pytest.raises(ValueError):
        screen_weights.paired_bootstrap(base, base[:2])


def test_mean_bootstrap_weighs_each_dev_set_alike():
    import screen_weights

    small = [(2, 10), (5, 10), (1, 8), (3, 12)]
    large = [(e, 10 * n) for e, n in small]
    better_small = [(e - 1, n) for e, n in small]  # 4 errors fewer in 40 words: -10 points
    better_large = [(e - 1, n) for e, n in large]  # the same 4 errors in 400 words: -1 point
    diff, sd, share = screen_weights.mean_bootstrap([(small, better_small), (large, better_large)])
    assert diff == pytest.approx((-0.1 - 0.01) / 2) and share == 0.0 and sd > 0
    assert screen_weights.mean_bootstrap([(small, better_small)]) == screen_weights.paired_bootstrap(small,
                                                                                                     better_small)
    worse_large = [(e + 1, n) for e, n in large]
    assert screen_weights.mean_bootstrap([(small, better_small), (large, worse_large)])[0] == pytest.approx(-0.045)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_large_tensors_are_reused_without_new_page_faults():
    pytest.importorskip("torch")
    import subprocess

    probe = """
import resource, sys
sys.path.insert(0, {here!r})
import torch
if sys.argv[1] == "keep":
    import train_torch
    assert train_torch.keep_freed_memory()
for _ in range(10):  # 128 MB, allocated, touched and freed, until the heap has settled
    torch.ones(2**25)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.ones(2**25)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""".format(here=os.path.dirname(import_weights.__file__))

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    assert faults("default") > 5 * 30000  # each 128 MB array mapped and zeroed afresh: 32,768 pages
    assert faults("keep") < 5000


def _step_models(*seeds, cfg=TINY):
    from rnnt.model import TFStepModel

    return [TFStepModel(RNNT(cfg, seed=s)) for s in seeds]


def _run_steps(model, feats, tokens):
    enc, _ = model.encode(feats, model.initial_encoder_state())
    pred, state = model.predict(tokens, model.initial_predictor_state(len(tokens)))
    return enc, pred, state, model.joint(np.repeat(enc[0, :1], len(tokens), 0), pred)


def test_ensemble_keeps_its_members_states_apart_and_combines_their_joints():
    from ensemble_step import EnsembleStepModel

    a, b = _step_models(1, 2)
    feats = np.random.default_rng(0).normal(-5, 2, (1, TINY.chunk_frames, TINY.num_mels)).astype(np.float32)
    tokens = np.array([0, 3, 7], np.int32)
    (enc_a, pred_a, state_a, lp_a), (enc_b, pred_b, state_b, lp_b) = (_run_steps(m, feats, tokens) for m in (a, b))
    product = EnsembleStepModel([a, b])
    enc, pred, state, lp = _run_steps(product, feats, tokens)
    np.testing.assert_allclose(enc, np.concatenate([enc_a, enc_b], -1), atol=1e-6)
    np.testing.assert_allclose(state, np.concatenate([state_a, state_b], -1), atol=1e-6)
    mean = (lp_a.astype(np.float64) + lp_b) / 2
    np.testing.assert_allclose(lp, mean - np.log(np.exp(mean).sum(-1, keepdims=True)), atol=1e-5)
    _, _, _, mixture = _run_steps(EnsembleStepModel([a, b], combine="prob"), feats, tokens)
    np.testing.assert_allclose(mixture, np.log((np.exp(lp_a.astype(np.float64)) + np.exp(lp_b)) / 2), atol=1e-5)
    for out in (lp, mixture):  # both are distributions, and neither is either member's
        np.testing.assert_allclose(np.exp(out.astype(np.float64)).sum(-1), 1.0, atol=1e-5)
        assert np.abs(out - lp_a).max() > 1e-3 and np.abs(out - lp_b).max() > 1e-3
    _, _, _, only_a = _run_steps(EnsembleStepModel([a, b], weights=[1, 0]), feats, tokens)
    np.testing.assert_allclose(only_a, lp_a, atol=1e-5)
    with pytest.raises(ValueError, match="chunk_frames"):
        EnsembleStepModel([a, *_step_models(3, cfg=dataclasses.replace(TINY, chunk_frames=8))])
    with pytest.raises(ValueError, match="combine"):
        EnsembleStepModel([a], combine="max")


def test_an_ensemble_of_one_model_twice_decodes_what_the_model_decodes():
    from ensemble_step import EnsembleStepModel

    from rnnt.decoding import DecodingOptions, decode_features

    (a,) = _step_models(5)
    feats = np.random.default_rng(1).normal(-5, 2, (60, TINY.num_mels)).astype(np.float32)
    alone = decode_features(a, feats, DecodingOptions(beam=4))
    twice = decode_features(EnsembleStepModel([a, a]), feats, DecodingOptions(beam=4))
    assert alone.tokens and twice.tokens == alone.tokens
    assert twice.score == pytest.approx(alone.score, abs=1e-3)


def test_screen_weights_decodes_an_ensemble_of_folders_with_their_own_bundles(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    import screen_weights
    from rnnt.config import config_to_dict

    work, _ = _tiny_work(tmp_path, ["one two"])
    folders = []
    for n, step in enumerate((100, 200)):
        model = RNNT(TINY, seed=n)
        weights = {k: v.numpy() for k, v in import_weights.named_variables(model).items()}
        folders.append(str(tmp_path / f"run{n}"))
        import_weights.write_weights(folders[-1], weights, step, config_to_dict(TINY))
    common = ["--recipe", "tiny", "--work-dir", str(work), "--sets", f"dev={work / 'corpus' / 'dev.jsonl'}",
              "--mode", "float32", "--out", str(tmp_path / "screen")]
    assert screen_weights.main([folders[0]] + common) == 0  # one member alone, its bundle kept
    assert screen_weights.main([folders[0], folders[0]] + common + ["--mean", "0", "--ensemble"]) == 0
    assert screen_weights.main(folders + common + ["--mean", "0", "--ensemble", "--combine", "prob"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "screen" / "screen.jsonl").read_text().splitlines()]
    assert [(r["name"], r.get("ensemble")) for r in rows] == [
        ("run0-step-100", None), ("ens-run0-step-100+run0-step-100", "logprob"),
        ("ens-run0-step-100+run1-step-200-prob", "prob")]
    assert rows[1]["wer"] == rows[0]["wer"] and rows[1]["cer"] == rows[0]["cer"]  # a model twice is the model
    assert (tmp_path / "screen" / "run1-step-200-float32.tflite").exists()
    hyps = [[json.loads(line)["hyp"] for line in (tmp_path / "screen" / f"{r['name']}-float32-beam2-dev.jsonl")
             .read_text().splitlines()] for r in rows[:2]]
    assert hyps[0] == hyps[1]
    capsys.readouterr()
    assert screen_weights.main(folders + common + ["--mean", "0", "--ensemble", "--combine", "prob"]) == 0
    assert "ens-run0" not in capsys.readouterr().out.split("(WER, CER %)")[1].split("best on")[0]  # done already


def test_paired_views_share_the_time_warp_and_draw_their_own_frequency_warp():
    torch, _, _ = _torch_model()
    import types

    import feature_augment

    args = types.SimpleNamespace(speed=(0.85, 1.15), vtlp=(0.8, 1.25))
    aug = feature_augment.Augmenter([], torch.device("cpu"), 80, args)
    x = torch.full((3, 60, 80), -10.0)
    x[:, :, 30] = 0.0
    x[:, 20:, :] = -12.0  # a time edge to locate
    twice, lengths = torch.cat([x, x]), torch.tensor([60, 50, 40] * 2)
    y, new_lengths = aug.speed(twice, lengths, torch.Generator().manual_seed(3), paired=True)
    assert new_lengths[:3].tolist() == new_lengths[3:].tolist()
    edge = (y[..., 0] < -11).float().argmax(1)  # first frame past the edge: where the time warp put it
    assert edge[:3].tolist() == edge[3:].tolist()
    peaks = y[:, 5].argmax(-1)
    assert peaks[:3].tolist() != peaks[3:].tolist()  # the views' spectra moved by their own factors
    _, unpaired = aug.speed(twice, lengths, torch.Generator().manual_seed(3))
    assert unpaired[:3].tolist() != unpaired[3:].tolist()


def test_consistency_kl_is_zero_for_agreeing_views_and_grows_with_disagreement():
    torch, _, _ = _torch_model()
    from train_torch import consistency_kl

    a = torch.randn(2, 7, 5).log_softmax(-1)
    lengths = torch.tensor([7, 4, 7, 4])
    assert float(consistency_kl(torch.cat([a, a]), lengths)) == pytest.approx(0.0, abs=1e-6)
    b = (a + 0.5 * torch.randn_like(a)).log_softmax(-1)
    c = (a + 2.0 * torch.randn_like(a)).log_softmax(-1)
    near, far = consistency_kl(torch.cat([a, b]), lengths), consistency_kl(torch.cat([a, c]), lengths)
    assert 0 < float(near) < float(far)
    junk = torch.cat([a, b]).clone()
    junk[1, 4:] = torch.randn(3, 5).log_softmax(-1)  # frames past clip 1's length do not count
    junk[3, 4:] = torch.randn(3, 5).log_softmax(-1)
    assert float(consistency_kl(junk, lengths)) == pytest.approx(float(near), rel=1e-5)
    both = torch.cat([a, b]).requires_grad_(True)
    consistency_kl(both, lengths).backward()
    assert both.grad[:2].abs().sum() > 0 and both.grad[2:].abs().sum() > 0  # each view pulled toward the other
