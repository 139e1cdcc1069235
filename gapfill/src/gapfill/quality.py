"""Quality of a map: trustworthiness (scikit-learn) and round-trip errors of encoder/decoder.

- trustworthiness: how many of a point's map neighbours are also its neighbours in the
  embedding space (1.0 = no false neighbours), computed with ``sklearn.manifold.trustworthiness``;
- embedding -> map -> embedding: cosine of the decoded embedding to the original, beside a
  non-parametric reference (the mean embedding of the point's 10 nearest map neighbours);
- map -> embedding -> map: distance of the re-encoded point to the original point (map
  units and relative to the documents' spacing).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.spatial import cKDTree
from sklearn.manifold import trustworthiness as sk_trustworthiness

from gapfill.parametric_umap import ParametricUMAP, cosine_rows
from gapfill.pipeline import spacing


def trustworthiness(
    x: np.ndarray, z: np.ndarray, n_neighbors: int = 10, metric: str = "cosine", max_points: int = 5000, seed: int = 0
) -> float:
    """Trustworthiness of a layout ``z`` of ``x`` (on a fixed random subset when large: it is O(n^2))."""
    if len(x) > max_points:
        idx = np.random.default_rng(seed).choice(len(x), max_points, replace=False)
        x, z = x[idx], z[idx]
    return float(sk_trustworthiness(x, z, n_neighbors=n_neighbors, metric=metric))


def round_trip(model: ParametricUMAP, x: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Round-trip errors of a trained parametric UMAP on embeddings ``x`` (n, dim).

    The map -> embedding -> map trip starts from the documents' own map points and from
    random points inside their bounding box (where the decoder extrapolates).
    """
    z = model.transform(x)  # (n, 2)
    x_back = model.inverse_transform(z)  # (n, dim)
    cos = cosine_rows(x_back, x)
    scale = spacing(z)
    # reference: a non-parametric decoder, the mean embedding of a point's 10 nearest map neighbours
    k = min(10, len(z) - 1)
    if k >= 1:
        nbrs = cKDTree(z).query(z, k=k + 1)[1][:, 1:]  # (n, k), the point itself excluded
        knn_cos = cosine_rows(x[nbrs].mean(1), x)
    else:
        knn_cos = np.zeros(len(z))
    z_back = model.transform(x_back)
    d_doc = np.linalg.norm(z_back - z, axis=1)
    rng = np.random.default_rng(seed)
    lo, hi = z.min(0), z.max(0)
    z_rand = rng.uniform(lo, hi, size=(min(len(z), 1000), z.shape[1])).astype(np.float32)
    d_rand = np.linalg.norm(model.transform(model.inverse_transform(z_rand)) - z_rand, axis=1)
    return {
        "embedding_round_trip_cosine_mean": float(cos.mean()),
        "embedding_round_trip_cosine_p10": float(np.percentile(cos, 10)),
        "knn_decoder_cosine_mean": float(knn_cos.mean()),
        "map_round_trip_distance_mean": float(d_doc.mean()),
        "map_round_trip_distance_over_spacing": float(d_doc.mean() / scale),
        "map_round_trip_random_points_over_spacing": float(d_rand.mean() / scale),
        "map_spacing": scale,
    }


def umap_learn_layout(x: np.ndarray, n_neighbors: int, min_dist: float, spread: float, metric: str, seed: int = 0):
    """umap-learn's (non-parametric) UMAP fitted on ``x``: (fitted reducer, (n, 2) layout, seconds)."""
    import umap

    start = time.perf_counter()
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, spread=spread, metric=metric, random_state=seed)
    z = reducer.fit_transform(x)
    return reducer, z, time.perf_counter() - start


def evaluate_quality(
    model: ParametricUMAP, x: np.ndarray, compare_umap_learn: bool = False, n_neighbors: int = 10, seed: int = 0
) -> dict[str, float]:
    """Trustworthiness and round trips of ``model`` on ``x``; with umap-learn's side by side if asked."""
    cfg = model.config
    z = model.transform(x)
    out = {"trustworthiness_parametric": trustworthiness(x, z, n_neighbors, cfg.metric, seed=seed), "n_points": len(x)}
    out.update(round_trip(model, x, seed))
    if compare_umap_learn:
        _, z_ref, seconds = umap_learn_layout(x, cfg.n_neighbors, cfg.min_dist, cfg.spread, cfg.metric, seed)
        out["trustworthiness_umap_learn"] = trustworthiness(x, z_ref, n_neighbors, cfg.metric, seed=seed)
        out["trustworthiness_gap"] = out["trustworthiness_umap_learn"] - out["trustworthiness_parametric"]
        out["umap_learn_fit_seconds"] = seconds
    return out
