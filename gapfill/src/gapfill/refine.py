"""Placing new points against the fitted ones, as umap-learn's ``transform`` does, vectorised in torch.

umap-learn places a new point by (1) its ``n_neighbors`` nearest fitted points and their fuzzy
memberships (``smooth_knn_dist``, as in the fit), (2) a start at the membership-weighted mean
of their layout positions and (3) ~100 epochs of UMAP's SGD moving only the new points:
attraction to their neighbours (edges firing in proportion to membership), repulsion from
random fitted points, learning rate ``1/4`` decaying to 0, gradients clipped at 4. That
optimisation is what makes its held-out placements good, and it is slow (numba, point by
point). Here the same steps run for all new points at once as tensor operations, from a given
start (the encoder's output) or from umap-learn's weighted mean.
"""

from __future__ import annotations

import numpy as np
import torch


def fuzzy_neighbours(
    x_new: torch.Tensor, anchors: torch.Tensor, k: int, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest anchors of each new point (cosine) and umap-learn's fuzzy memberships of those edges.

    Returns:
        (m, k) anchor indices and (m, k) memberships in (0, 1].
    """
    from umap.umap_ import smooth_knn_dist

    idx, dist = [], []
    k = min(k, len(anchors))
    for i in range(0, len(x_new), chunk):
        top = (x_new[i : i + chunk] @ anchors.T).topk(k, dim=1)  # (chunk, k)
        idx.append(top.indices)
        dist.append((1.0 - top.values).clamp_min(0.0))
    idx, dist = torch.cat(idx), torch.cat(dist)  # (m, k)
    # umap-learn's transform: local connectivity 1 - 1 = 0, memberships exp(-(d - rho) / sigma)
    sigmas, rhos = smooth_knn_dist(dist.numpy().astype(np.float32), float(k), local_connectivity=0.0)
    sigmas, rhos = torch.from_numpy(sigmas).float()[:, None], torch.from_numpy(rhos).float()[:, None]
    w = torch.exp(-(dist - rhos).clamp_min(0.0) / sigmas.clamp_min(1e-12))
    w = torch.where((dist - rhos <= 0) | (sigmas == 0), torch.ones_like(w), w)
    return idx, w


def refine_placement(
    z_start: torch.Tensor | None,
    x_new: torch.Tensor,
    anchors_x: torch.Tensor,
    anchors_z: torch.Tensor,
    a: float,
    b: float,
    n_neighbors: int = 15,
    epochs: int = 100,
    negative_sample_rate: int = 5,
    learning_rate: float = 0.25,
    repulsion_strength: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """Positions of new points after umap-learn's transform optimisation against fixed anchors.

    Args:
        z_start: (m, 2) starting positions, or None for umap-learn's start (the
            membership-weighted mean of the neighbours' positions).
        x_new: (m, dim) unit-norm embeddings of the new points.
        anchors_x, anchors_z: (n, dim) unit-norm embeddings of the fitted points and their
            (n, 2) positions on the map (fixed).
        a, b: the map's curve parameters.

    Returns:
        (m, 2) positions.
    """
    idx, w = fuzzy_neighbours(x_new, anchors_x, n_neighbors)  # (m, k)
    ys = anchors_z[idx]  # (m, k, 2)
    if z_start is None:
        z = (w[:, :, None] * ys).sum(1) / w.sum(1, keepdim=True)
    else:
        z = z_start.clone()
    w_max = float(w.max()) if w.numel() else 1.0
    keep = w >= w_max / float(epochs)  # umap-learn drops edges too weak to fire in the epochs
    prob = torch.where(keep, w / w_max, torch.zeros_like(w))  # an edge fires in proportion to its membership
    gen = torch.Generator().manual_seed(seed)
    m, k = w.shape
    for epoch in range(epochs):
        alpha = learning_rate * (1.0 - epoch / epochs)
        # only the edges that fire this epoch (and their negatives) are computed, as in umap-learn
        rows, cols = (torch.rand(m, k, generator=gen) < prob).nonzero(as_tuple=True)  # (f,) fired edges
        zf = z[rows]  # (f, 2)
        diff = zf - ys[rows, cols]  # (f, 2)
        d2 = diff.pow(2).sum(-1)  # (f,)
        attract = (-2.0 * a * b * d2.clamp_min(1e-12).pow(b - 1.0)) / (a * d2.pow(b) + 1.0)
        attract = torch.where(d2 > 0, attract, torch.zeros_like(attract))
        grad = (attract[:, None] * diff).clamp(-4.0, 4.0)  # (f, 2)
        # negatives: random anchors per firing edge
        neg = torch.randint(0, len(anchors_z), (len(rows), negative_sample_rate), generator=gen)
        ndiff = zf[:, None, :] - anchors_z[neg]  # (f, rate, 2)
        nd2 = ndiff.pow(2).sum(-1)  # (f, rate)
        repel = 2.0 * repulsion_strength * b / ((0.001 + nd2) * (a * nd2.pow(b) + 1.0))
        ngrad = torch.where(
            nd2[..., None] > 0, (repel[..., None] * ndiff).clamp(-4.0, 4.0), torch.full_like(ndiff, 4.0)
        )
        grad = grad + ngrad.sum(1)
        z = z.index_add(0, rows, alpha * grad)
    return z
