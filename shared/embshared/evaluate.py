"""One evaluator: rank a corpus for a set of queries with any scoring function, then score it.

A scoring function takes a batch of query texts and returns a (batch, n_docs) array of
scores against the corpus in a fixed order; higher is better (pass ``-distance`` for L2).
Ties are broken by ascending document id, as sentence-transformers does, so results are
deterministic and comparable with its ``InformationRetrievalEvaluator``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from embshared.metrics import compute_metrics, metric_names, parse_metric, per_query

ScoreFn = Callable[[list[str]], np.ndarray]
EncodeFn = Callable[[list[str]], np.ndarray]


def top_k(scores: np.ndarray, doc_ids: Sequence[str], k: int, id_order: np.ndarray | None = None) -> list[list[str]]:
    """The ``k`` best doc ids of each row of ``scores`` (batch, n_docs), ties by ascending id.

    Args:
        scores: (batch, n_docs) scores, higher is better.
        doc_ids: the id of each column.
        k: how many to return per row.
        id_order: rank of each doc id in sorted order (computed if not given).
    """
    scores = np.asarray(scores)
    n_docs = scores.shape[1]
    k = min(k, n_docs)
    if id_order is None:
        id_order = np.argsort(np.argsort(np.asarray(doc_ids, dtype=object)))
    out: list[list[str]] = []
    for row in scores:
        if k < n_docs:
            kth = np.partition(row, n_docs - k)[n_docs - k]  # the k-th largest score
            candidates = np.flatnonzero(row >= kth)  # includes every doc tied at the boundary
        else:
            candidates = np.arange(n_docs)
        order = np.lexsort((id_order[candidates], -row[candidates]))[:k]
        out.append([doc_ids[i] for i in candidates[order]])
    return out


def rank_corpus(
    queries: Mapping[str, str],
    doc_ids: Sequence[str],
    score_fn: ScoreFn,
    k: int = 100,
    batch_size: int = 256,
    show_progress: bool = False,
) -> dict[str, list[str]]:
    """Rank the corpus for every query; returns query id -> top-k doc ids."""
    query_ids = list(queries)
    id_order = np.argsort(np.argsort(np.asarray(doc_ids, dtype=object)))
    run: dict[str, list[str]] = {}
    starts = range(0, len(query_ids), batch_size)
    for start in tqdm(starts, desc="ranking", disable=not show_progress):
        batch = query_ids[start : start + batch_size]
        scores = np.asarray(score_fn([queries[q] for q in batch]))  # (batch, n_docs)
        if scores.shape != (len(batch), len(doc_ids)):
            raise ValueError(f"score function returned shape {scores.shape}, expected {(len(batch), len(doc_ids))}")
        for qid, ranked in zip(batch, top_k(scores, doc_ids, k, id_order)):
            run[qid] = ranked
    return run


def evaluate_retrieval(
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, float]],
    score_fn: ScoreFn | None = None,
    names: Sequence[str] | None = None,
    batch_size: int = 256,
    show_progress: bool = False,
    doc_ids: Sequence[str] | None = None,
) -> dict[str, float]:
    """Rank ``corpus`` for ``queries`` with ``score_fn`` and compute retrieval metrics.

    Args:
        queries: query id -> text (queries without relevant qrels are ignored).
        corpus: doc id -> text; the score function's columns follow this order
            (or ``doc_ids`` when given).
        qrels: query id -> {doc id: grade}.
        score_fn: query texts -> (batch, n_docs) scores.
        names: metrics such as "ndcg@10" (default: metrics.DEFAULT_KS).

    Returns:
        {metric name: mean over queries}.
    """
    names = list(names or metric_names())
    depth = max(parse_metric(n)[1] for n in names)
    evaluated = {q: t for q, t in queries.items() if q in qrels}
    ids = list(doc_ids) if doc_ids is not None else list(corpus)
    run = rank_corpus(evaluated, ids, score_fn, k=depth, batch_size=batch_size, show_progress=show_progress)
    return compute_metrics(run, {q: qrels[q] for q in evaluated}, names)


def evaluate_scores(
    scores: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, float]],
    names: Sequence[str],
    per_query_metric: str | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Rank a score matrix and score it: the one evaluation of BM25, dense and hybrid alike.

    Rows are addressed by query id, never by query text, so two queries with the same text
    are two rows. Queries without a relevant qrel are ignored, as in :func:`evaluate_retrieval`.

    Args:
        scores: (n_queries, n_docs), row i for ``query_ids[i]``, column j for ``doc_ids[j]``.
        query_ids, doc_ids: the ids of the rows and columns.
        qrels: query id -> {doc id: grade}.
        names: metrics such as "ndcg@10".
        per_query_metric: the metric kept per query (default: the first of ``names``).

    Returns:
        ({metric: mean over the evaluated queries}, {query id: per_query_metric}); the mean
        of the per-query values equals the reported mean of that metric.
    """
    scores = np.asarray(scores)
    if scores.shape != (len(query_ids), len(doc_ids)):
        raise ValueError(f"score matrix of shape {scores.shape}, expected {(len(query_ids), len(doc_ids))}")
    names = list(names)
    per_query_metric = per_query_metric or names[0]
    depth = max(parse_metric(n)[1] for n in [*names, per_query_metric])
    rows = [i for i, q in enumerate(query_ids) if q in qrels]
    id_order = np.argsort(np.argsort(np.asarray(doc_ids, dtype=object)))
    run: dict[str, list[str]] = {}
    for start in range(0, len(rows), 256):
        batch = rows[start : start + 256]
        for i, ranked in zip(batch, top_k(scores[batch], doc_ids, depth, id_order)):
            run[query_ids[i]] = ranked
    evaluated = {query_ids[i]: qrels[query_ids[i]] for i in rows}
    return compute_metrics(run, evaluated, names), per_query(run, evaluated, per_query_metric)


def dense_score_fn(encode: EncodeFn, doc_embeddings: np.ndarray, metric: str = "cosine") -> ScoreFn:
    """A score function over precomputed document embeddings.

    Args:
        encode: query texts -> (batch, dim) embeddings.
        doc_embeddings: (n_docs, dim).
        metric: "cosine" (normalises both sides), "dot", or "l2" (negative Euclidean distance).
    """
    docs = np.asarray(doc_embeddings, dtype=np.float32)
    if metric == "cosine":
        docs = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
    doc_sq = (docs**2).sum(axis=1)  # (n_docs,)

    def score(texts: list[str]) -> np.ndarray:
        q = np.asarray(encode(texts), dtype=np.float32)  # (batch, dim)
        if metric == "cosine":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            return q @ docs.T
        if metric == "dot":
            return q @ docs.T
        if metric == "l2":
            sq = (q**2).sum(axis=1, keepdims=True) - 2 * q @ docs.T + doc_sq[None, :]
            return -np.sqrt(np.maximum(sq, 0.0))
        raise ValueError(f"unknown metric '{metric}' (cosine, dot, l2)")

    return score


def evaluate_encoder(
    encode: EncodeFn,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, float]],
    names: Sequence[str] | None = None,
    metric: str = "cosine",
) -> dict[str, float]:
    """Encode the corpus once with ``encode`` and evaluate dense retrieval."""
    doc_ids = list(corpus)
    doc_embeddings = encode([corpus[d] for d in doc_ids])
    score_fn = dense_score_fn(encode, doc_embeddings, metric)
    return evaluate_retrieval(queries, corpus, qrels, score_fn, names, doc_ids=doc_ids)


def sentence_transformer_encoder(model, batch_size: int = 64, show_progress: bool = False, **kwargs) -> EncodeFn:
    """An EncodeFn for a SentenceTransformer (numpy output)."""

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=show_progress, **kwargs
        )

    return encode


def format_table(rows: Mapping[str, Mapping[str, float]], names: Sequence[str] | None = None, digits: int = 4) -> str:
    """A Markdown table with one row per system and one column per metric."""
    names = list(names or next(iter(rows.values())).keys())
    lines = ["| system | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for system, values in rows.items():
        cells = [f"{values[n]:.{digits}f}" if n in values else "" for n in names]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
