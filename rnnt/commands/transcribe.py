"""`rnnt transcribe PATH...`: speech to text for files, folders, glob patterns and standard input.

Each input is read and decoded block by block (memory stays flat however long it is) and cut into segments at
endpoints. A bad input costs one line on standard error, ``rnnt transcribe: error: PATH: reason``, and the rest
of the batch still runs. Exit status: 0 all inputs transcribed, 1 some failed, 2 usage error (bad options, a
model that cannot be loaded, no default model installed).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TextIO

from rnnt.commands.argtypes import positive_float, positive_int
from rnnt.decoding import DEFAULT_BEAM
from rnnt.inputs import STDIN, Input, InputError, expand_inputs, input_duration
from rnnt.output import FORMATS, SINGLE_INPUT_FORMATS, Transcript, Writer, output_paths, transcript_from_results

__all__ = [
    "add_parser",
    "run",
    "positive_int",
    "load_recognizer",
    "transcribe_input",
    "transcribe_all",
    "Progress",
]

DESCRIPTION = """\
Transcribe audio files, folders (their audio files, recursively), glob patterns and '-' (standard input:
one audio file of any format libsndfile reads, or raw s16le PCM with --raw-rate). WAV, FLAC, OGG and MP3 at
any sample rate and channel count. Without --model the packaged default model is used.
"""

EPILOG = """\
formats:
  txt    the text, one line per input (with several inputs: PATH<TAB>TEXT)
  json   one array of objects, as jsonl
  jsonl  one object per input and line: path, text, duration, segments (start, end, text,
         words: word, start, end, confidence); a failed input is {"path", "text": null, "error"}
  srt    subtitles, one cue per segment (one input per file: use -o DIR for several)
  vtt    WebVTT subtitles, as srt
  tsv    start<TAB>end<TAB>text per segment in milliseconds (with several inputs: path first)

-o OUT writes to the file OUT; if OUT is a folder (or ends with '/') one file per input is written there,
named after the input with the format's extension.

exit status: 0 all inputs transcribed, 1 some inputs failed (one line each on standard error),
2 usage error (bad options, an unusable --model bundle, no default model installed).
"""




def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--model, --beam, --threads, --no-level, --jobs (shared with `rnnt eval`)."""
    p.add_argument("-m", "--model", metavar="BUNDLE", help="model bundle (.tflite); default: the packaged model")
    p.add_argument("--beam", type=positive_int, metavar="N", help=f"beam width; 1 = greedy (default {DEFAULT_BEAM})")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N", help="TFLite threads per decoder (default 1)")
    add_level_argument(p)
    p.add_argument(
        "-j", "--jobs", type=positive_int, default=1, metavar="N",
        help="inputs decoded in parallel, sharing one model (default 1); output order stays input order",
    )


def add_level_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-level", dest="level", action="store_false",
        help="feed the audio at the level it comes (default: one gain, set from the first 1.5 s of speech and held)",
    )


def add_progress_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--progress", dest="progress", action="store_true", default=None,
        help="show a progress bar on standard error (default: only when it is a terminal and the work is long)",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show a progress bar")


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="transcribe audio files",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio file, folder, glob pattern, or - for standard input")
    add_model_arguments(p)
    p.add_argument("-f", "--format", choices=FORMATS, default="txt", help="output format (default txt)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file, or folder for one file per input (default: stdout)")
    p.add_argument(
        "--raw-rate", type=positive_int, metavar="HZ",
        help="standard input is raw s16le PCM at this sample rate (otherwise any format libsndfile recognises)",
    )
    p.add_argument("--raw-channels", type=positive_int, default=1, metavar="N", help="channels of raw standard input (default 1)")
    p.add_argument("--block-seconds", type=positive_float, default=5.0, help=argparse.SUPPRESS)
    add_progress_arguments(p)
    p.set_defaults(run=run)
    return p


# -- shared by transcribe and eval ----------------------------------------------------------------------------


def load_recognizer(model: str | None, beam: int | None = None, threads: int = 1, level: bool = True):
    """A `Recognizer` (with the default level control, or none); a model that cannot be used (or no default
    model) raises UsageError (exit 2)."""
    from rnnt.bundle import BundleError
    from rnnt.cli import UsageError
    from rnnt.runtime import LevelConfig, NoDefaultModelError, Recognizer

    try:
        return Recognizer(model, beam=beam, num_threads=threads, level=LevelConfig() if level else None)
    except NoDefaultModelError as e:
        raise UsageError(str(e)) from None
    except BundleError as e:
        raise UsageError(f"cannot use the model: {e}") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise UsageError(f"cannot load the model {model}: {e}") from None


class _Cancelled(Exception):
    pass


def transcribe_input(
    recognizer,
    item: Input,
    *,
    block_seconds: float = 5.0,
    raw_rate: int | None = None,
    raw_channels: int = 1,
    stdin=None,
    on_audio: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
) -> Transcript:
    """Transcribe one input block by block; never raises for a bad input (the Transcript holds the error)."""
    if item.error:
        return Transcript(item.path, error=item.error)
    rate = recognizer.sample_rate
    samples = 0

    def blocks() -> Iterator:
        nonlocal samples
        for block in item.blocks(rate, block_seconds, stdin=stdin, raw_rate=raw_rate, raw_channels=raw_channels):
            if stop is not None and stop.is_set():
                raise _Cancelled()
            samples += block.size
            if on_audio is not None:
                on_audio(block.size / rate)
            yield block

    try:
        results = list(recognizer.transcribe_blocks(blocks(), rate))
    except InputError as e:
        return Transcript(item.path, error=str(e))
    except ValueError as e:  # e.g. NaN samples rejected by the stream
        return Transcript(item.path, error=f"unusable audio: {e}")
    except MemoryError:
        return Transcript(item.path, error="out of memory while decoding")
    except OSError as e:
        return Transcript(item.path, error=f"cannot read: {e.strerror or e}")
    except _Cancelled:
        raise
    except Exception as e:  # a bug should not lose the rest of the batch either
        return Transcript(item.path, error=f"unexpected error ({type(e).__name__}: {e})")
    return transcript_from_results(item.path, results, samples / rate)


def transcribe_all(
    recognizer,
    inputs: Sequence[Input],
    jobs: int = 1,
    **kwargs,
) -> Iterator[Transcript]:
    """Transcripts of `inputs` in input order; with `jobs` > 1, that many inputs are decoded at once by threads
    sharing `recognizer`. Stops the workers promptly when the consumer stops (or on Ctrl-C)."""
    stop = threading.Event()
    if jobs <= 1 or len(inputs) <= 1:
        for item in inputs:
            yield transcribe_input(recognizer, item, stop=stop, **kwargs)
        return
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="rnnt-transcribe")
    pending: collections.deque[Future] = collections.deque()
    it = iter(inputs)
    try:
        for item in it:
            pending.append(pool.submit(transcribe_input, recognizer, item, stop=stop, **kwargs))
            if len(pending) >= 2 * jobs:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(transcribe_input, recognizer, nxt, stop=stop, **kwargs))
            yield result
    finally:
        stop.set()
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)


class Progress:
    """A tqdm bar over seconds of audio on standard error, or nothing. Lines written through `message` and
    inside `writing()` do not garble the bar."""

    def __init__(self, enabled: bool, total_seconds: float | None, files: int) -> None:
        self.bar = None
        self.files = files
        self.done = 0
        self._lock = threading.Lock()
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return
        if total_seconds:
            fmt = "{percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]{postfix}"
        else:
            fmt = "{n:.0f} s of audio [{elapsed}]{postfix}"
        self.bar = tqdm(
            total=total_seconds or None, file=sys.stderr, bar_format=fmt, dynamic_ncols=True,
            leave=False, mininterval=0.2,
        )
        self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None and self.files > 1:
            self.bar.set_postfix_str(f"{self.done}/{self.files} files", refresh=False)

    def advance(self, seconds: float) -> None:
        if self.bar is not None:
            with self._lock:
                self.bar.update(seconds)

    def file_done(self) -> None:
        self.done += 1
        if self.bar is not None:
            with self._lock:
                self._postfix()
                self.bar.refresh()

    @contextlib.contextmanager
    def writing(self):
        if self.bar is None:
            yield
        else:
            with self._lock, self.bar.external_write_mode(file=sys.stderr):
                yield

    def message(self, line: str) -> None:
        with self.writing():
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def want_progress(flag: bool | None, inputs: Sequence[Input], total_seconds: float | None) -> bool:
    """--progress / --no-progress, else: standard error is a terminal and the work is long or many files."""
    if flag is not None:
        return flag
    if not _isatty(sys.stderr):
        return False
    return len(inputs) > 1 or any(i.is_stdin for i in inputs) or (total_seconds or 0) >= 30.0


def _isatty(f) -> bool:
    try:
        return f.isatty()
    except (AttributeError, ValueError):
        return False


# -- the command ----------------------------------------------------------------------------------------------


def _check_usage(args, inputs: Sequence[Input]) -> None:
    from rnnt.cli import UsageError

    n_stdin = sum(1 for p in args.paths if p == STDIN)
    if n_stdin > 1:
        raise UsageError("'-' (standard input) can be given only once")
    if n_stdin and _isatty(sys.stdin):
        raise UsageError("'-' reads audio from standard input, which is a terminal: pipe audio in (rnnt transcribe - < audio.wav)")
    if not n_stdin and args.raw_rate:
        raise UsageError("--raw-rate describes standard input: give '-' as a PATH")


def _several(args, inputs: Sequence[Input]) -> bool:
    return len(inputs) != 1 or inputs[0].path != args.paths[0] or len(args.paths) != 1


def _output_folder(out: str | None) -> str | None:
    if out is None or out == "-":
        return None
    if os.path.isdir(out) or out.endswith(("/", os.sep)):
        return out
    return None


def run(args) -> int:
    from rnnt.cli import UsageError

    inputs = expand_inputs(args.paths)
    _check_usage(args, inputs)
    several = _several(args, inputs)
    folder = _output_folder(args.output)
    if folder is None and several and args.format in SINGLE_INPUT_FORMATS:
        raise UsageError(
            f"--format {args.format} holds one input per file and there are several inputs: "
            f"give a folder, -o DIR/, for one file per input"
        )
    recognizer = load_recognizer(args.model, args.beam, args.threads, args.level)

    out_file: TextIO | None = None
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
        targets = output_paths([i.path for i in inputs], folder, args.format)
    elif args.output and args.output != "-":
        try:
            out_file = open(args.output, "w", encoding="utf-8", newline="\n")
        except OSError as e:
            raise UsageError(f"cannot write {args.output}: {e.strerror or e}") from None

    total = None
    maybe = args.progress is True or (args.progress is None and _isatty(sys.stderr))
    if maybe and not any(i.is_stdin for i in inputs):  # reading every header costs a little: only for a bar
        total = sum(input_duration(i) or 0.0 for i in inputs)
    progress = Progress(maybe and want_progress(args.progress, inputs, total), total, len(inputs))
    stream = out_file or sys.stdout
    writer = None if folder is not None else Writer(args.format, stream, several)
    to_terminal = out_file is None and _isatty(sys.stdout)
    failed = 0
    prog = getattr(args, "prog_name", "rnnt transcribe")
    try:
        results = transcribe_all(
            recognizer, inputs, args.jobs,
            block_seconds=args.block_seconds, raw_rate=args.raw_rate, raw_channels=args.raw_channels,
            on_audio=progress.advance,
        )
        for index, t in enumerate(results):
            progress.file_done()
            if not t.ok:
                failed += 1
                progress.message(f"{prog}: error: {t.path}: {t.error}")
            if folder is not None:
                if t.ok and not _write_one(t, targets[index], args.format, progress, prog):
                    failed += 1
            else:
                if to_terminal:
                    with progress.writing():
                        writer.write(t)
                else:
                    writer.write(t)
        if writer is not None:
            writer.close()
    except BrokenPipeError:
        _silence_stdout()
        return 1
    finally:
        progress.close()
        if out_file is not None:
            out_file.close()
    if failed and len(inputs) > 1:
        print(f"{prog}: {failed} of {len(inputs)} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def _write_one(t: Transcript, path: str, fmt: str, progress: Progress, prog: str) -> bool:
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            w = Writer(fmt, f, several=False)
            w.write(t)
            w.close()
    except OSError as e:
        progress.message(f"{prog}: error: {t.path}: cannot write {path}: {e.strerror or e}")
        return False
    return True


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
