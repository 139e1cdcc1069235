"""STS Benchmark files as they are distributed: tab-separated, no header, score 0-5.

Each line is ``genre  file  year  id  score  sentence1  sentence2 [extra columns]``
(``sts-train.csv``, ``sts-dev.csv``, ``sts-test.csv``). Read as similarity pairs, with the
score scaled to [0, 1] for the losses that expect it (CoSENT only uses the order).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from embshared.io.pairs import Examples
from embshared.io.records import DataError, check_exists, read_text


@dataclass(frozen=True)
class StsPair:
    """One STS-B line: two sentences and their human similarity score (0-5)."""

    sentence1: str
    sentence2: str
    score: float


def is_sts_file(path: str | os.PathLike) -> bool:
    """True if the file's first line has the STS-B shape (7+ tab-separated fields, a number fifth)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in {".csv", ".tsv", ".txt"}:
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        fields = handle.readline().rstrip("\r\n").split("\t")
    if len(fields) < 7:
        return False
    try:
        return 0.0 <= float(fields[4]) <= 5.0
    except ValueError:
        return False


def read_sts(path: str | os.PathLike) -> list[StsPair]:
    """Read an STS-B file; a line with fewer than 7 fields or a non-numeric score is a DataError."""
    path = Path(path)
    check_exists(path)
    pairs = []
    for lineno, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 7:
            raise DataError(path, f"expected at least 7 tab-separated fields, got {len(fields)}", lineno)
        try:
            score = float(fields[4])
        except ValueError:
            raise DataError(path, f"field 'score': not a number: {fields[4]!r}", lineno) from None
        if not fields[5].strip() or not fields[6].strip():
            raise DataError(path, "field 'sentence1' or 'sentence2' is empty", lineno)
        pairs.append(StsPair(fields[5].strip(), fields[6].strip(), score))
    if not pairs:
        raise DataError(path, "no records found")
    return pairs


def sts_examples(path: str | os.PathLike) -> Examples:
    """An STS-B file as ``{doc1, doc2, similarity}`` examples, similarity = score / 5."""
    rows = [{"doc1": p.sentence1, "doc2": p.sentence2, "similarity": p.score / 5.0} for p in read_sts(path)]
    return Examples(format="similarity", rows=rows, source=str(path))
