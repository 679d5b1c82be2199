"""English read by festival's non-English voices: new real-speaker timbres with a foreign accent.

Debian main has no more English voices, but it has festival diphone voices recorded by Czech, Italian, Finnish and
Hindi speakers (a child and three women among them). Each clip is made in two festival calls: the English front end
(``kal_diphone``: text, lexicon, durations, F0 targets) gives the phones, which are mapped to the foreign voice's
phone set (``PHONE_MAPS``: what a speaker of that language would likely say) and synthesized by it as a
``Segments`` utterance with the English durations and the F0 contour moved to the voice's own range. Where the
voice has no diphone for two phones in a row (``--probe`` lists them into ``accent_missing_diphones.json``; festival
would put silence there), a short vowel or glide goes between them (``FILLERS``), as a learner's epenthesis would.

    python -m rnnt.corpus.accents VOICE TEXT_FILE WAV_FILE [--speed S] [--pitch P]

Standard library only: it runs once a clip, as a TTS engine command (``rnnt.corpus.synth.synth_command``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["AccentVoice", "ACCENT_VOICES", "PHONE_MAPS", "english_segments", "map_segments", "segments_scheme"]

#: the English voice whose front end reads the text, and its mean F0 (Hz)
FRONT_END_VOICE, FRONT_END_F0 = "kal_diphone", 105.0


@dataclass(frozen=True)
class AccentVoice:
    language: str  # key of PHONE_MAPS
    f0: float  # about the speaker's mean F0 in Hz: the English contour is scaled to it
    silence: str  # the voice's pause phone

    @property
    def fillers(self) -> tuple[str, ...]:
        """What goes between two phones the voice has no diphone for: a short vowel, else a glide."""
        return FILLERS[self.language]


ACCENT_VOICES = {
    "czech_dita": AccentVoice("czech", 200.0, "#"),
    "czech_krb": AccentVoice("czech", 240.0, "#"),
    "czech_machac": AccentVoice("czech", 110.0, "#"),
    "czech_ph": AccentVoice("czech", 110.0, "#"),
    "lp_diphone": AccentVoice("italian", 200.0, "#"),
    "pc_diphone": AccentVoice("italian", 110.0, "#"),
    "suo_fi_lj_diphone": AccentVoice("finnish", 190.0, "#"),
    "hy_fi_mv_diphone": AccentVoice("finnish", 105.0, "#"),
    "hindi_NSK_diphone": AccentVoice("hindi", 120.0, "pau"),
}


def _table(text: str) -> dict[str, tuple[str, ...]]:
    """'eng: foreign foreign; ...' -> {eng: (foreign, ...)}; an empty right side drops the phone."""
    out = {}
    for entry in text.split(";"):
        if entry.strip():
            eng, _, foreign = entry.partition(":")
            out[eng.strip()] = tuple(foreign.split())
    return out


_COMMON = ("b: b; d: d; f: f; g: g; k: k; l: l; m: m; n: n; p: p; r: r; s: s; t: t; v: v; z: z; el: l; em: m; "
           "en: n; nx: n; dx: d")
#: English (festival's radio phone set) to each language's phones (_COMMON's shared); any other phone stays as is
PHONE_MAPS = {
    "czech": _table(_COMMON + "; aa: a; ae: e; ah: a; ao: o; aw: a u; ax: e; axr: e r; ay: a j; ch: c~; dh: d; "
                    "eh: e; er: e r; ey: e j; hh: h; ih: i; ix: i; iy: i; jh: dz~; ng: n; ow: o u; oy: o j; sh: s~; "
                    "th: t; uh: u; uw: u; w: v; y: j; zh: z~"),
    "italian": _table(_COMMON + "; aa: a; ae: E; ah: a; ao: O; aw: a u; ax: e; axr: e r; ay: a j; ch: tS; dh: d; "
                      "eh: E; er: e r; ey: e j; hh: ; ih: i; ix: i; iy: i; jh: dZ; ng: n g; ow: o u; oy: O j; "
                      "sh: S; th: t; uh: u; uw: u; w: w; y: j; zh: dZ"),
    "finnish": _table(_COMMON + "; aa: a:; ae: @; ah: a; ao: o:; aw: a u; ax: e; axr: e r; ay: a i; ch: t s; dh: d; "
                      "eh: e; er: e r; ey: e i; hh: h; ih: i; ix: i; iy: i:; jh: d s; ng: N; ow: o u; oy: o i; "
                      "sh: s; th: T; uh: u; uw: u:; w: v; y: j; z: s; zh: s"),
    "hindi": _table(_COMMON + "; aa: aa; ae: eh; ah: a; ao: aw; aw: a uh; ax: a; axr: a r; ay: a ih; ch: ch; "
                    "d: D; dx: D; dh: dh; eh: ee; er: a r; ey: ee; hh: h; ih: ih; ix: ih; iy: iy; jh: j; ng: N; "
                    "ow: oo; oy: aw y; sh: sh; t: T; th: th; uh: uh; uw: uw; w: v; y: y; z: j; zh: j"),
}
#: per language, the phones tried (in order) between two phones whose diphone the voice lacks
FILLERS = {"czech": ("e", "j"), "italian": ("e", "j"), "finnish": ("e", "j"), "hindi": ("a", "y")}
#: seconds a filler lasts (taken from the phone before it)
FILLER_SECONDS = 0.03
#: the diphones each voice lacks among the phones PHONE_MAPS uses (``--probe`` writes it)
MISSING_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "accent_missing_diphones.json")
#: festival's segment names for silence in the front end's output
_PAUSES = ("pau", "h#")


@dataclass(frozen=True)
class Segment:
    phone: str
    duration: float  # seconds
    f0: tuple[tuple[float, float], ...] = ()  # (time from the segment's start in seconds, Hz)


def _festival(script: str, timeout: float = 60.0) -> str:
    """festival's stdout and stderr for `script`."""
    proc = subprocess.run(["festival", "--pipe"], input=script, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"festival failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout + proc.stderr


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def english_segments(text: str, speed: float = 1.0) -> list[Segment]:
    """The English front end's phones with durations and F0 targets for `text`."""
    script = f"""(voice_{FRONT_END_VOICE})
(Parameter.set 'Duration_Stretch {1 / speed:.4f})
(set! u (utt.synth (Utterance Text {_scheme_string(" ".join(text.split()))})))
(mapcar (lambda (s)
  (format t "S %s %f\\n" (item.name s) (item.feat s 'end))
  (mapcar (lambda (g) (format t "T %f %f\\n" (item.feat g 'pos) (item.feat g 'f0)))
          (item.relation.daughters s 'Target)))
  (utt.relation.items u 'Segment))
"""
    segments: list[Segment] = []
    start = 0.0
    for line in _festival(script).splitlines():
        kind, *fields = line.split()
        if kind == "S":
            end = float(fields[1])
            segments.append(Segment(fields[0], max(0.0, end - start)))
            seg_start, start = start, end
        elif kind == "T" and segments and float(fields[1]) > 0:
            last = segments[-1]
            segments[-1] = Segment(last.phone, last.duration, last.f0 + ((float(fields[0]) - seg_start,
                                                                           float(fields[1])),))
    return segments


def map_segments(segments: list[Segment], voice: AccentVoice, pitch: float = 1.0,
                 missing: frozenset[str] = frozenset()) -> list[Segment]:
    """`segments` in the voice's phone set: each phone's duration shared by what it maps to, F0 moved to its range,
    and a short filler (``voice.fillers``) between two phones whose diphone (``"a-b"``) is in `missing`."""
    table, scale = PHONE_MAPS[voice.language], voice.f0 / FRONT_END_F0 * pitch
    out = []
    for seg in segments:
        phones = (voice.silence,) if seg.phone in _PAUSES else table.get(seg.phone, (seg.phone,))
        if not phones:
            continue
        share = seg.duration / len(phones)
        for k, phone in enumerate(phones):
            f0 = tuple((t - k * share, hz * scale) for t, hz in seg.f0 if k * share <= t < (k + 1) * share)
            if out and f"{out[-1].phone}-{phone}" in missing:
                _insert_filler(out, phone, voice, missing)
            out.append(Segment(phone, share, f0))
    return out


def _insert_filler(out: list[Segment], phone: str, voice: AccentVoice, missing: frozenset[str]) -> None:
    """Append to `out` the first filler that joins its last phone to `phone`; none where no filler does."""
    last = out[-1]
    for filler in voice.fillers:
        if f"{last.phone}-{filler}" not in missing and f"{filler}-{phone}" not in missing:
            took = min(FILLER_SECONDS, last.duration / 2)
            kept = last.duration - took
            out[-1] = Segment(last.phone, kept, tuple(p for p in last.f0 if p[0] < kept))
            out.append(Segment(filler, took))
            return


def voice_phones(voice: AccentVoice) -> list[str]:
    """Every phone PHONE_MAPS can give the voice, its silence and fillers included."""
    table = PHONE_MAPS[voice.language]
    return sorted({p for phones in table.values() for p in phones} | {voice.silence, *voice.fillers})


def probe_missing(voice_name: str) -> list[str]:
    """The diphones ("a-b") among `voice_phones` that festival's voice lacks (it warns and uses silence for them)."""
    voice = ACCENT_VOICES[voice_name]
    phones = voice_phones(voice)
    # festival's diphone synthesis crashes on an utterance with no F0 target
    rows = [[Segment(p, 0.08, ((0.04, voice.f0),)) for b in phones for p in (voice.silence, a, b)]
            + [Segment(voice.silence, 0.08)] for a in phones]
    out = _festival(f"(voice_{voice_name})\n" + "".join(f"(set! u (utt.synth (Utterance Segments "
                                                          f"{segments_scheme(row)})))\n" for row in rows), 300.0)
    return sorted(set(re.findall(r"using default diphone \S+ for (\S+)$", out, re.M)))


@functools.lru_cache(maxsize=None)
def missing_diphones(voice_name: str) -> frozenset[str]:
    """The probed diphones `voice_name` lacks, from MISSING_FILE."""
    with open(MISSING_FILE, encoding="utf-8") as f:
        return frozenset(json.load(f).get(voice_name, ()))


def segments_scheme(segments: list[Segment]) -> str:
    """A festival ``Segments`` utterance: ((phone duration (time f0) ...) ...)."""
    return "(" + " ".join(f"({s.phone} {s.duration:.4f}" + "".join(f" ({t:.4f} {hz:.1f})" for t, hz in s.f0) + ")"
                          for s in segments) + ")"


def synthesize_accent(voice_name: str, text: str, wav_file: str, speed: float = 1.0, pitch: float = 1.0) -> None:
    """`text` read by the foreign festival voice `voice_name` into `wav_file` (RIFF)."""
    voice = ACCENT_VOICES[voice_name]
    segments = map_segments(english_segments(text, speed), voice, pitch, missing_diphones(voice_name))
    if not any(s.phone != voice.silence for s in segments):
        raise RuntimeError(f"no phones for {text!r}")
    _festival(f"""(voice_{voice_name})
(set! u (utt.synth (Utterance Segments {segments_scheme(segments)})))
(utt.save.wave u {_scheme_string(wav_file)} 'riff)
""")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probe", action="store_true", help=f"write the voices' missing diphones to {MISSING_FILE}")
    p.add_argument("voice", nargs="?", choices=sorted(ACCENT_VOICES))
    p.add_argument("text_file", nargs="?")
    p.add_argument("wav_file", nargs="?")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--pitch", type=float, default=1.0)
    args = p.parse_args(argv)
    if args.probe:
        table = {name: probe_missing(name) for name in ACCENT_VOICES}
        with open(MISSING_FILE, "w", encoding="utf-8") as f:  # a voice a line
            f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in table.items()) + "\n}\n")
        print({name: len(m) for name, m in table.items()})
        return 0
    if not args.wav_file:
        p.error("VOICE, TEXT_FILE and WAV_FILE are needed")
    with open(args.text_file, encoding="utf-8") as f:
        text = f.read()
    try:
        synthesize_accent(args.voice, text, args.wav_file, args.speed, args.pitch)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        print(f"accents: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
