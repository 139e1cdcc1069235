"""The fast search gives the same top 10 as the plain formulation it replaced, on 10k synthetic records.

The reference is the code before the speed work, written out: BM25 through
``BM25Index.search``, the convex fusion over full score matrices ranked by
``embshared.evaluate.top_k`` with string ids. A block of duplicated records makes exact
ties, so the tie order is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedding_model.records import RecordSet, flatten_record
from embedding_model.retrieval import FusionSettings, RecordSearch
from embshared.evaluate import top_k
from embshared.fusion import convex_fusion
from embshared.search import FaissIndex

N_RECORDS = 10_000
N_DUPLICATES = 300  # records 9700.. repeat records 0.. exactly (text and vector): ties
DIM = 32


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(7)
    vocabulary = [f"w{i}x{'abcdefgh'[i % 8]}" for i in range(3000)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)  # Zipf-like: common and rare words
    weights /= weights.sum()
    rows = []
    for _ in range(N_RECORDS - N_DUPLICATES):
        title = " ".join(rng.choice(vocabulary, size=rng.integers(2, 6), p=weights))
        text = " ".join(rng.choice(vocabulary, size=rng.integers(10, 60), p=weights))
        rows.append({"title": title, "text": text})
    rows += [dict(rows[i]) for i in range(N_DUPLICATES)]
    vectors = rng.normal(size=(N_RECORDS, DIM)).astype(np.float32)
    vectors[-N_DUPLICATES:] = vectors[:N_DUPLICATES]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = RecordSet(
        rows,
        [flatten_record(r) for r in rows],
        list(range(1, N_RECORDS + 1)),
        "synthetic",
        ids=[f"r{i}" for i in range(N_RECORDS)],
    )
    queries, query_vectors = [], []
    for i in rng.choice(N_RECORDS - N_DUPLICATES, size=24, replace=False):
        words = rows[i]["text"].split()
        start = rng.integers(0, max(1, len(words) - 4))
        queries.append(" ".join(words[start : start + 4]))
        noisy = vectors[i] + 0.6 * rng.normal(size=DIM).astype(np.float32)
        query_vectors.append(noisy / np.linalg.norm(noisy))
    queries += [
        rows[99]["title"],
        rows[5]["text"],
        "w1xb",
        "nothing matches this",
    ]  # duplicated records, a stop-word-like term
    query_vectors += [vectors[99], vectors[5], vectors[1], vectors[2]]
    return records, vectors, queries, np.stack(query_vectors).astype(np.float32)


def _ids(hits):
    return [[h.index for h in row] for row in hits]


def _scores(hits):
    return np.array([[h.score for h in row] for row in hits])


def test_fast_search_matches_the_plain_formulation(synthetic):
    records, vectors, queries, query_vectors = synthetic
    engine = RecordSearch(None, records, vectors, FusionSettings(method="convex", convex_dense_weight=0.2))
    names = [str(i) for i in range(N_RECORDS)]

    # BM25: as BM25Index.search ranked before (string ids, ties by ascending string id)
    ref_ids, ref_scores = engine.bm25.search(queries, 10)
    lexical = engine.lexical(queries, 10)
    assert _ids(lexical) == [[int(i) for i in row] for row in ref_ids]
    np.testing.assert_allclose(_scores(lexical), np.array(ref_scores), rtol=1e-6)

    # convex hybrid: full matrices, fused, ranked by top_k over string ids
    fused = convex_fusion(query_vectors @ vectors.T, engine.bm25.score_matrix(queries), 0.2)
    ref = [[int(i) for i in row] for row in top_k(fused, names, 10)]
    hybrid = engine.hybrid(queries, 10, query_vectors)
    assert _ids(hybrid) == ref
    np.testing.assert_allclose(_scores(hybrid), np.take_along_axis(fused, np.array(ref), axis=1), rtol=1e-5)

    # the duplicated records tie exactly: the one whose index sorts first as a string comes first
    top = _ids(hybrid)[queries.index(records.records[99]["title"])]
    assert top[:2] == [9799, 99]  # "9799" < "99" as strings

    # dense: as the exact FAISS index ranked before
    ref_ids, ref_scores = FaissIndex(DIM, metric="ip", kind="flat").add(names, vectors).search(query_vectors, 10)
    dense = engine.dense(queries, 10, query_vectors)
    assert _ids(dense) == [[int(i) for i in row] for row in ref_ids]
    np.testing.assert_allclose(_scores(dense), np.array(ref_scores), rtol=1e-6)

    # RRF: unchanged code path, checked by hand for one query
    engine.fusion = FusionSettings(method="rrf", rrf_depth=100, rrf_dense_weight=0.5)
    rrf = engine.hybrid(queries[:1], 10, query_vectors[:1])[0]
    d = [h.index for h in engine.dense(queries[:1], 100, query_vectors[:1])[0]]
    b = [h.index for h in engine.lexical(queries[:1], 100)[0] if h.score > 0]
    by_hand = {i: 0.5 / (60 + d.index(i) + 1) if i in d else 0.0 for i in set(d) | set(b)}
    for i in b:
        by_hand[i] += 1 / (60 + b.index(i) + 1)
    assert [h.score for h in rrf] == pytest.approx(sorted(by_hand.values(), reverse=True)[:10])


@pytest.mark.parametrize("max_df", [1.0, 0.05])
def test_hybrid_with_character_ngrams_is_the_three_way_convex_fusion(synthetic, max_df):
    from embshared.fusion import weighted_zscore_fusion
    from embshared.search import CharNgramIndex

    records, vectors, queries, query_vectors = synthetic
    settings = FusionSettings(method="convex", convex_dense_weight=0.2, convex_ngram_weight=0.3, ngram_max_df=max_df)
    engine = RecordSearch(None, records, vectors, settings)
    names = [str(i) for i in range(N_RECORDS)]
    reference_index = CharNgramIndex(max_df=max_df).index(names, records.plain_texts())
    assert engine.ngrams.max_df == max_df and engine.ngrams.n_features == reference_index.n_features
    if max_df < 1.0:  # the cut leaves out the commonest n-grams
        assert engine.ngrams.n_features < CharNgramIndex().index(names, records.plain_texts()).n_features
    ngrams = reference_index.score_matrix(queries)
    fused = weighted_zscore_fusion(
        [engine.bm25.score_matrix(queries), query_vectors @ vectors.T, ngrams], [0.5, 0.2, 0.3]
    )
    ref = [[int(i) for i in row] for row in top_k(fused, names, 10)]
    hybrid = engine.hybrid(queries, 10, query_vectors)
    assert _ids(hybrid) == ref
    assert settings.label() == "convex, dense weight 0.2, char n-gram weight 0.3"
    # the n-gram ranker changes the ranking (else this test would not see it)
    two_way = RecordSearch(None, records, vectors, FusionSettings(method="convex", convex_dense_weight=0.2))
    assert _ids(two_way.hybrid(queries, 10, query_vectors)) != ref


def test_routed_hybrid_fuses_each_query_with_its_routes_weights(synthetic):
    from embshared.fusion import weighted_zscore_fusion

    records, vectors, queries, query_vectors = synthetic
    queries = [*queries, "w1xb w2xcc", "w12xe wq9xa"]  # two words no record has: the unknown route
    query_vectors = np.vstack([query_vectors, query_vectors[:2]])
    settings = FusionSettings(
        method="convex", convex_dense_weight=0.2, convex_ngram_weight=0.5, convex_known_ngram_weight=0.0
    )
    engine = RecordSearch(None, records, vectors, settings)
    known = engine.bm25.knows_all_terms(queries)
    assert known[:24].all() and not known[-2:].any()
    names = [str(i) for i in range(N_RECORDS)]
    scores = [engine.bm25.score_matrix(queries), query_vectors @ vectors.T, engine.ngrams.score_matrix(queries)]
    by_route = {route: weighted_zscore_fusion(scores, settings.convex_weights(known=route)) for route in (True, False)}
    ref = [top_k(by_route[bool(k)][row : row + 1], names, 10)[0] for row, k in enumerate(known)]
    assert _ids(engine.hybrid(queries, 10, query_vectors)) == [[int(i) for i in row] for row in ref]
    # the routes differ where it matters: the unknown queries' ranking is not the known weights'
    assert top_k(by_route[True][-2:], names, 10) != top_k(by_route[False][-2:], names, 10)
