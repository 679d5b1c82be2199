"""``python -m demo [--model BUNDLE] [--device N|NAME] [--list-devices] [--input-file FILE] [--beam N]``."""

import sys

from demo.dictation import main

sys.exit(main(prog="python -m demo"))
