"""Search: RRF by hand, the exact record found by one of its field values, and --explain."""

from __future__ import annotations

import numpy as np
import pytest

from embedding_model.config import JsonEmbedConfig
from embedding_model.retrieval import (
    FusionSettings,
    RecordSearch,
    convex_fusion,
    fusion_settings,
    ranks_from_scores,
    reciprocal_rank_fusion,
    rrf_score_fn,
    zscore_rows,
)


def test_reciprocal_rank_fusion_by_hand():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    order = [d for d, _ in reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)]
    assert order == ["a", "c", "b"]
    weighted = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=1, weights=[2.0, 1.0])
    assert [d for d, _ in weighted] == ["a", "b"]  # a: 2/2 + 1/3, b: 2/3 + 1/2


def test_rrf_score_fn_matches_reciprocal_rank_fusion():
    dense = np.array([[0.9, 0.1, 0.5, 0.3]])
    bm25 = np.array([[0.0, 2.0, 1.0, 0.0]])  # documents 0 and 3 share no term with the query
    assert ranks_from_scores(dense, 3) == [[0, 2, 3]]
    scores = rrf_score_fn([lambda q: dense, lambda q: bm25], depth=4, k=10, floors=[None, 0.0])(["q"])[0]
    expected = dict(reciprocal_rank_fusion([["0", "2", "3", "1"], ["1", "2"]], k=10))
    assert scores == pytest.approx([expected[str(i)] for i in range(4)])


def test_convex_fusion_by_hand():
    z = zscore_rows(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert z[0] == pytest.approx([-1.2247449, 0.0, 1.2247449])  # std of (1, 2, 3) is sqrt(2/3)
    assert z[1].tolist() == [0.0, 0.0, 0.0]  # a constant row carries no preference
    dense = np.array([[0.9, 0.1, 0.5]])
    bm25 = np.array([[0.0, 4.0, 2.0]])
    fused = convex_fusion(dense, bm25, 0.25)
    assert fused[0] == pytest.approx(0.75 * zscore_rows(bm25)[0] + 0.25 * zscore_rows(dense)[0])
    assert int(np.argmax(fused)) == 1  # BM25's confident first stays first at a small dense weight
    assert int(np.argmax(convex_fusion(dense, bm25, 0.9))) == 0


def test_fusion_settings_overrides():
    cfg = JsonEmbedConfig()
    assert fusion_settings(cfg) == FusionSettings("convex", 60, 100, 0.1, 0.2)
    assert fusion_settings(cfg, "convex", 0.4).convex_dense_weight == 0.4
    assert fusion_settings(cfg, "rrf", 0.3).rrf_dense_weight == 0.3
    assert fusion_settings(cfg, None, 0.3).convex_dense_weight == 0.3
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        fusion_settings(cfg, "convex", 1.5)


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
