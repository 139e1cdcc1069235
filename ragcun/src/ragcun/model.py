"""GaussianEmbeddingGemma: a sentence encoder plus a projection head into an isotropic Gaussian space.

The name is kept from the public RAGCUN project for compatibility. Its base encoder was
EmbeddingGemma-300M, whose weights are not available offline here; the base is any
sentence-transformers model and defaults to the packaged all-MiniLM-L6-v2.

Text -> base encoder (mean pooling, L2-normalised as the base model ships) -> projection
head -> unnormalised embeddings meant to be distributed as N(0, I), compared by Euclidean
distance. The head starts as a scaled orthogonal map, and :meth:`calibrate_head` centres
and scales it on sample texts, so an untrained model ranks exactly like the base model
with cosine similarity (for unit vectors, L2 after an isometry is monotone in cosine).
Training then only has to move away from a good starting point, which is what avoids
the forgetting the public project suffered from.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from embshared.heads import ProjectionHead  # defined in embshared; re-exported here for ragcun's callers
from embshared.models import DEFAULT_MODEL

logger = logging.getLogger(__name__)

_LAYER_RE = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


@dataclass
class ModelConfig:
    """Architecture and freezing of a GaussianEmbeddingGemma."""

    base_model: str | None = field(
        default=None, metadata={"help": f"base sentence encoder (None: {DEFAULT_MODEL}, or the checkpoint's)"}
    )
    output_dim: int | None = field(
        default=None, metadata={"help": "embedding size (None: the base model's size, or the checkpoint's)"}
    )
    head_hidden_dim: int | None = field(
        default=None,
        metadata={"help": "0: linear head; > 0: linear + residual MLP of this width (None: 0, or the checkpoint's)"},
    )
    freeze_base: bool = field(default=False, metadata={"help": "train the projection head only"})
    freeze_early_layers: bool = field(
        default=False, metadata={"help": "freeze the embeddings and the first num_frozen_layers layers"}
    )
    num_frozen_layers: int = field(default=4, metadata={"help": "layers frozen by freeze_early_layers"})
    max_seq_length: int | None = field(default=None, metadata={"help": "truncate texts (None: the base model's)"})

    def validate(self) -> None:
        if self.output_dim is not None and self.output_dim <= 0:
            raise ValueError(f"output_dim must be positive, got {self.output_dim}")
        if self.head_hidden_dim is not None and self.head_hidden_dim < 0:
            raise ValueError(f"head_hidden_dim must be >= 0, got {self.head_hidden_dim}")
        if self.num_frozen_layers < 0:
            raise ValueError(f"num_frozen_layers must be >= 0, got {self.num_frozen_layers}")
        if self.max_seq_length is not None and self.max_seq_length <= 0:
            raise ValueError(f"max_seq_length must be positive, got {self.max_seq_length}")


def _move(features: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


class GaussianEmbeddingGemma(nn.Module):
    """Base sentence encoder + projection head; unnormalised embeddings for L2 retrieval.

    Build one with :meth:`from_config` (or :func:`ragcun.checkpoint.load_model`); the
    constructor only stores its parts.

    Args:
        base: a SentenceTransformer.
        head: the projection head (its in_dim is the base embedding size).
        config: the resolved model config (base_model, output_dim, head_hidden_dim set).
        base_pristine: the base weights are the unmodified ``config.base_model`` (then a
            head-only checkpoint need not store them).
    """

    def __init__(self, base: nn.Module, head: ProjectionHead, config: ModelConfig, base_pristine: bool = True):
        super().__init__()
        self.base = base
        self.head = head
        self.config = config
        self.base_pristine = base_pristine
        self.base_cache: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def from_config(cls, config: ModelConfig, device: str | None = None) -> GaussianEmbeddingGemma:
        """Load the base encoder, add a fresh head, apply freezing; defaults filled into a copy of ``config``."""
        from embshared.models import load_sentence_transformer
        from embshared.runtime import pick_device

        config.validate()
        device = pick_device(device)
        resolved = ModelConfig(**vars(config))
        resolved.base_model = config.base_model or DEFAULT_MODEL
        base = load_sentence_transformer(resolved.base_model, device=device)
        if resolved.max_seq_length is not None:
            base.max_seq_length = resolved.max_seq_length
        base_dim = base.get_embedding_dimension()
        resolved.output_dim = config.output_dim or base_dim
        resolved.head_hidden_dim = config.head_hidden_dim or 0
        head = ProjectionHead(base_dim, resolved.output_dim, resolved.head_hidden_dim)
        model = cls(base, head, resolved).to(device)
        model.apply_freezing()
        return model

    def apply_freezing(self) -> int:
        """Set requires_grad from the config; returns the number of frozen base tensors."""
        frozen = 0
        for name, param in self.base.named_parameters():
            if self.config.freeze_base:
                freeze = True
            elif self.config.freeze_early_layers:
                match = _LAYER_RE.search(name)
                freeze = "embeddings" in name or (
                    match is not None and int(match.group(1)) < self.config.num_frozen_layers
                )
            else:
                freeze = False
            param.requires_grad_(not freeze)
            frozen += int(freeze)
        for param in self.head.parameters():
            param.requires_grad_(True)
        if self.config.freeze_base:
            self.base.eval()  # a frozen feature extractor: no dropout, so its outputs can be cached
        return frozen

    def describe(self) -> str:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return (
            f"{self.config.base_model} ({self.base_dim}) -> head {self.head.hidden_dim or 'linear'} -> {self.output_dim}; "
            f"{trainable:,} of {total:,} parameters trainable"
        )

    @property
    def base_dim(self) -> int:
        return self.head.in_dim

    @property
    def output_dim(self) -> int:
        return self.head.out_dim

    @property
    def device(self) -> torch.device:
        return self.head.linear.weight.device

    def train(self, mode: bool = True) -> GaussianEmbeddingGemma:
        super().train(mode)
        if self.config.freeze_base:
            self.base.eval()
        return self

    def enable_base_cache(self) -> None:
        """Remember base embeddings by text (only for a fully frozen base, where they never change).

        Training the head for several epochs, or evaluating several heads on one corpus,
        then costs one pass of the base encoder per distinct text.
        """
        if not self.config.freeze_base:
            raise ValueError("the base-embedding cache needs a frozen base (freeze_base=True)")
        if self.base_cache is None:
            self.base_cache = {}

    # ------------------------------------------------------------------ forward

    def _base_forward_uncached(self, texts: Sequence[str]) -> torch.Tensor:
        features = _move(self.base.preprocess(list(texts)), self.device)
        return self.base(features)["sentence_embedding"]  # (batch, base_dim)

    def base_forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Base embeddings (batch, base_dim), through the cache when it is enabled."""
        if self.base_cache is None:
            return self._base_forward_uncached(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self.base_cache))
        if missing:
            with torch.no_grad():
                computed = self._base_forward_uncached(missing).float().cpu()
            self.base_cache.update(zip(missing, computed))
        return torch.stack([self.base_cache[t] for t in texts]).to(self.device)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings (batch, output_dim) with gradients (for training)."""
        return self.head(self.base_forward(texts))

    @torch.no_grad()
    def _encode(self, texts, fn, dim: int, batch_size: int, show_progress: bool, convert_to_numpy: bool):
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        was_training = self.training
        self.eval()
        try:
            order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
            chunks = []
            starts = range(0, len(texts), batch_size)
            for start in tqdm(starts, desc="encoding", disable=not show_progress):
                batch = [texts[i] for i in order[start : start + batch_size]]
                chunks.append(fn(batch).float().cpu())
            out = torch.cat(chunks) if chunks else torch.empty(0, dim)
            restored = torch.empty_like(out)
            restored[torch.as_tensor(order)] = out
        finally:
            self.train(was_training)
        return restored.numpy() if convert_to_numpy else restored

    def encode(self, texts, batch_size: int = 32, show_progress: bool = False, convert_to_numpy: bool = True):
        """Gaussian embeddings (n, output_dim) for ``texts`` (no gradients, eval mode), in input order."""
        return self._encode(texts, self.forward, self.output_dim, batch_size, show_progress, convert_to_numpy)

    def encode_base(self, texts, batch_size: int = 32, show_progress: bool = False, convert_to_numpy: bool = True):
        """The base encoder's own embeddings (n, base_dim), e.g. to compare against the base model."""
        return self._encode(texts, self.base_forward, self.base_dim, batch_size, show_progress, convert_to_numpy)

    @torch.no_grad()
    def calibrate_head(self, texts: Sequence[str], batch_size: int = 32) -> dict[str, float]:
        """Centre and scale the head on sample texts (see :meth:`ProjectionHead.calibrate`)."""
        base = self.encode_base(texts, batch_size=batch_size, convert_to_numpy=False)
        return self.head.calibrate(base)
