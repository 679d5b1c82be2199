"""rnnt: streaming on-device RNN-Transducer speech recognition.

The runtime (`rnnt.Recognizer`) needs numpy and ai-edge-litert only; training needs `pip install .[train]`.
"""

from rnnt.version import BUNDLE_FORMAT_VERSION, __version__

__all__ = ["__version__", "BUNDLE_FORMAT_VERSION", "Recognizer"]


def __getattr__(name: str):
    if name == "Recognizer":
        from rnnt.runtime import Recognizer

        return Recognizer
    raise AttributeError(f"module 'rnnt' has no attribute {name!r}")
