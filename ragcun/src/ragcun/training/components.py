"""What a training run is built from: the model (fresh, from a checkpoint's weights, or resumed
with the checkpoint's training state) and its optimization (AdamW with one learning rate for the
head and one for the encoder, linear warm-up and decay, mixed precision)."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ragcun.checkpoint import (
    CheckpointError,
    load_model,
    load_weights,
    merge_model_config,
    read_checkpoint,
    stored_config,
)
from ragcun.data import TrainExample, count_batches
from ragcun.model import GaussianEmbeddingGemma
from ragcun.training.config import TrainConfig
from ragcun.training.outputs import find_latest_checkpoint

logger = logging.getLogger("ragcun.training")


def _calibration_texts(examples: list[TrainExample], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    chosen = rng.sample(list(examples), min(len(examples), max(1, n // 2)))
    return [e.query for e in chosen] + [e.positive for e in chosen]


def build_model(
    config: TrainConfig,
    train_examples: list[TrainExample],
    model: GaussianEmbeddingGemma | None,
    device: str,
) -> tuple[GaussianEmbeddingGemma, dict[str, Any] | None]:
    """The model to train, on ``device``, and the training state of the checkpoint resumed from (or None).

    ``config.resume`` rebuilds the checkpoint's model, ``config.model_path`` starts from a
    checkpoint's weights, else ``model`` (if given) or a fresh one from ``config.model``. A
    fresh head is calibrated on training texts if ``config.calibrate_head``; a frozen base
    caches its embeddings if ``config.cache_base_embeddings``.
    """
    training_state: dict[str, Any] | None = None
    if config.resume:
        path = find_latest_checkpoint(config.output_dir) if config.resume == "latest" else Path(config.resume)
        payload = read_checkpoint(path)
        if "training" not in payload:
            raise CheckpointError(f"{path}: has no training state (resume from a checkpoint_epoch_N.pt)")
        model_config = merge_model_config(config.model, stored_config(payload, path), path)
        model = GaussianEmbeddingGemma.from_config(model_config, device=device)
        load_weights(model, payload, path)
        training_state = payload["training"]
        logger.info("resuming from %s (epoch %d done)", path, training_state["epoch"])
    elif config.model_path:
        model = load_model(config.model_path, device=device, requested=config.model)
        logger.info("starting from the weights of %s", config.model_path)
    elif model is None:
        model = GaussianEmbeddingGemma.from_config(config.model, device=device)
    model.to(device)
    if config.model.freeze_base and config.cache_base_embeddings:
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
    return model, training_state


@dataclass
class Optimization:
    """The optimizer, learning-rate schedule and precision of a run, and its step counts."""

    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch LambdaLR from transformers' linear warm-up schedule
    scaler: torch.amp.GradScaler  # loss scaling (enabled for fp16 on CUDA only)
    params: list[torch.nn.Parameter]  # the trained parameters, for gradient clipping
    micro_batches: int  # per epoch
    steps_per_epoch: int  # optimizer steps per epoch (micro-batches / accumulation, rounded up)
    device_type: str
    amp_dtype: torch.dtype
    mixed_precision: bool

    def autocast(self):
        """The autocast context of a forward pass (a no-op without mixed precision)."""
        return torch.autocast(device_type=self.device_type, dtype=self.amp_dtype, enabled=self.mixed_precision)


def build_optimization(
    config: TrainConfig, model: GaussianEmbeddingGemma, n_examples: int, device: str
) -> Optimization:
    """AdamW over the head (``head_learning_rate``) and the trainable encoder (``learning_rate``),
    a linear warm-up and decay over the whole run, and the precision ``mixed_precision`` asks for
    (bf16 autocast on CPU, fp16 with loss scaling on CUDA)."""
    from transformers import get_linear_schedule_with_warmup

    base_params = [p for p in model.base.parameters() if p.requires_grad]
    groups = [{"params": list(model.head.parameters()), "lr": config.head_learning_rate}]
    if base_params:
        groups.append({"params": base_params, "lr": config.learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    micro_batches = count_batches(n_examples, config.batch_size)
    steps_per_epoch = math.ceil(micro_batches / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, min(config.warmup_steps, total_steps), total_steps)
    use_cuda_amp = config.mixed_precision and device.startswith("cuda")
    return Optimization(
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda", enabled=use_cuda_amp),
        params=[p for g in groups for p in g["params"]],
        micro_batches=micro_batches,
        steps_per_epoch=steps_per_epoch,
        device_type=torch.device(device).type,
        amp_dtype=torch.float16 if use_cuda_amp else torch.bfloat16,
        mixed_precision=config.mixed_precision,
    )
