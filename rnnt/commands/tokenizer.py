"""`rnnt tokenizer train`: build a sentencepiece or character tokenizer from text files.

Text files are read one sentence a line; a ``.jsonl`` manifest contributes its ``"text"`` fields and a
``.tsv`` (``id<TAB>text``) its last column. Text is normalized with `rnnt.text.normalize_text`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Iterator, Sequence


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="train a tokenizer (sentencepiece or characters)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train a tokenizer on text files")
    t.add_argument("--text", nargs="+", required=True, metavar="FILE",
                   help="text files (one sentence a line), .jsonl manifests or id<TAB>text .tsv files")
    t.add_argument("--vocab-size", type=int, default=0, metavar="N",
                   help="vocabulary size including blank (required for sentencepiece; "
                        "for chars: the most extra characters beyond a-z and ' to keep is N - 30)")
    t.add_argument("--kind", choices=["sentencepiece", "chars"], default="sentencepiece")
    t.add_argument("--model-type", choices=["unigram", "bpe"], default="unigram",
                   help="sentencepiece model type (default unigram)")
    t.add_argument("-o", "--output", required=True, metavar="OUT_PREFIX",
                   help="writes OUT_PREFIX.model (+ .vocab) for sentencepiece, OUT_PREFIX.json for chars")
    p.set_defaults(run=run)
    return p


def read_text_lines(paths: Sequence[str]) -> Iterator[str]:
    """Sentences of plain text, .jsonl manifest or .tsv files, in order."""
    for path in paths:
        ext = os.path.splitext(path)[1].lower()
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                if ext == ".jsonl":
                    yield str(json.loads(line).get("text", ""))
                elif ext == ".tsv":
                    yield line.rsplit("\t", 1)[-1]
                else:
                    yield line


def run(args: argparse.Namespace) -> int:
    from rnnt.cli import UsageError
    from rnnt.tokens import CHAR_BASE, train_chars, train_sentencepiece

    for path in args.text:
        if not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    lines = list(read_text_lines(args.text))
    if args.kind == "chars":
        extra = max(0, args.vocab_size - len(CHAR_BASE)) if args.vocab_size else 0
        tok = train_chars(lines, max_extra=extra)
        out = args.output + ".json"
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tok.save(out)
    else:
        if args.vocab_size < 3:
            raise UsageError("--vocab-size N (N >= 3) is required for sentencepiece")
        try:
            tok = train_sentencepiece(lines, args.vocab_size, args.output, model_type=args.model_type)
        except (RuntimeError, ValueError) as e:
            raise UsageError(str(e)) from e
        out = args.output + ".model"
    print(f"wrote {out}: {args.kind}, {tok.vocab_size} tokens, {len(lines)} lines")
    return 0
