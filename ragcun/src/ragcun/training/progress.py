"""Where a training run stands (next epoch, optimizer steps, best loss and epoch, the history)
and its round trip through the ``training`` entry of a ``checkpoint_epoch_N.pt`` (``--resume``)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ragcun.training.components import Optimization

logger = logging.getLogger("ragcun.training")


@dataclass
class Progress:
    """The counters a run updates as it goes; ``history`` holds one record per logged step and per epoch."""

    start_epoch: int = 0  # the first epoch (0-based) this run trains
    global_step: int = 0  # optimizer steps so far
    best_loss: float = math.inf  # the lowest selection loss (validation, else training) so far
    best_epoch: int = -1  # its epoch (1-based); -1: none yet
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def resumed(cls, state: dict[str, Any], optimization: Optimization, epochs: int) -> Progress:
        """The progress stored in a checkpoint; restores the optimizer, scheduler and torch RNG state too."""
        optimization.optimizer.load_state_dict(state["optimizer"])
        optimization.scheduler.load_state_dict(state["scheduler"])
        progress = cls(
            start_epoch=int(state["epoch"]) + 1,
            global_step=int(state["global_step"]),
            best_loss=float(state["best_loss"]),
            best_epoch=int(state["best_epoch"]),
            history=json.loads(state["history"]),
        )
        torch.set_rng_state(state["rng_state"])
        if progress.start_epoch >= epochs:
            logger.warning("checkpoint is at epoch %d of %d: nothing left to train", progress.start_epoch, epochs)
        return progress

    def checkpoint_state(self, epoch: int, optimization: Optimization) -> dict[str, Any]:
        """The ``training`` entry of the checkpoint written after ``epoch`` (0-based)."""
        return {
            "epoch": epoch,
            "global_step": self.global_step,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "optimizer": optimization.optimizer.state_dict(),
            "scheduler": optimization.scheduler.state_dict(),
            "rng_state": torch.get_rng_state(),
            "history": json.dumps(self.history),
        }
