"""Synthesize one utterance with one offline voice: float32 mono at the requested sample rate.

`speed` (>1 faster) and `pitch` (>1 higher) are engine-independent factors around each voice's default:
- espeak-ng: `-s 175*speed` words per minute, `-p 50 + 100*(pitch-1)` (0..99);
- flite: `--setf duration_stretch=1/speed`, `--setf int_f0_target_mean=<voice mean>*pitch`;
- festival diphone voices: `Duration_Stretch 1/speed`, `int_lr_params` target_f0_mean scaled by `pitch`;
- festival HTS voices: hts_engine `-r speed` and `-fm` (half tones) `12*log2(pitch)`;
- accent voices (`rnnt.corpus.accents`): the English front end's `Duration_Stretch 1/speed`, F0 scaled by `pitch`.
The engines run with a fixed environment, in a scratch folder, on relative file names: espeak-ng's breathy
variants (whisper, f2, victor, ...) draw noise from state that otherwise changes with the environment
strings, so only then do the same arguments give the same samples.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import soundfile

from rnnt.corpus.voices import Voice

__all__ = ["SynthesisError", "synth_command", "synthesize", "trim_silence"]

#: flite voices' default mean F0 in Hz (int_f0_target_mean), for pitch factors
FLITE_F0 = {"kal": 100.0, "kal16": 100.0, "awb": 110.0, "rms": 95.0, "slt": 170.0}
#: festival diphone voices' default int_lr_params (target mean, target std)
FESTIVAL_F0 = {"kal_diphone": (105.0, 14.0), "ked_diphone": (105.0, 15.0)}


#: the whole environment of an engine process (see the module doc)
ENGINE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/nonexistent"}


class SynthesisError(RuntimeError):
    """A TTS engine failed or produced no audio."""


def synth_command(voice: Voice, text_file: str, wav_file: str, speed: float = 1.0, pitch: float = 1.0) -> list[str]:
    """The command line that makes `voice` read `text_file` into `wav_file`."""
    if voice.engine == "espeak":
        name = voice.name + (f"+{voice.variant}" if voice.variant else "")
        rate = int(round(175 * speed))
        p = int(min(99, max(0, round(50 + 100 * (pitch - 1)))))
        return ["espeak-ng", "-v", name, "-s", str(rate), "-p", str(p), "-w", wav_file, "-f", text_file]
    if voice.engine == "flite":
        f0 = FLITE_F0.get(voice.name, 100.0) * pitch
        return ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / speed:.4f}",
                "--setf", f"int_f0_target_mean={f0:.1f}", "-f", text_file, "-o", wav_file]
    if voice.engine == "festival":
        cmd = ["text2wave", "-eval", f"(voice_{voice.name})"]
        if voice.name in FESTIVAL_F0:
            mean, std = FESTIVAL_F0[voice.name]
            cmd += ["-eval", f"(Parameter.set 'Duration_Stretch {1 / speed:.4f})",
                    "-eval", f"(set! int_lr_params '((target_f0_mean {mean * pitch:.1f}) (target_f0_std {std:.1f})"
                             " (model_f0_mean 170) (model_f0_std 34)))"]
        elif voice.name.endswith("_hts"):
            cmd += ["-eval", f"(set! hts_engine_params (append hts_engine_params "
                             f"'((\"-r\" {speed:.4f}) (\"-fm\" {12 * math.log2(pitch):.3f}))))"]
        return cmd + ["-o", wav_file, text_file]
    if voice.engine == "accent":
        return [sys.executable, "-m", "rnnt.corpus.accents", voice.name, text_file, wav_file,
                "--speed", f"{speed:.4f}", "--pitch", f"{pitch:.4f}"]
    raise ValueError(f"unknown TTS engine {voice.engine!r}")


def trim_silence(x: np.ndarray, sample_rate: int, lead: float = 0.15, tail: float = 0.15,
                 threshold_db: float = -45.0) -> np.ndarray:
    """Cut leading/trailing silence (below `threshold_db` re peak, in 10 ms frames) to at most lead/tail s."""
    if x.size == 0:
        return x
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        return x
    hop = max(1, sample_rate // 100)
    n = x.size // hop
    if n == 0:
        return x
    frames = np.abs(x[: n * hop]).reshape(n, hop).max(axis=1)
    loud = np.nonzero(frames > peak * 10 ** (threshold_db / 20))[0]
    if loud.size == 0:
        return x
    start = max(0, loud[0] * hop - int(lead * sample_rate))
    stop = min(x.size, (loud[-1] + 1) * hop + int(tail * sample_rate))
    return x[start:stop]


def synthesize(voice: Voice, text: str, speed: float = 1.0, pitch: float = 1.0, sample_rate: int = 16000,
               timeout: float = 120.0, tmpdir: str | None = None) -> np.ndarray:
    """`text` read by `voice`: float32 mono samples at `sample_rate`. Raises SynthesisError."""
    from rnnt.audio import resample

    with tempfile.TemporaryDirectory(prefix="rnnt-tts-", dir=tmpdir) as tmp:
        text_file, wav_file = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.wav")
        with open(text_file, "w", encoding="utf-8") as f:
            f.write(text.strip() + "\n")
        cmd = synth_command(voice, "in.txt", "out.wav", speed, pitch)
        exe = shutil.which(cmd[0])
        if exe is None:
            raise SynthesisError(f"{voice.id}: {cmd[0]} is not installed (scripts/setup_tts.sh)")
        try:
            proc = subprocess.run([exe] + cmd[1:], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  cwd=tmp, env=ENGINE_ENV)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SynthesisError(f"{voice.id}: {e}") from e
        if proc.returncode != 0 or not os.path.exists(wav_file):
            err = proc.stderr.decode(errors="replace").strip()[-300:]
            raise SynthesisError(f"{voice.id}: exit status {proc.returncode}: {err}")
        try:
            data, rate = soundfile.read(wav_file, dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as e:
            raise SynthesisError(f"{voice.id}: unreadable output: {e}") from e
    x = data.mean(axis=1)
    if x.size == 0 or not np.any(x):
        raise SynthesisError(f"{voice.id}: no audio for {text!r}")
    return resample(x, rate, sample_rate).astype(np.float32)
