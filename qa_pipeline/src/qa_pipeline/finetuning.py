"""Fine-tuning on generated Q&A pairs, through embeddingFT's training code.

The pairs (``question`` -> query, ``answer`` -> document) are split into train and
validation *by paper* (no paper on both sides), then handed to
:func:`embedding_ft.train.train`, the workspace's one training path. The output folder
holds what the guide documents::

    output_dir/
        final_model/                 loads with SentenceTransformer(path)
        checkpoints/                 trainer checkpoints; a rerun resumes from the last one
        training_progress.json       status, timestamps, duration, data sizes, final_model_path
        training_metrics.jsonl       timestamp, epoch, step, loss and eval metrics per log
        logs/embedding_finetuning.log
        embedding_finetuner.json     the resolved config
        metrics.json  metrics.md  training_curve.png  (embeddingFT's report: BM25 / base / fine-tuned)

The command line is :mod:`qa_pipeline.cli.finetune` (``python -m qa_pipeline.finetune``); the pairs
are read and split in :mod:`qa_pipeline.qa_pairs`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from embedding_ft.config import MiningConfig
from embshared.config import save_config
from embshared.errors import UserError
from embshared.models import DEFAULT_MODEL
from embshared.runtime import pick_device
from qa_pipeline.qa_pairs import load_qa_pairs, split_by_paper

logger = logging.getLogger(__name__)

#: the loss names of the guide; any other name of embedding_ft.losses.LOSSES works too.
GUIDE_LOSSES = ("MultipleNegativesRankingLoss", "ContrastiveLoss", "CosineSimilarityLoss", "OnlineContrastiveLoss")


@dataclass
class FinetuneConfig:
    """The guide's keys (``config/embedding_finetuner.json``) plus the mining section."""

    input_jsonl: str = field(default="data/qa_outputs/jsonl/questions_answers.jsonl", metadata={"help": "Q&A pairs"})
    output_dir: str = field(default="models/fine_tuned_embeddings", metadata={"help": "run folder"})
    base_model: str = field(default=DEFAULT_MODEL, metadata={"help": "local path or packaged model name"})
    num_epochs: float = 3.0
    train_batch_size: int = 16
    eval_batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_steps: float = field(
        default=0.1, metadata={"help": "warm-up: a ratio of all steps when < 1, else a number of steps"}
    )
    weight_decay: float = 0.01
    loss_function: str = field(
        default="MultipleNegativesRankingLoss",
        metadata={
            "help": "MultipleNegativesRankingLoss | ContrastiveLoss | CosineSimilarityLoss | OnlineContrastiveLoss"
        },
    )
    evaluation_steps: int = field(default=0, metadata={"help": "evaluate every N steps (0: once per epoch)"})
    save_steps: int = field(default=0, metadata={"help": "checkpoint every N steps (0: with each evaluation)"})
    save_best_model: bool = field(
        default=True,
        metadata={
            "help": "final_model is the checkpoint with the best validation NDCG@10 (ties keep the earlier one); "
            "false: the last one (better when the validation split is too small to rank checkpoints)"
        },
    )
    max_seq_length: int = 256
    train_split: float = field(default=0.9, metadata={"help": "share of papers used for training"})
    seed: int = 42
    matryoshka_dims: list[int] = field(default_factory=list, metadata={"help": "wrap the loss in MatryoshkaLoss"})
    resume: bool = field(default=True, metadata={"help": "continue from the last checkpoint in output_dir"})
    overwrite: bool = field(default=False, metadata={"help": "retrain even if output_dir holds a finished model"})
    tensorboard: bool = field(default=True, metadata={"help": "TensorBoard logs in output_dir/tensorboard"})
    device: str = field(default="", metadata={"help": "'' = CUDA when available, else CPU"})
    bf16: bool | Literal["auto"] = field(
        default="auto",
        metadata={"help": "bfloat16 autocast (auto: when the device has it natively; on some CPUs fp32 is faster)"},
    )
    cache_dir: str = field(default="data/cache", metadata={"help": "mined-negative cache"})
    mining: MiningConfig = field(default_factory=MiningConfig, metadata={"help": "hard-negative mining (embeddingFT)"})

    def validate(self) -> None:
        from embedding_ft.losses import loss_spec

        loss_spec(self.loss_function)
        if not 0 < self.train_split <= 1:
            raise ValueError(f"key 'train_split' must be in (0, 1], got {self.train_split}")
        if self.train_batch_size < 1 or self.num_epochs <= 0 or self.learning_rate <= 0:
            raise ValueError("train_batch_size, num_epochs and learning_rate must be positive")
        if self.warmup_steps < 0:
            raise ValueError(f"key 'warmup_steps' must be >= 0, got {self.warmup_steps}")
        self.mining.validate()


def warmup_ratio(warmup_steps: float, n_rows: int, batch_size: int, num_epochs: float) -> float:
    """The guide's ``warmup_steps`` as embeddingFT's ratio: values < 1 are ratios already;
    a number of steps is divided by the run's steps (capped at 0.5)."""
    if warmup_steps < 1:
        return float(warmup_steps)
    total = max(1, math.ceil(n_rows / batch_size) * num_epochs)
    return min(0.5, warmup_steps / total)


def train_config(cfg: FinetuneConfig, n_train: int, run_dir: Path, resume: bool):
    """The embedding_ft TrainConfig for this run."""
    from embedding_ft.config import EvaluationConfig, TrainConfig
    from embedding_ft.losses import loss_spec

    spec = loss_spec(cfg.loss_function)
    rows_per_example = 1 if spec.data == "ranking" else 1 + cfg.mining.num_negatives
    return TrainConfig(
        dataset_name=cfg.input_jsonl,
        seed=cfg.seed,
        model_name=cfg.base_model,
        num_epochs=cfg.num_epochs,
        batch_size=cfg.train_batch_size,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_ratio=warmup_ratio(cfg.warmup_steps, n_train * rows_per_example, cfg.train_batch_size, cfg.num_epochs),
        max_seq_length=cfg.max_seq_length,
        loss=spec.name,
        matryoshka_dims=list(cfg.matryoshka_dims),
        cache_dir=cfg.cache_dir,
        output_dir=str(run_dir.parent),
        run_name=run_dir.name,
        save_steps=cfg.save_steps or None,
        resume=resume,
        tensorboard=cfg.tensorboard,
        device=cfg.device or None,
        bf16=cfg.bf16,
        mining=cfg.mining,
        evaluation=EvaluationConfig(
            eval_steps=cfg.evaluation_steps or None,
            batch_size=cfg.eval_batch_size,
            save_best_model=cfg.save_best_model,
        ),
    )


def finetune(cfg: FinetuneConfig, callbacks=()):
    """Split the pairs by paper and train through embeddingFT, writing the guide's files.

    Returns:
        embedding_ft's RunResult, or None when ``output_dir`` already holds a finished run
        (and ``overwrite`` is false).
    """
    from embedding_ft.train import last_checkpoint, train
    from qa_pipeline.tracking import PROGRESS_FILE, ProgressCallback, ProgressTracker

    out = Path(cfg.output_dir)
    progress_file = out / PROGRESS_FILE
    if progress_file.exists() and (out / "final_model").is_dir() and not cfg.overwrite:
        import json

        if json.loads(progress_file.read_text(encoding="utf-8")).get("training_completed"):
            logger.info("%s already holds a finished model; pass overwrite=true to train again", out)
            return None
    examples = load_qa_pairs(cfg.input_jsonl)
    train_ex, eval_ex = split_by_paper(examples, cfg.train_split, cfg.seed)
    n_papers = len({r["paper_id"] for r in examples.rows})
    eval_papers = sorted({r["paper_id"] for r in eval_ex.rows})
    if len(train_ex.rows) < 2:
        raise UserError(f"{cfg.input_jsonl}: only {len(train_ex.rows)} training pair(s); generate more Q&A first")
    if not eval_ex.rows:
        logger.warning("%d paper(s): no validation split (needs two or more papers and train_split < 1)", n_papers)
    logger.info(
        "%d pairs from %d papers -> %d train / %d validation pairs (%d validation papers)",
        len(examples.rows),
        n_papers,
        len(train_ex.rows),
        len(eval_ex.rows),
        len(eval_papers),
    )
    checkpoint = last_checkpoint(out / "checkpoints") if cfg.resume and not cfg.overwrite else None
    if cfg.overwrite and (out / "checkpoints").is_dir():
        import shutil

        shutil.rmtree(out / "checkpoints")
    tcfg = train_config(cfg, len(train_ex.rows), out, resume=checkpoint is not None)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "embedding_finetuner.json")
    tracker = ProgressTracker(
        out,
        {
            "base_model": cfg.base_model,
            "loss_function": tcfg.loss,
            "num_epochs": cfg.num_epochs,
            "train_examples": len(train_ex.rows),
            "eval_examples": len(eval_ex.rows),
            "train_papers": n_papers - len(eval_papers),
            "eval_papers": len(eval_papers),
            "final_model_path": str(out / "final_model"),
            "device": pick_device(cfg.device or None),
        },
    )
    tracker.start(resumed_from=checkpoint)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    try:
        result = train(tcfg, train_ex, eval_ex, callbacks=[ProgressCallback(tracker), *callbacks], run_dir=out)
    except BaseException as exc:
        tracker.fail(f"{type(exc).__name__}: {exc}")
        raise
    tracker.finish(metrics=result.metrics, final_model_path=str(result.model_dir))
    return result
