"""UMAP's fuzzy neighbour graph and its curve parameters, taken from umap-learn.

Nearest neighbours are exact (scikit-learn) and handed to
``umap.umap_.fuzzy_simplicial_set``, which turns them into the symmetric fuzzy graph; the
low-dimensional curve ``1 / (1 + a d^(2b))`` is fitted by ``umap.umap_.find_ab_params``.
Importing umap-learn and its first graph build cost ~25 s of numba compilation per process,
which is why the import happens inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors


@dataclass
class Edges:
    """The edges of a fuzzy graph as arrays: ``weight[i]`` is the membership of (head[i], tail[i])."""

    head: np.ndarray  # (n_edges,) int64
    tail: np.ndarray  # (n_edges,) int64
    weight: np.ndarray  # (n_edges,) float32
    n_vertices: int


class GraphBuilder(Protocol):
    """Builds the fuzzy graph of the training points and fits the curve parameters ``a, b``;
    ``layout`` also optimises a 2-D layout on that graph (umap-learn's fit)."""

    def graph(self, x: np.ndarray, n_neighbors: int, metric: str, seed: int) -> sp.spmatrix: ...

    def ab(self, spread: float, min_dist: float) -> tuple[float, float]: ...

    def layout(
        self, x: np.ndarray, n_neighbors: int, min_dist: float, spread: float, metric: str, n_components: int, seed: int
    ) -> tuple[sp.spmatrix, np.ndarray]: ...


def ab_params(spread: float, min_dist: float) -> tuple[float, float]:
    """umap-learn's fit of ``a`` and ``b`` for the given spread and min_dist."""
    from umap.umap_ import find_ab_params

    a, b = find_ab_params(spread, min_dist)
    return float(a), float(b)


def knn(x: np.ndarray, n_neighbors: int, metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest neighbours, each point first in its own list (as umap-learn expects).

    Returns:
        indices (n, k) int64 and distances (n, k) float32.
    """
    k = min(n_neighbors, len(x))
    nn = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(x)
    dists, idx = nn.kneighbors(x)
    # Duplicated points can put another index first; umap wants self at distance 0 in column 0.
    rows = np.arange(len(x))
    not_first = idx[:, 0] != rows
    if not_first.any():
        for r in np.flatnonzero(not_first):
            pos = np.flatnonzero(idx[r] == r)
            j = pos[0] if len(pos) else k - 1
            idx[r, 1 : j + 1] = idx[r, :j]
            dists[r, 1 : j + 1] = dists[r, :j]
            idx[r, 0], dists[r, 0] = r, 0.0
    return idx.astype(np.int64), np.maximum(dists, 0).astype(np.float32)


def fuzzy_graph(x: np.ndarray, n_neighbors: int, metric: str = "cosine", seed: int = 0) -> sp.coo_matrix:
    """UMAP's fuzzy simplicial set of ``x`` (symmetric, memberships in (0, 1])."""
    from sklearn.utils import check_random_state
    from umap.umap_ import fuzzy_simplicial_set

    if len(x) <= n_neighbors:
        raise ValueError(f"need more than n_neighbors={n_neighbors} points, got {len(x)}")
    idx, dists = knn(x, n_neighbors, metric)
    graph, _sigmas, _rhos = fuzzy_simplicial_set(
        x, n_neighbors, check_random_state(seed), metric, knn_indices=idx, knn_dists=dists
    )
    return graph.tocoo()


def graph_edges(graph: sp.spmatrix, n_epochs: int | None = None) -> Edges:
    """Edges of a fuzzy graph, dropping those too weak to be sampled in ``n_epochs`` (as umap-learn does)."""
    coo = sp.coo_matrix(graph)
    coo.sum_duplicates()
    data = coo.data.astype(np.float32)
    keep = data > 0
    if n_epochs:
        keep &= data >= data.max() / float(n_epochs)
    return Edges(
        head=coo.row[keep].astype(np.int64),
        tail=coo.col[keep].astype(np.int64),
        weight=data[keep],
        n_vertices=coo.shape[0],
    )


class UmapLearnGraph:
    """The graph and curve of umap-learn (the default :class:`GraphBuilder`)."""

    def graph(self, x: np.ndarray, n_neighbors: int, metric: str, seed: int) -> sp.coo_matrix:
        return fuzzy_graph(x, n_neighbors, metric, seed)

    def ab(self, spread: float, min_dist: float) -> tuple[float, float]:
        return ab_params(spread, min_dist)

    def layout(
        self, x: np.ndarray, n_neighbors: int, min_dist: float, spread: float, metric: str, n_components: int, seed: int
    ) -> tuple[sp.coo_matrix, np.ndarray]:
        """umap-learn's own fit of ``x``: its fuzzy graph and the (n, n_components) layout it optimised."""
        import umap

        reducer = umap.UMAP(
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            spread=spread,
            metric=metric,
            n_components=n_components,
            random_state=seed,
        )
        layout = reducer.fit_transform(x)
        return reducer.graph_.tocoo(), np.asarray(layout, dtype=np.float32)
