"""Losses chosen by name at the edge: ``LOSSES[name]`` says what data a loss needs and builds it.

Data kinds:
    ranking   -- (anchor, positive[, negative_1 ... negative_n]); in-batch negatives.
    triplet   -- (anchor, positive, negative): exactly one negative per row.
    labelled  -- (sentence1, sentence2, label) with label 1 (similar) or 0 (dissimilar).
    scored    -- (sentence1, sentence2, score) with a similarity score in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from embedding_ft.config import TrainConfig

DataKind = Literal["ranking", "triplet", "labelled", "scored"]


@dataclass(frozen=True)
class LossSpec:
    """A loss by name: the data it trains on and how to build it for a model and config."""

    name: str
    data: DataKind
    build: Callable[[Any, TrainConfig], Any]
    description: str


def _losses():
    from sentence_transformers.sentence_transformer import losses

    return losses


LOSSES: dict[str, LossSpec] = {
    spec.name: spec
    for spec in [
        LossSpec(
            "MultipleNegativesRankingLoss",
            "ranking",
            lambda model, cfg: _losses().MultipleNegativesRankingLoss(model),
            "InfoNCE over in-batch and mined negatives (the default)",
        ),
        LossSpec(
            "CachedMultipleNegativesRankingLoss",
            "ranking",
            lambda model, cfg: _losses().CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.mini_batch_size),
            "the same loss with gradient caching: large batches in bounded memory (GradCache)",
        ),
        LossSpec(
            "TripletLoss",
            "triplet",
            lambda model, cfg: _losses().TripletLoss(model),
            "max(d(a, p) - d(a, n) + margin, 0) with Euclidean distance",
        ),
        LossSpec(
            "ContrastiveLoss",
            "labelled",
            lambda model, cfg: _losses().ContrastiveLoss(model),
            "pulls label-1 pairs together, pushes label-0 pairs beyond a margin",
        ),
        LossSpec(
            "OnlineContrastiveLoss",
            "labelled",
            lambda model, cfg: _losses().OnlineContrastiveLoss(model),
            "ContrastiveLoss on the hard pairs of each batch only",
        ),
        LossSpec(
            "CoSENTLoss",
            "scored",
            lambda model, cfg: _losses().CoSENTLoss(model),
            "ranks pairs by their gold similarity (CoSENT)",
        ),
        LossSpec(
            "CosineSimilarityLoss",
            "scored",
            lambda model, cfg: _losses().CosineSimilarityLoss(model),
            "MSE between cosine similarity and the gold score",
        ),
    ]
}

ALIASES = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cmnrl": "CachedMultipleNegativesRankingLoss",
    "cached": "CachedMultipleNegativesRankingLoss",
    "triplet": "TripletLoss",
    "contrastive": "ContrastiveLoss",
    "onlinecontrastive": "OnlineContrastiveLoss",
    "cosent": "CoSENTLoss",
    "cosine": "CosineSimilarityLoss",
}


def loss_spec(name: str) -> LossSpec:
    """The spec of a loss by its sentence-transformers class name or a short alias."""
    key = ALIASES.get(name.lower().replace("_", "").replace("-", ""), name)
    if key not in LOSSES:
        raise ValueError(f"unknown loss '{name}' (known: {', '.join(LOSSES)}; aliases: {', '.join(ALIASES)})")
    return LOSSES[key]


def build_loss(model, cfg: TrainConfig):
    """Build ``cfg.loss`` for ``model``, wrapped in MatryoshkaLoss when ``cfg.matryoshka_dims`` is set."""
    loss = loss_spec(cfg.loss).build(model, cfg)
    if cfg.matryoshka_dims:
        dim = model.get_embedding_dimension()
        dims = sorted({d for d in cfg.matryoshka_dims if d <= dim} | {dim}, reverse=True)
        loss = _losses().MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss
