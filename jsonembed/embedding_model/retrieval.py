"""Search over records: dense (FAISS inner product), BM25, and their fusion.

Two fusions, chosen by name (``fusion`` in the config):

- ``rrf``: reciprocal-rank fusion (Cormack et al., 2009), ``sum_i w_i / (k + rank_i)``
  over each ranking's top ``rrf_depth``. It ignores scores, so a much weaker ranker moves
  documents around even where BM25 is confident.
- ``convex``: ``(1 - w) * z(bm25) + w * z(cosine)``, each score z-normalised over all
  records for the query (a convex combination of normalised scores, which Bruch et al.,
  2023, "An Analysis of Fusion Functions for Hybrid Retrieval", find more accurate than
  RRF when the two systems differ in quality).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedding_model.embedder import JsonEmbedder
from embedding_model.records import RecordSet
from embshared.evaluate import top_k
from embshared.search import BM25Index, FaissIndex


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
    return (1.0 - weight) * zscore_rows(bm25) + weight * zscore_rows(dense)


def convex_score_fn(
    dense_fn: Callable[[list[str]], np.ndarray], bm25_fn: Callable[[list[str]], np.ndarray], weight: float
) -> Callable[[list[str]], np.ndarray]:
    """A score function (query texts -> (batch, n_docs)) for the convex fusion of two others."""
    return lambda texts: convex_fusion(dense_fn(texts), bm25_fn(texts), weight)


def rrf_score_fn(
    score_fns: Sequence[Callable[[list[str]], np.ndarray]],
    depth: int = 100,
    k: int = 60,
    floors: Sequence[float | None] | None = None,
    weights: Sequence[float] | None = None,
) -> Callable[[list[str]], np.ndarray]:
    """A score function (query texts -> (batch, n_docs)) whose scores are the RRF of several others.

    Each component contributes its ``depth`` best documents; a document in none of them
    scores 0. Used to evaluate ``--hybrid`` with :func:`embshared.evaluate.evaluate_retrieval`.

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


@dataclass
class FusionSettings:
    """How ``--hybrid`` fuses the model with BM25 (see the module docstring)."""

    method: str = "rrf"
    rrf_k: int = 60
    rrf_depth: int = 100
    rrf_dense_weight: float = 1.0
    convex_dense_weight: float = 0.2

    @classmethod
    def from_config(cls, cfg) -> FusionSettings:
        return cls(cfg.fusion, cfg.rrf_k, cfg.rrf_depth, cfg.rrf_dense_weight, cfg.convex_dense_weight)

    def score_fn(self, dense_fn, bm25_fn) -> Callable[[list[str]], np.ndarray]:
        """The fused score function of a dense and a BM25 score function."""
        if self.method == "convex":
            return convex_score_fn(dense_fn, bm25_fn, self.convex_dense_weight)
        return rrf_score_fn(
            [dense_fn, bm25_fn],
            depth=self.rrf_depth,
            k=self.rrf_k,
            floors=[None, 0.0],
            weights=[self.rrf_dense_weight, 1.0],
        )

    def label(self) -> str:
        if self.method == "convex":
            return f"convex, dense weight {self.convex_dense_weight:g}"
        return f"RRF, dense weight {self.rrf_dense_weight:g}"


FUSIONS = ("rrf", "convex")


def fusion_settings(cfg, method: str | None = None, dense_weight: float | None = None) -> FusionSettings:
    """The config's fusion settings, with a method and the model's weight overridden (``--fusion``, ``--dense-weight``)."""
    settings = FusionSettings.from_config(cfg)
    if method is not None:
        settings.method = method
    if dense_weight is not None:
        if settings.method == "convex":
            if not 0 <= dense_weight <= 1:
                raise ValueError(f"the convex fusion's dense weight must be in [0, 1], got {dense_weight}")
            settings.convex_dense_weight = dense_weight
        else:
            settings.rrf_dense_weight = dense_weight
    return settings


@dataclass
class Hit:
    """One search result."""

    index: int  # position of the record in the RecordSet
    id: str
    score: float


class RecordSearch:
    """Searches a set of records embedded by a model, optionally fused with BM25.

    Args:
        embedder: the model (embeds the queries).
        records: the records (their plain text feeds BM25).
        embeddings: (n_records, dim) unit vectors of the records.
        fusion: how ``hybrid`` fuses the two rankings.
    """

    def __init__(
        self,
        embedder: JsonEmbedder,
        records: RecordSet,
        embeddings: np.ndarray,
        fusion: FusionSettings | None = None,
    ):
        self.embedder = embedder
        self.records = records
        self.embeddings = embeddings
        self.fusion = fusion or FusionSettings()
        self._faiss: FaissIndex | None = None
        self._bm25: BM25Index | None = None

    @property
    def faiss(self) -> FaissIndex:
        """An exact inner-product index (cosine on the unit vectors), built on first use."""
        if self._faiss is None:
            ids = [str(i) for i in range(len(self.records))]
            self._faiss = FaissIndex(self.embeddings.shape[1], metric="ip", kind="flat").add(ids, self.embeddings)
        return self._faiss

    @property
    def bm25(self) -> BM25Index:
        """BM25 over the records' values, built on first use."""
        if self._bm25 is None:
            ids = [str(i) for i in range(len(self.records))]
            self._bm25 = BM25Index().index(ids, self.records.plain_texts())
        return self._bm25

    def _hits(self, indices: Sequence[str | int], scores: Sequence[float]) -> list[Hit]:
        return [Hit(int(i), self.records.ids[int(i)], float(s)) for i, s in zip(indices, scores)]

    def _vectors(self, queries: Sequence[str], query_vectors: np.ndarray | None) -> np.ndarray:
        return self.embedder.embed_queries(queries) if query_vectors is None else query_vectors

    def dense(self, queries: Sequence[str], k: int, query_vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """Top-``k`` records per query by cosine similarity (exact FAISS inner product)."""
        ids, scores = self.faiss.search(self._vectors(queries, query_vectors), k)
        return [self._hits(i, s) for i, s in zip(ids, scores)]

    def lexical(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Top-``k`` records per query by BM25."""
        ids, scores = self.bm25.search(list(queries), k)
        return [self._hits(i, s) for i, s in zip(ids, scores)]

    def hybrid(self, queries: Sequence[str], k: int, query_vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """Top-``k`` records per query by the configured fusion of the dense and BM25 rankings."""
        vectors = self._vectors(queries, query_vectors)
        if self.fusion.method == "convex":
            dense = vectors @ self.embeddings.T  # (batch, n_records) cosine
            fused = convex_fusion(dense, self.bm25.score_matrix(list(queries)), self.fusion.convex_dense_weight)
            ranked = top_k(fused, [str(i) for i in range(len(self.records))], k)
            return [self._hits(r, fused[row, [int(i) for i in r]]) for row, r in enumerate(ranked)]
        depth = max(k, self.fusion.rrf_depth)
        dense_hits = self.dense(queries, depth, vectors)
        lexical = [[h for h in hits if h.score > 0] for hits in self.lexical(queries, depth)]  # 0 = no shared term
        out = []
        for d, b in zip(dense_hits, lexical):
            rankings = [[str(h.index) for h in d], [str(h.index) for h in b]]
            fused = reciprocal_rank_fusion(rankings, k=self.fusion.rrf_k, weights=[self.fusion.rrf_dense_weight, 1.0])
            out.append(self._hits([i for i, _ in fused[:k]], [s for _, s in fused[:k]]))
        return out
