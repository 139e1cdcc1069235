"""The training objective of the Gaussian embedding model, with every part reported.

    total = contrastive + lambda_isotropy · SIGReg + lambda_reg · variance

SIGReg and the variance term see queries, positives and (if present) negatives as
separate groups, each of which should be N(0, I) on its own (LeJEPA tests each view
separately); their values are averaged over the groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ragcun.losses.contrastive import EuclideanContrastiveLoss, euclidean_distances
from ragcun.losses.sigreg import SIGReg
from ragcun.losses.variance import VarianceLoss


@dataclass
class LossParts:
    """The total loss (with its graph) and the detached parts worth logging."""

    total: torch.Tensor
    contrastive: float
    sigreg: float
    variance: float
    pos_distance: float
    neg_distance: float
    embedding_std: float

    def as_dict(self) -> dict[str, float]:
        return {
            "loss": float(self.total.detach()),
            "contrastive": self.contrastive,
            "sigreg": self.sigreg,
            "variance": self.variance,
            "pos_distance": self.pos_distance,
            "neg_distance": self.neg_distance,
            "embedding_std": self.embedding_std,
        }


class GaussianEmbeddingLoss(nn.Module):
    """Contrastive + lambda_isotropy · SIGReg + lambda_reg · variance.

    Args:
        contrastive: the retrieval loss.
        sigreg: the isotropy regulariser.
        variance: the per-dimension scale term.
        lambda_isotropy: weight of SIGReg (0 switches it off; it is still computed for the log).
        lambda_reg: weight of the variance term.
    """

    def __init__(
        self,
        contrastive: EuclideanContrastiveLoss,
        sigreg: SIGReg,
        variance: VarianceLoss,
        lambda_isotropy: float = 1.0,
        lambda_reg: float = 0.1,
    ):
        super().__init__()
        self.contrastive = contrastive
        self.sigreg = sigreg
        self.variance = variance
        self.lambda_isotropy = lambda_isotropy
        self.lambda_reg = lambda_reg

    def forward(
        self,
        queries: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> LossParts:
        """Compute every part for a batch of (B, D) embeddings."""
        queries, positives = queries.float(), positives.float()
        negatives = negatives.float() if negatives is not None else None
        contrastive = self.contrastive(queries, positives, negatives, exclude)
        groups = torch.stack([queries, positives] + ([negatives] if negatives is not None else []))  # (G, B, D)
        with torch.set_grad_enabled(torch.is_grad_enabled() and bool(self.lambda_isotropy)):
            sigreg = self.sigreg(groups, generator=generator)
        with torch.set_grad_enabled(torch.is_grad_enabled() and bool(self.lambda_reg)):
            variance = self.variance(groups)
        total = contrastive
        if self.lambda_isotropy:
            total = total + self.lambda_isotropy * sigreg
        if self.lambda_reg:
            total = total + self.lambda_reg * variance
        with torch.no_grad():
            pos_distance = (queries - positives).norm(dim=-1).mean()
            distances = euclidean_distances(queries, positives)  # (B, B)
            off_diagonal = ~torch.eye(len(queries), dtype=torch.bool, device=queries.device)
            neg_distance = distances[off_diagonal].mean() if len(queries) > 1 else torch.tensor(float("nan"))
            embedding_std = groups.std(dim=-2).mean()
        return LossParts(
            total=total,
            contrastive=float(contrastive.detach()),
            sigreg=float(sigreg.detach()),
            variance=float(variance.detach()),
            pos_distance=float(pos_distance),
            neg_distance=float(neg_distance),
            embedding_std=float(embedding_std),
        )
