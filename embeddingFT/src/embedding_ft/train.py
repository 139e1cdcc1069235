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
from functools import partial
from pathlib import Path

from embedding_ft.arguments import schedule, training_arguments
from embedding_ft.baselines import Baselines, evaluate_baselines, evaluate_model
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
from embedding_ft.report import RunFacts, build_summary, format_report, plot_training_curve
from embedding_ft.rows import oversample_bm25_misses, training_rows, with_pseudo_queries
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
# The run: prepare rows -> baselines -> fit -> finalize


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
    ctx = _prepare(cfg, train_examples, test_examples, device, state)  # every bad input fails here

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
        rows = prepare_rows(ctx, work)
        baselines = run_baselines(ctx, rows, work)
        fitted = fit_head(ctx, rows) if cfg.adapter == "head" else fit(ctx, rows, baselines, work, callbacks)
        metrics = finalize(ctx, rows, baselines, fitted, work, final.name)
        if state.is_main_process:
            attach_log_file(None, log_handler)
            log_handler = None
            if not in_place:
                os.replace(work, final)
        state.wait_for_everyone()
        return RunResult(
            final, final / "final_model", metrics, len(ctx.prepared.train.rows), len(ctx.prepared.eval_set)
        )
    finally:
        if log_handler is not None:
            attach_log_file(None, log_handler)


@dataclass
class _RunContext:
    """What every step of a run reads: the config, the data, the model and loss, the evaluator."""

    cfg: TrainConfig
    prepared: Prepared
    choice: LossChoice
    model: object
    guide: object
    model_path: str
    mining_path: str
    shadow: list
    n_pseudo: int
    device: str
    bf16: bool
    evaluator: object  # RetrievalEvaluator / SimilarityEvaluator, or None without a held-out split
    primary: str | None
    state: object  # accelerate's PartialState
    start: float


@dataclass
class _Rows:
    rows: list[dict]
    info: dict
    documents: object  # CorpusVectors: the base model's vectors of the mining texts (one pass, shared, cached)


def corpus_vectors(cfg: TrainConfig, model, model_path: str, texts: list[str], gate: str = "exact"):
    """``model``'s vectors of ``texts``, encoded once (lazily) on ``cfg.encode_backend``, cached under ``cache_dir``.

    ``gate``: "exact" where the vectors feed reported figures, "approximate" where only mining
    reads them (see :class:`embedding_ft.corpus_encoder.CorpusEncoder`).
    """
    from embedding_ft import backends
    from embedding_ft.corpus_encoder import CorpusEncoder, CorpusVectors, EmbeddingCache, exported_copy
    from embedding_ft.export import FILES

    cache = EmbeddingCache(Path(cfg.cache_dir) / "vectors")
    backend, file_name, encoder = cfg.encode_backend, None, model
    if backend in ("onnx", "openvino"):
        file_name = FILES[(backend, "none")]
        folder = Path(resolve_model(model_path))
        if not (folder / file_name).is_file():  # exported once into the cache (never into the model folder)
            folder = exported_copy(folder, cache.root / "exports", "exact") or folder
        encoder = backends.load_encoder(str(folder), backend, file_name)  # refuses a missing export in one line
        encoder.max_seq_length = model.max_seq_length
    prompt = "document" if "document" in (getattr(model, "prompts", None) or {}) else None
    corpus = CorpusEncoder(
        model_path, backend, file_name, cache=cache, gate=gate, encoder=encoder, prompt_name=prompt,
        token_budget=cfg.mining.batch_size * 256, export=backend == "auto",
    )  # fmt: skip
    return CorpusVectors(corpus, texts)


@dataclass
class _Fitted:
    model: object
    facts: dict  # the summary's "train" block
    estimate: dict  # CostEstimator.report
    history: list[dict]
    doc_embeddings: object = None  # the held-out corpus's vectors when known without encoding (adapter)
    adapter_info: object = None  # embedding_ft.adapter.AdapterInfo, saved beside an adapter's modules


def _prepare(cfg: TrainConfig, train_examples, test_examples, device: str, state) -> _RunContext:
    """Resolve models and data, choose the loss, build the evaluator: everything that can fail on bad input."""
    from embedding_ft.evaluation import dev_rest_split, make_evaluator

    start = time.perf_counter()
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
    eval_set, ev = prepared.eval_set, cfg.evaluation
    evaluator = primary = None
    if len(eval_set):
        dev_ids = dev_rest_split(eval_set.queries, ev.dev_fraction, ev.dev_seed)[0] if ev.dev_fraction else []
        metric_names = list(dict.fromkeys([*ev.metrics, ev.primary_metric]))
        evaluator = make_evaluator(eval_set, metric_names, ev.primary_metric, ev.batch_size, dev_ids)
        primary = "spearman" if eval_set.kind == "similarity" else ev.primary_metric
    return _RunContext(
        cfg, prepared, choice, model, guide, model_path, mining_path, shadow, n_pseudo,
        device, resolve_bf16(cfg.bf16, device), evaluator, primary, state, start,
    )  # fmt: skip


def prepare_rows(ctx: _RunContext, work: Path) -> _Rows:
    """The rows the loss reads: pairs with pseudo-queries, mined negatives (cached) and the audit.

    Mining runs on the main process first; the other processes then read its cache.
    """
    from sentence_transformers import SentenceTransformer

    cfg, state = ctx.cfg, ctx.state
    same = ctx.mining_path == ctx.model_path
    mining_model = ctx.model if same else SentenceTransformer(ctx.mining_path, device=ctx.device)
    texts = ctx.prepared.mining_texts
    documents = corpus_vectors(cfg, ctx.model, ctx.model_path, texts)
    # a separate mining model's vectors feed no reported figure: an approximate back end may mine
    mining_documents = documents if same else corpus_vectors(cfg, mining_model, ctx.mining_path, texts, "approximate")
    # the length and the back end are part of the id: mined rows made at another max_seq_length
    # or on another back end must not be reused
    mining_id = f"{model_fingerprint(ctx.mining_path, mining_model.max_seq_length)}|{cfg.encode_backend}"
    with state.main_process_first():
        rows, info = training_rows(
            ctx.prepared, ctx.choice.spec, cfg, mining_model, mining_id, ctx.shadow,
            work if state.is_main_process else None, mining_documents,
        )  # fmt: skip
    info["pseudo_queries"] = ctx.n_pseudo
    if cfg.oversample_bm25_misses and ctx.prepared.train.format != "similarity":
        rows, info["bm25_missed_rows"] = oversample_bm25_misses(
            rows, ctx.prepared.mining_texts, cfg.oversample_bm25_misses
        )
    return _Rows(rows, info, documents)


def run_baselines(ctx: _RunContext, rows: _Rows, work: Path) -> Baselines:
    """BM25, the base model and its hybrids on the held-out split (main process; empty without one)."""
    if ctx.evaluator is None or not ctx.state.is_main_process:
        return Baselines({}, None, 0.0)
    return evaluate_baselines(ctx.cfg, ctx.prepared, ctx.model, ctx.evaluator, work, rows.documents)


def fit(ctx: _RunContext, rows: _Rows, baselines: Baselines, work: Path, callbacks) -> _Fitted:
    """Train with ``SentenceTransformerTrainer`` (or WiSE-FT merge afterwards); returns the model and the facts."""
    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

    cfg, model, state = ctx.cfg, ctx.model, ctx.state
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.merge_with_base else None
    options = cfg.loss_options(ctx.guide, ctx.choice.mini_batch_size)
    train_rows = rows.rows
    if ctx.choice.spec.needs_bm25:  # the hybrid loss reads each batch's BM25 scores by row id
        train_rows, options = _with_bm25(ctx, train_rows, options)
    train_dataset = Dataset.from_list(train_rows)
    logger.info("training on %d rows with columns %s", len(train_dataset), train_dataset.column_names)
    plan = schedule(cfg, ctx.evaluator is not None)
    args = training_arguments(cfg, work, plan, ctx.choice.spec.data == "ranking", ctx.primary, ctx.bf16, ctx.device)
    estimator, key = _cost_estimator(ctx, rows.rows, len(train_dataset), plan, baselines.eval_seconds)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=build_loss(model, ctx.choice.spec.name, options),
        evaluator=ctx.evaluator if plan.eval_strategy != "no" else None,
        callbacks=_callbacks(ctx, plan, work, [*callbacks, estimator]),
    )
    resume_from = last_checkpoint(work / "checkpoints") if cfg.resume else None
    if resume_from:
        logger.info("resuming from %s", resume_from)
    start, cpu_start = time.perf_counter(), time.process_time()
    output = trainer.train(resume_from_checkpoint=resume_from)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if estimator.seconds_per_step is not None and state.is_main_process:
        save_calibration(cfg.cache_dir, key, estimator.seconds_per_step)
    model = trainer.model
    if base_state is not None:
        merge_with_base(model, base_state, cfg.merge_with_base)
        logger.info(
            "merged with the base weights: %.2f base + %.2f fine-tuned", cfg.merge_with_base, 1 - cfg.merge_with_base
        )
    facts = {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),  # all threads of this process
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_loss": output.training_loss,
        "train_samples_per_second": output.metrics.get("train_samples_per_second"),
        "bf16": ctx.bf16,
        "device": ctx.device,
        "torch_threads": torch.get_num_threads(),
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "n_rows": len(train_dataset),
    }
    return _Fitted(model, facts, estimator.report(seconds), trainer.state.log_history)


def fit_head(ctx: _RunContext, rows: _Rows) -> _Fitted:
    """The adapter recipe: a projection head over the frozen model, trained on its cached vectors.

    The rows (anchor, positive, negatives) become indices into one table of base vectors: the
    documents' come from the mining cache (encoded once, also for the base model's evaluation),
    the queries are encoded here. With ``bm25_aware`` the head is trained on the fused logits
    (cosine * scale + ``bm25_weight`` * z(BM25)). The held-out corpus's fine-tuned vectors are the
    head applied to its base vectors: no second encoding pass.
    """
    from embedding_ft.adapter import HeadOptions, apply_head, attach_head, train_head

    cfg, model = ctx.cfg, ctx.model
    if ctx.prepared.train.format not in ("pairs", "triplets"):
        raise UserError("adapter: head trains on (query, document) pairs, triplets or BEIR folders")
    start, cpu_start = time.perf_counter(), time.process_time()
    table = head_table(ctx, rows)
    h = cfg.adapter_head
    options = HeadOptions(
        hidden_dim=h.hidden_dim, epochs=h.epochs, batch_size=h.batch_size, learning_rate=h.learning_rate,
        weight_decay=h.weight_decay, scale=h.scale, isotropy_weight=h.isotropy_weight,
        bm25_weight=cfg.bm25_weight if cfg.bm25_aware else 0.0, validation_fraction=h.validation_fraction,
        seed=cfg.seed if cfg.training_seed is None else cfg.training_seed, merge_with_init=cfg.merge_with_base,
    )  # fmt: skip
    head, history = train_head(
        table.query_vectors, table.doc_vectors, table.examples, table.positives, options, table.bm25_z
    )
    adapter, info = attach_head(model, head, ctx.model_path)
    doc_embeddings = None
    if ctx.evaluator is not None and ctx.prepared.eval_set.kind == "retrieval":
        corpus = ctx.prepared.eval_set.corpus
        doc_embeddings = apply_head(head, table.doc_vectors[[table.doc_row[corpus[d]] for d in corpus]])
    seconds = time.perf_counter() - start
    best = min(history, key=lambda r: r[2]) if history and history[-1][2] is not None else history[-1]
    facts = {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(time.process_time() - cpu_start, 2),
        "steps": None,
        "epochs": options.epochs,
        "best_epoch": best[0],
        "train_loss": best[1],
        "train_samples_per_second": None,
        "bf16": False,
        "device": ctx.device,
        "torch_threads": __import__("torch").get_num_threads(),
        "best_checkpoint": None,
        "n_rows": len(table.examples),
        "adapter": "head",
        "encode_seconds": table.encode_seconds,
    }
    log = [{"epoch": e, "loss": train_loss, "eval_loss": val_loss, "step": e} for e, train_loss, val_loss in history]
    return _Fitted(adapter, facts, {}, log, doc_embeddings, info)


@dataclass
class HeadTable:
    """The adapter's training data as indices into cached base vectors."""

    query_vectors: object  # (n_queries, dim)
    doc_vectors: object  # (n_docs, dim)
    doc_row: dict  # document text -> row of doc_vectors
    examples: list  # (query row, positive doc row, [negative doc rows])
    positives: dict  # query row -> every known positive doc row
    bm25_z: object  # (query rows, doc rows) -> z-scored BM25, or None
    encode_seconds: float


def head_table(ctx: _RunContext, rows: _Rows) -> HeadTable:
    """Index the rows' texts; their base vectors from the run's one pass over the mining texts (``rows.documents``)."""
    import numpy as np

    cfg, prepared = ctx.cfg, ctx.prepared
    doc_texts = list(prepared.mining_texts)
    doc_row = {t: i for i, t in enumerate(doc_texts)}
    anchors: dict[str, int] = {}
    examples = []
    for row in rows.rows:
        values = [v for k, v in row.items() if k != "label"]
        q, docs = values[0], values[1:]
        for d in docs:
            if d not in doc_row:
                doc_row[d] = len(doc_texts)
                doc_texts.append(d)
        examples.append((anchors.setdefault(q, len(anchors)), doc_row[docs[0]], [doc_row[d] for d in docs[1:]]))
    start = time.perf_counter()
    encode = partial(ctx.model.encode, batch_size=cfg.mining.batch_size, normalize_embeddings=True)
    doc_vectors = rows.documents.of(doc_texts)  # the pass mining made (or made now), cached
    doc_vectors = doc_vectors / np.maximum(np.linalg.norm(doc_vectors, axis=1, keepdims=True), 1e-12)
    query_texts = list(anchors)
    query_vectors = encode(query_texts)
    encode_seconds = round(time.perf_counter() - start, 2)
    positives = {anchors[q]: {doc_row[d] for d in prepared.positives.get(q, ()) if d in doc_row} for q in query_texts}
    bm25_z = None
    if cfg.bm25_aware:
        from embedding_ft.adapter import zscore_lookup
        from embshared.search import BM25Index

        bm25 = BM25Index().index([str(i) for i in range(len(doc_texts))], doc_texts)
        bm25_z = zscore_lookup(bm25.score_matrix(query_texts))  # (n_queries, n_docs) z-scored per query
    return HeadTable(query_vectors, doc_vectors, doc_row, examples, positives, bm25_z, encode_seconds)


def _with_bm25(ctx: _RunContext, rows: list[dict], options):
    """Rows with a row-id ``label`` column and loss options holding their BM25 lookup (the hybrid loss).

    BM25 is indexed over the mining corpus with the default fusion's parameters, the collection
    the search-time fusion z-scores over."""
    import dataclasses

    from embedding_ft.hybrid_loss import BM25Lookup, with_row_ids
    from embshared.search import BM25Index

    texts = ctx.prepared.mining_texts
    index = BM25Index().index([str(i) for i in range(len(texts))], texts)
    rows = with_row_ids(rows)
    return rows, dataclasses.replace(options, bm25_lookup=BM25Lookup(rows, index, texts))


def _cost_estimator(ctx: _RunContext, rows: list[dict], n_rows: int, plan, eval_seconds: float):
    """The time estimator (and its calibration key) for this run's training, logged before it starts."""
    import torch

    cfg, choice = ctx.cfg, ctx.choice
    steps_per_epoch = math.ceil(n_rows / (cfg.batch_size * max(1, ctx.state.num_processes)))
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
        len(rows[0]) if rows else 0,
        max(column_tokens(ctx.model, rows[:256]) or [0]),
        torch.get_num_threads(),
    )
    estimator = CostEstimator(total_steps, n_evals, eval_seconds, load_calibration(cfg.cache_dir, key))
    logger.info(estimator.before_training())
    if eval_seconds:
        logger.info("the final evaluation after training: ~%.0f s", eval_seconds)
    if choice.memory:
        logger.info("estimated peak memory %.1f GB (max_memory_gb=%s)", choice.memory["chosen_gb"], cfg.max_memory_gb)
    return estimator, key


def _callbacks(ctx: _RunContext, plan, work: Path, extra: list) -> list:
    """The trainer's callbacks: the caller's, the estimator, early stopping and TensorBoard when asked."""
    from transformers import EarlyStoppingCallback

    out = list(extra)
    cfg = ctx.cfg
    if cfg.evaluation.early_stopping_patience is not None and plan.eval_strategy != "no":
        out.append(EarlyStoppingCallback(early_stopping_patience=cfg.evaluation.early_stopping_patience))
    if cfg.tensorboard and ctx.state.is_main_process:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        out.append(TensorBoardCallback(SummaryWriter(log_dir=str(work / "tensorboard"))))
    return out


def _final_doc_vectors(ctx: _RunContext, fitted: _Fitted, final: Path):
    """The held-out corpus's vectors by the saved model: the adapter's head on the base vectors when it has one,
    else one exact-gated pass on ``encode_backend`` (None with torch: the evaluator encodes, as the trainer's did)."""
    eval_set = ctx.prepared.eval_set
    if fitted.doc_embeddings is not None or ctx.cfg.encode_backend == "torch" or eval_set.kind != "retrieval":
        return fitted.doc_embeddings
    from embedding_ft.corpus_encoder import CorpusEncoder
    from embedding_ft.export import FILES, export_model

    backend = ctx.cfg.encode_backend
    # the final model's fp32 export, kept beside it (make export-embed reuses it); auto measures it against PyTorch
    for name in ("onnx", "openvino") if backend == "auto" else (backend,):
        export_model(final, name, "none")
    file_name = None if backend == "auto" else FILES[(backend, "none")]
    encoder = CorpusEncoder(
        str(final), backend, file_name, gate="exact", encoder=fitted.model if backend == "auto" else None,
        token_budget=ctx.cfg.evaluation.batch_size * 256,
    )  # fmt: skip
    vectors = encoder.encode(list(eval_set.corpus.values()))
    logger.info("final evaluation encoded on %s %s %s", encoder.backend, encoder.file_name or "", encoder.compute_dtype)
    return vectors


def finalize(
    ctx: _RunContext, rows: _Rows, baselines: Baselines, fitted: _Fitted, work: Path, run_name: str
) -> dict[str, dict[str, float]]:
    """Evaluate the trained model, save it (with its chosen fusion), write the reports; returns the metrics."""
    if not ctx.state.is_main_process:
        return {}
    cfg, model = ctx.cfg, fitted.model
    systems = dict(baselines.systems)
    fusion = None
    final = work / "final_model"
    with atomic_dir(final, overwrite=True) as tmp:
        model.save(str(tmp))
        save_config(cfg, tmp / "config.yaml")
        if fitted.adapter_info is not None:
            fitted.adapter_info.save(tmp)
    if ctx.evaluator is not None:
        tuned = evaluate_model(
            ctx.evaluator, ctx.prepared.eval_set, model, cfg, "finetuned", _final_doc_vectors(ctx, fitted, final)
        )
        systems.update(tuned.systems)
        fusion = tuned.fusion
        if fusion is not None:
            fusion.save(final)
    summary = build_summary(
        RunFacts(
            run=run_name,
            cfg=cfg,
            data_format=ctx.prepared.train.format,
            loss=ctx.choice,
            n_train_examples=len(ctx.prepared.train.rows),
            n_test=len(ctx.prepared.eval_set),
            n_dev=len(getattr(ctx.evaluator, "dev_rows", ())),
            n_rest=len(getattr(ctx.evaluator, "rest_rows", ())),
            eval_kind=ctx.prepared.eval_set.kind,
            primary=ctx.primary,
            data=rows.info,
            train=fitted.facts,
            cost={
                "run_seconds": round(time.perf_counter() - ctx.start, 1),
                "peak_rss_gb": peak_rss_gb(),
                "estimated_peak_gb": ctx.choice.memory["chosen_gb"] if ctx.choice.memory else None,
                "training": fitted.estimate,
            },
            systems=systems,
            fusions={"base": baselines.fusion, "finetuned": fusion},
            config=config_to_dict(cfg),
        )
    )
    write_json(work / "metrics.json", summary)
    write_json(work / "log_history.json", fitted.history)
    write_text(work / "metrics.md", format_report(summary))
    plot_training_curve(fitted.history, work / "training_curve.png", summary["primary_metric"])
    return summary["metrics"]
