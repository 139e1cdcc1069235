"""A variance term that pulls the per-dimension standard deviation of a batch toward 1.

SIGReg already asks for unit variance along random directions; this cheaper term acts
on the coordinate axes directly and keeps the scale from collapsing early in training
(the "variance" part of VICReg, but two-sided: a std above the target is penalised too).
"""

from __future__ import annotations

import torch
from torch import nn


class VarianceLoss(nn.Module):
    """``mean_j (std_j - target_std)²`` over the embedding dimensions j.

    Args:
        target_std: the standard deviation each dimension should have.
        eps: added to the variance before the square root (a finite gradient at 0).

    Shape:
        input ``(*, N, D)``; the std is taken over N (per group), the mean over the rest.
    """

    def __init__(self, target_std: float = 1.0, eps: float = 1e-4):
        super().__init__()
        self.target_std = target_std
        self.eps = eps

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        if embeddings.shape[-2] < 2:
            raise ValueError("the variance term needs at least 2 samples per group")
        std = torch.sqrt(embeddings.float().var(dim=-2) + self.eps)  # (*, D)
        return (std - self.target_std).square().mean()
