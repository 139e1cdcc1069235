"""Fine-tune a sentence-transformers model: data -> (mining) -> SentenceTransformerTrainer -> report.

:func:`train` is the workspace's one training path (qa_pipeline trains through it too). It
validates everything it can before writing anything (config, data, the model itself),
evaluates BM25, the base model and their hybrid on the held-out split, mines hard negatives
(cached) and audits them, trains with ``SentenceTransformerTrainer``, optionally merges the
result with the base weights, evaluates again, and writes a run folder:

    <output_dir>/<run_name>/
        final_model/        loads with SentenceTransformer(path); config.yaml + model card inside
        checkpoints/        trainer checkpoints (resume=true continues from the last one)
        tensorboard/        with tensorboard=true
        config.yaml  metrics.json  metrics.md  training_curve.png  train.log
        false_negative_audit.jsonl   the mined negatives that look like unlabelled positives

The run is built in ``<output_dir>/.<run_name>.partial`` and renamed when it succeeds
(:mod:`embedding_ft.runs`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedding_ft.arguments import schedule, training_arguments
from embedding_ft.baselines import evaluate_baselines, evaluate_model
from embedding_ft.config import TrainConfig
from embedding_ft.data import Prepared, from_examples, prepare
from embedding_ft.estimate import (
    CostEstimator,
    calibration_key,
    column_tokens,
    load_calibration,
    save_calibration,
)
from embedding_ft.loss_choice import LossChoice, choose_loss
from embedding_ft.losses import build_loss
from embedding_ft.merge import merge_with_base
from embedding_ft.mining import model_fingerprint
from embedding_ft.report import format_report, plot_training_curve
from embedding_ft.rows import training_rows, with_pseudo_queries
from embedding_ft.runs import attach_log_file, last_checkpoint, plan_on_main_process
from embshared.bench import peak_rss_gb
from embshared.config import config_to_dict, save_config
from embshared.errors import UserError
from embshared.files import atomic_dir, write_json, write_text
from embshared.io import Examples
from embshared.models import load_sentence_transformer, resolve_model
from embshared.runtime import bf16_supported, pick_device, seed_everything

logger = logging.getLogger(__name__)

__all__ = ["RunResult", "last_checkpoint", "resolve_bf16", "train"]


@dataclass
class RunResult:
    """What a training run produced."""

    run_dir: Path
    model_dir: Path
    metrics: dict[str, dict[str, float]]
    n_train: int
    n_test: int


def resolve_bf16(setting: bool | str, device: str) -> bool:
    if setting == "auto":
        return bf16_supported(device)
    if setting and not bf16_supported(device):
        logger.warning("bf16=true on %s, where bfloat16 is not faster than fp32 (no AMX / CUDA bf16)", device)
    return bool(setting)


def _load_model(path: str, device: str):
    """The model, or one clear error naming the path (before any run folder exists)."""
    return load_sentence_transformer(path, device=device)


# ---------------------------------------------------------------------------------------
# The run


def train(
    cfg: TrainConfig,
    train_examples: Examples | None = None,
    test_examples: Examples | None = None,
    callbacks: Sequence = (),
    run_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Fine-tune ``cfg.model_name`` and evaluate it against its base model, BM25 and their hybrid.

    Args:
        cfg: the resolved config.
        train_examples, test_examples: explicit splits (e.g. split by paper upstream); when
            None, ``cfg.dataset_name`` is loaded and split by query.
        callbacks: extra ``transformers.TrainerCallback`` objects.
        run_dir: write the run here, in place (default: ``output_dir/run_name``, built in a
            hidden ``.partial`` folder and renamed when it succeeds).

    Returns:
        The run folder, the saved model folder and the metrics.
    """
    from accelerate import PartialState

    device = pick_device(cfg.device)
    state = PartialState(cpu=device == "cpu")  # under a multi-process launcher: gloo on CPU, NCCL on GPUs
    seed_everything(cfg.seed)

    # Everything that can fail on bad input fails here, before any output is written.
    model_path = resolve_model(cfg.model_name)
    mining_path = resolve_model(cfg.mining_model_name) if cfg.mining_model_name else model_path
    if train_examples is not None:
        prepared = from_examples(
            train_examples, test_examples or Examples(train_examples.format, [], train_examples.source)
        )
    else:
        prepared = prepare(
            cfg.dataset_name,
            cfg.dataset_split,
            cfg.test_size,
            cfg.seed,
            cfg.sample_size,
            cfg.test_dataset_name,
            cfg.test_dataset_split,
        )
    prepared, shadow, n_pseudo = with_pseudo_queries(prepared, cfg)
    model = _load_model(model_path, device)
    model.max_seq_length = cfg.max_seq_length
    choice = choose_loss(cfg, prepared.train.format, model, prepared.train.rows[:512])
    if prepared.train.format == "similarity" and choice.spec.data != "scored":
        raise UserError(
            f"loss {choice.spec.name} cannot train on (doc1, doc2, similarity) data; "
            "use loss=auto, CoSENTLoss or CosineSimilarityLoss"
        )
    guide = None
    if choice.spec.needs_guide:
        guide = _load_model(resolve_model(cfg.guide_model), device) if cfg.guide_model else copy.deepcopy(model)
        guide.max_seq_length = cfg.max_seq_length
    logger.info("loss %s (%s)", choice.spec.name, choice.reason)

    if run_dir is not None:
        work = final = Path(run_dir)
        in_place = True
    else:
        work, final = plan_on_main_process(cfg, state)
        in_place = False
    state.wait_for_everyone()
    if state.is_main_process:
        work.mkdir(parents=True, exist_ok=True)
        save_config(cfg, work / "config.yaml")
    log_handler = attach_log_file(work / "train.log") if state.is_main_process else None
    try:
        context = _RunContext(cfg, prepared, choice, model, guide, model_path, mining_path, shadow, n_pseudo)
        result = _run(context, work, final.name, callbacks, state)
        if state.is_main_process:
            attach_log_file(None, log_handler)
            log_handler = None
            if not in_place:
                os.replace(work, final)
        state.wait_for_everyone()
        return RunResult(
            final, final / "final_model", result["metrics"], len(prepared.train.rows), len(prepared.eval_set)
        )
    finally:
        if log_handler is not None:
            attach_log_file(None, log_handler)


@dataclass
class _RunContext:
    cfg: TrainConfig
    prepared: Prepared
    choice: LossChoice
    model: object
    guide: object
    model_path: str
    mining_path: str
    shadow: list
    n_pseudo: int


def _run(ctx: _RunContext, work: Path, run_name: str, callbacks, state) -> dict:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback

    from embedding_ft.evaluation import make_evaluator

    cfg, prepared, choice, model = ctx.cfg, ctx.prepared, ctx.choice, ctx.model
    run_start = time.perf_counter()
    device = pick_device(cfg.device)
    bf16 = resolve_bf16(cfg.bf16, device)
    eval_set = prepared.eval_set
    metric_names = list(dict.fromkeys([*cfg.evaluation.metrics, cfg.evaluation.primary_metric]))
    evaluator = (
        make_evaluator(eval_set, metric_names, cfg.evaluation.primary_metric, cfg.evaluation.batch_size)
        if len(eval_set)
        else None
    )
    primary = (
        None if evaluator is None else ("spearman" if eval_set.kind == "similarity" else cfg.evaluation.primary_metric)
    )

    # Training rows (mining runs on the main process first; the others then read its cache).
    mining_model = model if ctx.mining_path == ctx.model_path else SentenceTransformer(ctx.mining_path, device=device)
    # the length is part of the id: mined rows and cached corpus embeddings (reused for the base
    # model's evaluation) made at another max_seq_length must not be reused
    mining_id = model_fingerprint(ctx.mining_path, mining_model.max_seq_length)
    with state.main_process_first():
        rows, data_info = training_rows(
            prepared, choice.spec, cfg, mining_model, mining_id, ctx.shadow, work if state.is_main_process else None
        )
    data_info["pseudo_queries"] = ctx.n_pseudo
    del mining_model

    metrics: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, float]] = {}
    eval_seconds = 0.0
    if evaluator is not None and state.is_main_process:
        reuse = data_info.get("mined") and ctx.mining_path == ctx.model_path
        metrics, eval_seconds, per_query = evaluate_baselines(
            cfg, prepared, model, evaluator, work, mining_id if reuse else None
        )
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.merge_with_base else None

    train_dataset = Dataset.from_list(rows)
    logger.info("training on %d rows with columns %s", len(train_dataset), train_dataset.column_names)

    plan = schedule(cfg, evaluator is not None)
    args = training_arguments(cfg, work, plan, choice.spec.data == "ranking", primary, bf16, device)
    steps_per_epoch = math.ceil(len(train_dataset) / (cfg.batch_size * max(1, state.num_processes)))
    total_steps = math.ceil(steps_per_epoch * cfg.num_epochs)
    n_evals = 0
    if plan.eval_strategy == "steps":
        n_evals = total_steps // cfg.evaluation.eval_steps
    elif plan.eval_strategy == "epoch":
        n_evals = math.ceil(cfg.num_epochs)
    key = calibration_key(
        model_fingerprint(ctx.model_path),
        choice.spec.name + str(choice.mini_batch_size),
        cfg.batch_size,
        len(train_dataset.column_names),
        max(column_tokens(model, rows[:256]) or [0]),
        torch.get_num_threads(),
    )
    estimator = CostEstimator(total_steps, n_evals, eval_seconds, load_calibration(cfg.cache_dir, key))
    logger.info(estimator.before_training())
    if eval_seconds:
        logger.info("the final evaluation after training: ~%.0f s", eval_seconds)
    if choice.memory:
        logger.info("estimated peak memory %.1f GB (max_memory_gb=%s)", choice.memory["chosen_gb"], cfg.max_memory_gb)

    trainer_callbacks = [*callbacks, estimator]
    if cfg.evaluation.early_stopping_patience is not None and plan.eval_strategy != "no":
        trainer_callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.evaluation.early_stopping_patience))
    if cfg.tensorboard and state.is_main_process:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        trainer_callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(work / "tensorboard"))))
    loss = build_loss(model, choice.spec.name, cfg.loss_options(ctx.guide, choice.mini_batch_size))
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator if plan.eval_strategy != "no" else None,
        callbacks=trainer_callbacks,
    )
    resume_from = last_checkpoint(work / "checkpoints") if cfg.resume else None
    if resume_from:
        logger.info("resuming from %s", resume_from)
    start, cpu_start = time.perf_counter(), time.process_time()
    output = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if estimator.seconds_per_step is not None and state.is_main_process:
        save_calibration(cfg.cache_dir, key, estimator.seconds_per_step)

    result: dict = {"metrics": metrics}
    if state.is_main_process:
        model = trainer.model
        if base_state is not None:
            merge_with_base(model, base_state, cfg.merge_with_base)
            logger.info(
                "merged with the base weights: %.2f base + %.2f fine-tuned",
                cfg.merge_with_base,
                1 - cfg.merge_with_base,
            )
        if evaluator is not None:
            metrics["finetuned"], hybrid = evaluate_model(evaluator, eval_set, model, cfg)
            if hybrid is not None:
                metrics["hybrid_finetuned"] = hybrid
                per_query["finetuned"] = evaluator.last_per_query["dense"]
                per_query["hybrid_finetuned"] = evaluator.last_per_query["hybrid"]
        with atomic_dir(work / "final_model", overwrite=True) as tmp:
            model.save(str(tmp))
            save_config(cfg, tmp / "config.yaml")
        history = trainer.state.log_history
        summary = {
            "run": run_name,
            "dataset": cfg.dataset_name,
            "format": prepared.train.format,
            "base_model": cfg.model_name,
            "loss": choice.spec.name,
            "loss_reason": choice.reason,
            "n_train_examples": len(prepared.train.rows),
            "n_train_rows": len(train_dataset),
            "n_test": len(eval_set),
            "eval_kind": eval_set.kind,
            "primary_metric": primary,
            "hybrid_weight": cfg.evaluation.hybrid_weight if "hybrid_base" in metrics else None,
            "merge_with_base": cfg.merge_with_base,
            "data": data_info,
            "train": {
                "seconds": round(train_seconds, 2),
                "cpu_seconds": round(train_cpu_seconds, 2),  # all threads of this process
                "steps": trainer.state.global_step,
                "epochs": trainer.state.epoch,
                "train_loss": output.training_loss,
                "train_samples_per_second": output.metrics.get("train_samples_per_second"),
                "bf16": bf16,
                "device": device,
                "torch_threads": torch.get_num_threads(),
                "best_checkpoint": trainer.state.best_model_checkpoint,
            },
            "cost": {
                "run_seconds": round(time.perf_counter() - run_start, 1),
                "peak_rss_gb": peak_rss_gb(),
                "estimated_peak_gb": choice.memory["chosen_gb"] if choice.memory else None,
                "training": estimator.report(train_seconds),
            },
            "metrics": metrics,
            "per_query": {"metric": primary, **per_query} if per_query else {},
            "config": config_to_dict(cfg),
        }
        write_json(work / "metrics.json", summary)
        write_json(work / "log_history.json", history)
        write_text(work / "metrics.md", format_report(summary))
        plot_training_curve(history, work / "training_curve.png", summary["primary_metric"])
        result["summary"] = summary
    return result
