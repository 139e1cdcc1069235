"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embshared.io.pairs import Examples
from embshared.io.records import DataError, check_exists, read_jsonl

logger = logging.getLogger(__name__)


def document_text(doc: Mapping[str, Any]) -> str:
    """The text a model sees for a BEIR document: "title text" (the BEIR convention)."""
    title = str(doc.get("title") or "").strip()
    text = str(doc.get("text") or "").strip()
    return f"{title} {text}".strip() if title else text


@dataclass
class BeirDataset:
    """A BEIR retrieval set.

    Attributes:
        corpus: doc id -> {"title": ..., "text": ...}.
        queries: query id -> query text (only queries that have qrels in this split).
        qrels: query id -> {doc id: graded relevance}.
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str = ""
    split: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)

    def corpus_texts(self) -> dict[str, str]:
        """doc id -> the text to embed or index ("title text")."""
        return {doc_id: document_text(doc) for doc_id, doc in self.corpus.items()}

    def to_pairs(self) -> Examples:
        """(query, document) pairs from the relevant qrels."""
        texts = self.corpus_texts()
        rows = [
            {"query": self.queries[qid], "document": texts[did], "query_id": qid, "doc_id": did}
            for qid, rels in self.qrels.items()
            for did, rel in rels.items()
            if rel > 0
        ]
        if not rows:
            raise DataError(self.source, f"no relevant qrels in split '{self.split}'")
        return Examples(format="pairs", rows=rows, source=self.source)

    def subset(self, query_ids: Iterable[str]) -> BeirDataset:
        """The same corpus with only ``query_ids`` (and their qrels)."""
        ids = [q for q in query_ids if q in self.queries]
        return BeirDataset(
            corpus=self.corpus,
            queries={q: self.queries[q] for q in ids},
            qrels={q: self.qrels[q] for q in ids},
            source=self.source,
            split=self.split,
        )


def read_qrels(path: str | os.PathLike, skip_invalid: bool = False) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id  corpus-id  score``, header optional)."""
    path = Path(path)
    check_exists(path)
    qrels: dict[str, dict[str, int]] = {}
    skipped = 0
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            parts = raw.rstrip("\n").split("\t") if "\t" in raw else raw.split()
            if not parts or not raw.strip():
                continue
            if lineno == 1 and parts[0].strip().lower() in {"query-id", "query_id", "qid"}:
                continue
            try:
                if len(parts) < 3:
                    raise ValueError(f"expected 3 fields (query-id, corpus-id, score), got {len(parts)}")
                qid, did, score = parts[0].strip(), parts[1].strip(), parts[-1].strip()
                try:
                    rel = int(float(score))
                except ValueError:
                    raise ValueError(f"field 'score': expected a number, got {score!r}") from None
            except ValueError as exc:
                if skip_invalid:
                    skipped += 1
                    continue
                raise DataError(path, str(exc), lineno) from None
            qrels.setdefault(qid, {})[did] = rel
    if skipped:
        logger.warning("%s: skipped %d invalid line(s)", path, skipped)
    if not qrels:
        raise DataError(path, "no qrels found")
    return qrels


def _beir_file(folder: Path, stem: str) -> Path:
    for suffix in (".jsonl", ".json"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    raise DataError(folder, f"not a BEIR folder: missing {stem}.jsonl")


def is_beir_folder(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder with corpus.jsonl and queries.jsonl."""
    path = Path(path)
    return path.is_dir() and (path / "corpus.jsonl").exists() and (path / "queries.jsonl").exists()


def load_beir(folder: str | os.PathLike, split: str = "train", skip_invalid: bool = False) -> BeirDataset:
    """Load a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Queries without qrels in ``split`` are left out. A qrel naming an unknown query or
    document is an error (or skipped with ``skip_invalid``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder" if not folder.exists() else "expected a BEIR folder")
    corpus_path = _beir_file(folder, "corpus")
    queries_path = _beir_file(folder, "queries")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        hint = f" (available: {', '.join(available)})" if available else ""
        raise DataError(folder, f"missing qrels/{split}.tsv{hint}")

    corpus: dict[str, dict[str, str]] = {}
    records = read_jsonl(corpus_path, skip_invalid)
    for index, rec in enumerate(records):
        if "_id" not in rec:
            raise DataError(corpus_path, "field '_id' missing", records.line_of(index))
        doc = {"title": str(rec.get("title") or ""), "text": str(rec.get("text") or "")}
        if not (doc["title"].strip() or doc["text"].strip()):
            if skip_invalid:
                continue
            raise DataError(corpus_path, "document has neither 'title' nor 'text'", records.line_of(index))
        corpus[str(rec["_id"])] = doc

    all_queries: dict[str, str] = {}
    records = read_jsonl(queries_path, skip_invalid)
    for index, rec in enumerate(records):
        for key in ("_id", "text"):
            if key not in rec:
                raise DataError(queries_path, f"field '{key}' missing", records.line_of(index))
        all_queries[str(rec["_id"])] = str(rec["text"])

    qrels = read_qrels(qrels_path, skip_invalid)
    for qid in list(qrels):
        if qid not in all_queries:
            if skip_invalid:
                del qrels[qid]
                continue
            raise DataError(qrels_path, f"query id '{qid}' is not in {queries_path.name}")
        for did in list(qrels[qid]):
            if did not in corpus:
                if skip_invalid:
                    del qrels[qid][did]
                    continue
                raise DataError(qrels_path, f"corpus id '{did}' is not in {corpus_path.name}")
    qrels = {q: r for q, r in qrels.items() if r}
    queries = {q: all_queries[q] for q in qrels}
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels, source=str(folder), split=split)
