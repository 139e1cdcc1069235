"""Hard-negative mining through sentence-transformers' ``mine_hard_negatives``, cached on disk.

The cache key covers the training pairs, the candidate corpus, the mining model and every
``mining.*`` setting, so a rerun with the same inputs loads the mined rows instead of
encoding the corpus again, and any change mines afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Literal

from embedding_ft.config import MiningConfig
from embshared.errors import UserError
from embshared.files import write_jsonl
from embshared.io import Examples, read_jsonl

logger = logging.getLogger(__name__)

OutputFormat = Literal["n-tuple", "triplet", "labeled-pair"]


def model_fingerprint(model_path: str, max_seq_length: int | None = None) -> str:
    """Identify a model by its path plus the size and mtime of its weight files (cheap, no hashing of GBs),
    and the token length it encodes at when given (the same weights at another length embed differently)."""
    path = Path(model_path)
    parts = [model_path]
    if path.is_dir():
        parts = [str(path.resolve())]
        for weights in sorted(path.rglob("*.safetensors")) + sorted(path.rglob("*.bin")):
            stat = weights.stat()
            parts.append(f"{weights.name}:{stat.st_size}:{int(stat.st_mtime)}")
    if max_seq_length is not None:
        parts.append(f"max_seq_length={max_seq_length}")
    return "|".join(parts)


def cache_key(
    pairs: list[tuple[str, str]],
    corpus: list[str],
    model_id: str,
    cfg: MiningConfig,
    output_format: str,
    shadow: list[tuple[str, str]] | None = None,
) -> str:
    """A short hash of everything that determines the mined rows."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "audit"}  # the audit does not change rows
    items = [pairs, corpus, model_id, settings, output_format] + ([shadow] if shadow else [])
    for item in items:
        digest.update(json.dumps(item, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


class DocumentsThrough:
    """A SentenceTransformer whose ``encode_document`` reads a :class:`embedding_ft.corpus_encoder.CorpusVectors`; all else is the model's own.

    ``sentence_transformers.util.mine_hard_negatives`` embeds its candidate corpus with
    ``model.encode_document``: handed this object, that pass (hours at a million documents)
    goes through the corpus encoder (its back end, shards, resume and cache) instead of
    mining's own ``cache_folder`` files, and the vectors are the ones the rest of the run reads.
    """

    def __init__(self, model, vectors):
        self._model = model
        self._vectors = vectors

    def __getattr__(self, name):
        return getattr(self._model, name)

    def encode_document(self, sentences, **kwargs):
        return self._vectors.of(sentences)


def _use_faiss(cfg: MiningConfig, corpus_size: int) -> bool:
    if cfg.use_faiss == "auto":
        return corpus_size >= cfg.faiss_min_corpus
    return bool(cfg.use_faiss)


def drop_known_positives(rows: list[dict], positives: dict[str, set[str]], output_format: OutputFormat) -> list[dict]:
    """Remove any mined negative that is a known positive of its query.

    ``mine_hard_negatives`` already excludes the positives listed in the training pairs; this
    also covers positives known from elsewhere (e.g. other qrels of the same query).
    """
    kept, dropped = [], 0
    for row in rows:
        known = positives.get(row["anchor"], set())
        if output_format == "labeled-pair":
            bad = row["label"] == 0 and row["document"] in known
        else:
            bad = any(v in known for k, v in row.items() if k.startswith("negative"))
        if bad:
            dropped += 1
        else:
            kept.append(row)
    if dropped:
        logger.warning("dropped %d mined row(s) whose negative is a known positive", dropped)
    return kept


def mine(
    train: Examples,
    corpus: list[str],
    positives: dict[str, set[str]],
    model,
    model_id: str,
    cfg: MiningConfig,
    output_format: OutputFormat = "n-tuple",
    cache_dir: str | Path | None = None,
    shadow_pairs: list[tuple[str, str]] | None = None,
    documents=None,
) -> list[dict]:
    """Mine hard negatives for (query, document) pairs.

    Args:
        train: pairs (format "pairs").
        corpus: candidate negatives (the positives are added by sentence-transformers).
        positives: query text -> all known positive texts, never returned as negatives.
        model: the SentenceTransformer that scores candidates.
        model_id: identifies ``model`` in the cache key (see :func:`model_fingerprint`).
        cfg: the ``mining`` config block.
        output_format: "n-tuple" (anchor, positive, negative_1..n), "triplet" (one negative
            per row) or "labeled-pair" (anchor, document, label).
        cache_dir: where mined rows are cached (None: no cache).
        shadow_pairs: extra (query, positive) pairs that only tell ``mine_hard_negatives``
            what must never be a negative of that query (it treats every positive of a
            repeated query as a positive); their own rows are dropped from the output.
        documents: the mining model's vectors of ``corpus``
            (:class:`embedding_ft.corpus_encoder.CorpusVectors`: encoded once, cached, resumable,
            on the back end the run chose); None: ``mine_hard_negatives`` encodes the corpus itself.

    Returns:
        Rows as dicts with the columns of ``output_format``.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    pairs = [(r["query"], r["document"]) for r in train.rows]
    shadow = [p for p in (shadow_pairs or []) if p not in set(pairs)]
    cache_file = None
    if cache_dir is not None:
        key = cache_key(pairs, corpus, model_id, cfg, output_format, shadow)
        cache_file = Path(cache_dir) / f"mined-{key}.jsonl"
        if cache_file.is_file():
            rows = list(read_jsonl(cache_file))
            logger.info("loaded %d mined rows from %s", len(rows), cache_file)
            return rows

    margin = {}
    if cfg.margin is not None:
        margin = {"relative_margin" if cfg.margin_type == "relative" else "absolute_margin": cfg.margin}
    everything = pairs + shadow
    dataset = Dataset.from_dict({"anchor": [q for q, _ in everything], "positive": [d for _, d in everything]})
    range_max = cfg.range_max
    if range_max is not None:
        range_max = min(range_max, max(len(corpus) - 1, cfg.range_min + cfg.num_negatives))
    mined = mine_hard_negatives(
        dataset,
        model if documents is None else DocumentsThrough(model, documents),
        anchor_column_name="anchor",
        positive_column_name="positive",
        corpus=corpus,
        range_min=cfg.range_min,
        range_max=range_max,
        max_score=cfg.max_score,
        num_negatives=cfg.num_negatives,
        sampling_strategy=cfg.sampling_strategy,
        output_format=output_format,
        batch_size=cfg.batch_size,
        use_faiss=_use_faiss(cfg, len(corpus)),
        verbose=True,
        **margin,
    )
    rows = [dict(r) for r in mined]
    if shadow:
        shadowed = set(shadow)
        rows = [r for r in rows if (r["anchor"], r.get("positive", r.get("document"))) not in shadowed]
    rows = drop_known_positives(rows, positives, output_format)
    if output_format == "n-tuple" and (cfg.bm25_negatives or cfg.keep_unmined):
        known = {q: set(p) for q, p in positives.items()}
        for q, d in shadow:
            known.setdefault(q, set()).add(d)
        depth = cfg.range_max or 100
        unmined = missing_pairs(pairs, rows) if cfg.keep_unmined else []
        bm25 = bm25_index(corpus) if (cfg.bm25_negatives or unmined) else None  # one index for both calls
        if cfg.bm25_negatives:
            rows = add_bm25_negatives(rows, corpus, known, cfg.bm25_negatives, depth, bm25)
        if unmined:
            # The pairs mine_hard_negatives dropped are those where every candidate scores within
            # the margin of the positive: the queries the mining model finds hardest. They keep
            # their row here, with BM25's best non-positives in all num_negatives + bm25_negatives
            # slots (the margin is a dense-score rule; it cannot apply to BM25 scores).
            stubs = [{"anchor": q, "positive": d} for q, d in unmined]
            filled = add_bm25_negatives(stubs, corpus, known, cfg.num_negatives + cfg.bm25_negatives, depth, bm25)
            logger.info("kept %d of %d pairs mining dropped, with BM25 negatives", len(filled), len(unmined))
            rows = rows + filled
    if not rows:
        raise UserError("mining produced no rows: relax mining.margin, mining.max_score or mining.range_max")
    logger.info("mined %d rows (%s) from %d pairs", len(rows), output_format, len(pairs))
    if cache_file is not None:
        write_jsonl(cache_file, rows)
    return rows


def missing_pairs(pairs: list[tuple[str, str]], rows: list[dict]) -> list[tuple[str, str]]:
    """The (query, positive) pairs that have no mined row, in their order, duplicates counted."""
    from collections import Counter

    have = Counter((r["anchor"], r["positive"]) for r in rows)
    out = []
    for pair in pairs:
        if have[pair] > 0:
            have[pair] -= 1
        else:
            out.append(pair)
    return out


def bm25_index(corpus: list[str]):
    """A BM25 index of ``corpus`` whose ids are the texts' positions."""
    from embshared.search import BM25Index

    return BM25Index().index([str(i) for i in range(len(corpus))], corpus)


def add_bm25_negatives(
    rows: list[dict],
    corpus: list[str],
    positives: dict[str, set[str]],
    k: int,
    depth: int = 100,
    index=None,
) -> list[dict]:
    """Append ``k`` BM25 negatives to each n-tuple row: the best BM25 documents of its query
    that are neither a known positive nor already one of its negatives.

    Dense mining finds documents the model confuses with the positive; BM25 finds lexical
    look-alikes it may not (RocketQA and NV-Retriever mine from both). Rows whose query has
    fewer than ``k`` such documents in BM25's top ``depth`` are dropped. ``index``: a
    :func:`bm25_index` of ``corpus`` to reuse (None: built here).
    """
    if not rows or k < 1:
        return rows
    index = index if index is not None else bm25_index(corpus)
    anchors = list(dict.fromkeys(r["anchor"] for r in rows))
    ranked, _ = index.search(anchors, depth)
    by_anchor = {a: [corpus[int(i)] for i in ids] for a, ids in zip(anchors, ranked)}
    out = []
    for row in rows:
        taken = {v for key, v in row.items() if key.startswith("negative") or key == "positive"}
        blocked = taken | positives.get(row["anchor"], set())
        extra = [d for d in by_anchor[row["anchor"]] if d not in blocked][:k]
        if len(extra) < k:
            continue
        n = sum(1 for key in row if key.startswith("negative"))
        out.append({**row, **{f"negative_{n + i + 1}": d for i, d in enumerate(extra)}})
    if len(out) < len(rows):
        logger.warning("dropped %d row(s) with fewer than %d BM25 negatives", len(rows) - len(out), k)
    return out
