"""Synthetic points for regressing the encoder onto a layout, placed by a soft k-NN teacher.

An MLP regressed only on the fitted points reproduces them but is arbitrary between them, so
new points (``transform``) land poorly. Here every batch also gets synthetic points near the
data: a fitted point mixed with one of its nearest neighbours (``mix``: the weight of the
neighbour, uniform in ``[0, mix]``) and/or noised (``noise``: Gaussian noise of that std per
dimension), re-normalised to the unit sphere. Their targets come from
:class:`SoftKnnPlacer`: the softmax-weighted mean of the layout coordinates of their ``k``
nearest fitted points, which is how umap-learn's own ``transform`` starts placing a new point
(a weighted mean of its neighbours' positions) before optimising it.
"""

from __future__ import annotations

import torch


def nearest_neighbours(x: torch.Tensor, k: int, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``x`` (unit rows, cosine) for each of ``q = x``, self excluded.

    Returns:
        (n, k) indices and (n, k) cosines, computed in chunks of rows.
    """
    idx, sims = [], []
    k = min(k, len(x) - 1)
    for i in range(0, len(x), chunk):
        s = x[i : i + chunk] @ x.T  # (chunk, n)
        s[torch.arange(len(s)), torch.arange(i, i + len(s))] = -2.0  # not itself
        top = s.topk(k, dim=1)
        idx.append(top.indices)
        sims.append(top.values)
    return torch.cat(idx), torch.cat(sims)


class SoftKnnPlacer:
    """Places points at the softmax(cosine / temperature)-weighted mean layout position of their
    ``k`` nearest fitted points.

    Args:
        x: (n, dim) unit-norm fitted points.
        layout: (n, n_components) their coordinates.
        k: neighbours averaged.
        temperature: softmax temperature over cosines (smaller: closer to the nearest one).
    """

    def __init__(self, x: torch.Tensor, layout: torch.Tensor, k: int = 15, temperature: float = 0.05):
        self.x, self.layout = x, layout
        self.k, self.temperature = min(k, len(x)), temperature

    @torch.no_grad()
    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """(m, n_components) positions of (m, dim) unit-norm points."""
        top = (q @ self.x.T).topk(self.k, dim=1)  # (m, k)
        w = torch.softmax(top.values / self.temperature, dim=1)  # (m, k)
        return (w[:, :, None] * self.layout[top.indices]).sum(1)  # (m, n_components)


def synthetic_points(
    x: torch.Tensor,
    idx: torch.Tensor,
    neighbours: torch.Tensor | None,
    mix: float,
    noise: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """(len(idx), dim) unit-norm points near the fitted points ``x[idx]``: mixed with a random one of
    their ``neighbours`` (weight uniform in [0, mix]) and noised (std ``noise`` per dimension)."""
    out = x[idx]
    if mix > 0 and neighbours is not None:
        pick = torch.randint(0, neighbours.shape[1], (len(idx),), generator=generator)
        partner = x[neighbours[idx, pick]]
        lam = mix * torch.rand(len(idx), 1, generator=generator).to(x.device)
        out = (1 - lam) * out + lam * partner
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator).to(x.device)
    return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
