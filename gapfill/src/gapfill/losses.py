"""Losses of the parametric UMAP: UMAP's fuzzy cross-entropy with negative sampling, and
the decoder's reconstruction losses (chosen by name through :data:`RECONSTRUCTION_LOSSES`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def umap_cross_entropy(
    head: torch.Tensor,
    tail: torch.Tensor,
    negative: torch.Tensor,
    a: float,
    b: float,
    repulsion_strength: float = 1.0,
    eps: float = 1e-3,
) -> torch.Tensor:
    """UMAP's fuzzy cross-entropy for a batch of edges and negative samples.

    With the low-dimensional membership ``q(d) = 1 / (1 + a d^(2b))``, graph edges (sampled in
    proportion to their membership) are attracted with ``-log q`` and random pairs repelled
    with ``-log(1 - q)``, exactly the two terms whose gradients umap-learn's SGD applies.
    ``eps`` bounds the repulsion of coincident points as umap-learn's ``0.001`` does.

    Args:
        head: (batch, dim) embeddings of the edges' heads.
        tail: (batch, dim) embeddings of the edges' tails.
        negative: (batch * rate, dim) embeddings of random points, paired with repeated heads.
        a, b: the curve parameters (from min_dist and spread, see ``graph.ab_params``).
        repulsion_strength: weight of the repulsive term.
        eps: floor of ``a d^(2b)`` inside the repulsive log.

    Returns:
        The loss summed over an edge and its negatives, averaged over edges (a scalar).
    """
    rate = negative.shape[0] // head.shape[0]
    d2_pos = (head - tail).pow(2).sum(-1)  # (batch,)
    d2_neg = (head.repeat_interleave(rate, dim=0) - negative).pow(2).sum(-1)  # (batch * rate,)
    x_pos = a * d2_pos.clamp_min(1e-12).pow(b)  # a d^(2b)
    x_neg = a * d2_neg.clamp_min(1e-12).pow(b)
    attraction = torch.log1p(x_pos)  # -log q
    repulsion = torch.log1p(x_neg) - torch.log(x_neg + eps)  # -log(1 - q)
    return attraction.mean() + repulsion_strength * repulsion.view(-1, rate).sum(-1).mean()


def cosine_reconstruction(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine between (batch, dim) predictions and targets, averaged."""
    return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()


def mse_reconstruction(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, summed over dimensions and averaged over the batch."""
    return (pred - target).pow(2).sum(-1).mean()


RECONSTRUCTION_LOSSES = {"cosine": cosine_reconstruction, "mse": mse_reconstruction}
