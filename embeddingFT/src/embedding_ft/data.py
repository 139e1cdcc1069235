"""Training data: load any supported dataset, split it by query, and build the held-out eval set.

Formats come from :mod:`embshared.io`: (query, document) pairs, (query, positive, negative)
triplets, (doc1, doc2, similarity) pairs, and BEIR folders (qrels give the positives). The
split is by query: every example of a query lands on the same side, so no query is seen in
training and evaluated too.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from embshared.io import (
    BeirDataset,
    DataError,
    Examples,
    Records,
    document_text,
    is_sts_file,
    load_beir,
    normalise_examples,
    read_records,
    sts_examples,
)
from embshared.runtime import is_offline

logger = logging.getLogger(__name__)

#: the field that identifies a "query" in each format (the unit of the split)
GROUP_KEY = {"pairs": "query", "triplets": "query", "similarity": "doc1"}


@dataclass
class EvalSet:
    """What the held-out split is evaluated on.

    Attributes:
        kind: "retrieval" (queries ranked against a corpus) or "similarity" (Spearman of
            cosine similarity against gold scores).
        queries, corpus, qrels: the retrieval task (ids -> texts, query id -> {doc id: grade}).
        pairs: (text1, text2, gold score) for the similarity task.
    """

    kind: Literal["retrieval", "similarity"]
    queries: dict[str, str] = field(default_factory=dict)
    corpus: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    pairs: list[tuple[str, str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries) if self.kind == "retrieval" else len(self.pairs)


@dataclass
class Prepared:
    """A dataset ready for training.

    Attributes:
        train, test: the examples on each side of the split.
        eval_set: the held-out evaluation task built from ``test``.
        mining_texts: candidate document texts for hard-negative mining, without duplicates (a
            list of texts; ``EvalSet.corpus`` is the id -> text mapping the evaluation ranks).
        positives: query text -> every known positive document text (train and test).
        documents: doc id -> {"title", "text"} of a BEIR corpus (None for other data).
    """

    train: Examples
    test: Examples
    eval_set: EvalSet
    mining_texts: list[str]
    positives: dict[str, set[str]]
    documents: dict[str, dict[str, str]] | None = None

    def full_texts(self) -> dict[str, str]:
        """doc id -> the text models see ("title text"), for a BEIR corpus."""
        return {d: document_text(doc) for d, doc in (self.documents or {}).items()}

    def replace(self, **changes) -> Prepared:
        return dataclasses.replace(self, **changes)


def load_dataset(name: str, split: str = "train") -> tuple[Examples, BeirDataset | None]:
    """Load examples from a local file or BEIR folder, or from the `datasets` hub when online."""
    path = Path(name).expanduser()
    if path.is_dir():
        beir = load_beir(path, split=split)
        return beir.to_pairs(), beir
    if path.exists():
        if is_sts_file(path):
            return sts_examples(path), None
        return normalise_examples(read_records(path)), None
    if path.suffix or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise DataError(name, "no such file or folder")
    if is_offline():
        raise DataError(name, "no such file or folder, and the `datasets` hub is offline (HF_HUB_OFFLINE=1)")
    import datasets

    hub = datasets.load_dataset(name, split=split)
    rows = [dict(row) for row in hub]
    return normalise_examples(Records(rows, path=f"{name}[{split}]")), None


def split_by_query(
    examples: Examples, test_size: float, seed: int, sample_size: int | None = None
) -> tuple[Examples, Examples]:
    """Split examples so that all rows of a query fall on one side.

    Args:
        examples: normalised examples.
        test_size: fraction of queries (< 1) or number of queries (>= 1) held out.
        seed: shuffles the queries.
        sample_size: keep whole queries, in shuffled order, until this many rows.

    Returns:
        (train, test) examples.
    """
    key = GROUP_KEY[examples.format]
    groups: dict[str, list[dict]] = {}
    for row in examples.rows:
        groups.setdefault(row[key], []).append(row)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    if sample_size is not None:
        kept, total = [], 0
        for k in keys:
            if total >= sample_size:
                break
            kept.append(k)
            total += len(groups[k])
        keys = kept
    n_test = round(test_size * len(keys)) if test_size < 1 else int(test_size)
    if test_size > 0:
        n_test = max(n_test, 1)
    if n_test >= len(keys):
        raise DataError(
            examples.source,
            f"test_size={test_size} leaves no training data ({len(keys)} distinct {key} value(s))",
        )
    test_keys, train_keys = keys[:n_test], keys[n_test:]

    def subset(ks: list[str]) -> Examples:
        return Examples(examples.format, [row for k in ks for row in groups[k]], examples.source)

    return subset(train_keys), subset(test_keys)


def _document_fields(fmt: str) -> tuple[str, ...]:
    return ("document",) if fmt == "pairs" else ("positive", "negative")


def build_eval_set(examples: Examples, test: Examples, beir: BeirDataset | None) -> EvalSet:
    """The held-out task: BEIR qrels against the BEIR corpus; for pairs and triplets, the test
    queries against every document of the dataset; for similarity, the test pairs."""
    if examples.format == "similarity":
        return EvalSet("similarity", pairs=[(r["doc1"], r["doc2"], r["similarity"]) for r in test.rows])
    if beir is not None:
        query_ids = list(dict.fromkeys(r["query_id"] for r in test.rows))
        return EvalSet(
            "retrieval",
            queries={q: beir.queries[q] for q in query_ids},
            corpus=beir.corpus_texts(),
            qrels={q: dict(beir.qrels[q]) for q in query_ids},
        )
    doc_ids: dict[str, str] = {}
    for row in examples.rows:
        for name in _document_fields(examples.format):
            doc_ids.setdefault(row[name], f"d{len(doc_ids)}")
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for row in test.rows:
        qid = query_ids.setdefault(row["query"], f"q{len(query_ids)}")
        positive = row["document"] if examples.format == "pairs" else row["positive"]
        qrels.setdefault(qid, {})[doc_ids[positive]] = 1
    return EvalSet(
        "retrieval",
        queries={qid: text for text, qid in query_ids.items()},
        corpus={did: text for text, did in doc_ids.items()},
        qrels=qrels,
    )


def mining_corpus(eval_set: EvalSet) -> list[str]:
    """Candidate negatives: every document of the retrieval corpus, without duplicate texts."""
    return list(dict.fromkeys(eval_set.corpus.values()))


def known_positives(examples: Examples) -> dict[str, set[str]]:
    """query text -> the texts of all its positive documents."""
    positives: dict[str, set[str]] = {}
    if examples.format == "similarity":
        return positives
    field_name = "document" if examples.format == "pairs" else "positive"
    for row in examples.rows:
        positives.setdefault(row["query"], set()).add(row[field_name])
    return positives


def prepare(
    name: str,
    split: str = "train",
    test_size: float = 0.2,
    seed: int = 42,
    sample_size: int | None = None,
    test_name: str | None = None,
    test_split: str = "test",
) -> Prepared:
    """Load ``name``, split it by query (or evaluate on ``test_name``) and build the eval set and mining corpus."""
    examples, beir = load_dataset(name, split)
    if examples.dropped_duplicates:
        logger.info("dropped %d exact duplicate example(s)", examples.dropped_duplicates)
    if test_name:
        return _with_test_dataset(examples, beir, test_name, test_split, seed, sample_size)
    train, test = split_by_query(examples, test_size, seed, sample_size)
    logger.info(
        "%s: %d %s examples -> %d train / %d test (split by %s, seed %d)",
        name,
        len(examples.rows),
        examples.format,
        len(train.rows),
        len(test.rows),
        GROUP_KEY[examples.format],
        seed,
    )
    eval_set = build_eval_set(examples, test, beir)
    documents = beir.corpus if beir is not None else None
    return Prepared(train, test, eval_set, mining_corpus(eval_set), known_positives(examples), documents)


def _with_test_dataset(
    examples: Examples, beir: BeirDataset | None, test_name: str, test_split: str, seed: int, sample_size: int | None
) -> Prepared:
    """All of ``examples`` train; the held-out task is ``test_name`` (same format)."""
    test_examples, test_beir = load_dataset(test_name, test_split)
    if test_examples.format != examples.format:
        raise DataError(test_name, f"format {test_examples.format} differs from the training data's {examples.format}")
    train = split_by_query(examples, 0, seed, sample_size)[0]
    if test_beir is not None:
        eval_set = build_eval_set(test_examples, test_examples, test_beir)
    else:
        eval_set = build_eval_set(
            Examples(examples.format, examples.rows + test_examples.rows, examples.source), test_examples, None
        )
    logger.info("%d training examples; evaluating on %s (%d)", len(train.rows), test_name, len(eval_set))
    positives = known_positives(Examples(examples.format, examples.rows + test_examples.rows, examples.source))
    documents = beir.corpus if beir is not None else None
    return Prepared(
        train, test_examples, eval_set, mining_corpus(eval_set) or _documents_of(train), positives, documents
    )


def _documents_of(examples: Examples) -> list[str]:
    if examples.format == "similarity":
        return []
    return list(dict.fromkeys(r["document"] if examples.format == "pairs" else r["positive"] for r in examples.rows))


def from_examples(train: Examples, test: Examples) -> Prepared:
    """Prepare explicit train/test examples (e.g. split by paper upstream)."""
    if train.format != test.format:
        raise DataError(test.source, f"test format {test.format} differs from train format {train.format}")
    combined = Examples(train.format, train.rows + test.rows, train.source)
    eval_set = build_eval_set(combined, test, None)
    return Prepared(train, test, eval_set, mining_corpus(eval_set), known_positives(combined))
