"""The training loop: contrastive + SIGReg + variance, with accumulation, AMP, checkpoints and resume.

One readable loop (nanoGPT style). Per epoch it writes ``checkpoint_epoch_N.pt`` (model +
optimizer + scheduler + RNG state, for ``--resume``), updates ``best_model.pt`` when the
validation loss improves, and at the end writes ``final_model.pt``, ``history.json`` and
``training_curves.png``. ``train_config.json`` (the resolved config) and ``training.log``
sit beside them; TensorBoard scalars go to ``runs/``.

Gradient accumulation sums gradients of several micro-batches before a step. Note that
in-batch negatives and the per-batch statistics of SIGReg stay within a micro-batch, so
accumulation reaches a larger *optimisation* batch, not a larger contrastive batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from embshared.config import save_config
from embshared.errors import UserError
from embshared.files import write_json
from embshared.runtime import LOG_FORMAT, pick_device
from ragcun.checkpoint import (
    CheckpointError,
    load_model,
    load_weights,
    merge_model_config,
    read_checkpoint,
    save_checkpoint,
    stored_config,
)
from ragcun.data import TrainExample, count_batches, exclusion_mask, iterate_batches, positives_by_query
from ragcun.losses import EuclideanContrastiveLoss, GaussianEmbeddingLoss, SIGReg, VarianceLoss
from ragcun.model import GaussianEmbeddingGemma, ModelConfig

logger = logging.getLogger(__name__)

_EPOCH_CKPT = re.compile(r"checkpoint_epoch_(\d+)\.pt$")


@dataclass
class TrainConfig:
    """Everything ``scripts/train.py`` accepts (flags of the public guide plus what it lacked)."""

    train_data: str | None = field(
        default=None, metadata={"help": "training pairs/triplets (JSON, JSONL, CSV) or a BEIR folder"}
    )
    val_data: str | None = field(
        default=None, metadata={"help": "validation data, same formats (selects best_model.pt)"}
    )
    data_split: str = field(default="train", metadata={"help": "qrels split read from a BEIR folder"})
    output_dir: str = field(default="checkpoints", metadata={"help": "where checkpoints, config and logs go"})
    epochs: int = field(default=3, metadata={"help": "passes over the training data"})
    batch_size: int = field(default=16, metadata={"help": "examples per micro-batch (in-batch negatives)"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=2e-5, metadata={"help": "learning rate of the base encoder"})
    head_learning_rate: float = field(default=1e-3, metadata={"help": "learning rate of the projection head"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up steps, then linear decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0: off)"})
    lambda_isotropy: float = field(default=1.0, metadata={"help": "weight of SIGReg"})
    lambda_reg: float = field(default=0.1, metadata={"help": "weight of the variance term"})
    margin: float = field(default=1.0, metadata={"help": "margin of the contrastive loss (distance units)"})
    temperature: float = field(default=1.0, metadata={"help": "softness of the contrastive loss (0: hinge)"})
    num_slices: int = field(default=256, metadata={"help": "random directions of SIGReg per step"})
    mixed_precision: bool = field(default=False, metadata={"help": "bf16 autocast on CPU, fp16 + loss scaling on CUDA"})
    model_path: str | None = field(default=None, metadata={"help": "start from this checkpoint's weights"})
    resume: str | None = field(
        default=None, metadata={"help": "continue from a checkpoint_epoch_N.pt ('latest': newest in output_dir)"}
    )
    base_model: str | None = field(default=None, metadata={"help": "base encoder (default all-MiniLM-L6-v2)"})
    output_dim: int | None = field(default=None, metadata={"help": "embedding size (default: the base model's)"})
    head_hidden_dim: int | None = field(default=None, metadata={"help": "0: linear head; > 0: residual MLP width"})
    freeze_base: bool = field(default=False, metadata={"help": "train the projection head only"})
    freeze_early_layers: bool = field(default=False, metadata={"help": "freeze embeddings + first num_frozen_layers"})
    num_frozen_layers: int = field(default=4, metadata={"help": "layers frozen by freeze_early_layers"})
    max_seq_length: int | None = field(default=None, metadata={"help": "truncate texts to this many tokens"})
    calibrate_head: bool = field(default=True, metadata={"help": "centre/scale a fresh head on training texts"})
    calibration_samples: int = field(default=1024, metadata={"help": "texts used by calibrate_head"})
    cache_base_embeddings: bool = field(default=True, metadata={"help": "with freeze_base: encode each text once"})
    save_epoch_checkpoints: bool = field(default=True, metadata={"help": "write checkpoint_epoch_N.pt"})
    keep_checkpoints: int = field(default=0, metadata={"help": "keep only the newest N epoch checkpoints (0: all)"})
    log_every: int = field(default=10, metadata={"help": "log the loss parts every N optimizer steps"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard scalars to output_dir/runs"})
    seed: int = field(default=42, metadata={"help": "random seed"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: CUDA if available)"})
    threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads (None: torch's default; 1 is faster for a head-only run on busy cores)"},
    )

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            base_model=self.base_model,
            output_dim=self.output_dim,
            head_hidden_dim=self.head_hidden_dim,
            freeze_base=self.freeze_base,
            freeze_early_layers=self.freeze_early_layers,
            num_frozen_layers=self.num_frozen_layers,
            max_seq_length=self.max_seq_length,
        )

    def validate(self) -> None:
        self.model_config().validate()
        positive = ("epochs", "batch_size", "gradient_accumulation_steps", "num_slices", "log_every")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads must be positive, got {self.threads}")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (in-batch negatives, batch statistics)")
        nonnegative = ("learning_rate", "head_learning_rate", "weight_decay", "warmup_steps", "max_grad_norm")
        nonnegative += ("lambda_isotropy", "lambda_reg", "temperature", "keep_checkpoints", "calibration_samples")
        for name in nonnegative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.model_path and self.resume:
            raise ValueError("give model_path or resume, not both (resume restores the model too)")


@dataclass
class TrainResult:
    """Where the outputs are and how training went."""

    output_dir: Path
    best_model: Path
    final_model: Path
    best_epoch: int
    best_loss: float
    history: list[dict[str, Any]]


def build_loss(config: TrainConfig) -> GaussianEmbeddingLoss:
    """The objective from a config."""
    return GaussianEmbeddingLoss(
        contrastive=EuclideanContrastiveLoss(margin=config.margin, temperature=config.temperature),
        sigreg=SIGReg(num_slices=config.num_slices),
        variance=VarianceLoss(),
        lambda_isotropy=config.lambda_isotropy,
        lambda_reg=config.lambda_reg,
    )


def find_latest_checkpoint(output_dir: str | Path) -> Path:
    """The checkpoint_epoch_N.pt with the largest N in ``output_dir``."""
    found = [
        (int(m.group(1)), p)
        for p in Path(output_dir).glob("checkpoint_epoch_*.pt")
        if (m := _EPOCH_CKPT.search(p.name))
    ]
    if not found:
        raise CheckpointError(f"{output_dir}: no checkpoint_epoch_N.pt to resume from")
    return max(found)[1]


def _batch_loss(model, loss_fn, batch: list[TrainExample], known: dict, autocast, generator=None):
    queries = [e.query for e in batch]
    documents = [e.positive for e in batch]
    has_negatives = batch[0].negative is not None
    if has_negatives:
        documents += [e.negative for e in batch]
    with autocast():
        q = model(queries)  # (B, D)
        docs = model(documents)  # (B or 2B, D)
    p, n = docs[: len(batch)], (docs[len(batch) :] if has_negatives else None)
    return loss_fn(q, p, n, exclusion_mask(batch, known), generator=generator)


@torch.no_grad()
def validation_loss(
    model: GaussianEmbeddingGemma,
    loss_fn: GaussianEmbeddingLoss,
    examples: list[TrainExample],
    batch_size: int,
    seed: int = 0,
) -> dict[str, float]:
    """Mean loss parts over ``examples`` in a fixed order with fixed SIGReg directions (comparable across epochs)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    known = positives_by_query(examples)
    totals: dict[str, float] = {}
    count = 0
    try:
        for batch in iterate_batches(examples, batch_size):
            parts = _batch_loss(model, loss_fn, batch, known, contextlib.nullcontext, generator)
            for key, value in parts.as_dict().items():
                totals[key] = totals.get(key, 0.0) + value * len(batch)
            count += len(batch)
    finally:
        model.train(was_training)
    if not count:
        raise UserError("validation data has fewer than 2 examples")
    return {k: v / count for k, v in totals.items()}


def _calibration_texts(examples: list[TrainExample], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    chosen = rng.sample(list(examples), min(len(examples), max(1, n // 2)))
    return [e.query for e in chosen] + [e.positive for e in chosen]


def _plot_history(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from embshared.files import atomic_write

    steps = [h for h in history if h["kind"] == "step"]
    epochs = [h for h in history if h["kind"] == "epoch"]
    keys = ["loss", "contrastive", "sigreg", "variance", "pos_distance", "embedding_std"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, key in zip(axes.flat, keys):
        ax.plot([h["step"] for h in steps], [h[key] for h in steps], label="train")
        val = [(h["step"], h[f"val_{key}"]) for h in epochs if f"val_{key}" in h]
        if val:
            ax.plot(*zip(*val), "o-", label="validation")
        ax.set_title(key)
        ax.set_xlabel("optimizer step")
        ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=90)
    plt.close(fig)


def train(
    config: TrainConfig,
    train_examples: list[TrainExample],
    val_examples: list[TrainExample] | None = None,
    model: GaussianEmbeddingGemma | None = None,
    show_progress: bool = True,
    log_file: str | None = "training.log",
) -> TrainResult:
    """Train a GaussianEmbeddingGemma and write its checkpoints to ``config.output_dir``.

    Args:
        config: the resolved training config.
        train_examples: training pairs/triplets (all with negatives or none).
        val_examples: validation examples; best_model.pt is chosen by their loss (else by
            the training loss of the epoch).
        model: a model to train instead of building one from the config (e.g. one sharing
            a frozen base with another); it is calibrated if ``config.calibrate_head``.
        show_progress: tqdm bars.
        log_file: also log to this file inside the output folder (None: don't).

    Returns:
        The paths written and the loss history.
    """
    config.validate()
    if len(train_examples) < 2:
        raise UserError("need at least 2 training examples")
    device = pick_device(config.device)
    out = Path(config.output_dir)
    training_state: dict[str, Any] | None = None

    if config.resume:
        resume_path = find_latest_checkpoint(out) if config.resume == "latest" else Path(config.resume)
        payload = read_checkpoint(resume_path)
        if "training" not in payload:
            raise CheckpointError(f"{resume_path}: has no training state (resume from a checkpoint_epoch_N.pt)")
        model_config = merge_model_config(config.model_config(), stored_config(payload, resume_path), resume_path)
        model = GaussianEmbeddingGemma.from_config(model_config, device=device)
        load_weights(model, payload, resume_path)
        training_state = payload["training"]
        logger.info("resuming from %s (epoch %d done)", resume_path, training_state["epoch"])
    elif config.model_path:
        model = load_model(config.model_path, device=device, requested=config.model_config())
        logger.info("starting from the weights of %s", config.model_path)
    elif model is None:
        model = GaussianEmbeddingGemma.from_config(config.model_config(), device=device)
    model.to(device)
    if config.freeze_base and config.cache_base_embeddings:
        model.enable_base_cache()
    if config.calibrate_head and not (config.resume or config.model_path):
        info = model.calibrate_head(_calibration_texts(train_examples, config.calibration_samples, config.seed))
        logger.info(
            "head calibrated on %d texts: scale x%.3f (mean variance was %.4f)",
            info["samples"],
            info["scale"],
            info["variance_before"],
        )
    logger.info("model: %s", model.describe())

    loss_fn = build_loss(config).to(device)
    base_params = [p for p in model.base.parameters() if p.requires_grad]
    groups = [{"params": list(model.head.parameters()), "lr": config.head_learning_rate}]
    if base_params:
        groups.append({"params": base_params, "lr": config.learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    micro_batches = count_batches(len(train_examples), config.batch_size)
    steps_per_epoch = math.ceil(micro_batches / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, min(config.warmup_steps, total_steps), total_steps)
    use_cuda_amp = config.mixed_precision and device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_cuda_amp)
    amp_dtype = torch.float16 if use_cuda_amp else torch.bfloat16

    def autocast():
        return torch.autocast(device_type=torch.device(device).type, dtype=amp_dtype, enabled=config.mixed_precision)

    start_epoch, global_step = 0, 0
    best_loss, best_epoch = math.inf, -1
    history: list[dict[str, Any]] = []
    if training_state is not None:
        optimizer.load_state_dict(training_state["optimizer"])
        scheduler.load_state_dict(training_state["scheduler"])
        start_epoch = int(training_state["epoch"]) + 1
        global_step = int(training_state["global_step"])
        best_loss = float(training_state["best_loss"])
        best_epoch = int(training_state["best_epoch"])
        history = json.loads(training_state["history"])
        torch.set_rng_state(training_state["rng_state"])
        if start_epoch >= config.epochs:
            logger.warning("checkpoint is at epoch %d of %d: nothing left to train", start_epoch, config.epochs)

    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "train_config.json")
    writer = None
    if config.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(out / "runs"))
        except ImportError:
            logger.info("tensorboard is not installed; scalars only in history.json")

    handler = None
    if log_file:
        handler = logging.FileHandler(out / log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)
    try:
        known = positives_by_query(train_examples)
        logger.info(
            "training on %d examples (%s negatives), %d epochs x %d steps, batch %d x %d accumulation",
            len(train_examples),
            "with" if train_examples[0].negative is not None else "no explicit",
            config.epochs,
            steps_per_epoch,
            config.batch_size,
            config.gradient_accumulation_steps,
        )
        for epoch in range(start_epoch, config.epochs):
            model.train()
            generator = torch.Generator().manual_seed(config.seed + epoch)
            running: dict[str, float] = {}
            running_n = 0
            epoch_sum, epoch_n = 0.0, 0
            bar = tqdm(
                enumerate(iterate_batches(train_examples, config.batch_size, generator)),
                total=micro_batches,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                disable=not show_progress,
            )
            for index, batch in bar:
                parts = _batch_loss(model, loss_fn, batch, known, autocast)
                scaler.scale(parts.total / config.gradient_accumulation_steps).backward()
                for key, value in parts.as_dict().items():
                    running[key] = running.get(key, 0.0) + value
                running_n += 1
                epoch_sum += parts.as_dict()["loss"] * len(batch)
                epoch_n += len(batch)
                last = index + 1 == micro_batches
                if (index + 1) % config.gradient_accumulation_steps and not last:
                    continue
                if config.max_grad_norm:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                global_step += 1
                if global_step % config.log_every == 0 or last:
                    means = {k: v / running_n for k, v in running.items()}
                    record = {
                        "kind": "step",
                        "epoch": epoch + 1,
                        "step": global_step,
                        "lr": scheduler.get_last_lr()[0],
                        **means,
                    }
                    history.append(record)
                    logger.info(
                        "epoch %d step %d: loss %.4f = contrastive %.4f + %g x sigreg %.4f + %g x variance %.4f | "
                        "pos dist %.3f neg dist %.3f std %.3f",
                        epoch + 1, global_step, means["loss"], means["contrastive"], config.lambda_isotropy, means["sigreg"],
                        config.lambda_reg, means["variance"], means["pos_distance"], means["neg_distance"], means["embedding_std"],
                    )  # fmt: skip
                    if writer is not None:
                        for key, value in means.items():
                            writer.add_scalar(f"train/{key}", value, global_step)
                    bar.set_postfix(loss=f"{means['loss']:.3f}", sigreg=f"{means['sigreg']:.2f}")
                    running, running_n = {}, 0

            epoch_record: dict[str, Any] = {
                "kind": "epoch",
                "epoch": epoch + 1,
                "step": global_step,
                "train_loss": epoch_sum / max(epoch_n, 1),
            }
            if val_examples:
                val = validation_loss(model, loss_fn, val_examples, config.batch_size, seed=config.seed)
                epoch_record.update({f"val_{k}": v for k, v in val.items()})
                selection = val["loss"]
                logger.info(
                    "epoch %d validation: loss %.4f contrastive %.4f sigreg %.4f variance %.4f pos dist %.3f",
                    epoch + 1, val["loss"], val["contrastive"], val["sigreg"], val["variance"], val["pos_distance"],
                )  # fmt: skip
                if writer is not None:
                    for key, value in val.items():
                        writer.add_scalar(f"val/{key}", value, global_step)
            else:
                selection = epoch_record["train_loss"]
            history.append(epoch_record)
            improved = selection < best_loss
            if improved:
                best_loss, best_epoch = selection, epoch + 1
                save_checkpoint(out / "best_model.pt", model, epoch=epoch + 1, selection_loss=selection)
                logger.info(
                    "epoch %d: new best model (%s loss %.4f)",
                    epoch + 1,
                    "validation" if val_examples else "training",
                    selection,
                )
            if config.save_epoch_checkpoints:
                state = {
                    "epoch": epoch,
                    "global_step": global_step,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng_state": torch.get_rng_state(),
                    "history": json.dumps(history),
                }
                save_checkpoint(out / f"checkpoint_epoch_{epoch + 1}.pt", model, training=state)
                _prune_checkpoints(out, config.keep_checkpoints)
            write_json(out / "history.json", history)

        save_checkpoint(out / "final_model.pt", model, epoch=config.epochs)
        if best_epoch < 0:  # no finite loss in this run: best_model.pt is the final model
            logger.warning("no epoch had a finite selection loss; best_model.pt = final model")
            save_checkpoint(out / "best_model.pt", model, epoch=config.epochs)
        write_json(out / "history.json", history)
        if any(h["kind"] == "step" for h in history):
            _plot_history(history, out / "training_curves.png")
    finally:
        if writer is not None:
            writer.close()
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    logger.info("done: best epoch %d (loss %.4f); outputs in %s", best_epoch, best_loss, out)
    return TrainResult(out, out / "best_model.pt", out / "final_model.pt", best_epoch, best_loss, history)


def _prune_checkpoints(folder: Path, keep: int) -> None:
    if keep <= 0:
        return
    found = sorted(
        (int(m.group(1)), p) for p in folder.glob("checkpoint_epoch_*.pt") if (m := _EPOCH_CKPT.search(p.name))
    )
    for _, path in found[:-keep]:
        path.unlink(missing_ok=True)
