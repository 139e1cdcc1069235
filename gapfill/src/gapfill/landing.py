"""Where a text lands on the map, and the score that ranks candidate texts for a gap.

A text *lands* where the parametric map puts its embedding: ``encoder(embed(text))``. For a
target circle (a gap's centre and radius) the landing distance is measured in radii, so
``< 1`` is inside the circle. Candidates are ranked by

    score = -max(distance_in_radii, inner) + fluency_weight * fluency
            - outside_penalty * [distance_in_radii >= 1]

where ``fluency`` is the mean token log-prob of the text under the plain LM (higher is more
fluent): landing comes first, and among texts that land well inside the circle (within
``inner`` radii of the centre, where distance no longer counts) the more fluent one wins.
The step at the circle's edge makes "inside" come before fluency: without it a more fluent
text just outside (1.02 radii) beat a less fluent one just inside (0.96), and the goal is
the text inside the gap.
This is the seed's quality measure ("how close generated text lands to target
coordinates") used as the objective, rather than the cosine to the decoder's embedding of the
point, which the decoder only recovers to ~0.6 on fitted points.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from gapfill.parametric_umap import ParametricUMAP

#: texts -> (n, dim) L2-normalised embeddings
EmbedFn = Callable[[list[str]], np.ndarray]
#: texts -> mean token log-prob of each (higher: more fluent)
FluencyFn = Callable[[Sequence[str]], list[float]]


@dataclass(frozen=True)
class Circle:
    """A target region of the map: its centre and radius (map units)."""

    x: float
    y: float
    radius: float

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x, self.y], dtype=np.float32)


def circle_at(point, coords: np.ndarray) -> Circle:
    """The empty circle centred at ``point``: its radius is the distance to the nearest document,
    but at least the median spacing between neighbouring documents (so a point on top of a
    document still has a target region). At a gap's centre this is the gap's own circle."""
    coords = np.asarray(coords, dtype=np.float64)
    tree = cKDTree(coords)
    spacing = float(np.median(tree.query(coords, k=2)[0][:, 1])) if len(coords) > 1 else 1.0
    nearest = float(tree.query(np.asarray(point, dtype=np.float64))[0])
    return Circle(float(point[0]), float(point[1]), max(nearest, spacing or 1.0))


@dataclass
class Landed:
    """A scored candidate: where it lands, how far that is in radii, its fluency and score."""

    text: str
    landed: list[float]
    distance: float  # map units from the centre
    radii: float  # distance / radius
    fluency: float
    score: float
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class LandingScorer:
    """Scores texts by where they land relative to a circle, and their fluency.

    Args:
        umap: the trained parametric map (its encoder places the texts).
        embed: the sentence embedder the map was fitted on.
        circle: the target region.
        fluency: mean token log-prob per text (None: fluency 0 for all).
        fluency_weight: weight of the fluency beside the distance in radii.
        inner: distances below this many radii count as this many (fluency decides there).
        outside_penalty: subtracted from the score of a text that lands outside the circle.
        refine: where a text lands: False, the encoder's point (embed -> encoder, default; the
            gradient of :meth:`direction` is the encoder's too); True, the map's transform
            refined against the fitted points as umap-learn's (it pulls a new point towards
            its nearest documents, and a gap's nearest documents lie on its edge); None, the
            map's own ``transform_refine_epochs``.
    """

    def __init__(
        self,
        umap: ParametricUMAP,
        embed: EmbedFn,
        circle: Circle,
        fluency: FluencyFn | None = None,
        fluency_weight: float = 0.1,
        inner: float = 0.5,
        outside_penalty: float = 0.0,
        refine: bool | None = False,
    ):
        self.umap = umap
        self.refine = refine
        self.embed = embed
        self.circle = circle
        self.fluency = fluency
        self.fluency_weight = fluency_weight
        self.inner = inner
        self.outside_penalty = outside_penalty
        self._seen: dict[str, Landed] = {}
        self.embedded = 0  # texts embedded so far (a cost figure)
        self.seconds = {"land": 0.0, "fluency": 0.0}  # time spent so far, and texts it was spent on
        self.counts = {"land": 0, "fluency": 0}

    def cost(self, n_land: int, n_fluency: int) -> float:
        """Estimated seconds to score ``n_land`` new texts, ``n_fluency`` of them for fluency (from the costs so far)."""
        per = {k: self.seconds[k] / self.counts[k] if self.counts[k] else 0.0 for k in self.seconds}
        return n_land * per["land"] + (n_fluency * per["fluency"] if self.fluency is not None else 0.0)

    def land(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, dim) embeddings, (n, 2) landing points and (n,) distances in radii of ``texts``."""
        start = time.perf_counter()
        emb = np.asarray(self.embed(list(texts)), dtype=np.float32)  # (n, dim)
        self.embedded += len(texts)
        points = self.umap.transform(emb, refine=self.refine)  # (n, 2)
        radii = np.linalg.norm(points - self.circle.centre, axis=1) / self.circle.radius
        self.seconds["land"] += time.perf_counter() - start
        self.counts["land"] += len(texts)
        return emb, points, radii

    def value(self, radii: float, fluency: float) -> float:
        outside = self.outside_penalty if radii >= 1.0 else 0.0
        return -max(float(radii), self.inner) + self.fluency_weight * fluency - outside

    def score(self, texts: Sequence[str], source: str = "", rescore_top: int | None = None) -> list[Landed]:
        """Scored candidates for ``texts`` (duplicates and texts seen before are scored once).

        With ``rescore_top``, only that many texts closest to the centre get the (costlier)
        fluency score; the others get the worst fluency among them.
        """
        new = [t for t in dict.fromkeys(texts) if t and t not in self._seen]
        if new:
            _, points, radii = self.land(new)
            order = np.argsort(radii)
            chosen = order if rescore_top is None else order[:rescore_top]
            flu = np.zeros(len(new))
            if self.fluency is not None and len(chosen):
                start = time.perf_counter()
                flu[chosen] = self.fluency([new[i] for i in chosen])
                self.seconds["fluency"] += time.perf_counter() - start
                self.counts["fluency"] += len(chosen)
                rest = np.setdiff1d(np.arange(len(new)), chosen)
                flu[rest] = flu[chosen].min()
            for i, t in enumerate(new):
                dist = float(radii[i] * self.circle.radius)
                self._seen[t] = Landed(
                    t, [float(v) for v in points[i]], dist, float(radii[i]), float(flu[i]),
                    self.value(radii[i], flu[i]), source,
                )  # fmt: skip
        return [self._seen[t] for t in dict.fromkeys(texts) if t in self._seen]

    def ranked(self) -> list[Landed]:
        """Every candidate scored so far, best first."""
        return sorted(self._seen.values(), key=lambda c: -c.score)

    def direction(self, text: str) -> np.ndarray:
        """(dim,) the direction in embedding space that moves ``text``'s landing point towards the
        centre fastest: minus the gradient of the squared landing distance through the encoder,
        made orthogonal to the embedding (embeddings live on the unit sphere)."""
        emb = np.asarray(self.embed([text]), dtype=np.float32)[0]
        self.embedded += 1
        encoder = self.umap.encoder
        encoder.eval()
        e = torch.tensor(emb, requires_grad=True)
        device = next(encoder.parameters()).device
        z = encoder(e.to(device)[None])[0]  # (2,)
        (z - torch.as_tensor(self.circle.centre, device=device)).pow(2).sum().backward()
        g = -e.grad.numpy()  # (dim,)
        g = g - emb * float(g @ emb)
        return g / max(float(np.linalg.norm(g)), 1e-12)
