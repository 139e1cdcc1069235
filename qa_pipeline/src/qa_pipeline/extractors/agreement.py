"""How well two extractions of the same paper agree on its section headings.

Used by the benchmark (local extractor vs GROBID's TEI) and the tests. Headings are
compared after lower-casing, dropping numbers and punctuation; two headings match when
their similarity (difflib ratio, or one being the start or end of the other, as when
GROBID merges "Model" and "2.1 Overview" into one head) reaches a threshold, one to one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

from qa_pipeline.extractors.cleanup import normalise_text


def normalise_heading(heading: str) -> str:
    """ "2.1 Overview:" -> "overview"."""
    text = normalise_text(heading).lower()
    text = re.sub(r"\d+(\.\d+)*\.?", " ", text)
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def heading_similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two normalised headings."""
    if not a or not b:
        return 0.0
    ratio = SequenceMatcher(None, a, b).ratio()
    short, long = sorted((a.split(), b.split()), key=len)
    if len(short) < len(long) and (long[: len(short)] == short or long[-len(short) :] == short):
        ratio = max(ratio, 0.9)
    return ratio


def compare_headings(predicted: Sequence[str], reference: Sequence[str], threshold: float = 0.85) -> dict:
    """Precision, recall and F1 of ``predicted`` headings against ``reference`` ones.

    Args:
        predicted: headings found by the extractor under test.
        reference: headings of the reference extraction (e.g. GROBID's TEI).
        threshold: the similarity at which two headings match.

    Returns:
        {"precision", "recall", "f1", "matched": [(pred, ref)], "missed": [ref], "extra": [pred]}.
    """
    pred = [(h, normalise_heading(h)) for h in predicted if normalise_heading(h)]
    ref = [(h, normalise_heading(h)) for h in reference if normalise_heading(h)]
    pairs = sorted(
        ((heading_similarity(p[1], r[1]), i, j) for i, p in enumerate(pred) for j, r in enumerate(ref)),
        reverse=True,
    )
    used_p: set[int] = set()
    used_r: set[int] = set()
    matched = []
    for score, i, j in pairs:
        if score < threshold:
            break
        if i in used_p or j in used_r:
            continue
        used_p.add(i)
        used_r.add(j)
        matched.append((pred[i][0], ref[j][0]))
    precision = len(matched) / len(pred) if pred else 0.0
    recall = len(matched) / len(ref) if ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "matched": matched,
        "missed": [r[0] for j, r in enumerate(ref) if j not in used_r],
        "extra": [p[0] for i, p in enumerate(pred) if i not in used_p],
    }
