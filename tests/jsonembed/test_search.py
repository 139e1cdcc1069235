"""Search: fusion settings, the exact record found by one of its field values, and --explain."""

from __future__ import annotations

import random

import numpy as np
import pytest

from embedding_model.config import JsonEmbedConfig
from embedding_model.retrieval import FusionSettings, RecordSearch, fusion_settings
from embedding_model.typos import EDITS, edit_word


def test_fusion_settings_overrides():
    cfg = JsonEmbedConfig()
    assert fusion_settings(cfg) == FusionSettings("convex", 60, 100, 0.1, 0.3, 0.5, 0.3, 0.1, 0.2)
    assert fusion_settings(cfg, ngram_weight=0.0).uses_ngrams is False
    assert fusion_settings(cfg).convex_weights() == pytest.approx([0.2, 0.3, 0.5])
    assert fusion_settings(cfg).convex_weights(known=True) == pytest.approx([0.7, 0.1, 0.2])
    assert fusion_settings(cfg, "convex", 0.4).convex_dense_weight == 0.4
    with pytest.raises(ValueError, match="sum to at most 1"):
        fusion_settings(cfg, "convex", 0.7)  # + the n-grams' 0.5
    assert fusion_settings(cfg, "rrf", 0.3).rrf_dense_weight == 0.3
    assert fusion_settings(cfg, None, 0.3).convex_dense_weight == 0.3
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        fusion_settings(cfg, "convex", 1.5)


def test_fusion_routes_queries_by_whether_bm25_knows_their_words():
    settings = FusionSettings("convex", convex_dense_weight=0.3, convex_ngram_weight=0.4, convex_known_ngram_weight=0.1)
    assert settings.routes_queries and settings.uses_ngrams
    assert settings.convex_weights(known=True) == pytest.approx([0.6, 0.3, 0.1])  # unset known dense: 0.3
    np.testing.assert_allclose(settings.query_weights(np.array([True, False])), [[0.6, 0.3, 0.1], [0.3, 0.3, 0.4]])
    assert (
        settings.label() == "convex, dense weight 0.3, char n-gram weight 0.4; queries with only known words 0.3 / 0.1"
    )
    bm25 = np.array([[3.0, 0.0, 1.0], [3.0, 0.0, 1.0]])
    dense = np.array([[0.1, 0.9, 0.2], [0.1, 0.9, 0.2]])
    ngram = np.array([[0.0, 0.2, 0.9], [0.0, 0.2, 0.9]])
    fn = settings.score_fn(lambda q: dense, lambda q: bm25, lambda q: ngram, lambda q: np.array([True, False]))
    fused = fn(["known words", "unknwon wrods"])
    unrouted = FusionSettings("convex", convex_dense_weight=0.3, convex_ngram_weight=0.4)
    assert not unrouted.routes_queries
    np.testing.assert_allclose(fused[1], unrouted.score_fn(lambda q: dense, lambda q: bm25, lambda q: ngram)(["x"])[1])
    assert fused[0].argmax() == 0 and fused[1].argmax() == 2  # BM25-led vs n-gram-led
    with pytest.raises(ValueError, match="known-words function"):
        settings.score_fn(lambda q: dense, lambda q: bm25, lambda q: ngram)
    # an explicit weight (--dense-weight / --ngram-weight) applies to every query
    cfg = JsonEmbedConfig(convex_known_dense_weight=0.1, convex_known_ngram_weight=0.1)
    assert fusion_settings(cfg).routes_queries
    assert fusion_settings(cfg, "convex", 0.2).convex_weights(known=True) == pytest.approx([0.7, 0.2, 0.1])
    assert not fusion_settings(cfg, "convex", 0.2, 0.3).routes_queries
    with pytest.raises(ValueError, match="convex_known_dense_weight"):
        JsonEmbedConfig(convex_known_dense_weight=0.8, convex_known_ngram_weight=0.3).validate()


@pytest.fixture(scope="module")
def engine(tiny_model, sample_records):
    embedder, _, _ = tiny_model
    return RecordSearch(embedder, sample_records, embedder.embed_segments(sample_records.segments))


def test_search_finds_the_record_of_a_field_value(engine, sample_records):
    titles = [r["title"] for r in sample_records.records[:40]]
    dense = engine.dense(titles, k=5)
    assert np.mean([hits[0].index == i for i, hits in enumerate(dense)]) >= 0.8  # chance: 1 in 240
    assert np.mean([i in [h.index for h in hits] for i, hits in enumerate(dense)]) >= 0.9
    hybrid = engine.hybrid(titles, k=5)
    assert np.mean([hits[0].index == i for i, hits in enumerate(hybrid)]) >= 0.95
    assert hybrid[3][0].id == sample_records.ids[3]
    engine.fusion = FusionSettings(method="convex", convex_dense_weight=0.3)
    convex = engine.hybrid(titles, k=5)
    engine.fusion = FusionSettings()
    assert np.mean([hits[0].index == i for i, hits in enumerate(convex)]) >= 0.95
    assert [h.score for h in convex[0]] == sorted((h.score for h in convex[0]), reverse=True)


def test_explain_names_the_matching_field(engine, sample_records):
    hits = engine.dense([sample_records.records[3]["title"]], k=1)
    assert hits[0][0].index == 3
    query_vector = engine.embedder.embed_queries([sample_records.records[3]["title"]])[0]
    contributions = engine.embedder.explain(query_vector, sample_records.segments[3])
    assert contributions[0].key == "title"
    assert contributions[0].contribution > 0
    assert contributions[0].value == sample_records.records[3]["title"]


def _one_typo(text: str, rng: random.Random) -> str:
    """``text`` with one edit (kind drawn uniformly) in one of its words of 4+ letters."""
    words = text.split(" ")
    eligible = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    i = rng.choice(eligible)
    words[i] = edit_word(words[i], EDITS[rng.randrange(len(EDITS))], rng)[0]
    return " ".join(words)


def test_a_title_with_one_typo_still_finds_its_record(engine, sample_records):
    rng = random.Random(11)
    titles = [r["title"] for r in sample_records.records[:40]]
    misspelled = [_one_typo(t, rng) for t in titles]
    assert all(m != t for m, t in zip(misspelled, titles))
    dense = engine.dense(misspelled, k=5)
    top1 = np.mean([hits[0].index == i for i, hits in enumerate(dense)])
    assert top1 >= 0.8  # chance: 1 in 240
