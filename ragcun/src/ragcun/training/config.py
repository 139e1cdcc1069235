"""``TrainConfig``, every option of a training run, and ``build_loss``, the objective it names.

The model's own options are a ``ModelConfig`` section (``config.model``), not copies of its
fields; its keys are written flat, as the public guide does (``--output_dim 384``,
``freeze_base=true``, ``base_model:`` in a YAML file), or dotted (``model.output_dim=384``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embshared.cli import FLAT
from ragcun.losses import EuclideanContrastiveLoss, GaussianEmbeddingLoss, SIGReg, VarianceLoss
from ragcun.model import ModelConfig


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
    model: ModelConfig = field(
        default_factory=ModelConfig,
        metadata={"help": "architecture and freezing (keys written flat: base_model, output_dim, ...)", FLAT: True},
    )
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

    def validate(self) -> None:
        self.model.validate()
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


def build_loss(config: TrainConfig) -> GaussianEmbeddingLoss:
    """The objective from a config."""
    return GaussianEmbeddingLoss(
        contrastive=EuclideanContrastiveLoss(margin=config.margin, temperature=config.temperature),
        sigreg=SIGReg(num_slices=config.num_slices),
        variance=VarianceLoss(),
        lambda_isotropy=config.lambda_isotropy,
        lambda_reg=config.lambda_reg,
    )
