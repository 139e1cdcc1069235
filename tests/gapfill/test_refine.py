"""umap-learn's transform optimisation, vectorised (gapfill.refine), on hand-made anchors."""

import numpy as np
import pytest
import torch

from gapfill.refine import fuzzy_neighbours, refine_placement

A, B = 1.5769434602697652, 0.8950608778515733  # umap-learn's a, b for spread 1, min_dist 0.1


def two_groups(n: int = 20, seed: int = 0):
    """Anchors: two groups of unit embeddings (around e0 and e1) placed at (0, 0) and (10, 0) on the map."""
    rng = np.random.default_rng(seed)
    emb = np.zeros((2 * n, 8), dtype=np.float32)
    emb[:n, 0], emb[n:, 1] = 1.0, 1.0
    emb += 0.1 * rng.standard_normal(emb.shape).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    pos = rng.normal(0, 0.3, (2 * n, 2)).astype(np.float32)
    pos[n:, 0] += 10.0
    return torch.from_numpy(emb), torch.from_numpy(pos)


def test_fuzzy_neighbours_give_the_nearest_full_membership():
    anchors, _ = two_groups()
    idx, w = fuzzy_neighbours(anchors[:3], anchors, k=5)
    assert idx[:, 0].tolist() == [0, 1, 2]  # each anchor's nearest is itself
    assert torch.allclose(w[:, 0], torch.ones(3))  # distance <= rho: membership 1
    assert ((w > 0) & (w <= 1)).all() and (idx < 20).all()  # all 5 neighbours in its own group


@pytest.mark.parametrize("start", ["between", "none"])
def test_a_new_point_is_pulled_to_the_group_it_resembles(start):
    anchors, pos = two_groups()
    new = anchors[:2] + 0.05 * torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    new = new / new.norm(dim=1, keepdim=True)  # like group one (at the origin)
    z0 = torch.tensor([[5.0, 0.0], [6.0, 1.0]]) if start == "between" else None
    z = refine_placement(z0, new, anchors, pos, A, B, n_neighbors=10, epochs=100)
    assert torch.linalg.norm(z, dim=1).max() < 2.0  # among group one (it spans ~1 around the origin)
