"""The contrastive loss: NT-Xent (InfoNCE over both views, as in SimCLR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_loss(view_a: torch.Tensor, view_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss of two batches of unit vectors where row i of each is the same record.

    Every view must pick out its partner among the other ``2n - 1`` views of the batch.

    Args:
        view_a, view_b: (n, dim) L2-normalised embeddings.
        temperature: softmax temperature.

    Returns:
        The mean cross-entropy over all 2n views (a scalar).
    """
    n = view_a.shape[0]
    views = torch.cat([view_a, view_b], dim=0)  # (2n, dim)
    logits = views @ views.T / temperature  # (2n, 2n)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=views.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(views.device)  # (2n,)
    return F.cross_entropy(logits, targets)
