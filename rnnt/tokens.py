"""Token vocabularies.

`TokenTable` (runtime, no dependencies) turns model token ids back into text and words. Token id 0 is the
blank ``<blk>``; a piece with a leading ``▁`` (U+2581) starts a word; pieces written ``<...>`` (blank,
``<unk>``, ...) are specials that decode to nothing.

`Tokenizer` (training side) turns normalized text into ids. Two kinds, both with id 0 = blank:

- sentencepiece (``.model``): trained by `train_sentencepiece` with ``pad_id=0`` (piece ``<blk>``) and
  ``unk_id=1``, so sentencepiece ids are the model's token ids;
- characters (``.json``): ``["<blk>", "<unk>", "▁", "'", "a", ..., "z", extras...]`` where ``▁`` is a
  word-separator token placed before every word: "hi yo" -> ``▁ h i ▁ y o``.

`load_tokenizer` picks the kind by file extension.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from collections import Counter
from typing import Iterable, Sequence

from rnnt.text import normalize_text

__all__ = [
    "BLANK",
    "UNK",
    "WORD_START",
    "TokenTable",
    "Tokenizer",
    "SentencePieceTokenizer",
    "CharTokenizer",
    "train_sentencepiece",
    "train_chars",
    "load_tokenizer",
]

BLANK = "<blk>"
UNK = "<unk>"
WORD_START = "\u2581"
CHAR_BASE = [BLANK, UNK, WORD_START, "'"] + list(string.ascii_lowercase)


def _is_special(piece: str) -> bool:
    return len(piece) > 2 and piece.startswith("<") and piece.endswith(">")


class TokenTable:
    """The vocabulary as the runtime needs it: ids -> text and word spans."""

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if not tokens or tokens[0] != BLANK:
            raise ValueError(f"token 0 must be the blank {BLANK!r}")
        self.tokens: list[str] = tokens
        self._special = [_is_special(t) for t in tokens]
        # The visible text of each piece: "" for specials; "▁" kept (it marks a word start).
        self._text = ["" if s else t for t, s in zip(tokens, self._special)]

    blank_id = 0

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenTable) and self.tokens == other.tokens

    @property
    def unk_id(self) -> int | None:
        """Id of ``<unk>``, or None if the table has none."""
        try:
            return self.tokens.index(UNK)
        except ValueError:
            return None

    def is_special(self, token_id: int) -> bool:
        """True for blank, ``<unk>`` and other ``<...>`` pieces."""
        return self._special[token_id]

    def piece(self, token_id: int) -> str:
        return self.tokens[token_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a token id sequence: pieces joined, ``▁`` -> space, specials dropped, spaces collapsed."""
        text = "".join(self._text[int(i)] for i in ids)
        return " ".join(text.replace(WORD_START, " ").split())

    def word_boundaries(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Word spans ``(start, end)`` over positions in `ids` (end exclusive), one per word of `decode`.

        A span runs from the first to the last token that contributes letters to the word; a lone ``▁``
        and specials (blank, ``<unk>``) contribute none, so they never start or end a span.
        """
        spans: list[tuple[int, int]] = []
        start = last = -1
        for pos, token_id in enumerate(ids):
            text = self._text[int(token_id)]
            if not text:
                continue
            if text.startswith(WORD_START) and start >= 0:
                spans.append((start, last + 1))
                start = -1
            if text.strip(WORD_START):
                if start < 0:
                    start = pos
                last = pos
        if start >= 0:
            spans.append((start, last + 1))
        return spans

    def to_json(self) -> str:
        """JSON text ``{"tokens": [...]}``."""
        return json.dumps({"tokens": self.tokens}, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | dict | list) -> "TokenTable":
        """From `to_json` output, a dict with ``"tokens"``, or a plain list of pieces (or its JSON)."""
        if isinstance(data, str):
            data = json.loads(data)
        if isinstance(data, dict):
            data = data["tokens"]
        return cls(data)


class Tokenizer:
    """Text -> token ids for training. Subclasses: `SentencePieceTokenizer`, `CharTokenizer`."""

    kind = ""

    def __init__(self, tokens: Sequence[str], path: str = "") -> None:
        self.table = TokenTable(tokens)
        self.path = path

    @property
    def tokens(self) -> list[str]:
        return self.table.tokens

    @property
    def vocab_size(self) -> int:
        return self.table.vocab_size

    def encode(self, text: str) -> list[int]:
        """Ids of `text` after `normalize_text` (never contains blank)."""
        return self.encode_normalized(normalize_text(text))

    def encode_normalized(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        return self.table.decode(ids)


class SentencePieceTokenizer(Tokenizer):
    """A sentencepiece model whose id 0 is ``<blk>`` (see `train_sentencepiece`)."""

    kind = "sentencepiece"

    def __init__(self, model_file: str) -> None:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=model_file)
        tokens = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        if tokens[0] != BLANK:
            raise ValueError(f"{model_file}: piece 0 is {tokens[0]!r}, not {BLANK!r} (train with pad_id=0)")
        super().__init__(tokens, model_file)
        self.sp = sp

    def encode_normalized(self, text: str) -> list[int]:
        return list(self.sp.encode(text, out_type=int))


class CharTokenizer(Tokenizer):
    """Characters plus a ``▁`` word-separator token before each word; unknown characters map to ``<unk>``."""

    kind = "chars"

    def __init__(self, tokens: Sequence[str] = CHAR_BASE, path: str = "") -> None:
        tokens = list(tokens)
        if tokens[:3] != [BLANK, UNK, WORD_START]:
            raise ValueError(f"character vocabulary must start with {[BLANK, UNK, WORD_START]}")
        super().__init__(tokens, path)
        self._ids = {t: i for i, t in enumerate(tokens) if i >= 3}

    def encode_normalized(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in text.split():
            ids.append(2)
            ids.extend(self._ids.get(c, 1) for c in word)
        return ids

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"kind": self.kind, "tokens": self.tokens}, f, ensure_ascii=False, indent=0)
            f.write("\n")
        self.path = path

    @classmethod
    def load(cls, path: str) -> "CharTokenizer":
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and data.get("kind", "chars") != "chars":
            raise ValueError(f"{path}: not a character tokenizer (kind {data.get('kind')!r})")
        return cls(TokenTable.from_json(data).tokens, path)


def train_chars(text_lines: Iterable[str], min_count: int = 1, max_extra: int = 0) -> CharTokenizer:
    """Character tokenizer: `CHAR_BASE` plus up to `max_extra` other characters of the normalized text
    seen at least `min_count` times (most frequent first; 0 = no extras)."""
    counts: Counter[str] = Counter()
    if max_extra > 0:
        for line in text_lines:
            counts.update(normalize_text(line).replace(" ", ""))
    base = set(CHAR_BASE)
    extras = [c for c, n in counts.most_common() if n >= min_count and c not in base][:max_extra]
    return CharTokenizer(CHAR_BASE + sorted(extras))


def train_sentencepiece(
    text_lines: Iterable[str],
    vocab_size: int,
    out_prefix: str,
    model_type: str = "unigram",
    max_sentences: int = 2_000_000,
) -> SentencePieceTokenizer:
    """Train a sentencepiece model on normalized `text_lines`; writes ``out_prefix.model`` and ``.vocab``.

    Id 0 is ``<blk>`` (sentencepiece's pad), id 1 ``<unk>``, no BOS/EOS; text is not re-normalized by
    sentencepiece (rule "identity") since `normalize_text` already ran.
    """
    import sentencepiece as spm

    out_dir = os.path.dirname(os.path.abspath(out_prefix))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        corpus = f.name
        lines = 0
        for line in text_lines:
            norm = normalize_text(line)
            if norm:
                f.write(norm + "\n")
                lines += 1
    try:
        if not lines:
            raise ValueError("no text to train on")
        spm.SentencePieceTrainer.train(
            input=corpus,
            model_prefix=out_prefix,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=0,
            pad_piece=BLANK,
            unk_id=1,
            unk_piece=UNK,
            bos_id=-1,
            eos_id=-1,
            character_coverage=1.0,
            normalization_rule_name="identity",
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            num_threads=min(4, os.cpu_count() or 1),
            minloglevel=2,
        )
    finally:
        os.unlink(corpus)
    return SentencePieceTokenizer(out_prefix + ".model")


def load_tokenizer(path: str) -> Tokenizer:
    """A tokenizer from ``*.model`` (sentencepiece) or ``*.json`` (characters)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".model":
        return SentencePieceTokenizer(path)
    if ext == ".json":
        return CharTokenizer.load(path)
    raise ValueError(f"{path}: unknown tokenizer type (expected .model or .json)")
