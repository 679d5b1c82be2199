"""Sub-commands of the `rnnt` CLI. Each module has `add_parser(subparsers)` and `run(args) -> int`.

Modules here must not import TensorFlow at import time: import it inside `run`.
"""

#: sub-command name -> module under rnnt.commands
COMMANDS = {
    "transcribe": "transcribe",
    "listen": "listen",
    "eval": "evaluate",
    "bench": "bench",
    "train": "train",
    "tokenizer": "tokenizer",
    "manifest": "manifest",
    "corpus": "corpus",
    "export": "export",
    "quantize": "quantize",
    "inspect": "inspect",
    "recipe": "recipe",
}
