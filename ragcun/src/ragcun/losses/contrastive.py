"""A contrastive loss on Euclidean distance, with a margin, over triplets and in-batch negatives.

For query i with positive p_i, every other candidate in the batch (the other positives and
all explicit negatives) is a negative. With distances d_p = ||q_i - p_i|| and
d_n = ||q_i - c_n|| the loss per query is

    temperature · log(1 + Σ_n exp((d_p - d_n + margin) / temperature))

the InfoNCE loss with logits ``-d / temperature`` and an additive margin on the positive,
scaled by the temperature so that it keeps the units of a distance. As the temperature goes
to 0 it becomes the hardest-negative triplet hinge ``max(0, d_p - min_n d_n + margin)``,
which ``temperature=0`` computes exactly. Distances are not squared: on the unnormalised
Gaussian embeddings their spread is a few units, the range a logit needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def euclidean_distances(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Pairwise L2 distances (n, m) between the rows of ``a`` (n, D) and ``b`` (m, D).

    The square root gets a floor so that coincident points do not give NaN gradients.
    """
    a = a.float()
    b = b.float()
    sq = a.square().sum(-1, keepdim=True) - 2 * a @ b.T + b.square().sum(-1)[None, :]  # (n, m)
    return sq.clamp_min(eps).sqrt()


class EuclideanContrastiveLoss(nn.Module):
    """Margin InfoNCE (or hinge) on negative Euclidean distance.

    Args:
        margin: added to the positive distance (in distance units).
        temperature: softness; 0 gives the hardest-negative hinge.
    """

    def __init__(self, margin: float = 1.0, temperature: float = 1.0):
        super().__init__()
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.margin = margin
        self.temperature = temperature

    def forward(
        self,
        queries: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean loss over the batch.

        Args:
            queries: (B, D).
            positives: (B, D); row i is the positive of query i.
            negatives: (B, D) explicit negatives, or None (in-batch negatives only).
            exclude: (B, C) bool, True where candidate j must not count as a negative of
                query i (a duplicate of its positive, or another of its positives);
                C = B without and 2B with explicit negatives. The diagonal is ignored.

        Returns:
            A scalar.
        """
        candidates = positives if negatives is None else torch.cat([positives, negatives], dim=0)  # (C, D)
        batch = queries.shape[0]
        distances = euclidean_distances(queries, candidates)  # (B, C)
        target = torch.arange(batch, device=queries.device)
        is_positive = F.one_hot(target, candidates.shape[0]).bool()  # (B, C)
        invalid = torch.zeros_like(is_positive) if exclude is None else exclude.to(queries.device) & ~is_positive
        if self.temperature == 0:
            d_pos = distances[target, target]  # (B,)
            d_neg = distances.masked_fill(is_positive | invalid, float("inf")).min(dim=1).values  # (B,)
            hinge = F.relu(d_pos - d_neg + self.margin)
            return torch.where(torch.isinf(d_neg), torch.zeros_like(hinge), hinge).mean()
        logits = -(distances + self.margin * is_positive) / self.temperature  # (B, C)
        logits = logits.masked_fill(invalid, float("-inf"))
        return self.temperature * F.cross_entropy(logits, target)
