"""A hybrid-aware ranking loss: train the dense model to complement BM25.

At search time the hybrid index fuses ``z(bm25) + w * z(dense)`` (``embshared.fusion``), so
the dense model only has to fix what BM25 gets wrong. This loss trains for that: the logits of
the ranking loss are the fused scores

    logit(q, d) = scale * cos(q, d) + lam * z_bm25(q, d)

for every in-batch and mined candidate ``d`` of query ``q``, where ``z_bm25(q, d)`` is the BM25
score of ``q`` against ``d`` z-scored over the WHOLE corpus for that query, exactly as the
convex fusion does at search time (:func:`embshared.fusion.zscore_rows` over
:meth:`embshared.search.BM25Index.score_matrix`). The BM25 term is a constant (no gradient): a
positive BM25 already ranks far above its negatives leaves a small loss and little gradient; a
positive BM25 misses gets the gradient. ``lam = 0`` is plain MultipleNegativesRankingLoss.

The published relative is CLEAR (Gao, Dai, Chen, Fan, Van Durme, Callan, "Complementing Lexical
Retrieval with Semantic Residual Embedding", ECIR 2021, arXiv:2004.13969): a dense model trained
on BM25's errors with a pairwise hinge loss whose margin shrinks by the BM25 score difference
(the "residual"). ``form="clear"`` is that hinge; the default ``form="softmax"`` is the in-batch
softmax (InfoNCE) over the fused logits. No peer library ships either (none of
sentence-transformers' losses has a lexical term), so the losses here subclass sentence-transformers' MultipleNegativesRankingLoss and
its GradCache form and replace only the computation of the loss from the embeddings: the
embedding, mini-batching and gradient caching stay the library's.

How the loss finds a row's BM25 scores: :func:`with_row_ids` adds a ``label`` column holding the
row's index in the training list. sentence-transformers' data collator passes a ``label``
column to the loss as ``labels`` (it is not embedded), and its no-duplicates batch sampler
leaves label columns out of its duplicate check. :class:`BM25Lookup` maps the row ids of a batch
to the (B, B * (1 + n_negatives)) matrix of z-scored BM25 scores in the loss's candidate order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from sentence_transformers.util import cos_sim
from torch import Tensor

from embshared.fusion import zscore_rows
from embshared.search import BM25Index

ROW_ID_COLUMN = "label"
FORMS = ("softmax", "clear")
# Score at most this many corpus cells per BM25 call (64 MB of float32): bounds memory on big corpora.
_CELLS_PER_CALL = 1 << 24


def with_row_ids(rows: list[dict]) -> list[dict]:
    """Copies of ``rows`` with a ``label`` column: each row's index in ``rows`` (0, 1, 2, ...).

    sentence-transformers hands a ``label`` column to the loss as ``labels``; the hybrid loss reads
    them as row ids to look up the rows' BM25 scores. The column is added last, so the text
    columns keep their order (anchor, positive, negative_1, ...).
    """
    if any(ROW_ID_COLUMN in row for row in rows):
        raise ValueError(f"the rows already have a '{ROW_ID_COLUMN}' column; the hybrid loss needs it for row ids")
    return [{**row, ROW_ID_COLUMN: i} for i, row in enumerate(rows)]


def text_columns(row: dict) -> list[str]:
    """The columns the loss embeds, in the order it reads them: every column but ``label``."""
    return [k for k in row if k != ROW_ID_COLUMN]


class BM25Lookup:
    """The z-scored BM25 scores of a batch of training rows, in the ranking loss's candidate order.

    Args:
        rows: the training rows (anchor, positive[, negative_1 ... negative_n]), with or without
            the ``label`` column; row id ``i`` is ``rows[i]``. The first text column is the query.
        index: a BM25 index of the corpus the search-time fusion z-scores over (use the fusion's
            k1, b and stemming).
        texts: the document texts of the index, ``texts[i]`` the text of ``index.doc_ids[i]``.

    ``batch_matrix(row_ids)[i, k * B + j]`` is ``z_bm25(anchor of row i, text column k + 1 of row
    j)``: column block 0 holds the B positives, block k the B k-th negatives, matching
    ``torch.cat([positives, negative_1, ...])`` in MultipleNegativesRankingLoss.

    ``z_bm25(q, d) = (bm25(q, d) - mean_q) / std_q`` with the mean and (population) standard
    deviation of ``q``'s BM25 scores over the indexed corpus, as :func:`embshared.fusion.zscore_rows`
    (a query whose scores are all equal has std 1, so every z is 0). A document that is not in
    the indexed corpus (e.g. a training positive outside the mining corpus) gets the BM25 score
    it would have if it were indexed together with the corpus: the index's formula (bm25s'
    Lucene variant, k1, b) with N + 1 documents, the document frequency of each of its terms
    plus one and the average length including it (:meth:`bm25_added`; a term only this document
    has counts with df = 1, as it would in that index). Its z uses the query's mean and std over
    the indexed corpus (what the scores of the other documents are normalised by).

    Nothing of size rows x corpus is kept: each batch scores its B anchors against the corpus in
    chunks of at most 2**24 cells.
    """

    def __init__(self, rows: Sequence[dict], index: BM25Index, texts: Sequence[str]):
        if not rows:
            raise ValueError("BM25Lookup needs at least one row")
        if len(texts) != len(index.doc_ids):
            raise ValueError(f"{len(texts)} texts for an index of {len(index.doc_ids)} documents")
        self.columns = text_columns(rows[0])
        if len(self.columns) < 2:
            raise ValueError(f"rows need an anchor and at least one document column, got {self.columns}")
        for i, row in enumerate(rows):
            if text_columns(row) != self.columns:
                raise ValueError(f"row {i} has columns {text_columns(row)}, row 0 has {self.columns}")
        self.rows = rows
        self.index = index
        self._column: dict[str, int] = {}
        for position, text in enumerate(texts):
            self._column.setdefault(text, position)
        retriever = index._retriever
        if retriever is None:
            raise ValueError("the BM25 index is empty: index() or load() it first")
        self._vocab: dict[str, int] = retriever.vocab_dict
        self._indptr = np.asarray(retriever.scores["indptr"])
        self._n_docs = int(retriever.scores["num_docs"])
        unindexed = sorted({row[c] for row in rows for c in self.columns[1:]} - self._column.keys())
        self._texts = texts
        self._avg_doc_len: float | None = None
        self._unindexed: dict[str, tuple[Counter, int]] = {}
        if unindexed:
            for text, tokens in zip(unindexed, index._tokenize(unindexed, return_ids=False)):
                self._unindexed[text] = (Counter(tokens), len(tokens))
            self._average_length()  # once, at construction, not in the first training step

    @classmethod
    def from_corpus(
        cls, rows: Sequence[dict], corpus: Sequence[str], k1: float = 1.5, b: float = 0.75, stem: bool = True
    ) -> BM25Lookup:
        """A lookup over a new BM25 index of ``corpus`` (ids: positions, as ``mining.bm25_index``)."""
        index = BM25Index(k1=k1, b=b, stem=stem).index([str(i) for i in range(len(corpus))], corpus)
        return cls(rows, index, corpus)

    @property
    def n_documents(self) -> int:
        """Documents per row: the positive and the negatives (1 + n_negatives)."""
        return len(self.columns) - 1

    @property
    def unindexed(self) -> list[str]:
        """The row documents that are not in the indexed corpus (scored by :meth:`bm25_added`)."""
        return list(self._unindexed)

    def bm25_added(self, query: str, text: str) -> float:
        """The raw BM25 score of ``query`` against ``text`` if ``text`` were indexed together with
        the corpus (N + 1 documents; its terms' document frequencies + 1; average length with it)."""
        counts, length = self._unindexed.get(text) or self._tokens(text)
        return self._score(self.index._tokenize([query], return_ids=False)[0], counts, length, added=True)

    def _tokens(self, text: str) -> tuple[Counter, int]:
        tokens = self.index._tokenize([text], return_ids=False)[0]
        return Counter(tokens), len(tokens)

    def _average_length(self, chunk: int = 10_000) -> float:
        """The corpus's average document length in BM25 tokens, as bm25s computes it when indexing."""
        if self._avg_doc_len is None:
            retriever = self.index._retriever
            if retriever.method in retriever.methods_requiring_nonoccurrence:
                raise ValueError(f"scoring documents outside the index is not implemented for BM25 {retriever.method}")
            texts, total = self._texts, 0
            for start in range(0, len(texts), chunk):
                part = list(texts[start : start + chunk])
                total += sum(len(t) for t in self.index._tokenize(part, return_ids=False))
            self._avg_doc_len = total / len(texts)
        return self._avg_doc_len

    def _score(self, query_tokens: list[str], counts: Counter, length: int, added: bool) -> float:
        """BM25 of a document (its term counts and length) from the index's statistics; ``added``:
        as if the document were one more indexed document (else: the index's own score of it)."""
        from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

        retriever = self.index._retriever
        idf = _select_idf_scorer(retriever.idf_method)
        tfc = _select_tfc_scorer(retriever.method)
        n_terms = len(self._indptr) - 1
        n_docs, avg_len = self._n_docs, self._average_length()
        if added:
            avg_len = (n_docs * avg_len + length) / (n_docs + 1)
            n_docs += 1
        score = 0.0
        for token in query_tokens:  # a repeated query term counts again, as in the index
            tf = counts.get(token, 0)
            if tf == 0:
                continue
            term = self._vocab.get(token)
            df = 0 if term is None or term >= n_terms else int(self._indptr[term + 1] - self._indptr[term])
            df += int(added)
            if df == 0:
                continue
            score += idf(df, n_docs) * tfc(tf, length, avg_len, retriever.k1, retriever.b, retriever.delta)
        return score

    def batch_matrix(self, row_ids: Iterable[int] | Tensor) -> Tensor:
        """(B, B * (1 + n_negatives)) float32 z-scored BM25 of each row's anchor against every candidate.

        Row ``i`` is the anchor of ``row_ids[i]``; column ``k * B + j`` the ``k``-th document
        column (0: positive) of ``row_ids[j]``.
        """
        ids = [int(i) for i in (row_ids.tolist() if isinstance(row_ids, Tensor) else row_ids)]
        n_rows = len(self.rows)
        bad = [i for i in ids if not 0 <= i < n_rows]
        if bad:
            raise IndexError(f"row ids {bad[:5]} outside the {n_rows} training rows (is 'label' the row index?)")
        anchor = self.columns[0]
        candidates = [self.rows[i][c] for c in self.columns[1:] for i in ids]
        indexed = [self._column.get(text) for text in candidates]
        indexed_at = [p for p, col in enumerate(indexed) if col is not None]
        indexed_cols = np.array([indexed[p] for p in indexed_at], dtype=np.int64)
        others = [p for p, col in enumerate(indexed) if col is None]

        queries = list(dict.fromkeys(self.rows[i][anchor] for i in ids))
        per_query: dict[str, np.ndarray] = {}
        step = max(1, _CELLS_PER_CALL // max(self._n_docs, 1))
        for start in range(0, len(queries), step):
            chunk = queries[start : start + step]
            raw = self.index.score_matrix(chunk)  # (chunk, n_docs) in doc_ids order
            z = zscore_rows(raw)
            mean = raw.mean(axis=1)
            std = raw.std(axis=1)
            tokens = self.index._tokenize(chunk, return_ids=False) if others else None
            for r, query in enumerate(chunk):
                row = np.empty(len(candidates), dtype=np.float32)
                row[indexed_at] = z[r, indexed_cols]
                if others:
                    scale = std[r] if std[r] > 0 else 1.0
                    for p in others:
                        counts, length = self._unindexed[candidates[p]]
                        row[p] = (self._score(tokens[r], counts, length, added=True) - mean[r]) / scale
                per_query[query] = row
        return torch.from_numpy(np.stack([per_query[self.rows[i][anchor]] for i in ids]))


class HybridMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss whose logits are the hybrid (BM25 + dense) fused scores.

    ``logit(q_i, d) = scale * cos(q_i, d) + lam * z_bm25(q_i, d)`` over the candidates
    ``[all positives, all negative_1, ..., all negative_n]`` of the batch, ``z_bm25`` from
    ``bm25_lookup.batch_matrix(labels)`` (fixed, no gradient). The gradient goes to what BM25
    gets wrong (see the module docstring; reference: CLEAR, Gao et al., ECIR 2021).

    Forms:
        softmax: ``-log softmax_d(logit(q_i, d))[positive_i]``, averaged over the batch
            (``lam = 0``: exactly MultipleNegativesRankingLoss).
        clear: CLEAR's residual-margin hinge, averaged over every (anchor, candidate other than
            its positive) pair: ``max(0, m_ij - s(q_i, p_i) + s(q_i, d_j))`` with
            ``s = scale * cos`` and ``m_ij = max(0, clear_margin - lam * (z(q_i, p_i) - z(q_i, d_j)))``:
            the margin shrinks by how far BM25 already puts the positive above the candidate,
            and grows where BM25 puts the candidate above the positive.

    Args:
        model: the SentenceTransformer.
        bm25_lookup: a :class:`BM25Lookup` (anything with ``batch_matrix(row_ids)``).
        bm25_weight: lam >= 0, the weight of the z-scored BM25 in the logits.
        form: "softmax" or "clear".
        clear_margin: the hinge margin of ``form="clear"``, in logit units (scale * cosine).
        scale, similarity_fct: as MultipleNegativesRankingLoss.
        directions: ("query_to_doc",) or ("query_to_doc", "doc_to_query") (softmax form only);
            the doc -> query logits add ``lam * z_bm25(q_j, p_i)``.
        partition_mode: as MultipleNegativesRankingLoss.

    The training rows need the ``label`` column of :func:`with_row_ids` (passed as ``labels``).
    ``last_row_ids`` holds the row ids of the last batch the loss saw.
    """

    def __init__(
        self,
        model,
        bm25_lookup: Any,
        bm25_weight: float = 1.0,
        form: Literal["softmax", "clear"] = "softmax",
        clear_margin: float = 1.0,
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        directions: tuple[str, ...] = ("query_to_doc",),
        partition_mode: Literal["joint", "per_direction"] = "joint",
    ) -> None:
        super().__init__(
            model, scale=scale, similarity_fct=similarity_fct, directions=directions, partition_mode=partition_mode
        )
        if bm25_lookup is None or not hasattr(bm25_lookup, "batch_matrix"):
            raise ValueError("the hybrid loss needs a BM25 lookup (embedding_ft.hybrid_loss.BM25Lookup)")
        if not set(self.directions) <= {"query_to_doc", "doc_to_query"}:
            raise ValueError(
                f"the hybrid loss supports the query_to_doc and doc_to_query directions, got {self.directions}"
            )
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        if form == "clear" and self.directions != ("query_to_doc",):
            raise ValueError("form='clear' ranks documents for queries only (directions=('query_to_doc',))")
        if not bm25_weight >= 0:
            raise ValueError(f"bm25_weight must be >= 0, got {bm25_weight}")
        self.bm25_lookup = bm25_lookup
        self.bm25_weight = float(bm25_weight)
        self.form = form
        self.clear_margin = float(clear_margin)
        self.last_row_ids: list[int] | None = None
        self._cached: tuple[tuple[int, ...], Tensor] | None = None

    def bm25_matrix(self, labels: Tensor | None, n_candidates: int, like: Tensor) -> Tensor:
        """The (B, n_candidates) z-scored BM25 of the batch whose row ids are ``labels`` (cached for a repeat)."""
        if labels is None:
            raise ValueError(
                "the hybrid loss needs the row ids: add the 'label' column with embedding_ft.hybrid_loss.with_row_ids"
            )
        key = tuple(int(i) for i in labels.reshape(-1).tolist())
        self.last_row_ids = list(key)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self.bm25_lookup.batch_matrix(list(key)))
        matrix = self._cached[1]
        if matrix.shape != (len(key), n_candidates):
            raise ValueError(
                f"BM25 matrix {tuple(matrix.shape)} for {len(key)} rows and {n_candidates} candidates: "
                "the lookup's rows and the batch's columns differ"
            )
        return matrix.to(device=like.device, dtype=like.dtype)

    def row_losses(self, queries: Tensor, docs_all: Tensor, begin: int, end: int, z: Tensor) -> Tensor:
        """Per-anchor losses of rows ``begin:end`` of the batch (all B queries and candidates given)."""
        batch_size = queries.size(0)
        rows = torch.arange(end - begin, device=queries.device)
        own = torch.arange(begin, end, device=queries.device)
        lam = self.bm25_weight
        dense = self.similarity_fct(queries[begin:end], docs_all) * self.scale  # (mb, C)
        z_rows = z[begin:end]
        if self.form == "clear":
            residual = z_rows[rows, own].unsqueeze(1) - z_rows  # BM25's lead of the positive
            margin = torch.clamp(self.clear_margin - lam * residual, min=0.0)
            hinge = torch.clamp(margin - dense[rows, own].unsqueeze(1) + dense, min=0.0)
            keep = torch.ones_like(hinge, dtype=torch.bool)
            keep[rows, own] = False
            return (hinge * keep).sum(dim=1) / keep.sum(dim=1)
        logits = {"query_to_doc": dense + lam * z_rows}
        if "doc_to_query" in self.directions:
            # doc p_i against every query q_j: the fused score of (q_j, p_i)
            docs_pos = docs_all[:batch_size]
            logits["doc_to_query"] = self.similarity_fct(queries, docs_pos[begin:end]).T * self.scale + (
                lam * z[:, begin:end].T
            )
        positive = logits["query_to_doc"][rows, own]
        if self.partition_mode == "joint":
            log_z = torch.logsumexp(torch.cat(list(logits.values()), dim=1), dim=1)
        else:
            log_z = sum(torch.logsumexp(m, dim=1) for m in logits.values()) / len(logits)
        return log_z - positive

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        if len(embeddings) < 2:
            raise ValueError(f"Expected at least 2 embeddings, got {len(embeddings)}")
        queries = embeddings[0]
        docs_all = torch.cat(embeddings[1:], dim=0)
        z = self.bm25_matrix(labels, docs_all.size(0), queries)
        return self.row_losses(queries, docs_all, 0, queries.size(0), z).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), **_hybrid_config(self)}

    @property
    def citation(self) -> str:
        return CLEAR_CITATION


class HybridCachedMultipleNegativesRankingLoss(CachedMultipleNegativesRankingLoss):
    """The hybrid loss (:class:`HybridMultipleNegativesRankingLoss`) with gradient caching (GradCache).

    Embeds in mini-batches of ``mini_batch_size`` (bounded activation memory), computes the loss
    over the whole batch in chunks of ``mini_batch_size`` anchors, and back-propagates the cached
    embedding gradients; its value and gradients equal the uncached loss's. With
    ``mini_batch_size >= batch size`` it computes the uncached loss in one chunk.

    Args: those of :class:`HybridMultipleNegativesRankingLoss`, plus ``mini_batch_size``,
    ``mini_batch_num_tokens`` and ``show_progress_bar`` of CachedMultipleNegativesRankingLoss.
    """

    def __init__(
        self,
        model,
        bm25_lookup: Any,
        bm25_weight: float = 1.0,
        form: Literal["softmax", "clear"] = "softmax",
        clear_margin: float = 1.0,
        scale: float = 20.0,
        similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim,
        mini_batch_size: int = 32,
        mini_batch_num_tokens: int | None = None,
        directions: tuple[str, ...] = ("query_to_doc",),
        partition_mode: Literal["joint", "per_direction"] = "joint",
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__(
            model,
            scale=scale,
            similarity_fct=similarity_fct,
            mini_batch_size=mini_batch_size,
            mini_batch_num_tokens=mini_batch_num_tokens,
            directions=directions,
            partition_mode=partition_mode,
            show_progress_bar=show_progress_bar,
        )
        self.loss = HybridMultipleNegativesRankingLoss(
            model,
            bm25_lookup,
            bm25_weight=bm25_weight,
            form=form,
            clear_margin=clear_margin,
            scale=scale,
            similarity_fct=similarity_fct,
            directions=directions,
            partition_mode=partition_mode,
        )

    @property
    def bm25_lookup(self) -> Any:
        return self.loss.bm25_lookup

    @property
    def bm25_weight(self) -> float:
        return self.loss.bm25_weight

    @property
    def form(self) -> str:
        return self.loss.form

    @property
    def last_row_ids(self) -> list[int] | None:
        """The row ids (``labels``) of the last batch the loss saw."""
        return self.loss.last_row_ids

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        """The hybrid loss over the batch, chunked over ``mini_batch_size`` anchors; ``labels`` are the row ids."""
        queries = torch.cat(reps[0])
        docs_all = torch.cat([torch.cat(r) for r in reps[1:]], dim=0)
        batch_size = queries.size(0)
        z = self.loss.bm25_matrix(labels, docs_all.size(0), queries)
        losses: list[Tensor] = []
        for begin in range(0, batch_size, self.mini_batch_size):
            end = min(begin + self.mini_batch_size, batch_size)
            loss_mbatch = self.loss.row_losses(queries, docs_all, begin, end, z).sum() / batch_size
            if with_backward:
                loss_mbatch.backward()
                loss_mbatch = loss_mbatch.detach()
            losses.append(loss_mbatch)
        return sum(losses)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), **_hybrid_config(self.loss)}

    @property
    def citation(self) -> str:
        return CLEAR_CITATION


def _hybrid_config(loss: HybridMultipleNegativesRankingLoss) -> dict[str, Any]:
    config = {"bm25_weight": loss.bm25_weight, "form": loss.form}
    if loss.form == "clear":
        config["clear_margin"] = loss.clear_margin
    return config


CLEAR_CITATION = """
@inproceedings{gao2021complementing,
    title={Complementing Lexical Retrieval with Semantic Residual Embedding},
    author={Luyu Gao and Zhuyun Dai and Tongfei Chen and Zhen Fan and Benjamin Van Durme and Jamie Callan},
    booktitle={Advances in Information Retrieval (ECIR 2021)},
    year={2021},
    eprint={2004.13969},
    archivePrefix={arXiv},
}
"""
