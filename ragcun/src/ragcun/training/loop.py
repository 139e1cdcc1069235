"""One epoch of training (micro-batches in a seeded order, gradient accumulation, clipping, the
loss parts logged every ``log_every`` optimizer steps) and the validation loss that picks the
best epoch."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from embshared.errors import UserError
from ragcun.data import TrainExample, exclusion_mask, iterate_batches, positives_by_query
from ragcun.losses import GaussianEmbeddingLoss, LossParts
from ragcun.model import GaussianEmbeddingGemma
from ragcun.training.components import Optimization
from ragcun.training.config import TrainConfig
from ragcun.training.progress import Progress

logger = logging.getLogger("ragcun.training")

#: ``scalars(prefix, values, step)``: where the loop reports its numbers (TensorBoard)
Scalars = Callable[[str, dict[str, float], int], None]


def batch_loss(
    model: GaussianEmbeddingGemma,
    loss_fn: GaussianEmbeddingLoss,
    batch: list[TrainExample],
    known: dict[str, set[str]],
    autocast: Callable[[], Any],
    generator: torch.Generator | None = None,
) -> LossParts:
    """The loss of one micro-batch: queries against their positives, the batch's other
    documents and the explicit negatives (if the examples have them)."""
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
            parts = batch_loss(model, loss_fn, batch, known, contextlib.nullcontext, generator)
            for key, value in parts.as_dict().items():
                totals[key] = totals.get(key, 0.0) + value * len(batch)
            count += len(batch)
    finally:
        model.train(was_training)
    if not count:
        raise UserError("validation data has fewer than 2 examples")
    return {k: v / count for k, v in totals.items()}


def train_epoch(
    epoch: int,
    model: GaussianEmbeddingGemma,
    loss_fn: GaussianEmbeddingLoss,
    examples: list[TrainExample],
    known: dict[str, set[str]],
    config: TrainConfig,
    optimization: Optimization,
    progress: Progress,
    scalars: Scalars,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train one epoch (``epoch`` is 0-based); step records go to ``progress.history``.

    Returns:
        The epoch's record: ``{"kind": "epoch", "epoch", "step", "train_loss"}``.
    """
    opt = optimization
    model.train()
    generator = torch.Generator().manual_seed(config.seed + epoch)
    running: dict[str, float] = {}
    running_n = 0
    epoch_sum, epoch_n = 0.0, 0
    bar = tqdm(
        enumerate(iterate_batches(examples, config.batch_size, generator)),
        total=opt.micro_batches,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=not show_progress,
    )
    for index, batch in bar:
        parts = batch_loss(model, loss_fn, batch, known, opt.autocast)
        opt.scaler.scale(parts.total / config.gradient_accumulation_steps).backward()
        for key, value in parts.as_dict().items():
            running[key] = running.get(key, 0.0) + value
        running_n += 1
        epoch_sum += parts.as_dict()["loss"] * len(batch)
        epoch_n += len(batch)
        last = index + 1 == opt.micro_batches
        if (index + 1) % config.gradient_accumulation_steps and not last:
            continue
        if config.max_grad_norm:
            opt.scaler.unscale_(opt.optimizer)
            torch.nn.utils.clip_grad_norm_(opt.params, config.max_grad_norm)
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        opt.scheduler.step()
        opt.optimizer.zero_grad(set_to_none=True)
        progress.global_step += 1
        if progress.global_step % config.log_every == 0 or last:
            means = {k: v / running_n for k, v in running.items()}
            step = progress.global_step
            progress.history.append(
                {"kind": "step", "epoch": epoch + 1, "step": step, "lr": opt.scheduler.get_last_lr()[0], **means}
            )
            logger.info(
                "epoch %d step %d: loss %.4f = contrastive %.4f + %g x sigreg %.4f + %g x variance %.4f | "
                "pos dist %.3f neg dist %.3f std %.3f",
                epoch + 1, step, means["loss"], means["contrastive"], config.lambda_isotropy, means["sigreg"],
                config.lambda_reg, means["variance"], means["pos_distance"], means["neg_distance"], means["embedding_std"],
            )  # fmt: skip
            scalars("train", means, step)
            bar.set_postfix(loss=f"{means['loss']:.3f}", sigreg=f"{means['sigreg']:.2f}")
            running, running_n = {}, 0
    return {
        "kind": "epoch",
        "epoch": epoch + 1,
        "step": progress.global_step,
        "train_loss": epoch_sum / max(epoch_n, 1),
    }


def selection_loss(
    epoch: int,
    record: dict[str, Any],
    model: GaussianEmbeddingGemma,
    loss_fn: GaussianEmbeddingLoss,
    val_examples: list[TrainExample] | None,
    config: TrainConfig,
    scalars: Scalars,
) -> float:
    """The loss that ranks epochs: the validation loss (its parts added to ``record`` as
    ``val_<part>``) if there is validation data, else the epoch's training loss."""
    if not val_examples:
        return record["train_loss"]
    val = validation_loss(model, loss_fn, val_examples, config.batch_size, seed=config.seed)
    record.update({f"val_{k}": v for k, v in val.items()})
    logger.info(
        "epoch %d validation: loss %.4f contrastive %.4f sigreg %.4f variance %.4f pos dist %.3f",
        epoch + 1, val["loss"], val["contrastive"], val["sigreg"], val["variance"], val["pos_distance"],
    )  # fmt: skip
    scalars("val", val, record["step"])
    return val["loss"]
