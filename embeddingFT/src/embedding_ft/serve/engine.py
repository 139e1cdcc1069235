"""One loaded model and index (:class:`Engine`): what a request runs on, from start to end.

The index is an :class:`embedding_ft.index.Searcher`; its queries are encoded by the batcher's
worker (the only thread that runs the model), then handed to the Searcher through
:class:`_GivenQuery`, so that hybrid search keeps the Searcher's own fusion (the index's
``fusion.json``, else the default) and candidate rules. Each hit gets the two parts the
fusion combined: ``dense`` (the cosine of its stored vector to the query) and ``bm25`` (its
BM25 score), and ``found_by``: which ranker alone would have ranked it in the top k.

Tokens are counted (for ``usage`` and the batcher's budget) on copies of the model's tokenizer:
a Hugging Face fast tokenizer must not be called from two threads at once, and the worker uses
the model's own one. Short inputs are counted on the event loop with a copy only it uses
(:meth:`Engine.count_tokens_inline`): for a 16-token query the hop to a worker thread cost more
than the count; longer ones on worker threads, with another copy under a lock.
"""

from __future__ import annotations

import copy
import logging
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as RawTokenizer

from embedding_ft.serve.batcher import Replicas

logger = logging.getLogger("embedding_ft.serve")

#: what identifies the weights an index was built with (meta.json keys)
IDENTITY = ("model_fingerprint", "backend", "file_name", "compute_dtype")


class _GivenQuery:
    """The Searcher's encoder: hands back the vector the batcher already computed for this thread's query."""

    def __init__(self):
        self._local = threading.local()

    @contextmanager
    def given(self, query: str, vector: np.ndarray):
        self._local.given = (query, np.asarray(vector, dtype=np.float32).reshape(1, -1))
        try:
            yield
        finally:
            self._local.given = None

    def encode(self, texts, batch_size: int = 32, normalize_embeddings: bool = True, **_ignored) -> np.ndarray:
        given = getattr(self._local, "given", None)
        if given is None or list(texts) != [given[0]]:
            raise RuntimeError("queries are encoded by the batcher's worker (Engine.search), not here")
        return given[1]


class Engine:
    """A model and an index, loaded together.

    Args:
        index: the index folder (``make index-embed``).
        model, backend: must name the index's model and back end when given (the Searcher checks).
        encoder: an already loaded encoder, or the :class:`Replicas` of one (tests; a reload that
            keeps the model).
        served_name: the model id clients name (default: the index's model as meta.json names it).
        workers: copies of the model, one per batcher worker (:attr:`replicas`).
    """

    def __init__(
        self,
        index,
        model: str | None = None,
        backend: str | None = None,
        encoder=None,
        served_name=None,
        workers: int = 1,
    ):
        from embedding_ft.index import Searcher

        self.index = Path(index)
        self._query = _GivenQuery()
        # the index is read and checked first: a bad folder fails in a second, before the model loads
        self.searcher = Searcher(self.index, model, backend, encoder=self._query)
        self.meta = self.searcher.meta
        self.reused_model = encoder is not None
        self.replicas = self._replicas(encoder, model, workers)
        self.encoder = self.replicas[0]  # the model tokens are counted and dimensions read with
        self.name = served_name or self.meta["model"]
        self.dim = int(self.meta["dim"])
        self._row = getattr(self.searcher, "_row", None) or {d: i for i, d in enumerate(self.searcher.ids)}
        tokenizer, self._max_tokens = _model_tokenizer(self.encoder)
        self._tokenizer = _counting_copy(tokenizer, self._max_tokens)  # worker threads', under the lock
        self._token_lock = threading.Lock()
        self._inline_tokenizer = _counting_copy(tokenizer, self._max_tokens)  # the event loop's own (no lock)

    def _replicas(self, encoder, model: str | None, workers: int) -> Replicas:
        """``workers`` copies of the model: ``encoder``'s (a kept Replicas as it is), else loaded."""
        if isinstance(encoder, Replicas) and len(encoder) == workers:
            return encoder
        first = encoder[0] if isinstance(encoder, Replicas) else encoder
        if first is None:  # each copy loaded again: an ONNX Runtime or OpenVINO session cannot be deep-copied
            return Replicas([self._load_encoder() for _ in range(workers)])
        return Replicas([first, *(copy.deepcopy(first) for _ in range(workers - 1))])

    def _load_encoder(self):
        from embedding_ft.backends import load_encoder
        from embedding_ft.index import query_encoder_folder

        # a model the caller named was checked by the Searcher: it is the index's own
        return load_encoder(
            query_encoder_folder(self.index, self.meta),
            self.meta["backend"],
            self.meta.get("file_name"),
            compute_dtype=self.meta.get("compute_dtype", "float32"),
        )

    def same_model(self, meta: dict) -> bool:
        """True if an index with this ``meta`` was built with this engine's weights and back end."""
        return all(meta.get(k) == self.meta.get(k) for k in IDENTITY)

    def describe(self) -> dict:
        return {
            "model": self.name,
            "index": str(self.index),
            "backend": self.meta["backend"],
            "docs": len(self.searcher.ids),
            "dim": self.dim,
        }

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens the model reads of each text (special tokens included, cut at its max length); any thread."""
        with self._token_lock:
            return self._count(self._tokenizer, texts)

    def count_tokens_inline(self, texts: list[str]) -> list[int]:
        """:meth:`count_tokens` on the event loop's own copy of the tokenizer: call it from that one thread only."""
        return self._count(self._inline_tokenizer, texts)

    def _count(self, tokenizer, texts: list[str]) -> list[int]:
        if tokenizer is None:  # an encoder without a tokenizer: words + 2
            return [len(t.split()) + 2 for t in texts]
        if isinstance(tokenizer, RawTokenizer):
            return [len(tokenizer.encode(t, add_special_tokens=True).ids) for t in texts]
        ids = tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=self._max_tokens is not None,
            max_length=self._max_tokens,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return [len(x) for x in ids]

    def search(self, query: str, vector: np.ndarray, k: int, hybrid: bool) -> list[dict]:
        """The top-``k`` hits for ``query`` (whose unit vector is ``vector``), each with its bm25 and dense parts."""
        with self._query.given(query, vector):
            hits = self.searcher.search(query, k, hybrid)
        if not hits:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        rows = np.array([self._row[h.id] for h in hits], dtype=np.int64)
        dense = self.searcher.vectors(rows) @ q
        lexical = self.searcher.bm25.score_matrix([query])[0]  # (n_docs,)
        by_bm25 = _top_set(lexical, len(hits))
        by_dense = self._dense_top(q, len(hits)) if hybrid else {h.id for h in hits}  # dense: FAISS's own top k
        return [
            {
                "rank": h.rank,
                "id": h.id,
                "score": round(float(h.score), 6),
                "text": h.text,
                "bm25": round(float(lexical[r]), 6),
                "dense": round(float(d), 6),
                "found_by": [side for side, found in (("bm25", r in by_bm25), ("dense", h.id in by_dense)) if found],
            }
            for h, r, d in zip(hits, rows.tolist(), dense.tolist())
        ]

    def _dense_top(self, q: np.ndarray, k: int) -> set[str]:
        ids, _ = self.searcher.faiss.search(q[None, :], k)
        return set(ids[0])


def _top_set(scores: np.ndarray, k: int) -> set[int]:
    """Rows of the ``k`` best positive scores (BM25 ranks no document that shares no term with the query)."""
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return {int(r) for r in top if scores[r] > 0}


def _counting_copy(tokenizer, max_tokens: int | None):
    """A private copy of a fast tokenizer's Rust ``tokenizers.Tokenizer``, truncating at ``max_tokens`` and never
    padding (else a copy of ``tokenizer`` itself; None for None).

    Counting a 16-token query through transformers' ``__call__`` took ~0.4 ms of the event loop
    (py-spy, make bench-serve at concurrency 32, 2026-12-07); the Rust tokenizer it wraps counts
    the same tokens directly (tested equal, truncation included).
    """
    raw = getattr(tokenizer, "backend_tokenizer", None)
    if raw is None:
        return copy.deepcopy(tokenizer)
    raw = copy.deepcopy(raw)
    raw.no_padding()
    if max_tokens is not None:
        raw.enable_truncation(max_tokens)
    else:
        raw.no_truncation()
    return raw


def _model_tokenizer(encoder):
    """(the encoder's tokenizer, its max length), or (None, None) when it has none."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None:
        return None, None
    max_tokens = getattr(encoder, "max_seq_length", None) or getattr(tokenizer, "model_max_length", None)
    if max_tokens is not None and max_tokens > 1_000_000:  # "no limit" in transformers' sense
        max_tokens = None
    return tokenizer, max_tokens
