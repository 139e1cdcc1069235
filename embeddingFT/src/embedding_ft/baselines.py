"""The systems a run is compared with, and the evaluation of any model on the held-out split.

Before training: BM25, the base model, and their hybrid twice — with the fixed fusion of
``evaluation.hybrid_weight`` and with the fusion chosen on the dev queries (the fair
comparison: a user could tune the base model's hybrid too). After training: the same rows for
the fine-tuned model, whose chosen fusion is saved beside it. The base model's corpus
vectors come from the run's :class:`embedding_ft.corpus_encoder.CorpusVectors` (the pass mining
made, or made here, cached either way).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from embedding_ft.config import TrainConfig
from embedding_ft.data import EvalSet, Prepared
from embedding_ft.evaluation import RetrievalEvaluator, SystemScores
from embshared.files import write_json
from embshared.fusion_choice import FusionSetting

logger = logging.getLogger(__name__)

#: suffix of the hybrid row whose fusion was chosen on dev (beside the fixed-weight row)
TUNED = "_tuned"


@dataclass
class Evaluated:
    """What evaluating one model produced: its rows ({system: scores}) and the fusion chosen for it (or None)."""

    systems: dict[str, SystemScores]
    fusion: FusionSetting | None = None


@dataclass
class Baselines:
    """The rows before training and the seconds one evaluation of a model takes (for the time estimate)."""

    systems: dict[str, SystemScores]
    fusion: FusionSetting | None
    eval_seconds: float

    def to_dict(self) -> dict:
        return {
            "systems": {k: dataclasses.asdict(v) for k, v in self.systems.items()},
            "fusion": self.fusion.to_dict() if self.fusion else None,
            "eval_seconds": self.eval_seconds,
        }

    @classmethod
    def from_dict(cls, saved: dict) -> Baselines:
        fusion = FusionSetting.from_dict(saved["fusion"]) if saved.get("fusion") else None
        systems = {k: SystemScores(**v) for k, v in saved["systems"].items()}
        return cls(systems, fusion, saved.get("eval_seconds", 0.0))


def fixed_fusion(cfg: TrainConfig) -> FusionSetting:
    """The fusion of the fixed-weight hybrid rows: convex, ``evaluation.hybrid_weight``, default BM25."""
    return dataclasses.replace(FusionSetting.default(), dense_weight=cfg.evaluation.hybrid_weight)


def evaluate_model(evaluator, eval_set: EvalSet, model, cfg: TrainConfig, label: str, doc_embeddings=None) -> Evaluated:
    """``model``'s rows on the held-out split: ``label`` alone, and (retrieval) its hybrids with BM25."""
    if not isinstance(evaluator, RetrievalEvaluator):
        means = evaluator.compute(model)
        return Evaluated({label: SystemScores(means, {}, {}, {})})
    dense = evaluator.dense_scores(model, doc_embeddings)
    if not cfg.evaluation.hybrid:
        return Evaluated(evaluator.systems(label, dense))
    chosen = evaluator.choose_fusion(dense) if cfg.evaluation.choose_fusion else None
    fusions = {"": fixed_fusion(cfg)} | ({TUNED: chosen} if chosen is not None else {})
    if chosen is not None:
        logger.info("fusion for %s chosen on %d dev queries: %s", label, len(evaluator.dev_rows), chosen.describe())
    return Evaluated(evaluator.systems(label, dense, fusions), chosen)


def evaluate_baselines(cfg: TrainConfig, prepared: Prepared, model, evaluator, work: Path, documents=None) -> Baselines:
    """BM25, the base model and its hybrids on the held-out split.

    Kept in the work dir so that a resumed run reuses them; any other run (e.g. one written
    in place over an earlier run) measures them again.

    Args:
        documents: the base model's vectors of the mining texts
            (:class:`embedding_ft.corpus_encoder.CorpusVectors`); None: the corpus is encoded here.
    """
    eval_set = prepared.eval_set
    baseline_file = work / "baseline.json"
    if cfg.resume and baseline_file.is_file():
        return Baselines.from_dict(json.loads(baseline_file.read_text()))
    systems: dict[str, SystemScores] = {}
    if isinstance(evaluator, RetrievalEvaluator) and eval_set.queries:
        systems["bm25"] = evaluator.bm25()
    start = time.perf_counter()
    doc_embeddings = None
    if documents is not None and eval_set.kind == "retrieval":
        doc_embeddings = documents.of(eval_set.corpus.values())  # (n_docs, dim), in corpus order
    base = evaluate_model(evaluator, eval_set, model, cfg, "base", doc_embeddings)
    systems.update(base.systems)
    seconds = time.perf_counter() - start
    if doc_embeddings is not None:  # the corpus came from one pass shared with mining: time an encoding instead
        seconds = _encoding_seconds(model, eval_set, cfg.evaluation.batch_size)
    logger.info("base model evaluated: %s", systems["base"].means)
    result = Baselines(systems, base.fusion, seconds)
    write_json(baseline_file, result.to_dict())
    return result


def _encoding_seconds(model, eval_set: EvalSet, batch_size: int) -> float:
    """Seconds one evaluation would take: the corpus encoding rate on a sample, times the corpus."""
    texts = list(eval_set.corpus.values())
    sample = texts[: min(len(texts), 2 * batch_size)]
    start = time.perf_counter()
    model.encode(sample, batch_size=batch_size, convert_to_numpy=True)
    return (time.perf_counter() - start) * len(texts) / max(1, len(sample))
