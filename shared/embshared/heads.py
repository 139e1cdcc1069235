"""Projection heads over a frozen base encoder.

- :class:`ProjectionHead`: a linear map (orthogonal at init) plus an optional residual MLP whose
  output starts at 0, so an untrained head ranks exactly like its base under cosine (and, for
  unit vectors, under L2). ragcun's Gaussian model and embeddingFT's adapter recipe both use it.
- :func:`head_as_dense`: the same function as sentence-transformers ``Dense`` modules, so a model
  folder with a head is an ordinary sentence-transformers folder. A custom module type would
  need ``trust_remote_code=True`` to load since sentence-transformers 6.0.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """A linear map (orthogonal at init) plus an optional residual MLP whose output starts at 0.

    Args:
        in_dim: base embedding size.
        out_dim: output embedding size.
        hidden_dim: width of the residual MLP; 0 for a purely linear head. A linear head
            cannot create variance in more dimensions than the base has; the MLP can.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 0):
        super().__init__()
        if in_dim <= 0 or out_dim <= 0:
            raise ValueError(f"head dimensions must be positive, got {in_dim} -> {out_dim}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.hidden_dim = hidden_dim
        self.linear = nn.Linear(in_dim, out_dim)
        self.mlp = (
            nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))
            if hidden_dim
            else None
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Orthogonal linear map scaled by sqrt(out_dim) (unit vectors map to norm ~ sqrt(out_dim),
        i.e. about unit variance per dimension), zero bias, and an MLP branch that outputs 0."""
        nn.init.orthogonal_(self.linear.weight)
        self.linear.weight.mul_(math.sqrt(self.out_dim))
        nn.init.zeros_(self.linear.bias)
        if self.mlp is not None:
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)  # (batch, out_dim)
        if self.mlp is not None:
            out = out + self.mlp(x)
        return out

    @torch.no_grad()
    def rescale(self, factor: float) -> None:
        """Multiply the head's output by ``factor`` (a global scale: cosine and L2 rankings are unchanged)."""
        self.linear.weight.mul_(factor)
        self.linear.bias.mul_(factor)
        if self.mlp is not None:
            self.mlp[-1].weight.mul_(factor)
            self.mlp[-1].bias.mul_(factor)

    @torch.no_grad()
    def calibrate(self, base_embeddings: torch.Tensor) -> dict[str, float]:
        """Rescale and shift the linear map so that the outputs on ``base_embeddings`` (N, in_dim)
        have zero mean and unit variance on average per dimension.

        A global scale and a shift leave Euclidean rankings unchanged; they only put the
        starting point where SIGReg and the variance term expect it.
        """
        x = base_embeddings.to(self.linear.weight.device, self.linear.weight.dtype)
        z = self(x)  # (N, out_dim)
        mean_var = float(z.var(dim=0).mean())
        scale = 1.0 / math.sqrt(max(mean_var, 1e-12))
        self.rescale(scale)
        self.linear.bias.sub_(self(x).mean(dim=0))
        return {"scale": scale, "variance_before": mean_var, "samples": len(x)}


def head_as_dense(head: ProjectionHead) -> list:
    """sentence-transformers ``Dense`` modules that compute ``head(x)`` exactly, so a model folder holding a
    head loads with plain ``SentenceTransformer(path)`` (no custom module type, no ``trust_remote_code``).

    The residual MLP is unrolled with an identity that holds for GELU: ``gelu(x) - gelu(-x) = x``
    (since ``Phi(x) + Phi(-x) = 1``). The first Dense (GELU) outputs ``gelu([x; -x; W1 x + b1])``,
    the second (identity) ``L (gelu(x) - gelu(-x)) + W2 gelu(W1 x + b1) + b_L + b2 = L x + b_L +
    mlp(x)``. A linear head (hidden_dim 0) is one Dense. The cost is a (2 in + hidden)-wide layer:
    for MiniLM's 384 dims and 768 hidden units, 1,536 units, microseconds per vector.
    """
    from sentence_transformers.base.modules import Dense

    d, h = head.in_dim, head.hidden_dim
    with torch.no_grad():
        weight_l, bias_l = head.linear.weight.detach().float(), head.linear.bias.detach().float()
        if head.mlp is None:
            only = Dense(d, head.out_dim, bias=True, activation_function=nn.Identity())
            only.linear.weight.copy_(weight_l)
            only.linear.bias.copy_(bias_l)
            return [only]
        up, down = head.mlp[0], head.mlp[2]
        first = Dense(d, 2 * d + h, bias=True, activation_function=nn.GELU())
        eye = torch.eye(d)
        first.linear.weight.copy_(torch.cat([eye, -eye, up.weight.detach().float()]))  # (2d + h, d)
        first.linear.bias.copy_(torch.cat([torch.zeros(2 * d), up.bias.detach().float()]))
        second = Dense(2 * d + h, head.out_dim, bias=True, activation_function=nn.Identity())
        second.linear.weight.copy_(torch.cat([weight_l, -weight_l, down.weight.detach().float()], dim=1))
        second.linear.bias.copy_(bias_l + down.bias.detach().float())
    return [first, second]
