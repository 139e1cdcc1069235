"""Fusion of rankings and score matrices: the one hybrid (BM25 + dense) implementation.

Two fusions:

- reciprocal-rank fusion (Cormack et al., 2009), ``sum_i w_i / (k + rank_i)`` over each
  ranking's top ``depth``. It ignores scores, so a much weaker ranker moves documents around
  even where the other one is confident.
- the convex fusion ``(1 - w) * z(bm25) + w * z(dense)``, each score z-normalised over all
  documents for the query (Bruch et al., 2023, "An Analysis of Fusion Functions for Hybrid
  Retrieval", find it more accurate than RRF when the two systems differ in quality);
  ``weighted_zscore_fusion`` is the same sum over any number of rankers (jsonembed adds a
  character n-gram ranker).

Everything here is a pure function of numbers and ids; jsonembed's record search and
embeddingFT's index both call it (no library offers these few lines over FAISS + bm25s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

FUSIONS = ("rrf", "convex")


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Fuse rankings by RRF (Cormack et al., 2009): score(d) = sum_i w_i / (k + rank_i(d)).

    Args:
        rankings: each a list of ids, best first (ranks start at 1).
        k: the RRF constant; larger values flatten the difference between top ranks.
        weights: one weight per ranking (default 1 each).

    Returns:
        (id, fused score) pairs, best first; ties by the order of first appearance.
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def ranks_from_scores(scores: np.ndarray, depth: int) -> list[list[int]]:
    """Column indices of the ``depth`` best scores of each row (batch, n_docs), best first."""
    depth = min(depth, scores.shape[1])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]  # (batch, depth), unordered
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
    return np.take_along_axis(top, order, axis=1).tolist()


def zscore_rows(scores: np.ndarray) -> np.ndarray:
    """Each row (batch, n_docs) shifted to mean 0 and scaled to standard deviation 1 (a constant row gives 0)."""
    scores = np.asarray(scores, dtype=np.float32)
    std = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def convex_fusion(dense: np.ndarray, bm25: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * z(bm25) + weight * z(dense), both (batch, n_docs)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the convex fusion's dense weight must be in [0, 1], got {weight}")
    return weighted_zscore_fusion([bm25, dense], [1.0 - weight, weight])


def weighted_zscore_fusion(scores: Sequence[np.ndarray | None], weights) -> np.ndarray:
    """sum_i weights[i] * z(scores[i]): the convex fusion of any number of (batch, n_docs) score matrices.

    ``weights`` is one weight per matrix, or a (batch, n_matrices) array of per-query weights
    (a query-dependent fusion: each row of the result uses its own row of weights). The
    weights must be non-negative and sum to 1 for every query; a component whose weight is
    0 for every query is not computed (its matrix may be None).
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(scores) == 0 or w.shape[-1] != len(scores) or w.ndim not in (1, 2):
        raise ValueError("one weight per score matrix (or one row of them per query), at least one matrix")
    if w.min() < 0 or np.abs(w.sum(axis=-1) - 1.0).max() > 1e-6:
        raise ValueError(f"the convex fusion's weights must be >= 0 and sum to 1, got {w.tolist()}")
    out = None
    for i, matrix in enumerate(scores):
        column = w[..., i]
        if not column.any():
            continue
        scale = float(column) if w.ndim == 1 else column.astype(np.float32)[:, None]  # (batch, 1) per query
        part = scale * zscore_rows(matrix)
        out = part if out is None else out + part
    return out


def convex_score_fn(
    dense_fn: Callable[[list[str]], np.ndarray], bm25_fn: Callable[[list[str]], np.ndarray], weight: float
) -> Callable[[list[str]], np.ndarray]:
    """A score function (query texts -> (batch, n_docs)) for the convex fusion of two others."""
    return lambda texts: convex_fusion(dense_fn(texts), bm25_fn(texts), weight)


def weighted_score_fn(
    score_fns: Sequence[Callable[[list[str]], np.ndarray]], weights: Sequence[float]
) -> Callable[[list[str]], np.ndarray]:
    """A score function for :func:`weighted_zscore_fusion` of several others (weight 0: not called)."""
    pairs = [(fn, w) for fn, w in zip(score_fns, weights, strict=True) if w > 0]
    return lambda texts: weighted_zscore_fusion([fn(texts) for fn, _ in pairs], [w for _, w in pairs])


def rrf_score_fn(
    score_fns: Sequence[Callable[[list[str]], np.ndarray]],
    depth: int = 100,
    k: int = 60,
    floors: Sequence[float | None] | None = None,
    weights: Sequence[float] | None = None,
) -> Callable[[list[str]], np.ndarray]:
    """A score function (query texts -> (batch, n_docs)) whose scores are the RRF of several others.

    Each component contributes its ``depth`` best documents; a document in none of them
    scores 0. Used to evaluate a hybrid with :func:`embshared.evaluate.evaluate_retrieval`.

    Args:
        score_fns: the component score functions.
        depth: how many of each component's best documents are fused.
        k: the RRF constant.
        floors: per component, a score a document must exceed to be ranked at all
            (0 for BM25: a document sharing no term with the query is not a match).
        weights: per component, the weight of its reciprocal ranks (default 1 each).
    """
    floors = list(floors) if floors is not None else [None] * len(score_fns)
    weights = list(weights) if weights is not None else [1.0] * len(score_fns)

    def score(texts: list[str]) -> np.ndarray:
        out = None
        for fn, floor, weight in zip(score_fns, floors, weights):
            scores = np.asarray(fn(texts), dtype=np.float32)  # (batch, n_docs)
            if out is None:
                out = np.zeros_like(scores)
            for row, columns in enumerate(ranks_from_scores(scores, depth)):
                if floor is not None:
                    columns = [c for c in columns if scores[row, c] > floor]
                out[row, columns] += weight / (k + np.arange(1, len(columns) + 1))
        return out

    return score
