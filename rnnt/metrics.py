"""Word and character error rates (pure Python, no dependencies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of hypotheses against references."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return self.errors / self.reference_length if self.reference_length else float(self.errors > 0)

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )


def align_counts(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """Levenshtein alignment of two sequences, counting substitutions, deletions and insertions."""
    # each cell holds (total, subs, dels, ins); ties prefer substitutions, then deletions
    prev = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            diag = prev[j - 1]
            if ref[i - 1] == hyp[j - 1]:
                best = diag
            else:
                best = (diag[0] + 1, diag[1] + 1, diag[2], diag[3])
            up, left = prev[j], cur[j - 1]
            if up[0] + 1 < best[0]:
                best = (up[0] + 1, up[1], up[2] + 1, up[3])
            if left[0] + 1 < best[0]:
                best = (left[0] + 1, left[1], left[2], left[3] + 1)
            cur.append(best)
        prev = cur
    _, s, d, n = prev[-1]
    return ErrorCounts(s, d, n, len(ref))


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    return align_counts(reference.split(), hypothesis.split())


def char_errors(reference: str, hypothesis: str) -> ErrorCounts:
    return align_counts(list(" ".join(reference.split())), list(" ".join(hypothesis.split())))


def corpus_error_rates(pairs: Iterable[tuple[str, str]]) -> tuple[ErrorCounts, ErrorCounts]:
    """(word counts, char counts) summed over (reference, hypothesis) pairs of normalized text."""
    words, chars = ErrorCounts(), ErrorCounts()
    for ref, hyp in pairs:
        words += word_errors(ref, hyp)
        chars += char_errors(ref, hyp)
    return words, chars
