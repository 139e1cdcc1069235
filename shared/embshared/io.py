"""Data IO: JSONL, JSON arrays, CSV/TSV, the three pair formats and BEIR folders.

Every error names the file and, where there is one, the line and the field:
``pairs.jsonl:17: expected a JSON object, got a list``. Readers never return an empty
list silently: an input with no records is an error.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embshared.errors import UserError

logger = logging.getLogger(__name__)


class DataError(UserError):
    """Malformed or missing input data. The message starts with ``file[:line]:``."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class Records(list):
    """A list of dict records that remembers where each came from.

    Attributes:
        path: the file the records were read from.
        lines: the 1-based line (JSONL, CSV) or element index (JSON array) of each record.
        skipped: how many invalid lines were skipped (with ``skip_invalid=True``).
    """

    def __init__(self, rows: Iterable[dict] = (), path: str = "", lines: list[int] | None = None, skipped: int = 0):
        super().__init__(rows)
        self.path = path
        self.lines = lines if lines is not None else list(range(1, len(self) + 1))
        self.skipped = skipped

    def line_of(self, index: int) -> int:
        """The source line of record ``index``."""
        return self.lines[index]


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file")


def _finish(records: Records, path: Path) -> Records:
    if records.skipped:
        logger.warning("%s: skipped %d invalid line(s)", path, records.skipped)
    if not records:
        detail = f" ({records.skipped} invalid line(s) skipped)" if records.skipped else ""
        raise DataError(path, f"no records found{detail}")
    return records


def read_jsonl(path: str | os.PathLike, skip_invalid: bool = False) -> Records:
    """Read a JSON Lines file of objects; blank lines are ignored.

    Args:
        path: the file.
        skip_invalid: skip lines that are not JSON objects (and count them) instead of raising.

    Returns:
        The records, with their line numbers and the number of skipped lines.
    """
    path = Path(path)
    _check_exists(path)
    records = Records(path=str(path), lines=[])
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.rstrip("\r\n"))  # columns then point into the line, not past its end
            except json.JSONDecodeError as exc:
                if skip_invalid:
                    records.skipped += 1
                    continue
                raise DataError(path, f"invalid JSON ({exc.msg} at column {exc.colno})", lineno) from None
            if not isinstance(value, dict):
                if skip_invalid:
                    records.skipped += 1
                    continue
                raise DataError(path, f"expected a JSON object, got {_type_name(value)}", lineno)
            records.append(value)
            records.lines.append(lineno)
    return _finish(records, path)


def read_json(path: str | os.PathLike, skip_invalid: bool = False) -> Records:
    """Read a JSON array of objects (or an object holding one under "data")."""
    path = Path(path)
    _check_exists(path)
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg} at column {exc.colno})", exc.lineno) from None
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if not isinstance(value, list):
        raise DataError(path, f"expected a JSON array of objects, got {_type_name(value)}")
    records = Records(path=str(path), lines=[])
    for index, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            if skip_invalid:
                records.skipped += 1
                continue
            raise DataError(path, f"element {index}: expected a JSON object, got {_type_name(item)}")
        records.append(item)
        records.lines.append(index)
    return _finish(records, path)


def read_table(path: str | os.PathLike, delimiter: str | None = None, skip_invalid: bool = False) -> Records:
    """Read a CSV or TSV file with a header row into dict records.

    Args:
        path: the file; ``.tsv`` means tab-separated unless ``delimiter`` is given.
        delimiter: the field separator.
        skip_invalid: skip rows whose field count differs from the header's.
    """
    path = Path(path)
    _check_exists(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    records = Records(path=str(path), lines=[])
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "no records found (empty file)")
        header = [h.strip() for h in header]
        for row in reader:
            lineno = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                if skip_invalid:
                    records.skipped += 1
                    continue
                raise DataError(path, f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}", lineno)
            records.append(dict(zip(header, row)))
            records.lines.append(lineno)
    return _finish(records, path)


def read_records(path: str | os.PathLike, skip_invalid: bool = False) -> Records:
    """Read records from a file, choosing the reader by suffix (.jsonl/.ndjson, .json, .csv, .tsv)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return read_jsonl(path, skip_invalid)
    if suffix == ".json":
        _check_exists(path)
        with open(path, encoding="utf-8") as handle:
            head = handle.read(4096).lstrip()
        # A .json file holding JSON lines is common; read it as such.
        if head.startswith("{") and "\n{" in head.replace("\r", ""):
            return read_jsonl(path, skip_invalid)
        return read_json(path, skip_invalid)
    if suffix in {".csv", ".tsv", ".tab"}:
        return read_table(path, skip_invalid=skip_invalid)
    raise DataError(path, f"unknown file type {suffix or '(none)'}; expected .jsonl, .json, .csv or .tsv")


# ---------------------------------------------------------------------------------------
# Pair formats

#: canonical field names of each format, and the aliases accepted for them on input.
PAIR_FORMATS: dict[str, dict[str, tuple[str, ...]]] = {
    "similarity": {
        "doc1": ("doc1", "sentence1", "text1"),
        "doc2": ("doc2", "sentence2", "text2"),
        "similarity": ("similarity", "score", "label"),
    },
    "triplets": {
        "query": ("query", "anchor", "question"),
        "positive": ("positive", "document", "pos"),
        "negative": ("negative", "neg"),
    },
    "pairs": {
        "query": ("query", "anchor", "question"),
        "document": ("document", "positive", "answer", "passage", "pos"),
    },
}

FORMAT_HELP = "{query, document} pairs, {query, positive, negative} triplets or {doc1, doc2, similarity}"


def _match_format(record: Mapping[str, Any], fmt: str) -> dict[str, str] | None:
    """Map canonical field -> the record's key for ``fmt``, or None if a field is missing."""
    found = {}
    for canonical, aliases in PAIR_FORMATS[fmt].items():
        key = next((a for a in aliases if a in record), None)
        if key is None:
            return None
        found[canonical] = key
    return found


def detect_format(record: Mapping[str, Any]) -> str | None:
    """Return "similarity", "triplets" or "pairs" for a record, or None if it matches none."""
    for fmt in ("similarity", "triplets", "pairs"):
        if _match_format(record, fmt) is not None:
            return fmt
    return None


@dataclass
class Examples:
    """Training examples in one canonical format.

    Attributes:
        format: "pairs", "triplets" or "similarity".
        rows: dicts with the canonical fields of the format (see PAIR_FORMATS).
        source: where they were read from.
    """

    format: str
    rows: list[dict[str, Any]]
    source: str = ""
    dropped_duplicates: int = 0

    @property
    def columns(self) -> list[str]:
        return list(PAIR_FORMATS[self.format])


def normalise_examples(records: Records, drop_duplicates: bool = True) -> Examples:
    """Detect the pair format from the first record and normalise every record to it.

    Args:
        records: as returned by :func:`read_records`.
        drop_duplicates: drop exact duplicate examples (after normalisation).

    Raises:
        DataError: a record that matches no format, lacks a field of the detected format,
            or has an empty text or a non-numeric similarity.
    """
    path = records.path
    fmt = detect_format(records[0])
    if fmt is None:
        keys = ", ".join(sorted(records[0])) or "none"
        raise DataError(
            path, f"record matches no known format (fields: {keys}); expected {FORMAT_HELP}", records.line_of(0)
        )
    rows: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    dropped = 0
    for index, record in enumerate(records):
        line = records.line_of(index)
        mapping = _match_format(record, fmt)
        if mapping is None:
            missing = [c for c, aliases in PAIR_FORMATS[fmt].items() if not any(a in record for a in aliases)]
            raise DataError(path, f"field '{missing[0]}' missing (format {fmt} detected from the first record)", line)
        row: dict[str, Any] = {}
        for canonical, key in mapping.items():
            value = record[key]
            if canonical == "similarity":
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise DataError(path, f"field '{key}': expected a number, got {_type_name(value)}", line)
                try:
                    value = float(value)
                except ValueError:
                    raise DataError(path, f"field '{key}': expected a number, got {value!r}", line) from None
            else:
                if not isinstance(value, str):
                    raise DataError(path, f"field '{key}': expected a string, got {_type_name(value)}", line)
                value = value.strip()
                if not value:
                    raise DataError(path, f"field '{key}' is empty", line)
            row[canonical] = value
        key = tuple(row.values())
        if drop_duplicates and key in seen:
            dropped += 1
            continue
        seen.add(key)
        rows.append(row)
    if dropped:
        logger.info("%s: dropped %d exact duplicate example(s)", path, dropped)
    return Examples(format=fmt, rows=rows, source=path, dropped_duplicates=dropped)


def load_examples(path: str | os.PathLike, split: str = "train", skip_invalid: bool = False) -> Examples:
    """Load training examples from a pairs/triplets/similarity file or a BEIR folder.

    A BEIR folder becomes (query, document) pairs, one per relevant (score > 0) qrel.
    """
    path = Path(path)
    if path.is_dir():
        return load_beir(path, split=split).to_pairs()
    return normalise_examples(read_records(path, skip_invalid=skip_invalid))


# ---------------------------------------------------------------------------------------
# BEIR folders


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
    _check_exists(path)
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
