"""The trainer's arguments from a TrainConfig: evaluation / save schedule, precision, sampler.

One function, :func:`training_arguments`, so the schedule rules live in one readable place:
evaluate every ``evaluation.eval_steps`` steps, else at each epoch end when there are several
epochs or early stopping; keep the best checkpoint when there is an evaluation to choose by.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedding_ft.config import TrainConfig


@dataclass(frozen=True)
class Schedule:
    """When the trainer evaluates and saves, and whether it reloads the best checkpoint."""

    eval_strategy: str
    save_strategy: str
    save_steps: int | None
    load_best: bool


def schedule(cfg: TrainConfig, has_evaluator: bool) -> Schedule:
    """The evaluation and save schedule for ``cfg``."""
    ev = cfg.evaluation
    if not has_evaluator:
        eval_strategy = "no"
    elif ev.eval_steps:
        eval_strategy = "steps"
    else:
        eval_strategy = "epoch" if (cfg.num_epochs > 1 or ev.early_stopping_patience) else "no"
    load_best = eval_strategy != "no" and (ev.save_best_model or ev.early_stopping_patience is not None)
    if eval_strategy == "steps":
        save_strategy, save_steps = "steps", cfg.save_steps or ev.eval_steps
    elif eval_strategy == "epoch":
        save_strategy, save_steps = "epoch", None
    else:
        save_strategy, save_steps = ("steps", cfg.save_steps) if cfg.save_steps else ("epoch", None)
    return Schedule(eval_strategy, save_strategy, save_steps, load_best)


def training_arguments(
    cfg: TrainConfig, work: Path, plan: Schedule, ranking: bool, primary: str | None, bf16: bool, device: str
):
    """``SentenceTransformerTrainingArguments`` for a run written to ``work``.

    Args:
        ranking: the loss reads in-batch negatives, so batches must not hold a text twice
            (the no-duplicates sampler).
        primary: the evaluator's primary metric (model selection), or None.
    """
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    trainer_seed = cfg.seed if cfg.training_seed is None else cfg.training_seed
    return SentenceTransformerTrainingArguments(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=cfg.num_epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # a value < 1 is a ratio of the total steps
        bf16=bf16,
        use_cpu=device == "cpu",
        activation_checkpointing=cfg.gradient_checkpointing,
        batch_sampler=BatchSamplers.NO_DUPLICATES if ranking else BatchSamplers.BATCH_SAMPLER,
        eval_strategy=plan.eval_strategy,
        eval_steps=cfg.evaluation.eval_steps if plan.eval_strategy == "steps" else None,
        save_strategy=plan.save_strategy,
        save_steps=plan.save_steps,
        save_total_limit=cfg.save_total_limit,
        save_only_model=False,
        load_best_model_at_end=plan.load_best,
        metric_for_best_model=f"eval_test_{primary}" if plan.load_best else None,
        greater_is_better=True,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        report_to="none",
        seed=trainer_seed,
        data_seed=trainer_seed,
        dataloader_drop_last=False,
    )
