"""Evaluation on the held-out split: BM25, dense and hybrid rankings scored by one function.

Every system is a (n_queries, n_docs) score matrix over the held-out queries and corpus, ranked
and scored by :func:`embshared.evaluate.evaluate_scores` (rows by query id, so two queries
with the same text stay two queries). Each evaluation *returns* what it computes — the means
over all held-out queries, the means on its dev and rest halves, and the per-query primary
metric — instead of leaving it on the evaluator for another module to read.

The held-out queries are split once more, by a seeded shuffle, into **dev** (the fusion of
the hybrid and the trainer's checkpoint choice are made there) and **rest** (reported, never
chosen on): :func:`dev_rest_split`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sentence_transformers.base.evaluation import BaseEvaluator

from embedding_ft.data import EvalSet
from embshared.evaluate import evaluate_scores, sentence_transformer_encoder
from embshared.fusion_choice import FusionSetting, bm25_matrices, bm25_variants, choose_fusion, fuse
from embshared.metrics import similarity_correlations

logger = logging.getLogger(__name__)


def dev_rest_split(query_ids: Sequence[str], dev_fraction: float = 0.5, seed: int = 0) -> tuple[list[str], list[str]]:
    """(dev, rest) query ids: the sorted ids shuffled with ``seed``, the first ``dev_fraction`` are dev.

    ``bench/bench_recipes.py`` uses the same split, so a run's dev/rest figures are the bench's.
    """
    ids = sorted(query_ids)
    random.Random(seed).shuffle(ids)
    n_dev = int(len(ids) * dev_fraction)
    return ids[:n_dev], ids[n_dev:]


@dataclass
class SystemScores:
    """One system's figures on the held-out split.

    Attributes:
        means: {metric: mean} over every held-out query.
        per_query: {query id: primary metric}; its mean is ``means[primary]``.
        dev, rest: {metric: mean} over each half (empty when there is no dev split).
    """

    means: dict[str, float]
    per_query: dict[str, float]
    dev: dict[str, float]
    rest: dict[str, float]


class RetrievalEvaluator(BaseEvaluator):
    """Rank the held-out corpus for the held-out queries and report the shared IR metrics.

    Args:
        eval_set: a "retrieval" EvalSet.
        metrics: names such as "ndcg@10".
        primary_metric: the metric used for model selection.
        batch_size: encoding batch size.
        name: prefix of the reported keys (``test_ndcg@10``).
        dev_ids: the held-out queries the trainer selects checkpoints on and the fusion is chosen
            on (default: none; then every choice uses the defaults and selection sees all queries).
    """

    def __init__(
        self,
        eval_set: EvalSet,
        metrics: list[str],
        primary_metric: str,
        batch_size: int = 64,
        name: str = "test",
        dev_ids: Sequence[str] = (),
    ):
        super().__init__()
        self.eval_set = eval_set
        self.metrics = list(dict.fromkeys([*metrics, primary_metric]))
        self.batch_size = batch_size
        self.name = name
        self.primary_metric = primary_metric  # sentence-transformers prefixes this one ("test_ndcg@10") once called
        self.metric = primary_metric  # the metric's own name, for the per-query figures
        self.query_ids = list(eval_set.queries)
        self.doc_ids = list(eval_set.corpus)
        dev = set(dev_ids)
        self.dev_rows = [i for i, q in enumerate(self.query_ids) if q in dev]
        self.rest_rows = [i for i, q in enumerate(self.query_ids) if q not in dev] if dev else []
        self._bm25: dict[tuple, np.ndarray] = {}

    # ---- score matrices

    def bm25_scores(self, setting: FusionSetting | None = None) -> np.ndarray:
        """(n_queries, n_docs) BM25 scores with ``setting``'s k1 / b / stemming (default: the default's)."""
        return self._bm25_variant((setting or FusionSetting.default()).bm25_variant)

    def _bm25_variant(self, variant: tuple) -> np.ndarray:
        if variant not in self._bm25:
            s = self.eval_set
            texts = [s.corpus[d] for d in self.doc_ids]
            queries = [s.queries[q] for q in self.query_ids]
            self._bm25.update(bm25_matrices(self.doc_ids, texts, queries, [variant]))
        return self._bm25[variant]

    def dense_scores(self, model, doc_embeddings: np.ndarray | None = None) -> np.ndarray:
        """(n_queries, n_docs) cosine scores of ``model`` (its corpus embeddings may be given, in corpus order)."""
        s = self.eval_set
        encode = sentence_transformer_encoder(model, batch_size=self.batch_size, normalize_embeddings=True)
        if doc_embeddings is None:
            doc_embeddings = encode([s.corpus[d] for d in self.doc_ids])  # (n_docs, dim)
        docs = np.asarray(doc_embeddings, dtype=np.float32)
        if len(docs) != len(self.doc_ids):
            raise ValueError(f"{len(docs)} document embeddings for {len(self.doc_ids)} documents")
        docs = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
        return encode([s.queries[q] for q in self.query_ids]) @ docs.T

    # ---- scoring

    def _means(self, matrix: np.ndarray, rows: list[int]) -> dict[str, float]:
        ids = [self.query_ids[i] for i in rows]
        if not any(q in self.eval_set.qrels for q in ids):
            return {}
        return evaluate_scores(matrix[rows], ids, self.doc_ids, self.eval_set.qrels, self.metrics, self.metric)[0]

    def score(self, matrix: np.ndarray) -> SystemScores:
        """The figures of one (n_queries, n_docs) score matrix: all, dev, rest, per query."""
        means, per_query = evaluate_scores(
            matrix, self.query_ids, self.doc_ids, self.eval_set.qrels, self.metrics, self.metric
        )
        dev = self._means(matrix, self.dev_rows) if self.dev_rows else {}
        rest = self._means(matrix, self.rest_rows) if self.rest_rows else {}
        return SystemScores(means, per_query, dev, rest)

    def bm25(self) -> SystemScores:
        return self.score(self.bm25_scores())

    def hybrid(self, dense: np.ndarray, setting: FusionSetting) -> SystemScores:
        return self.score(fuse(setting, dense, self.bm25_scores(setting)))

    def choose_fusion(self, dense: np.ndarray) -> FusionSetting:
        """The fusion (method, dense weight, BM25 variant) that serves the dev queries best (the default without dev)."""
        if not self.dev_rows:
            return FusionSetting.default()
        by_variant = {key: self._bm25_variant(key)[self.dev_rows] for key in bm25_variants()}
        dev_ids = [self.query_ids[i] for i in self.dev_rows]
        return choose_fusion(
            dense[self.dev_rows], by_variant, dev_ids, self.doc_ids, self.eval_set.qrels, metric=self.metric
        )

    def systems(
        self, label: str, dense: np.ndarray, fusions: Mapping[str, FusionSetting] | None = None
    ) -> dict[str, SystemScores]:
        """``label`` (dense alone) and ``hybrid_<label><suffix>`` for each fusion ({suffix: setting})."""
        out = {label: self.score(dense)}
        for suffix, setting in (fusions or {}).items():
            out[f"hybrid_{label}{suffix}"] = self.hybrid(dense, setting)
        return out

    # ---- the trainer's evaluator

    def compute(self, model) -> dict[str, float]:
        """Dense metrics of ``model``: on dev when there is a dev split (checkpoints are chosen there), else all."""
        dense = self.dense_scores(model)
        return self._means(dense, self.dev_rows) if self.dev_rows else self.score(dense).means

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


def make_evaluator(
    eval_set: EvalSet, metrics: list[str], primary_metric: str, batch_size: int = 64, dev_ids: Sequence[str] = ()
) -> BaseEvaluator:
    """The evaluator for a retrieval or similarity EvalSet."""
    if eval_set.kind == "similarity":
        return SimilarityEvaluator(eval_set, batch_size)
    return RetrievalEvaluator(eval_set, metrics, primary_metric, batch_size, dev_ids=dev_ids)
