"""Fine-tune a sentence-transformers model: data -> (mining) -> SentenceTransformerTrainer -> report.

:func:`train` is the workspace's one training path (qa_pipeline trains through it too). It
validates everything it can before writing anything, evaluates BM25 and the base model on the
held-out split, mines hard negatives (cached), trains with ``SentenceTransformerTrainer``,
evaluates the result, and writes a run folder:

    <output_dir>/<run_name>/
        final_model/        loads with SentenceTransformer(path); config.yaml + model card inside
        checkpoints/        trainer checkpoints (resume=true continues from the last one)
        tensorboard/        with tensorboard=true
        config.yaml  metrics.json  metrics.md  training_curve.png  train.log

The run is built in ``<output_dir>/.<run_name>.partial`` and renamed when it succeeds, so a
failed or interrupted run never leaves a folder that looks finished.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from embedding_ft.config import TrainConfig
from embedding_ft.data import EvalSet, Prepared, from_examples, prepare
from embedding_ft.losses import LossSpec, build_loss, loss_spec
from embedding_ft.mining import cached_corpus_embeddings, embedding_cache_folder, mine, model_fingerprint
from embedding_ft.report import format_report, plot_training_curve
from embshared.config import config_to_dict, save_config
from embshared.errors import UserError
from embshared.evaluate import evaluate_retrieval
from embshared.files import atomic_dir, write_json, write_text
from embshared.io import Examples
from embshared.models import resolve_model
from embshared.runtime import LOG_FORMAT, bf16_supported, pick_device, seed_everything
from embshared.search import bm25_score_fn

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a training run produced."""

    run_dir: Path
    model_dir: Path
    metrics: dict[str, dict[str, float]]
    n_train: int
    n_test: int


# ---------------------------------------------------------------------------------------
# Run folders


def _default_run_name(cfg: TrainConfig) -> str:
    stem = Path(cfg.dataset_name.rstrip("/")).name.replace(".", "-") or "run"
    return f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"


def _find_partial(output_dir: Path) -> Path | None:
    partials = sorted(output_dir.glob(".*.partial"), key=lambda p: p.stat().st_mtime)
    return partials[-1] if partials else None


def plan_run_dirs(cfg: TrainConfig) -> tuple[Path, Path]:
    """(work dir, final dir) for a run; checks resume/overwrite rules before anything is written."""
    output_dir = Path(cfg.output_dir)
    if cfg.resume and not cfg.run_name:
        partial = _find_partial(output_dir) if output_dir.is_dir() else None
        if partial is None:
            raise UserError(f"resume=true: no interrupted run in {output_dir} (pass run_name=...)")
        name = partial.name[1 : -len(".partial")]
    else:
        name = cfg.run_name or _default_run_name(cfg)
    final, work = output_dir / name, output_dir / f".{name}.partial"
    if final.exists():
        raise UserError(f"{final} already exists; choose another run_name")
    if cfg.resume and not work.is_dir():
        raise UserError(f"resume=true: {work} not found (nothing to resume)")
    if not cfg.resume and work.exists():
        shutil.rmtree(work)  # a stale partial run of the same name that the user chose not to resume
    return work, final


def _plan_on_main_process(cfg: TrainConfig, state) -> tuple[Path, Path]:
    """Plan the run folders once, on the main process, and give every process the same answer."""
    planned: object
    try:
        planned = plan_run_dirs(cfg) if state.is_main_process else None
    except UserError as exc:
        planned = exc
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        planned = broadcast_object_list([planned])[0]
    if isinstance(planned, UserError):
        raise planned
    return planned


def last_checkpoint(checkpoint_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None


# ---------------------------------------------------------------------------------------
# Training rows


def _scale_scores(rows: list[dict]) -> tuple[list[dict], float]:
    top = max(abs(r["similarity"]) for r in rows)
    scale = top if top > 1 else 1.0
    return [{"sentence1": r["doc1"], "sentence2": r["doc2"], "score": r["similarity"] / scale} for r in rows], scale


def training_rows(
    prepared: Prepared, spec: LossSpec, cfg: TrainConfig, model, model_id: str
) -> tuple[list[dict], dict[str, object]]:
    """The training rows for ``spec.data``, mining negatives when the loss or config asks for them.

    Returns:
        (rows, info) where the columns of the rows are in the order the loss reads them.
    """
    train, fmt = prepared.train, prepared.train.format
    info: dict[str, object] = {"format": fmt, "mined": False}
    if fmt == "similarity":
        if spec.data != "scored":
            raise UserError(
                f"loss {spec.name} cannot train on (doc1, doc2, similarity) data; use CoSENTLoss or CosineSimilarityLoss"
            )
        rows, scale = _scale_scores(train.rows)
        info["score_scale"] = scale
        return rows, info

    if fmt == "triplets":
        triples = [{"anchor": r["query"], "positive": r["positive"], "negative": r["negative"]} for r in train.rows]
        if spec.data in ("ranking", "triplet"):
            return triples, info
        labelled = [
            {"sentence1": t["anchor"], "sentence2": t[k], "label": int(k == "positive")}
            for t in triples
            for k in ("positive", "negative")
        ]
        return _relabel(labelled, spec), info

    # (query, document) pairs
    wants_negatives = spec.data != "ranking" or cfg.mining.enabled
    if not wants_negatives:
        return [{"anchor": r["query"], "positive": r["document"]} for r in train.rows], info
    if not cfg.mining.enabled:
        raise UserError(
            f"loss {spec.name} needs negatives: set mining.enabled=true or give (query, positive, negative) triplets"
        )
    output_format = {"ranking": "n-tuple", "triplet": "triplet"}.get(spec.data, "labeled-pair")
    start = time.perf_counter()
    rows = mine(train, prepared.corpus, prepared.positives, model, model_id, cfg.mining, output_format, cfg.cache_dir)
    info.update(mined=True, mining_seconds=round(time.perf_counter() - start, 2), mined_rows=len(rows))
    if output_format == "labeled-pair":
        labelled = [{"sentence1": r["anchor"], "sentence2": r[_doc_column(r)], "label": int(r["label"])} for r in rows]
        return _relabel(labelled, spec), info
    return rows, info


def _doc_column(row: dict) -> str:
    return next(k for k in row if k not in ("anchor", "label"))


def _relabel(rows: list[dict], spec: LossSpec) -> list[dict]:
    """Labelled losses read an int ``label``; scored losses a float ``score``."""
    if spec.data == "scored":
        return [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "score": float(r["label"])} for r in rows]
    return rows


# ---------------------------------------------------------------------------------------
# Evaluation


def evaluate_bm25(eval_set: EvalSet, metrics: list[str]) -> dict[str, float] | None:
    """BM25 on the same held-out retrieval task (None for the similarity format)."""
    if eval_set.kind != "retrieval" or not eval_set.queries:
        return None
    doc_ids = list(eval_set.corpus)
    score_fn = bm25_score_fn(doc_ids, [eval_set.corpus[d] for d in doc_ids])
    return evaluate_retrieval(eval_set.queries, eval_set.corpus, eval_set.qrels, score_fn, metrics, doc_ids=doc_ids)


def resolve_bf16(setting: bool | str, device: str) -> bool:
    if setting == "auto":
        return bf16_supported(device)
    if setting and not bf16_supported(device):
        logger.warning("bf16=true on %s, where bfloat16 is not faster than fp32 (no AMX / CUDA bf16)", device)
    return bool(setting)


# ---------------------------------------------------------------------------------------
# The run


def train(
    cfg: TrainConfig,
    train_examples: Examples | None = None,
    test_examples: Examples | None = None,
    callbacks: Sequence = (),
    run_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Fine-tune ``cfg.model_name`` and evaluate it against its base model and BM25.

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
    spec = loss_spec(cfg.loss)
    if train_examples is not None:
        prepared = from_examples(
            train_examples, test_examples or Examples(train_examples.format, [], train_examples.source)
        )
    else:
        prepared = prepare(cfg.dataset_name, cfg.dataset_split, cfg.test_size, cfg.seed, cfg.sample_size)
    if prepared.train.format == "similarity" and spec.data != "scored":
        raise UserError(
            f"loss {spec.name} cannot train on (doc1, doc2, similarity) data; use CoSENTLoss or CosineSimilarityLoss"
        )

    if run_dir is not None:
        work = final = Path(run_dir)
        in_place = True
    else:
        work, final = _plan_on_main_process(cfg, state)
        in_place = False
    state.wait_for_everyone()
    if state.is_main_process:
        work.mkdir(parents=True, exist_ok=True)
        save_config(cfg, work / "config.yaml")
    log_handler = _attach_log_file(work / "train.log") if state.is_main_process else None
    try:
        result = _run(cfg, prepared, spec, model_path, mining_path, work, final.name, callbacks, state)
        if state.is_main_process:
            _attach_log_file(None, log_handler)
            log_handler = None
            if not in_place:
                os.replace(work, final)
        state.wait_for_everyone()
        return RunResult(
            final, final / "final_model", result["metrics"], len(prepared.train.rows), len(prepared.eval_set)
        )
    finally:
        if log_handler is not None:
            _attach_log_file(None, log_handler)


def _attach_log_file(path: Path | None, handler: logging.Handler | None = None) -> logging.Handler | None:
    """Add a run log file to the root logger (path given), or remove and close ``handler``."""
    root = logging.getLogger()
    if handler is not None:
        root.removeHandler(handler)
        handler.close()
        return None
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


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


def metrics_at_checkpoint(history: list[dict], checkpoint: str | None, evaluator) -> dict[str, float] | None:
    """The evaluator's metrics logged at ``checkpoint`` (the model loaded at the end), if all were logged."""
    if not checkpoint:
        return None
    step = int(Path(checkpoint).name.rsplit("-", 1)[-1])
    prefix = f"eval_{evaluator.name}_"
    for entry in history:
        if entry.get("step") == step and any(k.startswith(prefix) for k in entry):
            values = {k[len(prefix) :]: float(v) for k, v in entry.items() if k.startswith(prefix)}
            if all(name in values for name in evaluator.metrics):
                return {name: values[name] for name in evaluator.metrics}
    return None


def _run(
    cfg: TrainConfig,
    prepared: Prepared,
    spec: LossSpec,
    model_path: str,
    mining_path: str,
    work: Path,
    run_name: str,
    callbacks,
    state,
) -> dict:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import EarlyStoppingCallback

    from embedding_ft.evaluation import make_evaluator

    device = pick_device(cfg.device)
    bf16 = resolve_bf16(cfg.bf16, device)
    model = SentenceTransformer(model_path, device=device)
    model.max_seq_length = cfg.max_seq_length
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
    mining_model = model if mining_path == model_path else SentenceTransformer(mining_path, device=device)
    mining_id = model_fingerprint(mining_path)
    with state.main_process_first():
        rows, data_info = training_rows(prepared, spec, cfg, mining_model, mining_id)
    del mining_model

    # Baselines on the held-out split (kept in the work dir so that a resumed run reuses them;
    # any other run, e.g. one writing in place over an earlier run, measures them again).
    baseline_file = work / "baseline.json"
    metrics: dict[str, dict[str, float]] = {}
    if evaluator is not None and state.is_main_process:
        if cfg.resume and baseline_file.is_file():
            metrics = json.loads(baseline_file.read_text())
        else:
            bm25 = evaluate_bm25(eval_set, metric_names)
            if bm25 is not None:
                metrics["bm25"] = bm25
            start = time.perf_counter()
            doc_embeddings = None
            if data_info.get("mined") and mining_path == model_path and eval_set.kind == "retrieval":
                doc_embeddings = _reuse_mining_embeddings(cfg, mining_id, prepared, eval_set)
            metrics["base"] = (
                evaluator.compute(model, doc_embeddings=doc_embeddings)
                if doc_embeddings is not None
                else evaluator.compute(model)
            )
            logger.info("base model evaluated in %.1f s: %s", time.perf_counter() - start, metrics["base"])
            write_json(baseline_file, metrics)

    train_dataset = Dataset.from_list(rows)
    logger.info("training on %d rows with columns %s", len(train_dataset), train_dataset.column_names)

    # Trainer
    eval_cfg = cfg.evaluation
    if evaluator is None:
        eval_strategy = "no"
    elif eval_cfg.eval_steps:
        eval_strategy = "steps"
    else:
        eval_strategy = "epoch" if (cfg.num_epochs > 1 or eval_cfg.early_stopping_patience) else "no"
    load_best = eval_strategy != "no" and (eval_cfg.save_best_model or eval_cfg.early_stopping_patience is not None)
    if eval_strategy == "steps":
        save_strategy, save_steps = "steps", cfg.save_steps or eval_cfg.eval_steps
    elif eval_strategy == "epoch":
        save_strategy, save_steps = "epoch", None
    else:
        save_strategy, save_steps = ("steps", cfg.save_steps) if cfg.save_steps else ("epoch", None)
    args = SentenceTransformerTrainingArguments(
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
        batch_sampler=BatchSamplers.NO_DUPLICATES if spec.data == "ranking" else BatchSamplers.BATCH_SAMPLER,
        eval_strategy=eval_strategy,
        eval_steps=eval_cfg.eval_steps if eval_strategy == "steps" else None,
        save_strategy=save_strategy,
        save_steps=save_steps,
        save_total_limit=cfg.save_total_limit,
        save_only_model=False,
        load_best_model_at_end=load_best,
        metric_for_best_model=f"eval_test_{primary}" if load_best else None,
        greater_is_better=True,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_drop_last=False,
    )
    trainer_callbacks = list(callbacks)
    if eval_cfg.early_stopping_patience is not None and eval_strategy != "no":
        trainer_callbacks.append(EarlyStoppingCallback(early_stopping_patience=eval_cfg.early_stopping_patience))
    if cfg.tensorboard and state.is_main_process:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        trainer_callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(work / "tensorboard"))))
    loss = build_loss(model, cfg)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator if eval_strategy != "no" else None,
        callbacks=trainer_callbacks,
    )
    resume_from = last_checkpoint(work / "checkpoints") if cfg.resume else None
    if resume_from:
        logger.info("resuming from %s", resume_from)
    start, cpu_start = time.perf_counter(), time.process_time()
    output = trainer.train(resume_from_checkpoint=resume_from)
    train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    result: dict = {"metrics": metrics}
    if state.is_main_process:
        model = trainer.model
        if evaluator is not None:
            at_best = metrics_at_checkpoint(trainer.state.log_history, trainer.state.best_model_checkpoint, evaluator)
            metrics["finetuned"] = at_best if load_best and at_best else evaluator.compute(model)
        with atomic_dir(work / "final_model", overwrite=True) as tmp:
            model.save(str(tmp))
            save_config(cfg, tmp / "config.yaml")
        history = trainer.state.log_history
        summary = {
            "run": run_name,
            "dataset": cfg.dataset_name,
            "format": prepared.train.format,
            "base_model": cfg.model_name,
            "loss": spec.name,
            "n_train_examples": len(prepared.train.rows),
            "n_train_rows": len(train_dataset),
            "n_test": len(eval_set),
            "eval_kind": eval_set.kind,
            "primary_metric": primary,
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
            "metrics": metrics,
            "config": config_to_dict(cfg),
        }
        write_json(work / "metrics.json", summary)
        write_json(work / "log_history.json", history)
        write_text(work / "metrics.md", format_report(summary))
        plot_training_curve(history, work / "training_curve.png", summary["primary_metric"])
        result["summary"] = summary
    return result
