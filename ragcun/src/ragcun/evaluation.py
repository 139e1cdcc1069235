"""Retrieval evaluation (through embshared's metrics) plus isotropy diagnostics.

Test data is either the ``test_eval.json`` written by ``prepare_data`` (corpus texts,
query texts and relevant corpus indices, the public project's layout) or a BEIR folder.
The Gaussian model ranks by Euclidean distance; a plain sentence-transformers model (the
base, for comparison) by cosine similarity. :func:`evaluate_model` does what the
``evaluate`` command does, from an :class:`EvalConfig`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embshared.config import ConfigError
from embshared.evaluate import dense_score_fn, evaluate_retrieval
from embshared.io import DataError, load_beir
from embshared.metrics import parse_metric
from ragcun.diagnostics import isotropy_diagnostics
from ragcun.encoders import load_encoder

logger = logging.getLogger("ragcun.evaluate")

#: the metrics of the public guide: Recall@1/5/10/20/50/100, MRR, NDCG@10, MAP@100.
EVAL_METRICS = (
    "recall@1",
    "recall@5",
    "recall@10",
    "recall@20",
    "recall@50",
    "recall@100",
    "mrr@10",
    "mrr@100",
    "ndcg@10",
    "map@100",
)


@dataclass
class EvalSet:
    """Queries, corpus and graded relevance, keyed by string ids."""

    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str = ""


def _expect_list(path: Path, data: dict, key: str) -> list:
    value = data.get(key)
    if value is None:
        raise DataError(path, f"field '{key}' missing (expected corpus, queries, relevance)")
    if not isinstance(value, list):
        raise DataError(path, f"field '{key}': expected a list, got {type(value).__name__}")
    return value


def load_eval_set(path: str | os.PathLike, split: str = "train") -> EvalSet:
    """Read a ``test_eval.json`` file or a BEIR folder (``split`` names its qrels file)."""
    path = Path(path)
    if path.is_dir():
        beir = load_beir(path, split=split)
        return EvalSet(beir.queries, beir.corpus_texts(), beir.qrels, str(path))
    if not path.is_file():
        raise DataError(path, "no such file or folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg} at column {exc.colno})", exc.lineno) from None
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object with corpus, queries, relevance; got {type(data).__name__}")
    corpus = _expect_list(path, data, "corpus")
    queries = _expect_list(path, data, "queries")
    relevance = _expect_list(path, data, "relevance")
    corpus_ids = data.get("corpus_ids") or [str(i) for i in range(len(corpus))]
    if len(corpus_ids) != len(corpus):
        raise DataError(path, f"field 'corpus_ids' has {len(corpus_ids)} entries for {len(corpus)} documents")
    for key, items in (("corpus", corpus), ("queries", queries)):
        for i, text in enumerate(items):
            if not isinstance(text, str) or not text.strip():
                raise DataError(path, f"field '{key}' element {i}: expected a non-empty string")
    if len(relevance) != len(queries):
        raise DataError(path, f"field 'relevance' has {len(relevance)} entries for {len(queries)} queries")
    qrels: dict[str, dict[str, int]] = {}
    for i, rel in enumerate(relevance):
        if not isinstance(rel, list) or not all(isinstance(j, int) and not isinstance(j, bool) for j in rel):
            raise DataError(path, f"field 'relevance' element {i}: expected a list of corpus indices")
        bad = [j for j in rel if not 0 <= j < len(corpus)]
        if bad:
            raise DataError(
                path, f"field 'relevance' element {i}: corpus index {bad[0]} out of range 0..{len(corpus) - 1}"
            )
        if rel:
            qrels[f"q{i}"] = {str(corpus_ids[j]): 1 for j in rel}
    if not qrels:
        raise DataError(path, "no query has a relevant document")
    return EvalSet(
        queries={f"q{i}": q for i, q in enumerate(queries)},
        corpus={str(d): t for d, t in zip(corpus_ids, corpus)},
        qrels=qrels,
        source=str(path),
    )


def metric_names(top_k: int = 100, names: Sequence[str] = EVAL_METRICS) -> list[str]:
    """The metrics whose cut-off is within the ranking depth ``top_k``."""
    kept = [n for n in names if parse_metric(n)[1] <= top_k]
    if not kept:
        raise ValueError(f"top_k={top_k} is below every metric cut-off")
    return kept


def _memoized(encode: Callable[[list[str]], np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    """``encode`` that computes each distinct text once (queries are ranked, then diagnosed)."""
    cache: dict[str, np.ndarray] = {}

    def wrapped(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, np.asarray(encode(missing))))
        return np.stack([cache[t] for t in texts])

    return wrapped


def evaluate_encoder(
    encode: Callable[[list[str]], np.ndarray],
    eval_set: EvalSet,
    metric: str,
    names: Sequence[str] = EVAL_METRICS,
    diagnostics: bool = True,
    doc_embeddings: np.ndarray | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Retrieval metrics and (optionally) isotropy diagnostics of one encoder.

    Args:
        encode: texts -> (n, dim) embeddings.
        eval_set: the queries, corpus and qrels.
        metric: "l2" for the Gaussian model, "cosine" for a normalised base model.
        names: metrics to compute.
        diagnostics: add isotropy diagnostics of document and query embeddings.
        doc_embeddings: precomputed corpus embeddings in ``eval_set.corpus`` order.

    Returns:
        {"metrics": {...}, "isotropy": {"documents": {...}, "queries": {...}}}
    """
    encode = _memoized(encode)
    doc_ids = list(eval_set.corpus)
    if doc_embeddings is None:
        doc_embeddings = encode([eval_set.corpus[d] for d in doc_ids])
    score_fn = dense_score_fn(encode, doc_embeddings, metric=metric)
    metrics = evaluate_retrieval(
        eval_set.queries,
        eval_set.corpus,
        eval_set.qrels,
        score_fn,
        list(names),
        doc_ids=doc_ids,
        show_progress=show_progress,
    )
    result: dict[str, Any] = {"metrics": metrics}
    if diagnostics:
        evaluated = [q for q in eval_set.queries if q in eval_set.qrels]
        query_embeddings = encode([eval_set.queries[q] for q in evaluated])
        result["isotropy"] = {
            "documents": isotropy_diagnostics(doc_embeddings),
            "queries": isotropy_diagnostics(query_embeddings) if len(evaluated) >= 2 else {},
        }
    return result


@dataclass
class EvalConfig:
    """Options of evaluate (the public guide's, plus the BEIR split and the metric)."""

    model_path: str | None = field(
        default=None, metadata={"help": "ragcun checkpoint (.pt) or a sentence-transformers model"}
    )
    test_data: str | None = field(default=None, metadata={"help": "test_eval.json or a BEIR folder"})
    split: str = field(default="train", metadata={"help": "qrels split of a BEIR folder"})
    batch_size: int = field(default=32, metadata={"help": "encoding batch size"})
    top_k: int = field(default=100, metadata={"help": "ranking depth (metrics with a larger cut-off are skipped)"})
    output_file: str | None = field(default=None, metadata={"help": "write the results as JSON here"})
    metric: Literal["auto", "l2", "cosine", "dot"] = field(
        default="auto", metadata={"help": "auto: l2 for a ragcun checkpoint, cosine otherwise"}
    )
    diagnostics: bool = field(default=True, metadata={"help": "isotropy diagnostics of the embeddings"})
    max_seq_length: int | None = field(default=None, metadata={"help": "truncate texts to this many tokens"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: CUDA if available)"})
    seed: int = field(default=0, metadata={"help": "seed of the SIGReg directions in the diagnostics"})

    def validate(self) -> None:
        if self.batch_size <= 0 or self.top_k <= 0:
            raise ValueError("batch_size and top_k must be positive")


def evaluate_model(config: EvalConfig) -> dict[str, Any]:
    """Metrics (and isotropy diagnostics) of the model at ``config.model_path`` on ``config.test_data``.

    Returns:
        ``{"model_path", "model", "test_data", "metric", "queries", "documents", "metrics"[, "isotropy"]}``,
        what ``evaluate --output_file`` writes.
    """
    if not config.model_path or not config.test_data:
        raise ConfigError("model_path and test_data are required")
    eval_set = load_eval_set(config.test_data, split=config.split)
    names = metric_names(config.top_k)
    encoder = load_encoder(config.model_path, config.batch_size, config.device, config.max_seq_length)
    metric = encoder.metric if config.metric == "auto" else config.metric
    logger.info(
        "%s: %d queries, %d documents, %s ranking",
        encoder.description, len(eval_set.qrels), len(eval_set.corpus), metric,
    )  # fmt: skip
    result = evaluate_encoder(
        encoder.encode, eval_set, metric, names, diagnostics=config.diagnostics, show_progress=True
    )
    return {
        "model_path": config.model_path,
        "model": encoder.description,
        "test_data": config.test_data,
        "metric": metric,
        "queries": len(eval_set.qrels),
        "documents": len(eval_set.corpus),
        **result,
    }
