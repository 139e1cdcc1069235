"""embshared.fusion: reciprocal-rank and convex (z-score) fusion against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from embshared.fusion import convex_fusion, ranks_from_scores, reciprocal_rank_fusion, rrf_score_fn, zscore_rows


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


def test_weighted_zscore_fusion_of_three_rankers_by_hand():
    from embshared.fusion import weighted_score_fn, weighted_zscore_fusion

    bm25 = np.array([[0.0, 4.0, 2.0, 0.0]])
    dense = np.array([[0.9, 0.1, 0.5, 0.2]])
    ngram = np.array([[0.1, 0.2, 0.3, 0.9]])
    fused = weighted_zscore_fusion([bm25, dense, ngram], [0.5, 0.2, 0.3])
    by_hand = 0.5 * zscore_rows(bm25) + 0.2 * zscore_rows(dense) + 0.3 * zscore_rows(ngram)
    np.testing.assert_allclose(fused, by_hand, rtol=1e-6)
    np.testing.assert_allclose(weighted_zscore_fusion([bm25, dense], [0.75, 0.25]), convex_fusion(dense, bm25, 0.25))
    called = []

    def never(texts):
        called.append(texts)
        return ngram

    fn = weighted_score_fn([lambda q: bm25, lambda q: dense, never], [0.7, 0.3, 0.0])
    np.testing.assert_allclose(fn(["q"]), convex_fusion(dense, bm25, 0.3))
    assert called == []  # a component of weight 0 is not scored
    with pytest.raises(ValueError, match="sum to 1"):
        weighted_zscore_fusion([bm25, dense], [0.5, 0.4])


def test_weighted_zscore_fusion_with_per_query_weights_fuses_each_row_by_its_own():
    from embshared.fusion import weighted_zscore_fusion

    bm25 = np.array([[0.0, 4.0, 2.0, 0.0], [1.0, 0.0, 3.0, 0.5]])
    dense = np.array([[0.9, 0.1, 0.5, 0.2], [0.3, 0.8, 0.1, 0.4]])
    ngram = np.array([[0.1, 0.2, 0.3, 0.9], [0.6, 0.1, 0.2, 0.0]])
    weights = np.array([[0.5, 0.2, 0.3], [1.0, 0.0, 0.0]])  # row 2: BM25 alone
    fused = weighted_zscore_fusion([bm25, dense, ngram], weights)
    first = weighted_zscore_fusion([bm25[:1], dense[:1], ngram[:1]], [0.5, 0.2, 0.3])
    np.testing.assert_allclose(fused[:1], first, rtol=1e-6)
    np.testing.assert_allclose(fused[1], zscore_rows(bm25[1:])[0], rtol=1e-6)
    assert np.argmax(fused[1]) == 2  # BM25's best document, not the fused one
    # a component weighted 0 for every query is not needed at all
    both = np.array([[0.7, 0.3, 0.0], [0.4, 0.6, 0.0]])
    np.testing.assert_allclose(
        weighted_zscore_fusion([bm25, dense, None], both)[1], convex_fusion(dense[1:], bm25[1:], 0.6)[0], rtol=1e-6
    )
    with pytest.raises(ValueError, match="sum to 1"):
        weighted_zscore_fusion([bm25, dense], np.array([[0.5, 0.5], [0.5, 0.4]]))
    with pytest.raises(ValueError, match="one weight per score matrix"):
        weighted_zscore_fusion([bm25, dense], np.array([[0.5, 0.3, 0.2]] * 2))
