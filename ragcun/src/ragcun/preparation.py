"""Training data from raw documents (inverse cloze task) or a CSV, split by document.

The public project made a pseudo-query from the first sentence of a document and kept
that sentence in the positive, so the model learned string matching. Here a sampled
sentence becomes the query and every sentence used as a query is removed from its
document's passage (inverse cloze task, Lee et al. 2019, without the 10% of kept
sentences); negatives are passages of other documents of the same split; and the
train/val/test split is by document, so no document feeds two splits.

Outputs (the layout of the public project's guide):
    train.json, val.json    -- [{"query", "positive"[, "negative"], "doc_id"}]
    test_eval.json          -- {"corpus": [...], "corpus_ids": [...], "queries": [...],
                                "relevance": [[corpus index, ...], ...]}
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embshared.io import DataError, normalise_examples, read_records, read_table

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) and
# whitespace, before a capital letter, digit or opening quote/bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences with a punctuation rule (no model or download needed)."""
    text = " ".join(text.split())
    if not text:
        return []
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        out.append(text[start : match.start() + len(match.group(0).rstrip())].strip())
        start = match.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


@dataclass
class Document:
    """A source document: id, optional title, and its sentences."""

    doc_id: str
    title: str
    sentences: list[str]

    def passage(self, removed: set[str] = frozenset()) -> str:
        """Title and the sentences not in ``removed``, as one text."""
        kept = [s for s in self.sentences if s not in removed]
        return " ".join([self.title, *kept]).strip() if self.title else " ".join(kept)


def read_documents(path: str | os.PathLike) -> list[Document]:
    """Read documents: JSONL/JSON records with ``text`` (and optional ``title``, ``_id``/``id``),
    e.g. a BEIR corpus, or a plain text file with one document per line."""
    path = Path(path)
    documents: list[Document] = []
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        records = read_records(path)
        for index, record in enumerate(records):
            line = records.line_of(index)
            text = record.get("text")
            if not isinstance(text, str):
                what = "missing" if text is None else f"not a string ({type(text).__name__})"
                raise DataError(path, f"field 'text' {what}", line)
            title = record.get("title") or ""
            if not isinstance(title, str):
                raise DataError(path, f"field 'title' is not a string ({type(title).__name__})", line)
            doc_id = str(record.get("_id", record.get("id", f"doc{line}")))
            sentences = split_sentences(text)
            if sentences or title.strip():
                documents.append(Document(doc_id, title.strip(), sentences))
    else:
        if not path.is_file():
            raise DataError(path, "no such file")
        with open(path, encoding="utf-8") as handle:
            for lineno, raw in enumerate(handle, start=1):
                if raw.strip():
                    documents.append(Document(f"line{lineno}", "", split_sentences(raw)))
    if not documents:
        raise DataError(path, "no documents found")
    return documents


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate train/val/test fractions: three values in [0, 1] that sum to 1 (within 1e-6)."""
    if len(fractions) != 3:
        raise ValueError(f"split needs 3 fractions (train val test), got {len(fractions)}")
    if any(f < 0 or f > 1 for f in fractions):
        raise ValueError(f"split fractions must lie in [0, 1], got {list(fractions)}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {' + '.join(map(str, fractions))} = {sum(fractions):g}")
    if fractions[0] == 0:
        raise ValueError("the train fraction must be positive")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def split_groups(groups: Sequence[str], fractions: Sequence[float], rng: random.Random) -> dict[str, str]:
    """Assign each distinct group (document) to train/val/test in the given proportions.

    The counts are ``round(cumulative fraction * n)`` boundaries, so they differ from the
    exact fractions by less than one group.
    """
    fractions = check_fractions(fractions)
    unique = list(dict.fromkeys(groups))
    rng.shuffle(unique)
    n = len(unique)
    bounds = [round(n * fractions[0]), round(n * (fractions[0] + fractions[1])), n]
    out: dict[str, str] = {}
    start = 0
    for name, end in zip(SPLIT_NAMES, bounds):
        for group in unique[start:end]:
            out[group] = name
        start = end
    return out


def ict_pairs(
    documents: Sequence[Document],
    num_pairs: int | None,
    rng: random.Random,
    min_words: int = 5,
    max_query_fraction: float = 0.5,
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Inverse cloze pairs: a sentence as the query, its document without it as the positive.

    Args:
        documents: the source documents.
        num_pairs: how many pairs (None: one per usable document). With more pairs than
            documents, several sentences of one document become queries.
        rng: the random source.
        min_words: shortest sentence used as a query.
        max_query_fraction: at most this fraction of a document's sentences become queries
            (and at least one sentence always stays in the passage).

    Returns:
        (pairs, passages): pairs ``{"query", "positive", "doc_id"}``; the passage of every
        document (its text without any of its query sentences), the positive of its pairs.
    """
    capacity: dict[str, list[int]] = {}
    for doc in documents:
        eligible = [i for i, s in enumerate(doc.sentences) if len(s.split()) >= min_words]
        limit = min(len(eligible), math.floor(len(doc.sentences) * max_query_fraction), len(doc.sentences) - 1)
        if limit > 0:
            rng.shuffle(eligible)
            capacity[doc.doc_id] = eligible[:limit]
    if not capacity:
        raise ValueError(f"no document has 2 or more sentences with one of at least {min_words} words")
    target = num_pairs if num_pairs is not None else len(capacity)
    counts = dict.fromkeys(capacity, 0)
    order = list(capacity)
    rng.shuffle(order)
    assigned = 0
    while assigned < target:
        progressed = False
        for doc_id in order:
            if assigned >= target:
                break
            if counts[doc_id] < len(capacity[doc_id]):
                counts[doc_id] += 1
                assigned += 1
                progressed = True
        if not progressed:
            logger.warning("only %d pairs possible (asked for %d)", assigned, target)
            break
    pairs: list[dict[str, str]] = []
    passages: dict[str, str] = {}
    dropped = 0
    for doc in documents:
        chosen = [doc.sentences[i] for i in capacity.get(doc.doc_id, [])[: counts.get(doc.doc_id, 0)]]
        passage = doc.passage(set(chosen))
        passages[doc.doc_id] = passage
        for query in chosen:
            if query in passage:  # the sentence also occurs inside another sentence or the title
                dropped += 1
                continue
            pairs.append({"query": query, "positive": passage, "doc_id": doc.doc_id})
    if dropped:
        logger.info("dropped %d pseudo-queries that still occur in their passage", dropped)
    rng.shuffle(pairs)
    return pairs, passages


def add_negatives(
    pairs: list[dict[str, str]], passages: dict[str, str], split_of: dict[str, str], rng: random.Random
) -> int:
    """Give each pair the passage of a random other document of its split as ``negative``.

    Returns the number of pairs left without a negative (a split with one document).
    """
    by_split: dict[str, list[str]] = {}
    for doc_id, name in split_of.items():
        by_split.setdefault(name, []).append(doc_id)
    missing = 0
    for pair in pairs:
        pool = by_split.get(split_of[pair["doc_id"]], [])
        if len(pool) < 2:
            missing += 1
            continue
        other = pair["doc_id"]
        while other == pair["doc_id"]:
            other = rng.choice(pool)
        pair["negative"] = passages[other]
    return missing


def eval_set(pairs: Sequence[dict[str, str]], corpus: dict[str, str]) -> dict[str, Any]:
    """The test_eval.json structure: corpus texts, queries and their relevant corpus indices.

    Identical query texts are merged (their relevant documents united).
    """
    corpus_ids = list(corpus)
    index = {doc_id: i for i, doc_id in enumerate(corpus_ids)}
    relevant: dict[str, set[int]] = {}
    for pair in pairs:
        relevant.setdefault(pair["query"], set()).add(index[pair["doc_id"]])
    queries = list(relevant)
    return {
        "corpus": [corpus[d] for d in corpus_ids],
        "corpus_ids": corpus_ids,
        "queries": queries,
        "relevance": [sorted(relevant[q]) for q in queries],
    }


def read_csv_examples(path: str | os.PathLike) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Rows of a ``query,positive[,negative]`` CSV as pairs grouped by positive document.

    Returns:
        (pairs, corpus): pairs carry a ``doc_id`` naming their positive (and a
        ``negative_id``); the corpus maps doc ids to texts, negatives included (they serve
        as distractors in evaluation).
    """
    examples = normalise_examples(read_table(path))
    if examples.format == "similarity":
        raise DataError(path, "expected columns query,positive[,negative], got a similarity table")
    corpus: dict[str, str] = {}
    ids: dict[str, str] = {}

    def doc_id(text: str) -> str:
        if text not in ids:
            ids[text] = f"d{len(ids)}"
            corpus[ids[text]] = text
        return ids[text]

    pairs = []
    for row in examples.rows:
        positive = row.get("positive", row.get("document"))
        pair = {"query": row["query"], "positive": positive, "doc_id": doc_id(positive)}
        if "negative" in row:
            pair["negative"] = row["negative"]
            pair["negative_id"] = doc_id(row["negative"])
        pairs.append(pair)
    return pairs, corpus
