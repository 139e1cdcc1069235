"""Text collections used for training and benchmarks: STS-B sentences and SciFact titles.

The STS-B files are read by :func:`embshared.io.read_sts` (tab-separated, no header).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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


def heldout_picks(train_texts: list[str], dev_texts: list[str], n: int, seed: int = 0) -> list[int]:
    """Indices of ``n`` dev sentences that are not training sentences (a fixed random choice).

    The benchmarks share it so that their tables are computed on the same held-out sentences.
    """
    train_set = set(train_texts)
    candidates = [i for i, t in enumerate(dev_texts) if t not in train_set]
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(candidates, min(n, len(candidates)), replace=False))
