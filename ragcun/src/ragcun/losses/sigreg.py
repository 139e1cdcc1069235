"""SIGReg: LeJEPA's Sketched Isotropic Gaussian Regulariser.

The implementation lives in :mod:`embshared.isotropy` (embeddingFT's adapter recipe uses it too);
this module keeps ragcun's import path (``ragcun.losses.sigreg``).
"""

from __future__ import annotations

from embshared.isotropy import SIGReg, random_directions, sigreg_statistic

__all__ = ["SIGReg", "random_directions", "sigreg_statistic"]
