"""Retrieval quality of a model against BM25, and of their fusion, on labelled queries.

All metrics come from :mod:`embshared.evaluate` (one implementation for the workspace);
this module reads the queries and judgements, builds the score functions over the same
records, and writes the report (JSON, and the Markdown table beside it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from embedding_model.embedder import JsonEmbedder
from embedding_model.records import RecordSet
from embedding_model.retrieval import FusionSettings
from embshared.evaluate import dense_score_fn, evaluate_retrieval
from embshared.files import write_json, write_text
from embshared.fusion import FUSIONS
from embshared.io import DataError, read_records
from embshared.metrics import parse_metric
from embshared.search import BM25Index

DEFAULT_METRICS = ("recall@1", "recall@10", "recall@100", "mrr@10", "ndcg@10")


def metric_names(text: str) -> list[str]:
    """``"ndcg@10, recall@5"`` -> ``["ndcg@10", "recall@5"]``, each checked.

    Raises:
        ValueError: an unknown metric, or none given.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        parse_metric(name)
    if not names:
        raise ValueError("no metric given")
    return names


def load_queries(
    path: str | os.PathLike, id_field: str = "_id", text_field: str = "text", skip_invalid: bool = False
) -> dict[str, str]:
    """query id -> text from a JSONL/JSON/CSV file (BEIR ``queries.jsonl`` by default)."""
    records = read_records(path, skip_invalid=skip_invalid)
    queries: dict[str, str] = {}
    for index, record in enumerate(records):
        line = records.line_of(index)
        for key in (id_field, text_field):
            if key not in record:
                raise DataError(path, f"field '{key}' missing", line)
        text = str(record[text_field] or "").strip()
        if not text:
            if skip_invalid:
                continue
            raise DataError(path, f"field '{text_field}' is empty", line)
        queries[str(record[id_field])] = text
    return queries


def check_qrels(
    qrels: Mapping[str, Mapping[str, int]],
    queries: Mapping[str, str],
    doc_ids: Sequence[str],
    source: str,
    skip_invalid: bool = False,
) -> dict[str, dict[str, int]]:
    """Qrels restricted to known queries and documents; an unknown id is an error unless skipped."""
    known_docs = set(doc_ids)
    out: dict[str, dict[str, int]] = {}
    for qid, rels in qrels.items():
        if qid not in queries:
            if skip_invalid:
                continue
            raise DataError(source, f"query id '{qid}' is not among the queries")
        for did, grade in rels.items():
            if did not in known_docs:
                if skip_invalid:
                    continue
                raise DataError(source, f"document id '{did}' is not among the records")
            out.setdefault(qid, {})[did] = grade
    if not any(g > 0 for rels in out.values() for g in rels.values()):
        raise DataError(source, "no relevant (grade > 0) judgement left for the given queries and records")
    return out


def check_unique_ids(records: RecordSet) -> None:
    """Record ids must name one record each."""
    seen: dict[str, int] = {}
    for record_id, line in zip(records.ids, records.lines):
        if record_id in seen:
            raise DataError(records.path, f"id '{record_id}' repeats the record of line {seen[record_id]}", line)
        seen[record_id] = line


def evaluate_systems(
    embedder: JsonEmbedder,
    records: RecordSet,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    names: Sequence[str] = DEFAULT_METRICS,
    doc_embeddings: np.ndarray | None = None,
    show_progress: bool = False,
) -> dict[str, dict[str, float]]:
    """BM25, the model alone, and both fusions of the two (RRF and convex) on the same records and queries.

    Args:
        embedder: the trained model; its config holds the fusion settings.
        records: the corpus; ``records.ids`` must match the qrels' document ids.
        queries: query id -> text.
        qrels: query id -> {document id: grade}.
        names: metrics, e.g. "ndcg@10".
        doc_embeddings: the records' embeddings if already computed (e.g. from the cache).

    Returns:
        {system: {metric: value}}; the hybrid rows are named after their fusion settings, and
        the one ``search --hybrid`` uses is marked.
    """
    check_unique_ids(records)
    doc_ids = list(records.ids)
    corpus = dict(zip(doc_ids, records.plain_texts()))
    if doc_embeddings is None:
        doc_embeddings = embedder.embed_segments(records.segments, show_progress=show_progress)
    dense = dense_score_fn(embedder.embed_queries, doc_embeddings, metric="dot")
    bm25_index = BM25Index().index(doc_ids, [corpus[d] for d in doc_ids])
    bm25 = bm25_index.score_matrix
    systems = {"BM25": bm25, "jsonembed": dense}
    configured = FusionSettings.from_config(embedder.cfg)
    ngrams = (
        configured.ngram_index(doc_ids, [corpus[d] for d in doc_ids]).score_matrix if configured.uses_ngrams else None
    )
    for method in FUSIONS:
        settings = dataclasses.replace(configured, method=method)
        mark = " (search --hybrid)" if method == configured.method else ""
        systems[f"jsonembed + BM25 ({settings.label()}){mark}"] = settings.score_fn(
            dense, bm25, ngrams, bm25_index.knows_all_terms
        )
    return {
        system: evaluate_retrieval(queries, corpus, qrels, fn, names=list(names), doc_ids=doc_ids)
        for system, fn in systems.items()
    }


def write_evaluation(
    output: str | os.PathLike,
    model: str,
    data: str,
    results: Mapping[str, Mapping[str, float]],
    judged_queries: int,
    table: str,
) -> None:
    """``output`` as JSON (model, data, number of judged queries, results) and the table as ``.md`` beside it."""
    output = Path(output)
    write_json(output, {"model": model, "data": data, "queries": judged_queries, "results": results})
    write_text(output.with_suffix(".md"), table + "\n")
