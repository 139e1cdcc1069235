"""Loss names map to their sentence-transformers classes; Matryoshka wraps them."""

from __future__ import annotations

import dataclasses

import pytest

from embedding_ft.config import TrainConfig
from embedding_ft.losses import LOSSES, build_loss, loss_spec


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_name_builds_its_class(name, minilm_session):
    options = TrainConfig().loss_options(guide=minilm_session)
    if LOSSES[name].needs_bm25:  # the hybrid loss: ours, over sentence-transformers' cached loss
        from embedding_ft.hybrid_loss import BM25Lookup

        rows = [{"anchor": "vitamin d bone", "positive": "vitamin d and bone density"}]
        lookup = BM25Lookup.from_corpus(rows, ["vitamin d and bone density", "aspirin and stroke"])
        options = dataclasses.replace(options, bm25_lookup=lookup)
        loss = build_loss(minilm_session, name, options)
        assert type(loss).__name__ == name and type(loss).__module__ == "embedding_ft.hybrid_loss"
        return
    loss = build_loss(minilm_session, name, options)
    assert type(loss).__name__ == name
    assert type(loss).__module__.startswith("sentence_transformers.sentence_transformer.losses")


def test_aliases_and_unknown_names():
    assert loss_spec("mnrl").name == "MultipleNegativesRankingLoss"
    assert loss_spec("cached").name == "CachedMultipleNegativesRankingLoss"
    assert loss_spec("CoSENT").name == "CoSENTLoss"
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        loss_spec("nope")


def test_matryoshka_wraps_and_keeps_full_dimension(minilm_session):
    loss = build_loss(minilm_session, "cmnrl", TrainConfig(matryoshka_dims=[64, 128, 999]).loss_options())
    assert type(loss).__name__ == "MatryoshkaLoss"
    assert type(loss.loss).__name__ == "CachedMultipleNegativesRankingLoss"
    assert list(loss.matryoshka_dims) == [384, 128, 64]


def test_cached_loss_uses_the_configured_mini_batch(minilm_session):
    loss = build_loss(
        minilm_session, "CachedMultipleNegativesRankingLoss", TrainConfig(mini_batch_size=4).loss_options()
    )
    assert loss.mini_batch_size == 4
