"""Isotropy diagnostics of a set of embeddings: moments, covariance spectrum, SIGReg statistic.

An isotropic standard Gaussian has per-dimension mean 0 and std 1, a covariance whose
eigenvalues are all 1 (spread 1, effective rank = dimension) and a SIGReg statistic near
its null expectation (~1.05). The SIGReg statistic grows linearly with the number of
samples when the distribution is not N(0, I), so it is computed on a fixed-size random
subsample (``sigreg_samples``) to keep values comparable across corpora. Two versions are
reported: ``sigreg`` tests the embeddings as they are against N(0, I) (scale included),
``sigreg_standardized`` tests them after centring and one global rescaling to unit mean
variance, i.e. only the *shape* (a unit-norm cosine model is not expected to have std 1).
"""

from __future__ import annotations

import numpy as np

from ragcun.losses.sigreg import SIGReg, sigreg_statistic


def isotropy_diagnostics(
    embeddings: np.ndarray, num_slices: int = 1024, seed: int = 0, sigreg_samples: int = 2048
) -> dict[str, float]:
    """Diagnostics of a (N, D) embedding matrix (see the module docstring)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a (N >= 2, D) matrix, got shape {x.shape}")
    n, dim = x.shape
    mean = x.mean(axis=0)  # (D,)
    std = x.std(axis=0, ddof=1)  # (D,)
    eig = np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False).reshape(dim, dim))[::-1], 0.0, None)  # (D,) descending
    total = float(eig.sum()) or 1e-12
    share = eig / total
    nonzero = share[share > 0]
    effective_rank = float(np.exp(-(nonzero * np.log(nonzero)).sum()))
    rank = min(n - 1, dim)  # eigenvalues beyond this are 0 by construction
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, sigreg_samples), replace=False)]
    centred = sample - sample.mean(axis=0)
    standardized = centred / np.sqrt(max(float(centred.var(axis=0, ddof=1).mean()), 1e-24))
    return {
        "n": n,
        "dim": dim,
        "norm_mean": float(np.linalg.norm(x, axis=1).mean()),
        "mean_abs_mean": float(np.abs(mean).mean()),
        "max_abs_mean": float(np.abs(mean).max()),
        "std_mean": float(std.mean()),
        "std_min": float(std.min()),
        "std_max": float(std.max()),
        "eig_max": float(eig[0]),
        "eig_min": float(eig[rank - 1]),
        "eig_max_over_mean": float(eig[0] / (total / dim)),
        "eig_condition": float(eig[0] / max(eig[rank - 1], 1e-12)),
        "top1_variance_share": float(share[0]),
        "top10_variance_share": float(share[:10].sum()),
        "effective_rank_ratio": effective_rank / dim,
        "sigreg": sigreg_statistic(sample, num_slices=num_slices, seed=seed),
        "sigreg_standardized": sigreg_statistic(standardized, num_slices=num_slices, seed=seed),
        "sigreg_samples": len(sample),
        "sigreg_null": SIGReg().null_expectation(),
    }


def covariance_spectrum(embeddings: np.ndarray) -> np.ndarray:
    """Covariance eigenvalues, largest first, divided by their mean (all 1 when isotropic)."""
    x = np.asarray(embeddings, dtype=np.float64)
    eig = np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1], 0.0, None)
    return eig / max(eig.mean(), 1e-24)
