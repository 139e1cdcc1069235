"""The character CNN: characters -> parallel 1-D convolutions -> pooling -> projection -> unit vector."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from embedding_model.vocab import PAD


def max_pool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ReLU of the max over real positions (equal to the max of the ReLU, at a fraction of the cost).

    Args:
        features: (batch, channels, length) convolution outputs before the activation.
        mask: (batch, 1, length), True at real characters.

    Returns:
        (batch, channels); an empty text pools to zeros.
    """
    pooled = features.masked_fill(~mask, float("-inf")).max(dim=-1).values  # (batch, channels)
    return F.relu(pooled.masked_fill(~mask.any(dim=-1), 0.0))


def mean_pool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the ReLU over real positions: (batch, channels, length) -> (batch, channels)."""
    counts = mask.sum(dim=-1).clamp(min=1)  # (batch, 1)
    return (F.relu(features) * mask).sum(dim=-1) / counts


def max_mean_pool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max and mean concatenated: (batch, 2 * channels)."""
    return torch.cat([max_pool(features, mask), mean_pool(features, mask)], dim=-1)


#: pooling name -> (function of the pre-activation convolution output, output channels per conv channel)
POOLINGS = {"max": (max_pool, 1), "mean": (mean_pool, 1), "max_mean": (max_mean_pool, 2)}


class CharCNNEncoder(nn.Module):
    """Embeds character-id sequences into L2-normalised vectors.

    Each convolution of width k acts as a learned detector of character k-grams (word
    pieces, numbers, ``key=`` markers); pooling over positions makes the record vector
    independent of where in the text a feature occurs, and the projection mixes the
    detectors into the output space.

    Args:
        vocab_size: characters including PAD and UNK.
        char_dim: character embedding size.
        conv_channels: output channels of each convolution.
        kernel_sizes: convolution widths (run in parallel on the same input).
        projection_dim: output size.
        pooling: a key of :data:`POOLINGS`.
        dropout: dropout on the pooled features during training.
    """

    def __init__(
        self,
        vocab_size: int,
        char_dim: int = 32,
        conv_channels: int = 128,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        projection_dim: int = 256,
        pooling: str = "max",
        dropout: float = 0.1,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} (choose from {', '.join(POOLINGS)})")
        self.pool, width = POOLINGS[pooling]
        self.embedding = nn.Embedding(vocab_size, char_dim, padding_idx=PAD)
        # padding k // 2 keeps every window that overlaps the text; an even width gives one
        # extra output position, cut in forward()
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, conv_channels, k, padding=k // 2) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(width * conv_channels * len(kernel_sizes), projection_dim)
        self.min_length = max(kernel_sizes)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """char_ids (batch, length) -> (batch, projection_dim), unit norm."""
        mask = (char_ids != PAD).unsqueeze(1)  # (batch, 1, length)
        x = self.embedding(char_ids).transpose(1, 2)  # (batch, char_dim, length)
        length = char_ids.shape[1]
        pooled = [self.pool(conv(x)[..., :length], mask) for conv in self.convs]  # each (batch, width * channels)
        features = self.dropout(torch.cat(pooled, dim=-1))  # (batch, n_kernels * width * channels)
        return F.normalize(self.projection(features), dim=-1)  # (batch, projection_dim)


def build_encoder(cfg, vocab_size: int) -> CharCNNEncoder:
    """The encoder described by a :class:`~embedding_model.config.JsonEmbedConfig`."""
    return CharCNNEncoder(
        vocab_size=vocab_size,
        char_dim=cfg.char_dim,
        conv_channels=cfg.conv_channels,
        kernel_sizes=cfg.kernel_sizes,
        projection_dim=cfg.projection_dim,
        pooling=cfg.pooling,
        dropout=cfg.dropout,
    )
