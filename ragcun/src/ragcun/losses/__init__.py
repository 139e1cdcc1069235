"""Losses of the Gaussian embedding model, one module each.

- :mod:`ragcun.losses.contrastive`: margin InfoNCE / hinge on Euclidean distance.
- :mod:`ragcun.losses.sigreg`: LeJEPA's SIGReg (sliced Epps–Pulley test against N(0, 1)).
- :mod:`ragcun.losses.variance`: per-dimension std toward 1.
- :mod:`ragcun.losses.gaussian`: their weighted sum, with the parts for logging.
"""

from ragcun.losses.contrastive import EuclideanContrastiveLoss, euclidean_distances
from ragcun.losses.gaussian import GaussianEmbeddingLoss, LossParts
from ragcun.losses.sigreg import SIGReg, sigreg_statistic
from ragcun.losses.variance import VarianceLoss

__all__ = [
    "EuclideanContrastiveLoss",
    "GaussianEmbeddingLoss",
    "LossParts",
    "SIGReg",
    "VarianceLoss",
    "euclidean_distances",
    "sigreg_statistic",
]
