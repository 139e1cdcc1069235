"""Gap finding on the 2-D map: the largest empty circles centred inside the documents' hull.

A grid of candidate centres covers the bounding box; centres outside the convex hull are
dropped, each remaining centre gets the distance to its nearest document (the radius of
the empty circle there), and gaps are picked greedily by radius, each at least
``min_separation`` (a fraction of the map's span) from the ones already picked. A gap
counts only if its radius exceeds the typical spacing between neighbouring documents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import Delaunay, cKDTree

from embshared.errors import UserError
from gapfill.config import GapConfig


@dataclass
class Gap:
    """An empty region of the map: its centre, the radius of the empty circle, the nearest documents."""

    x: float
    y: float
    radius: float
    nearest: list[int]
    radius_ratio: float  # radius / median nearest-neighbour spacing of the documents

    def to_dict(self) -> dict:
        return asdict(self)


def _shrink(points: np.ndarray, fraction: float) -> np.ndarray:
    centre = points.mean(0)
    return centre + (points - centre) * (1 - fraction)


def find_gaps(coords: np.ndarray, config: GapConfig | None = None, n_nearest: int = 3) -> list[Gap]:
    """Gaps of a 2-D layout, largest first.

    Args:
        coords: (n, 2) map coordinates of the documents.
        config: grid size, number of gaps, separation and hull margin.
        n_nearest: how many nearest documents to list per gap.

    Returns:
        Up to ``config.max_gaps`` gaps whose radius exceeds twice the median spacing.
    """
    cfg = config or GapConfig()
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise UserError(f"gap finding needs 2-D coordinates, got shape {coords.shape}")
    if len(coords) < 4:
        raise UserError(f"gap finding needs at least 4 documents, got {len(coords)}")
    tree = cKDTree(coords)
    spacing = float(np.median(tree.query(coords, k=2)[0][:, 1]))
    spacing = spacing if spacing > 0 else 1e-9
    lo, hi = coords.min(0), coords.max(0)
    span = float(np.max(hi - lo)) or 1.0
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], cfg.grid_size), np.linspace(lo[1], hi[1], cfg.grid_size))
    centres = np.column_stack([gx.ravel(), gy.ravel()])  # (grid^2, 2)
    try:
        hull = Delaunay(_shrink(coords, cfg.hull_margin))
    except Exception:  # degenerate layouts (collinear points) have no 2-D hull
        return []
    centres = centres[hull.find_simplex(centres) >= 0]
    if not len(centres):
        return []
    radius, _ = tree.query(centres, k=1)  # (m,)
    order = np.argsort(-radius)
    picked: list[int] = []
    min_sep = cfg.min_separation * span
    for i in order:
        if radius[i] <= 2 * spacing or len(picked) >= cfg.max_gaps:
            break
        if all(np.linalg.norm(centres[i] - centres[j]) >= min_sep for j in picked):
            picked.append(int(i))
    k = min(n_nearest, len(coords))
    gaps = []
    for i in picked:
        _, near = tree.query(centres[i], k=k)
        near = np.atleast_1d(near)
        gaps.append(
            Gap(
                float(centres[i, 0]),
                float(centres[i, 1]),
                float(radius[i]),
                [int(j) for j in near],
                float(radius[i] / spacing),
            )
        )
    return gaps
