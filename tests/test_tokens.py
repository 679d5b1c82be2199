"""Token tables, character and sentencepiece tokenizers, and `rnnt tokenizer train`."""

from __future__ import annotations

import json
import os

import pytest

from rnnt.text import normalize_text
from rnnt.tokens import (
    BLANK,
    CHAR_BASE,
    UNK,
    WORD_START,
    CharTokenizer,
    TokenTable,
    load_tokenizer,
    train_chars,
)

LIBRI = "/work/shared/data/text/librispeech-dev-clean.txt"
LJ = "/work/shared/data/text/ljspeech.txt"


def _lines(path: str, start: int, count: int) -> list[str]:
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()[start : start + count]


# --- TokenTable -----------------------------------------------------------------------------------

TABLE = TokenTable([BLANK, UNK, "▁the", "▁c", "at", "s", "▁", "a", "'", "<x>"])


def test_table_basics():
    assert TABLE.blank_id == 0 and TABLE.vocab_size == len(TABLE) == 10
    assert TABLE.unk_id == 1
    assert TABLE.is_special(0) and TABLE.is_special(1) and TABLE.is_special(9)
    assert not TABLE.is_special(6)
    with pytest.raises(ValueError):
        TokenTable(["a", BLANK])


def test_table_decode_skips_specials():
    assert TABLE.decode([2, 3, 4, 5]) == "the cats"
    assert TABLE.decode([0, 2, 0, 1, 3, 9, 4, 0]) == "the cat"
    assert TABLE.decode([6, 7, 6, 6, 3, 4, 6]) == "a cat"
    assert TABLE.decode([]) == "" and TABLE.decode([0, 6]) == ""
    assert TABLE.decode([4, 5, 2]) == "ats the"  # a leading non-▁ piece still makes a word


def test_word_boundaries():
    assert TABLE.word_boundaries([2, 3, 4, 5]) == [(0, 1), (1, 4)]
    # blanks / unk / lone ▁ neither start nor end words
    assert TABLE.word_boundaries([0, 2, 0, 3, 1, 4, 0]) == [(1, 2), (3, 6)]
    assert TABLE.word_boundaries([6, 7, 6, 6, 3, 4, 6]) == [(1, 2), (4, 6)]
    assert TABLE.word_boundaries([4, 5, 2]) == [(0, 2), (2, 3)]
    assert TABLE.word_boundaries([]) == [] and TABLE.word_boundaries([6, 0, 6]) == []


def test_word_boundaries_count_matches_decode():
    import random

    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(len(TABLE)) for _ in range(rng.randrange(12))]
        spans = TABLE.word_boundaries(ids)
        words = TABLE.decode(ids).split()
        assert len(spans) == len(words)
        assert [TABLE.decode(ids[s:e]) for s, e in spans] == words


def test_table_json_roundtrip():
    assert TokenTable.from_json(TABLE.to_json()) == TABLE
    assert TokenTable.from_json(json.loads(TABLE.to_json())) == TABLE
    assert TokenTable.from_json(TABLE.tokens) == TABLE
    assert "▁" in TABLE.to_json()  # stored as UTF-8, not escaped


# --- character tokenizer --------------------------------------------------------------------------


def test_chars_scheme():
    tok = CharTokenizer()
    assert tok.tokens[:3] == [BLANK, UNK, WORD_START] and tok.vocab_size == 30
    ids = tok.encode("Don't stop!")
    assert [tok.tokens[i] for i in ids] == ["▁", "d", "o", "n", "'", "t", "▁", "s", "t", "o", "p"]
    assert tok.decode(ids) == "don't stop"
    assert tok.table.word_boundaries(ids) == [(1, 6), (7, 11)]
    assert 0 not in tok.encode("some text")


def test_chars_unknown_and_extras():
    tok = CharTokenizer()
    assert tok.encode("\u00e6") == [2, 1]  # æ is not a-z: <unk>
    extra = train_chars(["\u00e6\u00e6 a"], max_extra=5)
    assert extra.tokens == CHAR_BASE + ["\u00e6"]
    assert extra.decode(extra.encode("\u00e6 b")) == "\u00e6 b"
    assert train_chars(["\u00e6\u00e6 a"]).tokens == CHAR_BASE


def test_chars_roundtrip_and_save(tmp_path):
    tok = CharTokenizer()
    for line in _lines(LJ, 0, 300):
        norm = normalize_text(line)
        ids = tok.encode(line)
        assert tok.decode(ids) == norm
        assert tok.table.decode(ids) == norm
        assert len(tok.table.word_boundaries(ids)) == len(norm.split())
    path = str(tmp_path / "chars.json")
    tok.save(path)
    loaded = load_tokenizer(path)
    assert isinstance(loaded, CharTokenizer) and loaded.tokens == tok.tokens
    with open(path, encoding="utf-8") as f:
        assert TokenTable.from_json(f.read()) == tok.table


def test_load_tokenizer_rejects_unknown(tmp_path):
    with pytest.raises(ValueError):
        load_tokenizer(str(tmp_path / "x.txt"))


# --- sentencepiece --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sp_tok(tmp_path_factory):
    pytest.importorskip("sentencepiece")
    from rnnt.tokens import train_sentencepiece

    prefix = str(tmp_path_factory.mktemp("sp") / "tiny")
    return train_sentencepiece(_lines(LIBRI, 0, 200), 64, prefix)


def test_sentencepiece_ids(sp_tok):
    assert sp_tok.vocab_size == 64 and sp_tok.kind == "sentencepiece"
    assert sp_tok.tokens[0] == BLANK and sp_tok.tokens[1] == UNK
    assert sp_tok.sp.pad_id() == 0 and sp_tok.sp.unk_id() == 1
    assert sp_tok.sp.bos_id() == -1 and sp_tok.sp.eos_id() == -1
    assert os.path.exists(sp_tok.path) and sp_tok.path.endswith(".model")


def test_sentencepiece_roundtrip(sp_tok):
    lines = _lines(LIBRI, 200, 100) + _lines(LJ, 0, 100)
    for line in lines:
        norm = normalize_text(line)
        ids = sp_tok.encode(line)
        assert 0 not in ids
        assert sp_tok.decode(ids) == norm
        assert sp_tok.table.decode(ids) == sp_tok.sp.decode(ids) == norm
        spans = sp_tok.table.word_boundaries(ids)
        assert [sp_tok.table.decode(ids[s:e]) for s, e in spans] == norm.split()


def test_load_sentencepiece(sp_tok):
    loaded = load_tokenizer(sp_tok.path)
    assert loaded.tokens == sp_tok.tokens
    assert loaded.encode("Hello there, 42 cats!") == sp_tok.encode("hello there forty two cats")


# --- command line ---------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    import argparse

    from rnnt.commands import tokenizer

    parser = argparse.ArgumentParser(prog="rnnt")
    tokenizer.add_parser(parser.add_subparsers(dest="command"), "tokenizer")
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_chars(tmp_path, capsys):
    text = tmp_path / "a.txt"
    text.write_text("Hello world\n\nsecond line\n", encoding="utf-8")
    tsv = tmp_path / "b.tsv"
    tsv.write_text("id1\tThird line\n", encoding="utf-8")
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(json.dumps({"audio": "x.wav", "text": "Fourth"}) + "\n", encoding="utf-8")
    out = str(tmp_path / "out" / "chars")
    assert _cli(["tokenizer", "train", "--text", str(text), str(tsv), str(jsonl), "--kind", "chars",
                 "-o", out]) == 0
    assert "4 lines" in capsys.readouterr().out
    tok = load_tokenizer(out + ".json")
    assert tok.tokens == CHAR_BASE


def test_cli_sentencepiece(tmp_path):
    pytest.importorskip("sentencepiece")
    if not os.path.exists(LIBRI):
        pytest.skip(f"no {LIBRI}")
    out = str(tmp_path / "sp")
    assert _cli(["tokenizer", "train", "--text", LIBRI, "--vocab-size", "40", "-o", out]) == 0
    tok = load_tokenizer(out + ".model")
    assert tok.vocab_size == 40 and tok.tokens[0] == BLANK


def test_cli_errors(tmp_path):
    from rnnt.cli import UsageError

    text = tmp_path / "a.txt"
    text.write_text("hello\n", encoding="utf-8")
    with pytest.raises(UsageError):
        _cli(["tokenizer", "train", "--text", str(text), "-o", str(tmp_path / "x")])  # no vocab size
    with pytest.raises(UsageError):
        _cli(["tokenizer", "train", "--text", str(tmp_path / "missing.txt"), "--kind", "chars",
              "-o", str(tmp_path / "x")])
