"""Retrieval metrics as pure functions of (ranked ids, relevance).

``ranked`` is the system's ranking, best first. ``relevance`` maps document id to a graded
relevance; a document is relevant when its grade is > 0. Definitions follow
sentence-transformers' ``InformationRetrievalEvaluator`` (and, for graded NDCG, trec_eval's
linear gain), so numbers are comparable with published ones:

- accuracy@k: 1 if any relevant document is in the top k.
- precision@k: relevant documents in the top k, divided by k.
- recall@k: relevant documents in the top k, divided by all relevant documents.
- MRR@k: 1 / rank of the first relevant document in the top k (0 if none).
- NDCG@k: DCG of the top k (gain = grade, discount log2(rank + 1)) over the ideal DCG.
- MAP@k: the sum of precision at each relevant hit in the top k, over min(k, #relevant).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

DEFAULT_KS: dict[str, tuple[int, ...]] = {
    "accuracy": (1, 5, 10),
    "precision": (1, 5, 10),
    "recall": (1, 5, 10, 100),
    "mrr": (10,),
    "ndcg": (10,),
    "map": (100,),
}


def _relevant(relevance: Mapping[str, float]) -> set[str]:
    return {doc for doc, grade in relevance.items() if grade > 0}


def accuracy_at_k(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    relevant = _relevant(relevance)
    return float(any(doc in relevant for doc in ranked[:k]))


def precision_at_k(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    relevant = _relevant(relevance)
    return sum(doc in relevant for doc in ranked[:k]) / k


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    relevant = _relevant(relevance)
    if not relevant:
        return 0.0
    return sum(doc in relevant for doc in ranked[:k]) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    relevant = _relevant(relevance)
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain of gains listed in rank order."""
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    gains = [max(float(relevance.get(doc, 0)), 0.0) for doc in ranked[:k]]
    ideal = sorted((float(g) for g in relevance.values() if g > 0), reverse=True)[:k]
    best = dcg(ideal)
    return dcg(gains) / best if best > 0 else 0.0


def average_precision_at_k(ranked: Sequence[str], relevance: Mapping[str, float], k: int) -> float:
    relevant = _relevant(relevance)
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            hits += 1
            total += hits / rank
    return total / min(k, len(relevant))


METRICS = {
    "accuracy": accuracy_at_k,
    "precision": precision_at_k,
    "recall": recall_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
}


def parse_metric(name: str) -> tuple[str, int]:
    """Split ``"ndcg@10"`` into ("ndcg", 10); raises ValueError for unknown metrics."""
    base, _, k = name.lower().partition("@")
    if base not in METRICS or not k.isdigit() or int(k) <= 0:
        known = ", ".join(f"{m}@k" for m in METRICS)
        raise ValueError(f"unknown metric '{name}' (known: {known})")
    return base, int(k)


def metric_names(ks: Mapping[str, Iterable[int]] | None = None) -> list[str]:
    """``["accuracy@1", ..., "map@100"]`` for a {metric: ks} mapping (default DEFAULT_KS)."""
    ks = DEFAULT_KS if ks is None else ks
    return [f"{name}@{k}" for name, values in ks.items() for k in values]


def compute_metrics(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, float]],
    names: Iterable[str] | None = None,
) -> dict[str, float]:
    """Mean of each metric over the queries of ``qrels`` that have a relevant document.

    Args:
        run: query id -> ranked doc ids (a query missing from the run scores 0).
        qrels: query id -> {doc id: grade}.
        names: metric names such as "ndcg@10" (default: DEFAULT_KS).

    Returns:
        {name: mean value}, in the order of ``names``.
    """
    parsed = [(name, *parse_metric(name)) for name in (names or metric_names())]
    query_ids = [q for q, rels in qrels.items() if _relevant(rels)]
    if not query_ids:
        raise ValueError("no query has a relevant document")
    results: dict[str, float] = {}
    for name, base, k in parsed:
        fn = METRICS[base]
        values = [fn(list(run.get(q, ())), qrels[q], k) for q in query_ids]
        results[name] = float(np.mean(values))
    return results


def per_query(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, float]],
    name: str,
) -> dict[str, float]:
    """One metric for each query (for significance tests and error analysis)."""
    base, k = parse_metric(name)
    fn = METRICS[base]
    return {q: fn(list(run.get(q, ())), rels, k) for q, rels in qrels.items() if _relevant(rels)}


def similarity_correlations(predicted: Sequence[float], gold: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation of predicted similarities with gold scores (STS-style)."""
    from scipy.stats import pearsonr, spearmanr

    if len(predicted) != len(gold) or len(gold) < 2:
        raise ValueError("need at least two (predicted, gold) pairs of equal length")
    return {"pearson": float(pearsonr(predicted, gold)[0]), "spearman": float(spearmanr(predicted, gold)[0])}
