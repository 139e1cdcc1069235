"""Search baselines and indexes: BM25 through bm25s, character n-gram TF-IDF through
scikit-learn, dense search through FAISS.

BM25 and FAISS return ``(ids, scores)`` lists per query, best first, and save to / load from a
folder; the n-gram index gives score matrices and is built in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embshared.errors import UserError
from embshared.files import atomic_dir, write_json


class IndexLoadError(UserError):
    """A missing or incompatible saved index."""


# ---------------------------------------------------------------------------------------
# BM25


class BM25Index:
    """Okapi BM25 (Lucene variant) over English text with stop words removed and Snowball stemming.

    Args:
        k1, b: the BM25 parameters.
        stem: apply the English Snowball stemmer (PyStemmer) if it is installed.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, stem: bool = True):
        self.k1 = k1
        self.b = b
        self.stem = stem
        self.doc_ids: list[str] = []
        self._retriever = None

    def _stemmer(self):
        if not self.stem:
            return None
        try:
            import Stemmer
        except ImportError:
            return None
        return Stemmer.Stemmer("english")

    def _tokenize(self, texts: Sequence[str], return_ids: bool):
        import bm25s

        return bm25s.tokenize(
            list(texts), stopwords="en", stemmer=self._stemmer(), return_ids=return_ids, show_progress=False
        )

    def index(self, doc_ids: Sequence[str], texts: Sequence[str]) -> BM25Index:
        """Index ``texts``; ``doc_ids[i]`` names ``texts[i]``."""
        import bm25s

        if len(doc_ids) != len(texts):
            raise ValueError("doc_ids and texts differ in length")
        if not texts:
            raise ValueError("cannot index an empty corpus")
        self.doc_ids = [str(d) for d in doc_ids]
        self._retriever = bm25s.BM25(k1=self.k1, b=self.b)
        self._retriever.index(self._tokenize(texts, return_ids=True), show_progress=False)
        return self

    def _query_tokens(self, queries: Sequence[str]) -> list[list[str]]:
        return self._tokenize(queries, return_ids=False)

    def score_matrix(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, n_docs) BM25 scores in the order of ``doc_ids``."""
        if self._retriever is None:
            raise RuntimeError("index() or load() first")
        out = np.zeros((len(queries), len(self.doc_ids)), dtype=np.float32)
        for row, tokens in enumerate(self._query_tokens(queries)):
            ids = self._retriever.get_tokens_ids(tokens)
            if ids:
                out[row] = self._retriever.get_scores_from_ids(ids)
        return out

    def knows_all_terms(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries,) bool: every term of the query (after stop words and stemming) occurs in the documents.

        A query with a word no document contains (a typo, a partial word, an unseen code) is
        False; one with no terms at all (only stop words) is True.
        """
        if self._retriever is None:
            raise RuntimeError("index() or load() first")
        vocabulary = self._retriever.vocab_dict
        return np.array([all(t in vocabulary for t in tokens) for tokens in self._query_tokens(queries)], dtype=bool)

    def search(self, queries: Sequence[str], k: int = 10) -> tuple[list[list[str]], list[list[float]]]:
        """Top-``k`` doc ids and scores per query (ties by ascending id)."""
        from embshared.evaluate import top_k

        scores = self.score_matrix(queries)
        ranked = top_k(scores, self.doc_ids, k)
        position = {d: i for i, d in enumerate(self.doc_ids)}
        values = [[float(scores[r, position[d]]) for d in row] for r, row in enumerate(ranked)]
        return ranked, values

    def save(self, folder: str | os.PathLike) -> None:
        """Save the index and its doc ids to ``folder`` (replaced atomically)."""
        with atomic_dir(folder, overwrite=True) as tmp:
            self._retriever.save(str(tmp), show_progress=False)
            write_json(tmp / "doc_ids.json", {"k1": self.k1, "b": self.b, "stem": self.stem, "doc_ids": self.doc_ids})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BM25Index:
        import bm25s

        folder = Path(folder)
        meta_path = folder / "doc_ids.json"
        if not meta_path.is_file():
            raise IndexLoadError(f"{folder}: not a saved BM25 index (doc_ids.json missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        index = cls(k1=meta["k1"], b=meta["b"], stem=meta["stem"])
        index.doc_ids = meta["doc_ids"]
        index._retriever = bm25s.BM25.load(str(folder), show_progress=False)
        return index


def bm25_score_fn(doc_ids: Sequence[str], texts: Sequence[str], **kwargs):
    """A score function (query texts -> (batch, n_docs)) for :func:`embshared.evaluate.evaluate_retrieval`."""
    return BM25Index(**kwargs).index(doc_ids, texts).score_matrix


# ---------------------------------------------------------------------------------------
# character n-gram TF-IDF


def _lower_words(text: str) -> list[str]:
    """The words of ``text`` as sklearn's ``char_wb`` analyzer splits them (lower case, on whitespace)."""
    return text.lower().split()


class CharNgramIndex:
    """Character n-gram TF-IDF over whole texts: a lexical ranker that a typo does not break.

    The features, weights and scores are exactly those of scikit-learn's
    ``TfidfVectorizer(analyzer="char_wb", ngram_range=..., sublinear_tf=True, min_df=..., max_df=...)``
    (n-grams inside words padded with a space; cosine of l2-normalised TF-IDF vectors), and
    sklearn computes every part: a misspelled word still shares most of its 3-5-grams with
    the right one, where BM25's whole-word tokens share none. What is done here by hand is
    only the order of the work: sklearn's analyzer generates the n-grams of every word
    *occurrence* in Python (about 10 minutes for 100k records of 1,500 characters), so the
    index counts words first, has sklearn's analyzer make the n-grams of each *distinct*
    word once, and sums them with one sparse product (documents x words) @ (words x
    n-grams). A test checks the scores against ``TfidfVectorizer`` on real text.

    Args:
        ngram_range: the n-gram lengths (inclusive).
        min_df: an n-gram must occur in at least this many documents to be a feature.
        max_df: and in at most this share of them (sklearn's float ``max_df``). The commonest
            n-grams (" th", "ion") weigh little (low idf) but their postings are most of the
            scoring work: on SciFact, those in more than 30% of the abstracts are 0.7% of the
            n-grams and 80% of a query's postings.
    """

    def __init__(self, ngram_range: tuple[int, int] = (3, 5), min_df: int = 2, max_df: float = 1.0):
        if not 0.0 < max_df <= 1.0:
            raise ValueError(f"max_df must be in (0, 1], got {max_df}")
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.min_df = min_df
        self.max_df = float(max_df)
        self.doc_ids: list[str] = []
        self._query_counter = None  # CountVectorizer with the n-gram vocabulary
        self._tfidf = None  # TfidfTransformer fitted on the documents
        self._docs_t = None  # (n_ngrams, n_docs) CSR: the documents' TF-IDF, transposed for scoring

    def index(self, doc_ids: Sequence[str], texts: Sequence[str]) -> CharNgramIndex:
        """Index ``texts``; ``doc_ids[i]`` names ``texts[i]``."""
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        if len(doc_ids) != len(texts):
            raise ValueError("doc_ids and texts differ in length")
        if not texts:
            raise ValueError("cannot index an empty corpus")
        self.doc_ids = [str(d) for d in doc_ids]
        word_counter = CountVectorizer(analyzer=_lower_words, dtype=np.float32)
        doc_words = word_counter.fit_transform(texts)  # (n_docs, n_words) counts
        words = word_counter.get_feature_names_out()
        ngram_counter = CountVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, dtype=np.float32)
        word_ngrams = ngram_counter.fit_transform(words)  # (n_words, n_ngrams) counts within each padded word
        counts = (doc_words @ word_ngrams).tocsc()  # (n_docs, n_ngrams)
        df = np.diff(counts.indptr)  # document frequency per column
        keep = np.flatnonzero((df >= self.min_df) & (df <= self.max_df * len(texts)))
        vocabulary = ngram_counter.get_feature_names_out()[keep]
        counts = counts[:, keep].tocsr()
        self._tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        self._docs_t = self._tfidf.transform(counts).astype(np.float32).T.tocsr()
        self._query_counter = CountVectorizer(
            analyzer="char_wb", ngram_range=self.ngram_range, vocabulary={g: i for i, g in enumerate(vocabulary)}
        )
        return self

    @property
    def n_features(self) -> int:
        return 0 if self._docs_t is None else self._docs_t.shape[0]

    def transform(self, texts: Sequence[str]):
        """(n_texts, n_ngrams) sparse l2-normalised TF-IDF of ``texts`` in the index's vocabulary."""
        if self._docs_t is None:
            raise RuntimeError("index() first")
        return self._tfidf.transform(self._query_counter.transform(list(texts))).astype(np.float32)

    def score_matrix(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, n_docs) cosine of each query's TF-IDF with each document's, in the order of ``doc_ids``.

        Per query, the rows of the n-grams it holds (their postings) are summed with the
        query's weights as one sparse matrix-vector product into a dense row: cheaper than a
        sparse x sparse product whose sparse result is then made dense.
        """
        q = self.transform(queries).tocsr()
        out = np.zeros((q.shape[0], self._docs_t.shape[1]), dtype=np.float32)
        for row in range(q.shape[0]):
            start, end = q.indptr[row], q.indptr[row + 1]
            if end > start:
                out[row] = self._docs_t[q.indices[start:end]].T @ q.data[start:end]
        return out


# ---------------------------------------------------------------------------------------
# FAISS

INDEX_KINDS = ("flat", "ivf", "hnsw")
METRIC_KINDS = ("ip", "l2")
STORAGE_KINDS = ("float32", "float16", "int8")  # how FAISS keeps the vectors (see FaissIndex)

# ``kind="auto"`` (:func:`auto_faiss_kind`): exact below FLAT_MAX_DOCS documents, HNSW at or above.
# Why 100,000: a flat search reads every vector for every query, n * dim multiply-adds (100k x 384
# float32 is 150 MB and ~10-20 ms on one core; 1M is ~10x that, per query, and it grows with n),
# while below 100k it is fast enough and exact, and HNSW's cost (minutes of graph building,
# ~2 * M * 4 bytes of links per vector, recall a little under 1) buys nothing.
# Why HNSW rather than IVF on a 2-core CPU: HNSW needs no training pass (IVF first runs k-means
# for ~4 * sqrt(n) = 4,000 centroids at 1M, on a sample that must be at hand up front), adds
# documents one by one, and keeps a high recall without tuning as the collection grows (IVF's
# recall depends on nprobe / nlist and on how the data clusters); its memory is the vectors plus
# 256 bytes of links per vector at M = 32 (+17% for 384-dim float32), and its build time, which
# the bench measures, is small next to encoding the same million documents on the same 2 cores.
# M = 32, efSearch = 128 gave recall@10 0.97 on 20k random 64-dim unit vectors (a hard case: no
# cluster structure; tests/shared/test_search_scale.py asserts >= 0.9), but only 0.862 at 1M
# (``make bench-scale``: SciFact's MiniLM vectors and noisy copies of them, 200 claims): efSearch
# 128 / 256 / 512 / 1024 gave recall@10 0.862 / 0.919 / 0.945 / 0.957 for 0.4 / 0.7 / 1.3 / 2.6 ms
# (p50) of graph search, next to ~10 ms to encode the query. So the default is 1024: the recall
# is worth 2 ms a query at every size.
FLAT_MAX_DOCS = 100_000
AUTO_APPROXIMATE_KIND = "hnsw"


def auto_faiss_kind(n_docs: int) -> str:
    """The FAISS kind ``"auto"`` means for ``n_docs`` vectors: "flat" below :data:`FLAT_MAX_DOCS`, else "hnsw"."""
    return "flat" if n_docs < FLAT_MAX_DOCS else AUTO_APPROXIMATE_KIND


def resolve_faiss_kind(kind: str, n_docs: int) -> str:
    """``kind`` itself ("flat", "ivf", "hnsw"), or what "auto" means for ``n_docs`` vectors."""
    if kind == "auto":
        return auto_faiss_kind(n_docs)
    if kind not in INDEX_KINDS:
        raise ValueError(f"kind must be auto or one of {INDEX_KINDS}, got {kind!r}")
    return kind


class FaissIndex:
    """A FAISS index over float32 vectors with string ids.

    Args:
        dim: vector size.
        metric: "ip" (inner product; cosine on normalised vectors) or "l2".
        kind: "flat" (exact), "ivf" (inverted lists; trained on the vectors added first)
            or "hnsw" (graph); the last two are approximate, for large corpora.
        nlist: IVF cells (default about 4 * sqrt(n)); nprobe: cells searched.
        hnsw_m: HNSW graph degree; ef_search: HNSW search breadth (a search for k > ef_search
            documents searches k wide).
        storage: how the index keeps the vectors: "float32" (as given), "float16" or "int8"
            (FAISS scalar quantizers QT_fp16 / QT_8bit: 2 or 1 byte per dimension; QT_8bit learns
            each dimension's min and max from the first batch added, like
            ``sentence_transformers.quantize_embeddings``' int8 ranges). Scores are then inner
            products with the decoded vectors: approximate for int8.
    """

    def __init__(
        self,
        dim: int,
        metric: str = "ip",
        kind: str = "flat",
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 1024,
        storage: str = "float32",
    ):
        if storage not in STORAGE_KINDS:
            raise ValueError(f"storage must be one of {STORAGE_KINDS}, got {storage!r}")
        if metric not in METRIC_KINDS:
            raise ValueError(f"metric must be one of {METRIC_KINDS}, got {metric!r}")
        if kind not in INDEX_KINDS:
            raise ValueError(f"kind must be one of {INDEX_KINDS}, got {kind!r}")
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.metric = metric
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.storage = storage
        self.ids: list[str] = []
        self._index = None

    def _new_index(self, n_train: int):
        import faiss

        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        sq = None  # the scalar quantizer of a float16 / int8 index
        if self.storage != "float32":
            sq = faiss.ScalarQuantizer.QT_fp16 if self.storage == "float16" else faiss.ScalarQuantizer.QT_8bit
        if self.kind == "flat":
            if sq is not None:
                return faiss.IndexScalarQuantizer(self.dim, sq, faiss_metric)
            return faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        if self.kind == "hnsw":
            if sq is not None:
                index = faiss.IndexHNSWSQ(self.dim, sq, self.hnsw_m, faiss_metric)
            else:
                index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss_metric)
            index.hnsw.efSearch = self.ef_search
            return index
        nlist = self.nlist or max(1, min(int(4 * np.sqrt(n_train)), n_train // 39 or 1))
        quantizer = faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        if sq is not None:
            index = faiss.IndexIVFScalarQuantizer(quantizer, self.dim, nlist, sq, faiss_metric)
        else:
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss_metric)
        index.nprobe = min(self.nprobe, nlist)
        return index

    @staticmethod
    def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise ValueError(f"expected vectors of shape (n, {dim}), got {vectors.shape}")
        return vectors

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> FaissIndex:
        """Add vectors (n, dim) named by ``ids``; an IVF index is trained on the first batch."""
        vectors = self._as_matrix(vectors, self.dim)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if self._index is None:
            self._index = self._new_index(len(vectors))
            if not self._index.is_trained:
                self._index.train(vectors)
        self._index.add(vectors)
        self.ids.extend(str(i) for i in ids)
        return self

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[list[list[str]], list[list[float]]]:
        """Top-``k`` ids and scores per query. Scores are inner products, or L2 *distances* (smaller is closer)."""
        if self._index is None or not self.ids:
            raise RuntimeError("the index is empty")
        queries = self._as_matrix(queries, self.dim)
        k = min(k, len(self.ids))
        scores, indices = self._index.search(queries, k)
        if self.metric == "l2":
            scores = np.sqrt(np.maximum(scores, 0.0))  # faiss returns squared distances
        ids = [[self.ids[i] for i in row if i >= 0] for row in indices]
        values = [[float(s) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(scores, indices)]
        return ids, values

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``index.faiss`` and ``index.json`` (ids and settings) to ``folder``, atomically."""
        import faiss

        if self._index is None:
            raise RuntimeError("nothing to save: the index is empty")
        with atomic_dir(folder, overwrite=True) as tmp:
            faiss.write_index(self._index, str(tmp / "index.faiss"))
            meta = {
                "dim": self.dim,
                "metric": self.metric,
                "kind": self.kind,
                "nlist": self.nlist,
                "nprobe": self.nprobe,
                "hnsw_m": self.hnsw_m,
                "ef_search": self.ef_search,
                "storage": self.storage,
                "ids": self.ids,
            }
            write_json(tmp / "index.json", meta, indent=None)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> FaissIndex:
        import faiss

        folder = Path(folder)
        meta_path, index_path = folder / "index.json", folder / "index.faiss"
        if not meta_path.is_file() or not index_path.is_file():
            raise IndexLoadError(f"{folder}: not a saved FAISS index (index.json / index.faiss missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        ids = meta.pop("ids")
        index = cls(**meta)  # an index.json without "storage" (older indexes) is float32
        index._index = faiss.read_index(str(index_path))
        if index._index.ntotal != len(ids):
            raise IndexLoadError(f"{folder}: index holds {index._index.ntotal} vectors but {len(ids)} ids")
        index.ids = ids
        return index


def recall_at_k(index: FaissIndex, exact: FaissIndex, queries: np.ndarray, k: int = 10) -> float:
    """Mean share of ``exact``'s top-``k`` documents that ``index`` also returns in its top ``k``.

    How an approximate index (HNSW, IVF, a quantized one) is measured against the exact one
    (flat, float32) over the same documents: recall@10 = |approx top-10 & exact top-10| / 10,
    averaged over ``queries`` (n_queries, dim). Documents are compared by id.
    """
    if len(index) != len(exact):
        raise ValueError(f"the two indexes hold {len(index)} and {len(exact)} documents")
    found, _ = index.search(queries, k)
    truth, _ = exact.search(queries, k)
    shares = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth) if t]
    return float(np.mean(shares)) if shares else 0.0
