"""Search over records: dense (FAISS inner product), BM25, and their fusion.

The two fusions (``fusion`` in the config: ``rrf`` or ``convex``) are the workspace's one
implementation in :mod:`embshared.fusion`; this module holds the settings and the search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedding_model.embedder import JsonEmbedder
from embedding_model.records import RecordSet
from embshared.evaluate import top_k
from embshared.fusion import convex_fusion, convex_score_fn, reciprocal_rank_fusion, rrf_score_fn
from embshared.search import BM25Index, FaissIndex


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
