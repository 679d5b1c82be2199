"""Live microphone dictation with the streaming recognizer: ``python -m demo`` (or ``rnnt listen``).

See `demo.dictation`. Runtime only: numpy, ai-edge-litert, soundfile and (for the microphone) sounddevice.
"""

from demo.dictation import Dictation, Display, FileSource, MicrophoneSource, main

__all__ = ["Dictation", "Display", "FileSource", "MicrophoneSource", "main"]
