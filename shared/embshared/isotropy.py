"""SIGReg: LeJEPA's Sketched Isotropic Gaussian Regulariser (shared by ragcun and embeddingFT's adapter).

Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without the
Heuristics" (arXiv:2511.08544), reference code in ``rbalestr-lab/lejepa``
(``lejepa/univariate/epps_pulley.py``, ``lejepa/multivariate/slicing.py`` and the SIGReg
module of ``MINIMAL.md``). This module follows that definition:

1. Draw ``num_slices`` random directions ``a_k ~ N(0, I_D)``, normalised to unit length,
   fresh at every call (the reference reseeds a generator from a step counter; we draw
   from the global or a given ``torch.Generator``).
2. Project the embeddings on them: ``x_k = X a_k`` (N samples per slice).
3. For each slice compute the Epps–Pulley statistic against N(0, 1):
   ``T = N * ∫ |φ_N(t) - φ(t)|² w(t) dt`` with the empirical characteristic function
   ``φ_N(t) = mean_n exp(i t x_n)``, the standard normal one ``φ(t) = exp(-t²/2)`` and the
   weighting function ``w(t) = exp(-t²/2)``. The integral runs over ``[-t_max, t_max]``;
   as in the reference it is computed on ``[0, t_max]`` with doubled trapezoid weights
   (the integrand is even), ``t_max = 3`` and 17 knots.
4. Average over slices.

Under the null (the embeddings really are N(0, I)) the expected statistic does not vanish:
``E[N |φ_N(t) - φ(t)|²] = 1 - φ(t)²``, so ``E[T] = ∫ w(t) (1 - φ(t)²) dt``, about 1.05 on
the default grid (:meth:`SIGReg.null_expectation`), whatever N and D. Deviations
from Gaussianity grow linearly with N, so an anisotropic batch scores in the hundreds.
"""

from __future__ import annotations

import torch
from torch import nn


def random_directions(dim: int, num_slices: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num_slices`` random unit vectors in R^dim, as the columns of a (dim, num_slices) matrix."""
    gen_device = generator.device if generator is not None else device
    directions = torch.randn(dim, num_slices, device=gen_device, generator=generator)  # (dim, slices)
    directions = directions / directions.norm(p=2, dim=0, keepdim=True)
    return directions.to(device) if device is not None else directions


class SIGReg(nn.Module):
    """The sliced Epps–Pulley statistic of embeddings against a standard normal.

    Args:
        num_slices: random directions drawn per call.
        num_points: integration knots on ``[0, t_max]``.
        t_max: end of the integration interval.

    Shape:
        input ``(*, N, D)`` (leading dimensions are separate groups, e.g. queries and
        documents, each tested on its own as LeJEPA does per view); output a scalar.
    """

    def __init__(self, num_slices: int = 256, num_points: int = 17, t_max: float = 3.0):
        super().__init__()
        if num_slices <= 0:
            raise ValueError(f"num_slices must be positive, got {num_slices}")
        if num_points < 2:
            raise ValueError(f"num_points must be at least 2, got {num_points}")
        self.num_slices = num_slices
        t = torch.linspace(0.0, t_max, num_points, dtype=torch.float32)  # (points,)
        dt = t_max / (num_points - 1)
        weights = torch.full((num_points,), 2 * dt, dtype=torch.float32)
        weights[0] = dt  # trapezoid ends; the factor 2 elsewhere folds in t < 0
        weights[-1] = dt
        phi = torch.exp(-0.5 * t.square())  # N(0, 1) characteristic function, also the window w(t)
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("phi", phi, persistent=False)
        self.register_buffer("weights", weights * phi, persistent=False)

    def statistic(self, projections: torch.Tensor) -> torch.Tensor:
        """Epps–Pulley statistic per slice.

        Args:
            projections: ``(*, N, K)`` one-dimensional samples (N per slice, K slices).

        Returns:
            ``(*, K)`` statistics.
        """
        n = projections.shape[-2]
        x_t = projections.float().unsqueeze(-1) * self.t  # (*, N, K, points)
        cos_mean = torch.cos(x_t).mean(dim=-3)  # (*, K, points)
        sin_mean = torch.sin(x_t).mean(dim=-3)  # (*, K, points)
        err = (cos_mean - self.phi).square() + sin_mean.square()  # (*, K, points)
        return (err @ self.weights) * n  # (*, K)

    def forward(self, embeddings: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean statistic over fresh random slices (and over leading groups)."""
        if embeddings.dim() < 2:
            raise ValueError(f"expected embeddings of shape (*, N, D), got {tuple(embeddings.shape)}")
        directions = random_directions(embeddings.shape[-1], self.num_slices, embeddings.device, generator)
        projections = embeddings.float() @ directions  # (*, N, K)
        return self.statistic(projections).mean()

    def null_expectation(self) -> float:
        """E[statistic] for samples that are exactly N(0, 1): sum of w(t) (1 - φ(t)²)."""
        return float((self.weights * (1 - self.phi.square())).sum())


@torch.no_grad()
def sigreg_statistic(
    embeddings,
    num_slices: int = 1024,
    seed: int = 0,
    chunk_slices: int = 128,
    device=None,
) -> float:
    """The SIGReg statistic of a (N, D) array as a diagnostic: fixed seed, slices in chunks.

    Chunking keeps the (N, K, points) intermediate small for large N.
    """
    x = torch.as_tensor(embeddings, dtype=torch.float32, device=device)  # (N, D)
    module = SIGReg(num_slices=num_slices).to(x.device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    directions = random_directions(x.shape[-1], num_slices, generator=generator).to(x.device)  # (D, K)
    values = [
        module.statistic(x @ directions[:, start : start + chunk_slices])
        for start in range(0, num_slices, chunk_slices)
    ]
    return float(torch.cat(values).mean())
