"""rnnt.data.pipeline (batch planning, tf.data batches) and rnnt.data.augment."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

tf = pytest.importorskip("tensorflow")

from rnnt.config import FeatureConfig  # noqa: E402
from rnnt.corpus.augment import speed_perturb  # noqa: E402
from rnnt.data.augment import spec_augment, spec_augment_batch  # noqa: E402
from rnnt.data.manifest import Utterance  # noqa: E402
from rnnt.data.pipeline import make_dataset, plan_batches  # noqa: E402

CFG = FeatureConfig()


class CharTok:
    """Stand-in tokenizer: letters a..z -> 1..26, space -> 27."""

    vocab_size = 28

    def encode(self, text: str) -> list[int]:
        return [27 if c == " " else ord(c) - 96 for c in text.lower() if c == " " or "a" <= c <= "z"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe")
    rng = np.random.default_rng(0)
    words = ["one", "two", "three", "four", "five", "six"]
    utts = []
    for i in range(14):
        seconds = 0.2 + 0.1 * (i % 7)
        rate = 8000 if i % 3 == 0 else 16000
        x = (0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
        path = folder / f"u{i}.wav"
        sf.write(path, x, rate)
        text = " ".join(words[: 1 + i % 5])
        utts.append(Utterance(str(path), text, seconds, id=f"u{i}"))
    utts.append(Utterance(str(folder / "u0.wav"), "too long", 99.0, id="long"))  # dropped by max_duration
    return utts


def _all(ds) -> list[dict]:
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def _make(utts, **kw):
    args = dict(batch_seconds=2.0, max_batch_size=4, max_duration=5.0, seed=3)
    args.update(kw)
    return make_dataset(utts, CharTok(), CFG, **args)


# --- plan_batches -----------------------------------------------------------------------------------------


def test_plan_covers_once_respects_limits():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 15.0, 500).tolist() + [30.0, 0.01]
    plan = plan_batches(d, batch_seconds=60, max_batch_size=8, max_duration=20, min_duration=0.1, seed=1)
    flat = sorted(i for b in plan for i in b)
    assert flat == [i for i in range(len(d)) if 0.1 <= d[i] <= 20]
    for b in plan:
        assert len(b) <= 8
        assert len(b) == 1 or len(b) * max(d[i] for i in b) <= 60


def test_plan_deterministic_per_seed_and_epoch():
    d = np.random.default_rng(0).uniform(1, 10, 200).tolist()
    kw = dict(batch_seconds=40, max_batch_size=8, max_duration=20)
    assert plan_batches(d, seed=5, epoch=2, **kw) == plan_batches(d, seed=5, epoch=2, **kw)
    assert plan_batches(d, seed=5, epoch=2, **kw) != plan_batches(d, seed=5, epoch=3, **kw)
    assert plan_batches(d, seed=5, epoch=2, **kw) != plan_batches(d, seed=6, epoch=2, **kw)
    ordered = plan_batches(d, shuffle=False, sort_window=10**6, **kw)
    lengths = [d[b[0]] for b in ordered]
    assert lengths == sorted(lengths)  # one window: batches in length order
    with pytest.raises(ValueError):
        plan_batches(d, batch_seconds=0, max_batch_size=8, max_duration=20)


# --- make_dataset -----------------------------------------------------------------------------------------


def test_batches_shapes_lengths_and_padding(corpus):
    batches = _all(_make(corpus, shuffle=False))
    tok = CharTok()
    seen = 0
    for b in batches:
        feats, flen, labels, ulen = b["features"], b["feature_lengths"], b["labels"], b["label_lengths"]
        assert feats.dtype == np.float32 and flen.dtype == np.int32
        assert labels.dtype == np.int32 and ulen.dtype == np.int32
        n = feats.shape[0]
        assert 1 <= n <= 4 and feats.shape[2] == CFG.num_mels and labels.shape[0] == n
        assert feats.shape[1] == flen.max() and labels.shape[1] == ulen.max()
        for j in range(n):
            assert np.all(feats[j, flen[j]:] == 0) and np.all(labels[j, ulen[j]:] == 0)
            assert np.all(np.isfinite(feats[j])) and np.all(feats[j, : flen[j]] != 0)
        seen += n
    assert seen == 14  # the 99 s utterance is dropped
    # lengths match the per-utterance front end
    first = batches[0]
    ids = plan_batches([u.duration for u in corpus], batch_seconds=2.0, max_batch_size=4, max_duration=5.0,
                       min_duration=CFG.win_length / CFG.sample_rate, shuffle=False, seed=3)[0]
    from rnnt.audio import load_audio
    from rnnt.features_tf import log_mel_tf

    for j, i in enumerate(ids):
        x = load_audio(corpus[i].audio, CFG.sample_rate)
        ref = log_mel_tf(x, CFG).numpy()
        assert first["feature_lengths"][j] == ref.shape[0]
        np.testing.assert_allclose(first["features"][j, : ref.shape[0]], ref, rtol=1e-4, atol=1e-4)
        expected = tok.encode(corpus[i].text)
        assert first["label_lengths"][j] == len(expected)
        assert first["labels"][j, : len(expected)].tolist() == expected


def _equal(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
    )


def test_deterministic_and_skip(corpus):
    full = _all(_make(corpus, epoch=1, spec_augment=True))
    assert _equal(full, _all(_make(corpus, epoch=1, spec_augment=True)))
    assert len(full) > 4
    resumed = _all(_make(corpus, epoch=1, spec_augment=True, skip_batches=3))
    assert _equal(resumed, full[3:])
    other = _all(_make(corpus, epoch=2, spec_augment=True))
    assert not _equal(other, full)


def test_repeat_continues_with_next_epochs(corpus):
    e1 = _all(_make(corpus, epoch=1))
    e2 = _all(_make(corpus, epoch=2))
    repeated = _all(_make(corpus, epoch=1, repeat=True, skip_batches=2).take(len(e1) + len(e2) - 2))
    assert _equal(repeated, e1[2:] + e2)


def test_drop_long_and_errors(corpus):
    batches = _all(_make(corpus, max_duration=0.45, shuffle=False))
    assert sum(b["features"].shape[0] for b in batches) == 6  # 0.2, 0.3, 0.4 s twice each
    with pytest.raises(ValueError, match="no utterances"):
        _make(corpus, max_duration=0.01)


def test_speed_perturb(corpus):
    a = _all(_make(corpus, speed_factors=(0.9, 1.1), shuffle=False))
    b = _all(_make(corpus, shuffle=False))
    assert _equal(a, _all(_make(corpus, speed_factors=(0.9, 1.1), shuffle=False)))
    assert [x["feature_lengths"].tolist() for x in a] != [x["feature_lengths"].tolist() for x in b]
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert speed_perturb(x, 1.25).size == 12800 and speed_perturb(x, 0.8).size == 20000
    np.testing.assert_array_equal(speed_perturb(x, 1.0), x)


# --- spec_augment -----------------------------------------------------------------------------------------


def test_spec_augment_masks():
    x = tf.random.stateless_normal([200, 80], seed=[1, 2]) + 5.0
    y = spec_augment(x, num_freq_masks=2, freq_width=10, num_time_masks=3, time_width_ratio=0.05,
                     mask_value=-100.0, seed=[0, 7]).numpy()
    masked = y == -100.0
    cols, rows = masked.all(axis=0), masked.all(axis=1)
    assert masked.any() and np.array_equal(masked, cols[None, :] | rows[:, None])
    assert cols.sum() <= 20 and rows.sum() <= 30
    np.testing.assert_array_equal(y[~masked], x.numpy()[~masked])
    again = spec_augment(x, num_freq_masks=2, freq_width=10, num_time_masks=3, mask_value=-100.0, seed=[0, 7])
    np.testing.assert_array_equal(again.numpy(), y)
    # default fill: the utterance mean
    z = spec_augment(x, seed=[3, 4]).numpy()
    changed = z != x.numpy()
    assert changed.any() and np.allclose(z[changed], x.numpy().mean(), atol=1e-4)
    gen = tf.random.Generator.from_seed(1)
    assert spec_augment(x, generator=gen).shape == (200, 80)


def test_spec_augment_batch_leaves_padding():
    x = tf.ones([3, 50, 20])
    lengths = tf.constant([50, 30, 10])
    valid = tf.sequence_mask(lengths, 50)[:, :, None]
    x = tf.where(valid, x, tf.zeros_like(x))
    y = spec_augment_batch(x, lengths, freq_width=5, num_time_masks=2, time_width_ratio=0.2,
                           mask_value=-1.0, seed=[1, 1]).numpy()
    assert np.all(y[1, 30:] == 0) and np.all(y[2, 10:] == 0)
    assert (y == -1.0).any()
    for b, n in enumerate([50, 30, 10]):
        assert (y[b, :n] == -1.0).all(axis=0).sum() <= 10  # 2 frequency bands of width <= 5


def test_on_the_fly_augmentation_is_deterministic(corpus):
    plain = _all(_make(corpus, shuffle=False))
    augmented = _all(_make(corpus, shuffle=False, augment_share=1.0))
    assert _equal(augmented, _all(_make(corpus, shuffle=False, augment_share=1.0)))
    assert not _equal(plain, augmented)
    assert all(np.isfinite(b["features"]).all() for b in augmented)
