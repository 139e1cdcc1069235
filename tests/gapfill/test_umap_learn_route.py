"""The default fit route with the real umap-learn: its layout, the encoder regressed on it, a short fine-tune.

Slow only because umap-learn's numba functions compile on first use in a process (~15 s here);
the fits themselves take about a second.
"""

import numpy as np
import pytest

from gapfill.config import UMAPConfig
from gapfill.parametric_umap import ParametricUMAP
from gapfill.quality import trustworthiness, umap_learn_layout


def blobs(n: int = 240, dim: int = 24, k: int = 6, seed: int = 0) -> np.ndarray:
    """``k`` noisy clusters of unit vectors (a small collection with structure at two scales)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    x = centres[rng.integers(0, k, n)] + 0.6 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


pytestmark = pytest.mark.slow


def test_umap_learn_initialised_fit_keeps_umap_learns_trustworthiness():
    x = blobs()
    # 240 points make one regression step per epoch: many epochs give the steps 3,000 points get in 200
    cfg = UMAPConfig(n_neighbors=10, init_epochs=1000, regression_learning_rate=1e-2, n_epochs=2, learning_rate=3e-4,
                     decoder_epochs=5, validation_split=0.0)  # fmt: skip
    model = ParametricUMAP(cfg).fit(x)
    _, z_ref, _ = umap_learn_layout(x, cfg.n_neighbors, cfg.min_dist, cfg.spread, cfg.metric, cfg.seed)
    ours, ref = trustworthiness(x, model.transform(x)), trustworthiness(x, z_ref)
    assert ours >= ref - 0.01, (ours, ref)
    assert set(model.fit_seconds) == {"layout", "regression", "umap", "decoder"}
    # the encoder reproduces umap-learn's layout itself (same seed and settings), not just its quality
    scale = np.abs(z_ref).max()
    assert np.median(np.linalg.norm(model.transform(x) - z_ref, axis=1)) < 0.05 * scale
