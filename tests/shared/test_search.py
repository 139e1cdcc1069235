"""BM25 and FAISS: rankings that can be checked by hand, and save/load round trips."""

from __future__ import annotations

import numpy as np
import pytest

from embshared.search import BM25Index, FaissIndex, IndexLoadError

DOCS = {
    "d1": "The mitochondria is the powerhouse of the cell",
    "d2": "Transformers encode sentences into dense vectors",
    "d3": "Cells divide by mitosis; mitochondria divide too",
    "d4": "BM25 ranks documents by term frequency and inverse document frequency",
}


def test_bm25_ranks_by_terms_and_stems():
    index = BM25Index().index(list(DOCS), list(DOCS.values()))
    ids, scores = index.search(["ranking documents", "dense vector encoders"], k=2)
    assert ids[0][0] == "d4"  # "ranking"/"ranks" and "documents" share stems
    assert ids[1][0] == "d2"
    assert scores[0][0] > scores[0][1]
    matrix = index.score_matrix(["zzzz unknown"])
    assert matrix.shape == (1, 4) and not matrix.any()


def test_bm25_idf_prefers_rare_terms():
    index = BM25Index().index(list(DOCS), list(DOCS.values()))
    scores = index.score_matrix(["mitochondria powerhouse"])[0]
    assert scores[0] > scores[2] > 0  # both mention mitochondria, only d1 the rare "powerhouse"


def test_bm25_save_load(tmp_path):
    index = BM25Index().index(list(DOCS), list(DOCS.values()))
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.doc_ids == list(DOCS)
    assert np.allclose(loaded.score_matrix(["cell mitochondria"]), index.score_matrix(["cell mitochondria"]))
    with pytest.raises(IndexLoadError, match="not a saved BM25 index"):
        BM25Index.load(tmp_path)


def test_bm25_knows_all_terms_after_stop_words_and_stemming(tmp_path):
    index = BM25Index().index(list(DOCS), list(DOCS.values()))
    queries = ["Ranking the documents", "mitochondira divide", "the of", "cells dividing", "BM25 vectorz"]
    expected = [True, False, True, True, False]  # a typo / an unseen form is unknown; stop words only: nothing unknown
    assert index.knows_all_terms(queries).tolist() == expected
    index.save(tmp_path / "bm25")
    assert BM25Index.load(tmp_path / "bm25").knows_all_terms(queries).tolist() == expected


def random_unit(n, dim, seed):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_ip_and_l2_exact():
    vectors = random_unit(50, 8, 0)
    ids = [f"v{i}" for i in range(50)]
    ip = FaissIndex(8, "ip").add(ids, vectors)
    found, scores = ip.search(vectors[[3, 7]], k=3)
    assert [row[0] for row in found] == ["v3", "v7"]
    assert scores[0][0] == pytest.approx(1.0, abs=1e-5)
    expected = np.argsort(-(vectors @ vectors[3]))[:3]
    assert found[0] == [ids[i] for i in expected]

    l2 = FaissIndex(8, "l2").add(ids, vectors)
    found, dist = l2.search(vectors[[5]] + 0.0, k=2)
    assert found[0][0] == "v5" and dist[0][0] == pytest.approx(0.0, abs=1e-3)
    assert dist[0][1] == pytest.approx(float(np.sort(np.linalg.norm(vectors - vectors[5], axis=1))[1]), rel=1e-4)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_find_exact_matches(kind):
    vectors = random_unit(2000, 16, 1)
    ids = [str(i) for i in range(2000)]
    index = FaissIndex(16, "ip", kind=kind).add(ids, vectors)
    found, _ = index.search(vectors[:100], k=1)
    assert sum(row[0] == str(i) for i, row in enumerate(found)) >= 95


def test_faiss_save_load_and_errors(tmp_path):
    vectors = random_unit(20, 4, 2)
    index = FaissIndex(4, "l2").add([f"x{i}" for i in range(20)], vectors)
    index.save(tmp_path / "idx")
    loaded = FaissIndex.load(tmp_path / "idx")
    assert loaded.metric == "l2" and len(loaded) == 20
    assert loaded.search(vectors[:2], 3) == index.search(vectors[:2], 3)
    with pytest.raises(ValueError, match=r"expected vectors of shape \(n, 4\)"):
        index.search(np.zeros((1, 5)), 1)
    with pytest.raises(IndexLoadError, match="not a saved FAISS index"):
        FaissIndex.load(tmp_path / "nothing")


# --- character n-gram TF-IDF

NGRAM_DOCS = [
    "Pyridostatin stabilises the G-quadruplex in telomeric regions.",
    "Statins lower LDL cholesterol; pyridoxine is vitamin B6.",
    "The quadruplex-binding ligand  stabilises\ttelomeres (in vitro).",
    "Vitamin B6 deficiency and telomere length: a cohort study.",
    "ÉCOLE  normale: Unicode words, ÉCOLE again.",
]


@pytest.mark.parametrize("max_df", [1.0, 0.5])
def test_char_ngram_index_equals_sklearn_tfidf_vectorizer(max_df):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from embshared.search import CharNgramIndex

    queries = ["Pyridhstatin stabilies the G-quadruplx", "vitamin b6", "école", "a", "zzzz qqqq"]
    index = CharNgramIndex(ngram_range=(3, 5), min_df=2, max_df=max_df).index([f"d{i}" for i in range(5)], NGRAM_DOCS)
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, max_df=max_df)
    docs = reference.fit_transform(NGRAM_DOCS)
    assert index.n_features == len(reference.vocabulary_)
    if max_df < 1.0:  # the cut drops the n-grams of 3+ of the 5 documents (" th", "the", "in ", ...)
        assert 0 < index.n_features < CharNgramIndex(min_df=2).index([f"d{i}" for i in range(5)], NGRAM_DOCS).n_features
    np.testing.assert_allclose(
        index.score_matrix(queries), (reference.transform(queries) @ docs.T).toarray(), atol=1e-6
    )


def test_char_ngram_index_finds_a_misspelled_word_that_bm25_misses():
    from embshared.search import CharNgramIndex

    ids = [f"d{i}" for i in range(5)]
    query = ["cholesterl"]  # one letter dropped: no BM25 term matches
    assert BM25Index().index(ids, NGRAM_DOCS).score_matrix(query).max() == 0.0
    # min_df=1: on five documents, min_df=2 would keep only n-grams shared by two of them
    scores = CharNgramIndex(min_df=1).index(ids, NGRAM_DOCS).score_matrix(query)[0]
    assert int(np.argmax(scores)) == 1 and scores[1] > 0
    with pytest.raises(ValueError, match="empty corpus"):
        CharNgramIndex().index([], [])
