"""Text collections used for training and benchmarks: STS-B sentences and SciFact titles.

The STS-B files are read by :func:`embshared.io.read_sts` (tab-separated, no header);
:func:`read_texts` reads a command line's ``stsb:<folder>``, ``scifact:<folder>`` or text file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embshared.errors import UserError
from embshared.io import document_text, load_beir, read_sts


def unique(texts) -> list[str]:
    """Texts in first-seen order without exact duplicates or empty strings."""
    seen: dict[str, None] = {}
    for text in texts:
        if text and text not in seen:
            seen[text] = None
    return list(seen)


def sts_sentences(folder: str | os.PathLike, split: str = "train") -> list[str]:
    """The unique sentences of an STS-B split (``train`` or ``dev``)."""
    pairs = read_sts(Path(folder) / f"sts-{split}.csv")
    return unique(s for p in pairs for s in (p.sentence1, p.sentence2))


def scifact_titles(folder: str | os.PathLike) -> list[str]:
    """The unique titles of a BEIR SciFact corpus (falling back to the text's start)."""
    data = load_beir(folder)
    return unique((doc.get("title") or document_text(doc)[:200]).strip() for doc in data.corpus.values())


#: ``<kind>:<folder>`` sources of :func:`read_texts`
SOURCES = {
    "stsb": lambda folder: sts_sentences(folder, "train"),
    "stsb-dev": lambda folder: sts_sentences(folder, "dev"),
    "scifact": scifact_titles,
}


def read_texts(spec: str) -> list[str]:
    """Sentences from ``stsb:<folder>``, ``stsb-dev:<folder>``, ``scifact:<folder>`` or a text file (one a line)."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in SOURCES:
        return SOURCES[kind](rest)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{spec}: no such file (or use stsb:<folder>, scifact:<folder>)")
    return unique(line.strip() for line in path.read_text(encoding="utf-8").splitlines())


def sample_texts(texts: list[str], n: int, seed: int = 0) -> list[str]:
    """At most ``n`` of ``texts`` (a fixed random choice kept in order); all of them when ``n`` is 0."""
    if not n:
        return texts
    rng = np.random.default_rng(seed)
    return [texts[i] for i in sorted(rng.choice(len(texts), min(n, len(texts)), replace=False))]


def heldout_picks(train_texts: list[str], dev_texts: list[str], n: int, seed: int = 0) -> list[int]:
    """Indices of ``n`` dev sentences that are not training sentences (a fixed random choice).

    The benchmarks share it so that their tables are computed on the same held-out sentences.
    """
    train_set = set(train_texts)
    candidates = [i for i, t in enumerate(dev_texts) if t not in train_set]
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(candidates, min(n, len(candidates)), replace=False))


def tuning_picks(train_texts: list[str], dev_texts: list[str], n: int, bench_n: int, seed: int = 0) -> list[int]:
    """Indices of ``n`` dev sentences that are neither training sentences nor among the bench's
    ``heldout_picks(train_texts, dev_texts, bench_n, seed)``: where settings are chosen."""
    bench = set(heldout_picks(train_texts, dev_texts, bench_n, seed))
    train_set = set(train_texts)
    candidates = [i for i, t in enumerate(dev_texts) if t not in train_set and i not in bench]
    rng = np.random.default_rng(seed + 1)
    return sorted(int(i) for i in rng.choice(candidates, min(n, len(candidates)), replace=False))
