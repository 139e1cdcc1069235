"""Gap filling end to end: map point -> decoder -> embedding -> vec2text -> text -> map point.

"Target accuracy" is how far from the requested point the generated text lands when it is
embedded and projected again, in map units and relative to the documents' spacing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from gapfill.parametric_umap import ParametricUMAP
from gapfill.vec2text import Correctors, EmbedFn, Vec2Text, invert


@dataclass
class Generation:
    """Text generated for a map point, and where it lands."""

    text: str
    target: list[float]  # the requested map point
    landed: list[float]  # where the text's embedding projects
    distance: float  # |target - landed| in map units
    distance_ratio: float  # distance / median nearest-neighbour spacing of the documents
    cosine_to_decoded: float  # cosine of the text's embedding to the decoded embedding
    cosine_by_step: list[float]
    nearest_document: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def decode_point(umap: ParametricUMAP, point) -> np.ndarray:
    """The L2-normalised embedding the decoder assigns to a map point: (dim,)."""
    emb = umap.inverse_transform(np.asarray(point, dtype=np.float32)[None])[0]
    return emb / max(float(np.linalg.norm(emb)), 1e-12)


def spacing(coords: np.ndarray) -> float:
    """Median distance from a document to its nearest neighbour on the map."""
    if len(coords) < 2:
        return 1.0
    d = cKDTree(coords).query(coords, k=2)[0][:, 1]
    return float(np.median(d)) or 1.0


def generate_at(
    point,
    umap: ParametricUMAP,
    model: Vec2Text,
    embed: EmbedFn,
    coords: np.ndarray | None = None,
    num_steps: int | None = None,
    beam_width: int | None = None,
    correctors: Correctors | None = None,
    initial: Sequence[str] = (),
) -> Generation:
    """Generate text for a map point and measure where it lands.

    Args:
        point: (2,) map coordinates.
        umap: a trained parametric UMAP (its decoder gives the target embedding).
        model: a trained vec2text model.
        embed: the embedding function the model inverts.
        coords: (n, 2) document coordinates, for the spacing and nearest document.
        num_steps, beam_width: correction settings (default: the model's config).
        correctors: what the correction steps run beside the beams (guided search, word edits
            with e.g. the documents' vocabulary, fluent rewrites); None: the model's config.
        initial: extra starting hypotheses (e.g. the nearest document's text).
    """
    point = np.asarray(point, dtype=np.float32)
    target = decode_point(umap, point)
    steps = invert(model, target, embed, num_steps, beam_width, correctors, initial)
    text = steps[-1].text
    text_emb = embed([text])[0]
    landed = umap.transform(text_emb[None])[0]
    distance = float(np.linalg.norm(landed - point))
    scale = spacing(coords) if coords is not None and len(coords) else 1.0
    nearest = int(cKDTree(coords).query(landed)[1]) if coords is not None and len(coords) else None
    return Generation(
        text=text,
        target=[float(v) for v in point],
        landed=[float(v) for v in landed],
        distance=distance,
        distance_ratio=distance / scale,
        cosine_to_decoded=float(text_emb @ target / max(float(np.linalg.norm(text_emb)), 1e-12)),
        cosine_by_step=[s.cosine for s in steps],
        nearest_document=nearest,
    )
