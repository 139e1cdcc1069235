"""Pseudo-queries made from the corpus itself, for the documents no training query points at.

Two kinds, both without a model (so they cost nothing but training steps):

- ``titles``: a document's title as the query, its body (without the title) as the
  positive. Claims and titles are both short declarative statements about one finding, and
  the body must be matched by meaning, not by copying the title's words.
- ``inverse_cloze`` (Lee et al., 2019): one sentence of the body as the query, the body
  without that sentence as the positive.

The pairs join the human pairs before mining, so they get mined hard negatives too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by a capital, digit or bracket."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def title_pair(doc: Mapping[str, str], min_words: int) -> dict[str, str] | None:
    """(title -> body), or None when the title is short or the body empty."""
    title, body = (doc.get("title") or "").strip(), (doc.get("text") or "").strip()
    if len(title.split()) < min_words or not body:
        return None
    return {"query": title, "document": body}


def inverse_cloze_pair(text: str, min_words: int, rng: random.Random) -> dict[str, str] | None:
    """(one sentence -> the rest of the text), or None for texts of fewer than 3 sentences."""
    sentences = split_sentences(text)
    candidates = [i for i, s in enumerate(sentences) if len(s.split()) >= min_words]
    if len(sentences) < 3 or not candidates:
        return None
    pick = rng.choice(candidates)
    rest = " ".join(s for i, s in enumerate(sentences) if i != pick)
    return {"query": sentences[pick], "document": rest}


def pseudo_pairs(
    corpus: Mapping[str, Mapping[str, str]],
    kind: str,
    exclude: Iterable[str] = (),
    max_pairs: int = 1000,
    min_words: int = 4,
    seed: int = 42,
) -> list[dict[str, str]]:
    """Pseudo (query, document) pairs for the documents of ``corpus`` not in ``exclude``.

    Args:
        corpus: doc id -> {"title": ..., "text": ...} (a BEIR corpus; for plain texts,
            give {"title": "", "text": text}).
        kind: "titles" or "inverse_cloze" ("none" returns no pairs).
        exclude: ids of documents that already have a training query.
        max_pairs: keep at most this many (a seeded sample of the documents).
        min_words: shortest title / query sentence kept.
        seed: the sample and the sentence choice.

    Returns:
        Pairs with "query", "document" and "doc_id".
    """
    if kind == "none" or max_pairs == 0:
        return []
    if kind not in ("titles", "inverse_cloze"):
        raise ValueError(f"unknown pseudo-query kind {kind!r} (none, titles, inverse_cloze)")
    excluded = set(exclude)
    ids = sorted(d for d in corpus if d not in excluded)
    rng = random.Random(seed)
    rng.shuffle(ids)
    pairs: list[dict[str, str]] = []
    for doc_id in ids:
        doc = corpus[doc_id]
        if kind == "titles":
            pair = title_pair(doc, min_words)
        else:
            pair = inverse_cloze_pair((doc.get("text") or "").strip(), min_words, rng)
        if pair is not None:
            pairs.append({**pair, "doc_id": doc_id})
            if len(pairs) >= max_pairs:
                break
    return pairs
