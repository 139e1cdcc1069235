"""Evaluations on the held-out split: BM25, the base model and their hybrid before training, and
any model (dense + hybrid) after it; the base model's corpus embeddings come from the mining cache."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from embedding_ft.config import TrainConfig
from embedding_ft.data import EvalSet, Prepared
from embedding_ft.mining import cached_corpus_embeddings, embedding_cache_folder
from embshared.evaluate import evaluate_retrieval
from embshared.files import write_json
from embshared.search import bm25_score_fn

logger = logging.getLogger(__name__)


def evaluate_bm25(eval_set: EvalSet, metrics: list[str]) -> dict[str, float] | None:
    """BM25 on the same held-out retrieval task (None for the similarity format)."""
    if eval_set.kind != "retrieval" or not eval_set.queries:
        return None
    doc_ids = list(eval_set.corpus)
    score_fn = bm25_score_fn(doc_ids, [eval_set.corpus[d] for d in doc_ids])
    return evaluate_retrieval(eval_set.queries, eval_set.corpus, eval_set.qrels, score_fn, metrics, doc_ids=doc_ids)


def _reuse_mining_embeddings(cfg: TrainConfig, mining_id: str, prepared: Prepared, eval_set: EvalSet):
    """The base model's corpus embeddings from the mining cache, in eval-corpus order (or None)."""
    cached = cached_corpus_embeddings(
        embedding_cache_folder(cfg.cache_dir, mining_id, prepared.corpus), prepared.corpus
    )
    if cached is None:
        return None
    embeddings, row_of = cached
    try:
        return embeddings[[row_of[eval_set.corpus[d]] for d in eval_set.corpus]]  # (n_docs, dim)
    except KeyError:
        return None


def evaluate_model(evaluator, eval_set: EvalSet, model, cfg: TrainConfig, doc_embeddings=None):
    """(dense metrics, hybrid metrics or None) of ``model`` on the held-out split."""
    if eval_set.kind == "retrieval" and cfg.evaluation.hybrid:
        return evaluator.compute_with_hybrid(model, cfg.evaluation.hybrid_weight, doc_embeddings)
    if doc_embeddings is not None:
        return evaluator.compute(model, doc_embeddings=doc_embeddings), None
    return evaluator.compute(model), None


def evaluate_baselines(
    cfg: TrainConfig, prepared: Prepared, model, evaluator, work: Path, mining_id: str | None
) -> tuple[dict, float, dict]:
    """BM25, the base model and their hybrid on the held-out split.

    Kept in the work dir so that a resumed run reuses them; any other run (e.g. one written
    in place over an earlier run) measures them again.

    Args:
        mining_id: the base model's mining fingerprint when its corpus embeddings are in the
            mining cache (it mined with itself), else None.

    Returns:
        (metrics, seconds of one evaluation, per-query primary metric of each system).
    """
    eval_set = prepared.eval_set
    baseline_file = work / "baseline.json"
    if cfg.resume and baseline_file.is_file():
        saved = json.loads(baseline_file.read_text())
        return saved["metrics"], saved.get("eval_seconds", 0.0), saved.get("per_query", {})
    metrics: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, float]] = {}
    if eval_set.kind == "retrieval" and eval_set.queries:
        metrics["bm25"] = evaluator.bm25_metrics()
        per_query["bm25"] = evaluator.last_per_query["bm25"]
    start = time.perf_counter()
    doc_embeddings = None
    if mining_id is not None and eval_set.kind == "retrieval":
        doc_embeddings = _reuse_mining_embeddings(cfg, mining_id, prepared, eval_set)
    metrics["base"], hybrid = evaluate_model(evaluator, eval_set, model, cfg, doc_embeddings)
    if hybrid is not None:
        metrics["hybrid_base"] = hybrid
        per_query["base"] = evaluator.last_per_query["dense"]
        per_query["hybrid_base"] = evaluator.last_per_query["hybrid"]
    seconds = time.perf_counter() - start
    if doc_embeddings is not None:  # the corpus came from the cache: time an encoding instead
        seconds = _encoding_seconds(model, eval_set, cfg.evaluation.batch_size)
    logger.info("base model evaluated: %s", metrics["base"])
    write_json(baseline_file, {"metrics": metrics, "eval_seconds": seconds, "per_query": per_query})
    return metrics, seconds, per_query


def _encoding_seconds(model, eval_set: EvalSet, batch_size: int) -> float:
    """Seconds one evaluation would take: the corpus encoding rate on a sample, times the corpus."""
    texts = list(eval_set.corpus.values())
    sample = texts[: min(len(texts), 2 * batch_size)]
    start = time.perf_counter()
    model.encode(sample, batch_size=batch_size, convert_to_numpy=True)
    return (time.perf_counter() - start) * len(texts) / max(1, len(sample))
