"""Training rows: the examples a loss reads, with pseudo-queries and mined hard negatives added.

``pairs`` -> (pseudo-queries) -> mining (dense, plus BM25 if asked) -> audit -> rows whose
columns are in the order the loss reads them. Triplets and similarity pairs pass through.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from embedding_ft.audit import audit_negatives
from embedding_ft.config import TrainConfig
from embedding_ft.data import Prepared
from embedding_ft.losses import LossSpec
from embedding_ft.mining import mine
from embedding_ft.pseudo import pseudo_pairs
from embshared.errors import UserError
from embshared.files import write_jsonl
from embshared.io import Examples

logger = logging.getLogger(__name__)


def with_pseudo_queries(prepared: Prepared, cfg: TrainConfig) -> tuple[Prepared, list[tuple[str, str]], int]:
    """Add ``pseudo_queries`` pairs to the training pairs.

    Returns:
        (prepared with the pairs added, shadow pairs for mining, number added). A shadow pair
        (pseudo-query, full document text) keeps mining from returning the pseudo-query's own
        document (title + body) as its negative.
    """
    pq = cfg.pseudo_queries
    if pq.kind == "none" or prepared.train.format != "pairs":
        return prepared, [], 0
    if prepared.documents is None:
        raise UserError("pseudo_queries needs a BEIR folder (documents with ids, titles and texts)")
    claimed = {r.get("doc_id") for r in prepared.train.rows} | {r.get("doc_id") for r in prepared.test.rows}
    pairs = pseudo_pairs(prepared.documents, pq.kind, claimed, pq.max_pairs, pq.min_words, cfg.seed)
    known = {r["query"] for r in prepared.train.rows} | {r["query"] for r in prepared.test.rows}
    pairs = [p for p in pairs if p["query"] not in known]
    full = prepared.full_texts()
    shadow = [(p["query"], full[p["doc_id"]]) for p in pairs if full[p["doc_id"]] != p["document"]]
    rows = prepared.train.rows + [{"query": p["query"], "document": p["document"]} for p in pairs]
    positives = dict(prepared.positives)
    for q, d in shadow:
        positives.setdefault(q, set()).add(d)
    for p in pairs:
        positives.setdefault(p["query"], set()).add(p["document"])
    train = Examples("pairs", rows, prepared.train.source)
    logger.info("added %d pseudo-queries (%s) for documents no training query points at", len(pairs), pq.kind)
    return prepared.replace(train=train, positives=positives), shadow, len(pairs)


def _scale_scores(rows: list[dict]) -> tuple[list[dict], float]:
    top = max(abs(r["similarity"]) for r in rows)
    scale = top if top > 1 else 1.0
    return [{"sentence1": r["doc1"], "sentence2": r["doc2"], "score": r["similarity"] / scale} for r in rows], scale


def _relabel(rows: list[dict], spec: LossSpec) -> list[dict]:
    """Labelled losses read an int ``label``; scored losses a float ``score``."""
    if spec.data == "scored":
        return [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "score": float(r["label"])} for r in rows]
    return rows


def _doc_column(row: dict) -> str:
    return next(k for k in row if k not in ("anchor", "label"))


def training_rows(
    prepared: Prepared,
    spec: LossSpec,
    cfg: TrainConfig,
    model,
    model_id: str,
    shadow: list[tuple[str, str]] | None = None,
    audit_dir: Path | None = None,
    documents=None,
) -> tuple[list[dict], dict[str, object]]:
    """The training rows for ``spec.data``, mining negatives when the loss or config asks for them.

    Args:
        audit_dir: where the false-negative audit writes its examples (None: no file).
        documents: ``model``'s vectors of ``prepared.mining_texts``
            (:class:`embedding_ft.corpus_encoder.CorpusVectors`), read by mining and the audit.

    Returns:
        (rows, info) where the columns of the rows are in the order the loss reads them.
    """
    train, fmt = prepared.train, prepared.train.format
    info: dict[str, object] = {"format": fmt, "mined": False}
    if fmt == "similarity":  # train() has refused a loss that is not "scored" for this data
        rows, scale = _scale_scores(train.rows)
        info["score_scale"] = scale
        return rows, info

    if fmt == "triplets":
        triples = [{"anchor": r["query"], "positive": r["positive"], "negative": r["negative"]} for r in train.rows]
        if spec.data in ("ranking", "triplet"):
            return triples, info
        labelled = [
            {"sentence1": t["anchor"], "sentence2": t[k], "label": int(k == "positive")}
            for t in triples
            for k in ("positive", "negative")
        ]
        return _relabel(labelled, spec), info

    # (query, document) pairs
    wants_negatives = spec.data != "ranking" or cfg.mining.enabled
    if not wants_negatives:
        return [{"anchor": r["query"], "positive": r["document"]} for r in train.rows], info
    if not cfg.mining.enabled:
        raise UserError(
            f"loss {spec.name} needs negatives: set mining.enabled=true or give (query, positive, negative) triplets"
        )
    output_format = {"ranking": "n-tuple", "triplet": "triplet"}.get(spec.data, "labeled-pair")
    start = time.perf_counter()
    rows = mine(
        train,
        prepared.mining_texts,
        prepared.positives,
        model,
        model_id,
        cfg.mining,
        output_format,
        cfg.cache_dir,
        shadow,
        documents,
    )
    info.update(mined=True, mining_seconds=round(time.perf_counter() - start, 2), mined_rows=len(rows))
    if cfg.mining.audit and output_format in ("n-tuple", "triplet"):
        start = time.perf_counter()
        info["false_negative_audit"] = run_audit(rows, prepared, model, cfg, audit_dir, documents)
        info["audit_seconds"] = round(time.perf_counter() - start, 2)
    if output_format == "labeled-pair":
        labelled = [{"sentence1": r["anchor"], "sentence2": r[_doc_column(r)], "label": int(r["label"])} for r in rows]
        return _relabel(labelled, spec), info
    return rows, info


def run_audit(rows: list[dict], prepared: Prepared, model, cfg: TrainConfig, out: Path | None, documents=None) -> dict:
    """The false-negative audit's counts; its suspects go to ``out/false_negative_audit.jsonl``.

    ``documents``: the model's vectors of the mining texts (:class:`embedding_ft.corpus_encoder.CorpusVectors`);
    None: the audit encodes the corpus itself."""
    corpus = prepared.mining_texts
    docs = None if documents is None else documents.of(corpus)

    def encode(texts):
        return model.encode(texts, batch_size=cfg.mining.batch_size, normalize_embeddings=True, convert_to_numpy=True)

    report = audit_negatives(rows, corpus, encode, docs)
    summary = report.summary()
    logger.info(
        "false-negative audit: %d of %d mined negatives look like unlabelled positives "
        "(%d score above their positive, %d in both BM25's and the model's top 10); median rank %s",
        report.suspects,
        report.n_negatives,
        report.above_positive,
        report.top10_both,
        summary["median_dense_rank_of_negatives"],
    )
    if out is not None:
        write_jsonl(out / "false_negative_audit.jsonl", report.examples)
        summary["examples_file"] = "false_negative_audit.jsonl"
    return summary


def oversample_bm25_misses(rows: list[dict], corpus: list[str], copies: int, depth: int = 10) -> tuple[list[dict], int]:
    """``rows`` plus ``copies`` more of each row whose positive is not in BM25's top ``depth`` for its anchor.

    The simple route to a dense model that complements BM25: show it more of the claims the
    lexical side of the hybrid fails on. Rows are (anchor, positive, ...) dicts; BM25 ranks
    ``corpus`` (a positive outside it counts as a miss). Returns (rows, number of missed rows).
    """
    from embshared.evaluate import top_k
    from embshared.search import BM25Index

    if copies <= 0 or not rows:
        return rows, 0
    columns = [k for k in rows[0] if k != "label"]
    anchor, positive = columns[0], columns[1]
    ids = [str(i) for i in range(len(corpus))]
    index = BM25Index().index(ids, corpus)
    anchors = list(dict.fromkeys(r[anchor] for r in rows))
    found: dict[str, set[str]] = {}
    for start in range(0, len(anchors), 256):
        batch = anchors[start : start + 256]
        for text, ranked in zip(batch, top_k(index.score_matrix(batch), ids, depth)):
            found[text] = {corpus[int(i)] for i in ranked}
    missed = [r for r in rows if r[positive] not in found[r[anchor]]]
    logger.info(
        "oversampling %d of %d rows whose positive BM25 misses (top %d) x%d", len(missed), len(rows), depth, copies
    )
    return rows + [dict(r) for r in missed for _ in range(copies)], len(missed)
