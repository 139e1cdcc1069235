"""Losses chosen by name at the edge: ``LOSSES[name]`` says what data a loss needs and builds it.

Data kinds:
    ranking   -- (anchor, positive[, negative_1 ... negative_n]); in-batch negatives.
    triplet   -- (anchor, positive, negative): exactly one negative per row.
    labelled  -- (sentence1, sentence2, label) with label 1 (similar) or 0 (dissimilar).
    scored    -- (sentence1, sentence2, score) with a similarity score in [0, 1].

``loss: auto`` picks the loss from the data (:func:`auto_loss`): a ranking loss for pairs,
triplets and BEIR folders, CoSENTLoss for ``{doc1, doc2, similarity}`` data. Every builder
takes the model and a :class:`LossOptions`; nothing here reads the training config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

DataKind = Literal["ranking", "triplet", "labelled", "scored"]
AUTO = "auto"


@dataclass(frozen=True)
class LossOptions:
    """The knobs a loss may read (each builder reads only its own).

    Attributes:
        mini_batch_size: mini-batch of the Cached* losses (GradCache): bounds activation memory.
        symmetric: ranking losses also rank the queries for each document (doc -> query).
        guide: the frozen guide model of the GIST losses (filters in-batch false negatives).
        gist_margin: GIST's margin (relative strategy): a candidate scoring above
            ``(1 - margin) *`` the positive under the guide is not used as a negative.
        matryoshka_dims: wrap the loss in MatryoshkaLoss over these dimensions.
        bm25_lookup: the hybrid loss's :class:`embedding_ft.hybrid_loss.BM25Lookup` of the training
            rows (which need the ``label`` row-id column of ``hybrid_loss.with_row_ids``).
        bm25_weight: the hybrid loss's lambda: logits ``scale * cos + bm25_weight * z(bm25)``.
        hybrid_form: "softmax" (InfoNCE over the fused logits) or "clear" (CLEAR's hinge whose
            margin shrinks by BM25's lead of the positive over the negative).
        clear_margin: the hinge margin of ``hybrid_form="clear"``, in logit units (scale * cosine).
    """

    mini_batch_size: int = 16
    symmetric: bool = False
    guide: Any = None
    gist_margin: float = 0.05
    matryoshka_dims: tuple[int, ...] = field(default_factory=tuple)
    bm25_lookup: Any = None
    bm25_weight: float = 1.0
    hybrid_form: str = "softmax"
    clear_margin: float = 1.0


@dataclass(frozen=True)
class LossSpec:
    """A loss by name: the data it trains on and how to build it for a model and options."""

    name: str
    data: DataKind
    build: Callable[[Any, LossOptions], Any]
    description: str
    needs_guide: bool = False
    needs_bm25: bool = False  # the rows need a ``label`` row-id column and the options a ``bm25_lookup``


def _losses():
    from sentence_transformers.sentence_transformer import losses

    return losses


def _directions(opts: LossOptions) -> tuple[str, ...]:
    return ("query_to_doc", "doc_to_query") if opts.symmetric else ("query_to_doc",)


def _gist(cls_name: str, model, opts: LossOptions, **extra):
    if opts.guide is None:
        raise ValueError(f"{cls_name} needs a guide model")
    cls = getattr(_losses(), cls_name)
    return cls(model, opts.guide, margin_strategy="relative", margin=opts.gist_margin, **extra)


def _hybrid(model, opts: LossOptions):
    if opts.bm25_lookup is None:
        raise ValueError(
            "HybridCachedMultipleNegativesRankingLoss needs a BM25 lookup of the training rows "
            "(LossOptions.bm25_lookup, embedding_ft.hybrid_loss.BM25Lookup)"
        )
    from embedding_ft.hybrid_loss import HybridCachedMultipleNegativesRankingLoss

    return HybridCachedMultipleNegativesRankingLoss(
        model,
        opts.bm25_lookup,
        bm25_weight=opts.bm25_weight,
        form=opts.hybrid_form,
        clear_margin=opts.clear_margin,
        mini_batch_size=opts.mini_batch_size,
        directions=_directions(opts),
    )


LOSSES: dict[str, LossSpec] = {
    spec.name: spec
    for spec in [
        LossSpec(
            "MultipleNegativesRankingLoss",
            "ranking",
            lambda model, o: _losses().MultipleNegativesRankingLoss(model, directions=_directions(o)),
            "InfoNCE over in-batch and mined negatives",
        ),
        LossSpec(
            "CachedMultipleNegativesRankingLoss",
            "ranking",
            lambda model, o: _losses().CachedMultipleNegativesRankingLoss(
                model, mini_batch_size=o.mini_batch_size, directions=_directions(o)
            ),
            "the same loss with gradient caching: large batches in bounded memory (GradCache)",
        ),
        LossSpec(
            "HybridCachedMultipleNegativesRankingLoss",
            "ranking",
            _hybrid,
            "cached InfoNCE over the hybrid fused scores scale * cos + lambda * z(BM25): trains the dense "
            "model to complement BM25 (CLEAR, Gao et al. 2021)",
            needs_bm25=True,
        ),
        LossSpec(
            "GISTEmbedLoss",
            "ranking",
            lambda model, o: _gist("GISTEmbedLoss", model, o),
            "InfoNCE whose in-batch negatives are filtered by a guide model (drops likely false negatives)",
            needs_guide=True,
        ),
        LossSpec(
            "CachedGISTEmbedLoss",
            "ranking",
            lambda model, o: _gist("CachedGISTEmbedLoss", model, o, mini_batch_size=o.mini_batch_size),
            "GISTEmbedLoss with gradient caching (bounded memory)",
            needs_guide=True,
        ),
        LossSpec(
            "TripletLoss",
            "triplet",
            lambda model, o: _losses().TripletLoss(model),
            "max(d(a, p) - d(a, n) + margin, 0) with Euclidean distance",
        ),
        LossSpec(
            "ContrastiveLoss",
            "labelled",
            lambda model, o: _losses().ContrastiveLoss(model),
            "pulls label-1 pairs together, pushes label-0 pairs beyond a margin",
        ),
        LossSpec(
            "OnlineContrastiveLoss",
            "labelled",
            lambda model, o: _losses().OnlineContrastiveLoss(model),
            "ContrastiveLoss on the hard pairs of each batch only",
        ),
        LossSpec(
            "CoSENTLoss",
            "scored",
            lambda model, o: _losses().CoSENTLoss(model),
            "ranks pairs by their gold similarity (CoSENT)",
        ),
        LossSpec(
            "CosineSimilarityLoss",
            "scored",
            lambda model, o: _losses().CosineSimilarityLoss(model),
            "MSE between cosine similarity and the gold score",
        ),
    ]
}

ALIASES = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cmnrl": "CachedMultipleNegativesRankingLoss",
    "cached": "CachedMultipleNegativesRankingLoss",
    "hybrid": "HybridCachedMultipleNegativesRankingLoss",
    "gist": "GISTEmbedLoss",
    "cachedgist": "CachedGISTEmbedLoss",
    "triplet": "TripletLoss",
    "contrastive": "ContrastiveLoss",
    "onlinecontrastive": "OnlineContrastiveLoss",
    "cosent": "CoSENTLoss",
    "cosine": "CosineSimilarityLoss",
}


def check_loss_name(name: str) -> None:
    """Raise ValueError for a name that is neither ``auto``, a known loss nor an alias."""
    if name != AUTO:
        loss_spec(name)


def loss_spec(name: str) -> LossSpec:
    """The spec of a loss by its sentence-transformers class name or a short alias."""
    key = ALIASES.get(name.lower().replace("_", "").replace("-", ""), name)
    if key not in LOSSES:
        raise ValueError(f"unknown loss '{name}' (known: auto, {', '.join(LOSSES)}; aliases: {', '.join(ALIASES)})")
    return LOSSES[key]


def auto_loss(data_format: str, cached: bool) -> str:
    """The loss ``loss: auto`` picks for a data format.

    Args:
        data_format: "pairs", "triplets" (BEIR folders become pairs) or "similarity".
        cached: use the GradCache form of the ranking loss (bounded memory).
    """
    if data_format == "similarity":
        return "CoSENTLoss"
    return "CachedMultipleNegativesRankingLoss" if cached else "MultipleNegativesRankingLoss"


def build_loss(model, name: str, options: LossOptions | None = None):
    """Build the loss ``name`` for ``model``, wrapped in MatryoshkaLoss when ``options.matryoshka_dims`` is set."""
    options = options or LossOptions()
    loss = loss_spec(name).build(model, options)
    if options.matryoshka_dims:
        dim = model.get_embedding_dimension()
        dims = sorted({d for d in options.matryoshka_dims if d <= dim} | {dim}, reverse=True)
        loss = _losses().MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss
