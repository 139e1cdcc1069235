"""Evaluators for the trainer that only wrap the shared metrics (embshared.metrics/evaluate)."""

from __future__ import annotations

import logging

import numpy as np
from sentence_transformers.base.evaluation import BaseEvaluator

from embedding_ft.data import EvalSet
from embshared.evaluate import (
    dense_score_fn,
    evaluate_encoder,
    evaluate_retrieval,
    rank_corpus,
    sentence_transformer_encoder,
)
from embshared.fusion import convex_fusion
from embshared.metrics import compute_metrics, parse_metric, per_query, similarity_correlations
from embshared.search import BM25Index

logger = logging.getLogger(__name__)


class RetrievalEvaluator(BaseEvaluator):
    """Rank the held-out corpus for the held-out queries and report the shared IR metrics.

    Args:
        eval_set: a "retrieval" EvalSet.
        metrics: names such as "ndcg@10".
        primary_metric: the metric used for model selection.
        batch_size: encoding batch size.
        name: prefix of the reported keys (``test_ndcg@10``).
    """

    def __init__(
        self, eval_set: EvalSet, metrics: list[str], primary_metric: str, batch_size: int = 64, name: str = "test"
    ):
        super().__init__()
        self.eval_set = eval_set
        self.metrics = list(dict.fromkeys([*metrics, primary_metric]))
        self.batch_size = batch_size
        self.name = name
        self.primary_metric = primary_metric  # sentence-transformers prefixes this one ("test_ndcg@10") once called
        self.metric = primary_metric  # the metric's own name, for the per-query figures
        self.last_per_query: dict[str, dict[str, float]] = {}

    def compute(self, model, doc_embeddings: np.ndarray | None = None) -> dict[str, float]:
        """The metrics without a prefix.

        Args:
            model: the SentenceTransformer to evaluate.
            doc_embeddings: (n_docs, dim) embeddings of ``eval_set.corpus`` by this model, in
                its order, when they are already known (saves encoding the corpus again).
        """
        encode = sentence_transformer_encoder(model, batch_size=self.batch_size)
        s = self.eval_set
        if doc_embeddings is None:
            return evaluate_encoder(encode, s.queries, s.corpus, s.qrels, self.metrics)
        doc_ids = list(s.corpus)
        if len(doc_embeddings) != len(doc_ids):
            raise ValueError(f"{len(doc_embeddings)} document embeddings for {len(doc_ids)} documents")
        score_fn = dense_score_fn(encode, doc_embeddings, "cosine")
        return evaluate_retrieval(s.queries, s.corpus, s.qrels, score_fn, self.metrics, doc_ids=doc_ids)

    def bm25_scores(self) -> np.ndarray:
        """(n_queries, n_docs) BM25 scores of the held-out queries, in the order of ``eval_set``."""
        if getattr(self, "_bm25", None) is None:
            s = self.eval_set
            doc_ids = list(s.corpus)
            index = BM25Index().index(doc_ids, [s.corpus[d] for d in doc_ids])
            self._bm25 = index.score_matrix(list(s.queries.values()))
        return self._bm25

    def _metrics(self, matrix: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        """(mean metrics, per-query primary metric) of (n_queries, n_docs) scores in eval-set order."""
        s = self.eval_set
        doc_ids, query_ids = list(s.corpus), list(s.queries)
        row_of = {q: i for i, q in enumerate(query_ids)}
        by_text = {s.queries[q]: row_of[q] for q in query_ids}
        depth = max(parse_metric(n)[1] for n in self.metrics)
        evaluated = {q: t for q, t in s.queries.items() if q in s.qrels}
        run = rank_corpus(evaluated, doc_ids, lambda texts: matrix[[by_text[t] for t in texts]], k=depth)
        qrels = {q: s.qrels[q] for q in evaluated}
        return compute_metrics(run, qrels, self.metrics), per_query(run, qrels, self.metric)

    def bm25_metrics(self) -> dict[str, float]:
        """BM25's metrics on the same task (its per-query primary metric in ``last_per_query["bm25"]``)."""
        means, self.last_per_query["bm25"] = self._metrics(self.bm25_scores())
        return means

    def compute_with_hybrid(
        self, model, weight: float, doc_embeddings: np.ndarray | None = None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(dense metrics, hybrid metrics) from one encoding of the corpus.

        The hybrid is the convex fusion of z-scored BM25 and cosine scores with dense
        weight ``weight`` (:func:`embshared.fusion.convex_fusion`), over the whole corpus.
        The per-query primary metric of both is kept in ``last_per_query`` ("dense", "hybrid").
        """
        s = self.eval_set
        doc_ids, query_ids = list(s.corpus), list(s.queries)
        encode = sentence_transformer_encoder(model, batch_size=self.batch_size, normalize_embeddings=True)
        if doc_embeddings is None:
            doc_embeddings = encode([s.corpus[d] for d in doc_ids])  # (n_docs, dim)
        docs = np.asarray(doc_embeddings, dtype=np.float32)
        docs = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
        dense = encode([s.queries[q] for q in query_ids]) @ docs.T  # (n_queries, n_docs)
        fused = convex_fusion(dense, self.bm25_scores(), weight)
        dense_means, self.last_per_query["dense"] = self._metrics(dense)
        hybrid_means, self.last_per_query["hybrid"] = self._metrics(fused)
        return dense_means, hybrid_means

    def __call__(self, model, output_path=None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        results = self.compute(model)
        logger.info("eval (epoch %s, step %s): %s", epoch, steps, {k: round(v, 4) for k, v in results.items()})
        metrics = self.prefix_name_to_metrics(results, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics


class SimilarityEvaluator(BaseEvaluator):
    """Spearman and Pearson correlation of cosine similarity with gold scores."""

    def __init__(self, eval_set: EvalSet, batch_size: int = 64, name: str = "test"):
        super().__init__()
        self.eval_set = eval_set
        self.batch_size = batch_size
        self.name = name
        self.metrics = ["pearson", "spearman"]
        self.primary_metric = "spearman"

    def compute(self, model) -> dict[str, float]:
        encode = sentence_transformer_encoder(model, batch_size=self.batch_size, normalize_embeddings=True)
        first = encode([p[0] for p in self.eval_set.pairs])  # (n, dim)
        second = encode([p[1] for p in self.eval_set.pairs])  # (n, dim)
        cosine = np.sum(first * second, axis=1)  # (n,)
        return similarity_correlations(cosine.tolist(), [p[2] for p in self.eval_set.pairs])

    def __call__(self, model, output_path=None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        results = self.compute(model)
        logger.info("eval (epoch %s, step %s): %s", epoch, steps, {k: round(v, 4) for k, v in results.items()})
        metrics = self.prefix_name_to_metrics(results, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics


def make_evaluator(eval_set: EvalSet, metrics: list[str], primary_metric: str, batch_size: int = 64) -> BaseEvaluator:
    """The evaluator for a retrieval or similarity EvalSet."""
    if eval_set.kind == "similarity":
        return SimilarityEvaluator(eval_set, batch_size)
    return RetrievalEvaluator(eval_set, metrics, primary_metric, batch_size)
