"""The encoder of a model path, for evaluation: a ragcun checkpoint (Gaussian embeddings, ranked
by Euclidean distance) or any sentence-transformers model or folder (ranked by cosine), so that
a trained model and its base are measured the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Encoder:
    """texts -> (n, dim) embeddings, the metric they are ranked by, and a line naming the model."""

    encode: Callable[[list[str]], np.ndarray]
    metric: str  # "l2" for a ragcun checkpoint, "cosine" otherwise
    description: str


def is_checkpoint(path: str) -> bool:
    """A ``.pt`` path or an existing file (a sentence-transformers model is a folder or a hub name)."""
    return path.endswith(".pt") or Path(path).is_file()


def load_encoder(
    model_path: str, batch_size: int = 32, device: str | None = None, max_seq_length: int | None = None
) -> Encoder:
    """The encoder of a ragcun checkpoint or a sentence-transformers model.

    Args:
        model_path: a ``.pt`` checkpoint, or a sentence-transformers model (path or name).
        batch_size: encoding batch size.
        device: torch device (default: CUDA if available).
        max_seq_length: truncate texts to this many tokens (None: the model's).
    """
    if is_checkpoint(model_path):
        from ragcun.checkpoint import load_model
        from ragcun.model import ModelConfig

        model = load_model(model_path, device=device, requested=ModelConfig(max_seq_length=max_seq_length))

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(texts, batch_size=batch_size)

        return Encoder(encode, "l2", model.describe())
    from embshared.evaluate import sentence_transformer_encoder
    from embshared.models import load_sentence_transformer

    st_model = load_sentence_transformer(model_path, device=device)
    if max_seq_length:
        st_model.max_seq_length = max_seq_length
    return Encoder(
        sentence_transformer_encoder(st_model, batch_size=batch_size), "cosine", f"sentence-transformers {model_path}"
    )
