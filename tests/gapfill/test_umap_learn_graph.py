"""The real umap-learn graph and curve (slow: umap-learn's numba compilation takes ~25 s per process)."""

import numpy as np
import pytest

from gapfill.config import UMAPConfig
from gapfill.graph import ab_params, fuzzy_graph, knn
from gapfill.parametric_umap import ParametricUMAP
from gapfill.quality import evaluate_quality

pytestmark = pytest.mark.slow


def test_knn_puts_each_point_first_even_with_duplicates():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
    idx, dist = knn(x, 3, metric="euclidean")
    assert (idx[:, 0] == np.arange(4)).all()
    assert (dist[:, 0] == 0).all()
    assert set(idx[0]) >= {0, 1}


def test_ab_params_match_umap_defaults():
    a, b = ab_params(1.0, 0.1)
    assert a == pytest.approx(1.577, abs=1e-3) and b == pytest.approx(0.895, abs=1e-3)


def test_fuzzy_graph_is_symmetric_memberships(clusters):
    x, labels = clusters
    g = fuzzy_graph(x, 10, "cosine").tocsr()
    assert g.shape == (len(x), len(x))
    assert abs(g - g.T).max() < 1e-6
    assert g.data.min() > 0 and g.data.max() <= 1 + 1e-6
    rows, cols = g.nonzero()
    assert (labels[rows] == labels[cols]).mean() > 0.99  # neighbours stay within a cluster


def test_parametric_umap_on_umap_learn_graph_matches_umap_learn_trustworthiness(clusters):
    x, labels = clusters
    cfg = UMAPConfig(n_neighbors=10, n_epochs=20, batch_size=256, hidden_layers=[64, 64], validation_split=0.0)
    model = ParametricUMAP(cfg).fit(x)
    q = evaluate_quality(model, x, compare_umap_learn=True)
    # within a cluster the data are isotropic noise, so neither layout is near 1.0
    # (measured: parametric 0.842, umap-learn 0.890 with 20 epochs); the STS-B benchmark compares real data
    assert q["trustworthiness_parametric"] > 0.8
    assert q["trustworthiness_gap"] < 0.08
    z = model.transform(x)
    assert np.linalg.norm(z[labels == 0].mean(0) - z[labels == 1].mean(0)) > 2.0
