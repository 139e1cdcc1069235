"""``train()``: one training run from its config to its checkpoints, in order — build the model
and its optimization, restore a resumed run's progress, then per epoch train, score, keep the
best model and checkpoint; finally write the final model, the history and the curves."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embshared.errors import UserError
from embshared.runtime import pick_device
from ragcun.data import TrainExample, positives_by_query
from ragcun.model import GaussianEmbeddingGemma
from ragcun.training.components import build_model, build_optimization
from ragcun.training.config import TrainConfig, build_loss
from ragcun.training.loop import selection_loss, train_epoch
from ragcun.training.outputs import run_outputs
from ragcun.training.progress import Progress

logger = logging.getLogger("ragcun.training")


@dataclass
class TrainResult:
    """Where the outputs are and how training went."""

    output_dir: Path
    best_model: Path
    final_model: Path
    best_epoch: int
    best_loss: float
    history: list[dict[str, Any]]


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
    model, resumed = build_model(config, train_examples, model, device)
    loss_fn = build_loss(config).to(device)
    optimization = build_optimization(config, model, len(train_examples), device)
    progress = Progress() if resumed is None else Progress.resumed(resumed, optimization, config.epochs)

    with run_outputs(config, log_file) as outputs:
        known = positives_by_query(train_examples)
        logger.info(
            "training on %d examples (%s negatives), %d epochs x %d steps, batch %d x %d accumulation",
            len(train_examples),
            "with" if train_examples[0].negative is not None else "no explicit",
            config.epochs,
            optimization.steps_per_epoch,
            config.batch_size,
            config.gradient_accumulation_steps,
        )
        for epoch in range(progress.start_epoch, config.epochs):
            record = train_epoch(
                epoch, model, loss_fn, train_examples, known, config, optimization, progress, outputs.scalars,
                show_progress,
            )  # fmt: skip
            selection = selection_loss(epoch, record, model, loss_fn, val_examples, config, outputs.scalars)
            progress.history.append(record)
            if selection < progress.best_loss:
                progress.best_loss, progress.best_epoch = selection, epoch + 1
                outputs.save_best(model, epoch + 1, selection, validated=bool(val_examples))
            if config.save_epoch_checkpoints:
                training_state = progress.checkpoint_state(epoch, optimization)
                outputs.save_epoch(model, epoch, training_state, config.keep_checkpoints)
            outputs.write_history(progress.history)
        outputs.finish(model, config.epochs, progress.best_epoch, progress.history)

    out = outputs.folder
    logger.info("done: best epoch %d (loss %.4f); outputs in %s", progress.best_epoch, progress.best_loss, out)
    return TrainResult(
        out, out / "best_model.pt", out / "final_model.pt", progress.best_epoch, progress.best_loss, progress.history
    )
