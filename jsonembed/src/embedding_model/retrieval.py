"""Search over records: dense (exact inner products), BM25, character n-grams, and their fusion.

The two fusions (``fusion`` in the config: ``rrf`` or ``convex``) are the workspace's one
implementation in :mod:`embshared.fusion`; this module holds the settings and the search.
The convex fusion can take a third, typo-robust lexical ranker: a character 3-5-gram
TF-IDF over the whole record (:class:`embshared.search.CharNgramIndex`,
``convex_ngram_weight``). It reads every character of the record where the char model
reads the first ``max_chars``, and a misspelled query word keeps most of its n-grams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedding_model.embedder import JsonEmbedder
from embedding_model.records import RecordSet
from embshared.errors import UserError
from embshared.evaluate import top_k
from embshared.fusion import reciprocal_rank_fusion, rrf_score_fn, weighted_score_fn, weighted_zscore_fusion
from embshared.search import BM25Index, CharNgramIndex


@dataclass
class FusionSettings:
    """How ``--hybrid`` fuses the model with BM25 (see the module docstring).

    The convex fusion can route each query by whether BM25 knows all its words: a query
    whose every term (after stop words and stemming) occurs in the records is fused with
    ``convex_known_*`` weights, any other query (a misspelled word, a partial word, a code
    the records lack) with ``convex_*``. Unset known weights (None) take the ``convex_*`` value.
    """

    method: str = "rrf"
    rrf_k: int = 60
    rrf_depth: int = 100
    rrf_dense_weight: float = 1.0
    convex_dense_weight: float = 0.2
    convex_ngram_weight: float = 0.0
    ngram_max_df: float = 1.0
    convex_known_dense_weight: float | None = None
    convex_known_ngram_weight: float | None = None

    @classmethod
    def from_config(cls, cfg) -> FusionSettings:
        return cls(
            cfg.fusion,
            cfg.rrf_k,
            cfg.rrf_depth,
            cfg.rrf_dense_weight,
            cfg.convex_dense_weight,
            cfg.convex_ngram_weight,
            cfg.ngram_max_df,
            cfg.convex_known_dense_weight,
            cfg.convex_known_ngram_weight,
        )

    def ngram_index(self, doc_ids: Sequence[str], texts: Sequence[str]) -> CharNgramIndex:
        """The character n-gram ranker of this fusion over ``texts``."""
        return CharNgramIndex(max_df=self.ngram_max_df).index(doc_ids, texts)

    @property
    def uses_ngrams(self) -> bool:
        """Whether the fusion has the character n-gram ranker (convex, with a positive weight on either route)."""
        return self.method == "convex" and (self.convex_ngram_weight > 0 or self.convex_weights(known=True)[2] > 0)

    @property
    def routes_queries(self) -> bool:
        """Whether queries whose words BM25 all knows get other convex weights than the rest."""
        return self.method == "convex" and self.convex_weights(known=True) != self.convex_weights()

    def convex_weights(self, known: bool = False) -> list[float]:
        """The convex weights of (BM25, the model, the n-gram ranker); ``known``: of the known-words route."""
        dense, ngram = self.convex_dense_weight, self.convex_ngram_weight
        if known:
            dense = dense if self.convex_known_dense_weight is None else self.convex_known_dense_weight
            ngram = ngram if self.convex_known_ngram_weight is None else self.convex_known_ngram_weight
        return [max(0.0, 1.0 - dense - ngram), dense, ngram]

    def query_weights(self, known: np.ndarray) -> np.ndarray:
        """(batch, 3) convex weights of (BM25, the model, the n-grams) for queries whose words are all ``known`` or not."""
        known = np.asarray(known, dtype=bool)[:, None]  # (batch, 1)
        return np.where(known, self.convex_weights(known=True), self.convex_weights())

    def score_fn(self, dense_fn, bm25_fn, ngram_fn=None, known_fn=None) -> Callable[[list[str]], np.ndarray]:
        """The fused score function of a dense, a BM25 and (convex, if weighted) a character n-gram score function.

        ``known_fn`` (query texts -> (batch,) bool: BM25 knows every term) routes the
        queries when :attr:`routes_queries`; :meth:`embshared.search.BM25Index.knows_all_terms`.
        """
        if self.method == "convex":
            if self.uses_ngrams and ngram_fn is None:
                raise ValueError("this fusion weights the character n-gram ranker: pass its score function")
            if not self.routes_queries:
                return weighted_score_fn([bm25_fn, dense_fn, ngram_fn], self.convex_weights())
            if known_fn is None:
                raise ValueError("this fusion routes queries by their words: pass a known-words function")
            fns = [bm25_fn, dense_fn, ngram_fn]

            def routed(texts: list[str]) -> np.ndarray:
                weights = self.query_weights(known_fn(texts))  # (batch, 3)
                return weighted_zscore_fusion(
                    [fn(texts) if weights[:, i].any() else None for i, fn in enumerate(fns)], weights
                )

            return routed
        return rrf_score_fn(
            [dense_fn, bm25_fn],
            depth=self.rrf_depth,
            k=self.rrf_k,
            floors=[None, 0.0],
            weights=[self.rrf_dense_weight, 1.0],
        )

    def label(self) -> str:
        if self.method != "convex":
            return f"RRF, dense weight {self.rrf_dense_weight:g}"
        text = f"convex, dense weight {self.convex_dense_weight:g}"
        if self.uses_ngrams:
            text += f", char n-gram weight {self.convex_ngram_weight:g}"
        if self.routes_queries:
            _, dense, ngram = self.convex_weights(known=True)
            text += f"; queries with only known words {dense:g} / {ngram:g}"
        return text


def fusion_settings(
    cfg, method: str | None = None, dense_weight: float | None = None, ngram_weight: float | None = None
) -> FusionSettings:
    """The config's fusion settings with the method and weights overridden (``--fusion``, ``--dense-weight``, ``--ngram-weight``)."""
    settings = FusionSettings.from_config(cfg)
    if method is not None:
        settings.method = method
    if dense_weight is not None:
        if settings.method == "convex":
            if not 0 <= dense_weight <= 1:
                raise ValueError(f"the convex fusion's dense weight must be in [0, 1], got {dense_weight}")
            settings.convex_dense_weight = dense_weight
            settings.convex_known_dense_weight = None  # an explicit weight is every query's
        else:
            settings.rrf_dense_weight = dense_weight
    if ngram_weight is not None:
        if not 0 <= ngram_weight <= 1:
            raise ValueError(f"the convex fusion's character n-gram weight must be in [0, 1], got {ngram_weight}")
        settings.convex_ngram_weight = ngram_weight
        settings.convex_known_ngram_weight = None
    for known in (False, True):
        _, dense, ngram = settings.convex_weights(known)
        if settings.method == "convex" and dense + ngram > 1:
            raise ValueError(
                f"the convex fusion's dense and character n-gram weights must sum to at most 1, got {dense:g} + {ngram:g}"
            )
    return settings


def inner_products(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(batch, n) exact inner products of ``queries`` (batch, dim) with every row of ``matrix`` (n, dim).

    One pass of FAISS's SIMD kernel per query (``fvec_inner_products_ny``, what
    ``IndexFlatIP`` runs for a few queries), on the calling thread: on two shared cores
    ``IndexFlatIP.search``'s OpenMP threads made one query over 100k records take 36 ms
    instead of 6 (they wait on each other), and a full score row is what the fusion needs anyway.
    """
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != matrix.shape[1]:
        raise ValueError(f"expected queries of shape (batch, {matrix.shape[1]}), got {queries.shape}")
    out = np.empty((len(queries), len(matrix)), dtype=np.float32)
    for row in range(len(queries)):
        faiss.fvec_inner_products_ny(
            faiss.swig_ptr(out[row]), faiss.swig_ptr(queries[row]), faiss.swig_ptr(matrix), matrix.shape[1], len(matrix)
        )
    return out


class EmptyQueryError(UserError, ValueError):
    """A query with nothing to search for (empty, or only whitespace and punctuation)."""


def check_queries(queries: Sequence[str]) -> None:
    """Refuse queries without a letter or digit: they would rank records by noise.

    Raises:
        EmptyQueryError: naming the first such query (``--query ""``, ``"  "``, ``"?!"``).
    """
    for number, query in enumerate(queries, start=1):
        if not any(c.isalnum() for c in query):
            which = f"query {number} " if len(queries) > 1 else "the query "
            raise EmptyQueryError(f"{which}{query!r} has no letter or digit: there is nothing to search for")


@dataclass
class Hit:
    """One search result."""

    index: int  # position of the record in the RecordSet
    id: str
    score: float


class RecordSearch:
    """Searches a set of records embedded by a model, optionally fused with BM25 (and character n-grams).

    Every search scores all records exactly (no approximate index): dense scores are one
    pass of :func:`inner_products` per query, BM25 scores come from bm25s's precomputed
    sparse index, and the convex fusion z-scores both over all records. What made this
    slow before was not the scoring but the bookkeeping around it: ranking sorted 100k
    string ids per query to break ties and built 100k-entry id lists and dicts per call,
    and FAISS's OpenMP threads fought over the two cores for a single query. Ties go by the
    record's index written as a string (as :func:`embshared.evaluate.top_k` orders ids), an
    order now computed once; a test checks the rankings against the plain formulation on
    10k records (FAISS's order for ties in ``dense``, the string order in the others).

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
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.fusion = fusion or FusionSettings()
        self._bm25: BM25Index | None = None
        self._ngrams: CharNgramIndex | None = None
        self._tie_order: np.ndarray | None = None

    @property
    def bm25(self) -> BM25Index:
        """BM25 over the records' values, built on first use."""
        if self._bm25 is None:
            ids = [str(i) for i in range(len(self.records))]
            self._bm25 = BM25Index().index(ids, self.records.plain_texts())
        return self._bm25

    @property
    def ngrams(self) -> CharNgramIndex:
        """Character 3-5-gram TF-IDF over the records' values, built on first use (``convex_ngram_weight``)."""
        if self._ngrams is None:
            ids = [str(i) for i in range(len(self.records))]
            self._ngrams = self.fusion.ngram_index(ids, self.records.plain_texts())
        return self._ngrams

    @property
    def tie_order(self) -> np.ndarray:
        """(n_records,) rank of each record's index written as a string: equal scores go by it (as ``top_k``)."""
        if self._tie_order is None:
            names = np.array([str(i) for i in range(len(self.records))], dtype=object)
            self._tie_order = np.argsort(np.argsort(names, kind="stable"), kind="stable")
        return self._tie_order

    def _ranked(self, scores: np.ndarray, k: int, tie_order: np.ndarray | None = None) -> list[list[Hit]]:
        """The ``k`` best records of each row of (batch, n_records) scores as hits, ties by ``tie_order``.

        ``tie_order`` (default :attr:`tie_order`) ranks the records among equal scores.
        """
        order = self.tie_order if tie_order is None else tie_order
        rows = top_k(scores, range(scores.shape[1]), k, id_order=order)
        return [self._hits(r, scores[row, r]) for row, r in enumerate(rows)]

    def _hits(self, indices: Sequence[str | int], scores: Sequence[float]) -> list[Hit]:
        return [Hit(int(i), self.records.ids[int(i)], float(s)) for i, s in zip(indices, scores)]

    def _vectors(self, queries: Sequence[str], query_vectors: np.ndarray | None) -> np.ndarray:
        if query_vectors is not None:
            return query_vectors
        check_queries(queries)
        return self.embedder.embed_queries(queries)

    def dense(self, queries: Sequence[str], k: int, query_vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """Top-``k`` records per query by cosine similarity (exact inner products with every record).

        Equal similarities (duplicated records) go highest index first, as the FAISS index
        this replaced ordered them.
        """
        scores = inner_products(self._vectors(queries, query_vectors), self.embeddings)  # (batch, n_records)
        return self._ranked(scores, k, np.arange(scores.shape[1])[::-1])

    def lexical(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Top-``k`` records per query by BM25 (ties by :attr:`tie_order`, as ``BM25Index.search``)."""
        check_queries(queries)
        return self._ranked(self.bm25.score_matrix(list(queries)), k)

    def hybrid(self, queries: Sequence[str], k: int, query_vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """Top-``k`` records per query by the configured fusion of the dense and BM25 rankings."""
        check_queries(queries)
        vectors = self._vectors(queries, query_vectors)
        if self.fusion.method == "convex":
            queries = list(queries)
            if self.fusion.routes_queries:
                weights = self.fusion.query_weights(self.bm25.knows_all_terms(queries))  # (batch, 3)
            else:
                weights = np.asarray(self.fusion.convex_weights())
            dense = inner_products(vectors, self.embeddings)  # (batch, n_records) cosine
            scores = [self.bm25.score_matrix(queries), dense]
            scores.append(self.ngrams.score_matrix(queries) if weights[..., 2].any() else None)
            return self._ranked(weighted_zscore_fusion(scores, weights), k)
        depth = max(k, self.fusion.rrf_depth)
        dense_hits = self.dense(queries, depth, vectors)
        lexical = [[h for h in hits if h.score > 0] for hits in self.lexical(queries, depth)]  # 0 = no shared term
        out = []
        for d, b in zip(dense_hits, lexical):
            rankings = [[str(h.index) for h in d], [str(h.index) for h in b]]
            fused = reciprocal_rank_fusion(rankings, k=self.fusion.rrf_k, weights=[self.fusion.rrf_dense_weight, 1.0])
            out.append(self._hits([i for i, _ in fused[:k]], [s for _, s in fused[:k]]))
        return out
