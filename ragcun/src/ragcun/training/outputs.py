"""What a training run writes into its output folder: ``train_config.json``, ``training.log``,
TensorBoard scalars in ``runs/``, ``best_model.pt``, ``checkpoint_epoch_N.pt`` (the newest
``keep_checkpoints``), ``final_model.pt``, ``history.json`` and ``training_curves.png``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embshared.config import save_config
from embshared.files import atomic_write, write_json
from embshared.runtime import LOG_FORMAT
from ragcun.checkpoint import CheckpointError, save_checkpoint
from ragcun.model import GaussianEmbeddingGemma
from ragcun.training.config import TrainConfig

logger = logging.getLogger("ragcun.training")

_EPOCH_CKPT = re.compile(r"checkpoint_epoch_(\d+)\.pt$")


def _epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every checkpoint_epoch_N.pt in ``folder``, oldest first."""
    return sorted(
        (int(m.group(1)), p) for p in Path(folder).glob("checkpoint_epoch_*.pt") if (m := _EPOCH_CKPT.search(p.name))
    )


def find_latest_checkpoint(output_dir: str | Path) -> Path:
    """The checkpoint_epoch_N.pt with the largest N in ``output_dir``."""
    found = _epoch_checkpoints(Path(output_dir))
    if not found:
        raise CheckpointError(f"{output_dir}: no checkpoint_epoch_N.pt to resume from")
    return found[-1][1]


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """The loss parts per optimizer step (training) and per epoch (validation), one panel each, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


class RunOutputs:
    """The output folder of a running training run (open one with :func:`run_outputs`).

    Args:
        folder: the output folder.
        writer: a TensorBoard SummaryWriter, or None.
    """

    def __init__(self, folder: Path, writer: Any | None):
        self.folder = folder
        self.writer = writer

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        """TensorBoard scalars ``<prefix>/<name>`` at optimizer step ``step`` (nothing without TensorBoard)."""
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def save_best(self, model: GaussianEmbeddingGemma, epoch: int, selection: float, validated: bool) -> None:
        """``best_model.pt``: the model of ``epoch`` (1-based), whose selection loss is the lowest so far."""
        save_checkpoint(self.folder / "best_model.pt", model, epoch=epoch, selection_loss=selection)
        logger.info(
            "epoch %d: new best model (%s loss %.4f)", epoch, "validation" if validated else "training", selection
        )

    def save_epoch(self, model: GaussianEmbeddingGemma, epoch: int, training: dict[str, Any], keep: int) -> None:
        """``checkpoint_epoch_<epoch + 1>.pt`` with the training state; then only the newest ``keep`` (0: all) stay."""
        save_checkpoint(self.folder / f"checkpoint_epoch_{epoch + 1}.pt", model, training=training)
        if keep > 0:
            for _, path in _epoch_checkpoints(self.folder)[:-keep]:
                path.unlink(missing_ok=True)

    def write_history(self, history: list[dict[str, Any]]) -> None:
        write_json(self.folder / "history.json", history)

    def finish(
        self, model: GaussianEmbeddingGemma, epochs: int, best_epoch: int, history: list[dict[str, Any]]
    ) -> None:
        """``final_model.pt`` (also ``best_model.pt`` if no epoch had a finite loss), the history and the curves."""
        save_checkpoint(self.folder / "final_model.pt", model, epoch=epochs)
        if best_epoch < 0:  # no finite loss in this run: best_model.pt is the final model
            logger.warning("no epoch had a finite selection loss; best_model.pt = final model")
            save_checkpoint(self.folder / "best_model.pt", model, epoch=epochs)
        self.write_history(history)
        if any(h["kind"] == "step" for h in history):
            plot_history(history, self.folder / "training_curves.png")


@contextmanager
def run_outputs(config: TrainConfig, log_file: str | None) -> Iterator[RunOutputs]:
    """Create ``config.output_dir`` with ``train_config.json``; log to ``log_file`` inside it
    (None: don't) and to TensorBoard (if ``config.tensorboard`` and installed) until the block ends."""
    folder = Path(config.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    save_config(config, folder / "train_config.json")
    writer = None
    if config.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(folder / "runs"))
        except ImportError:
            logger.info("tensorboard is not installed; scalars only in history.json")
    handler = None
    if log_file:
        handler = logging.FileHandler(folder / log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)
    try:
        yield RunOutputs(folder, writer)
    finally:
        if writer is not None:
            writer.close()
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
