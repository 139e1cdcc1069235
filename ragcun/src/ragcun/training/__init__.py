"""Training of a GaussianEmbeddingGemma: contrastive + SIGReg + variance, with accumulation, AMP,
checkpoints and resume. Read the files in this order:

- :mod:`~ragcun.training.config`: ``TrainConfig`` (the run's options; the model's own are a
  ``ModelConfig`` section written with flat keys) and ``build_loss``;
- :mod:`~ragcun.training.components`: the model (fresh, from weights, or resumed) and the
  optimizer, schedule and precision a run is built from;
- :mod:`~ragcun.training.progress`: where a run stands, and its round trip through a checkpoint;
- :mod:`~ragcun.training.loop`: one epoch of micro-batches, and the validation loss;
- :mod:`~ragcun.training.outputs`: what a run writes;
- :mod:`~ragcun.training.run`: ``train()``, the above in order.

Per epoch a run writes ``checkpoint_epoch_N.pt`` (model + optimizer + scheduler + RNG state,
for ``--resume``) and updates ``best_model.pt`` when the validation loss improves; at the end
it writes ``final_model.pt``, ``history.json`` and ``training_curves.png``.
``train_config.json`` (the resolved config) and ``training.log`` sit beside them;
TensorBoard scalars go to ``runs/``.

Gradient accumulation sums gradients of several micro-batches before a step. In-batch
negatives and the per-batch statistics of SIGReg stay within a micro-batch, so accumulation
reaches a larger *optimisation* batch, not a larger contrastive batch.
"""

from ragcun.training.config import TrainConfig, build_loss
from ragcun.training.loop import validation_loss
from ragcun.training.outputs import find_latest_checkpoint
from ragcun.training.run import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "build_loss", "find_latest_checkpoint", "train", "validation_loss"]
