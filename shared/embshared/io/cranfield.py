"""Cranfield 1400 as JSON records, queries and graded qrels (SMART format parser).

The one reader of the collection (jsonembed's and qa_pipeline's benches use it). Read
``../shared/data/cranfield/README.md``; the points that matter here:

- ``cran.all.1400``: ``.I <id>`` then ``.T`` title, ``.A`` author, ``.B`` bibliographic
  source, ``.W`` text. Each document becomes the record
  ``{"_id", "title", "author", "source", "text"}``.
- ``cran.qry``: 225 queries whose ``.I`` numbers (001..365) are *not* consecutive;
  ``cranqrel`` names a query by its **position** in ``cran.qry`` (1..225), so query ids
  here are positions ("1".."225").
- ``cranqrel``: ``query doc code``, code 1 (complete answer) .. 4 (minimum interest),
  lower is more relevant. Graded relevance for NDCG is ``5 - code`` (1 -> 4, ..., 4 -> 1).
- Code ``-1`` occurs exactly once per query; on inspection it marks the query's *source
  document*, the paper whose author wrote the question (query 1 "what similarity laws must
  be obeyed when constructing aeroelastic models of heated high speed aircraft" -> doc 486
  "similarity laws for aerothermoelastic testing"). Cleverdon's assessors did not judge it,
  so it is not a relevance label: we keep it out of the qrels (trec_eval would treat a
  grade <= 0 as non-relevant anyway) and report it separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from embshared.io.records import DataError, check_exists

FIELDS = {"T": "title", "A": "author", "B": "source", "W": "text"}
_MARKER = re.compile(r"^\.([IATBW])(?:\s+(\S+))?\s*$")


def _parse_smart(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(``.I`` value, {field letter: text}) for every entry of a SMART file."""
    entries: list[tuple[str, dict[str, str]]] = []
    current: dict[str, list[str]] | None = None
    field = None
    ident = ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _MARKER.match(raw)
        if match:
            letter, value = match.groups()
            if letter == "I":
                if current is not None:
                    entries.append((ident, {k: " ".join(" ".join(v).split()) for k, v in current.items()}))
                ident, current, field = value or "", {}, None
            else:
                field = letter
                current.setdefault(field, [])
            continue
        if current is not None and field is not None:
            current[field].append(raw.strip())
    if current is not None:
        entries.append((ident, {k: " ".join(" ".join(v).split()) for k, v in current.items()}))
    return entries


@dataclass
class Cranfield:
    """The collection: records (with ``_id``), queries by position and graded qrels."""

    records: list[dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source_docs: dict[str, str]  # query id -> its source document (code -1)


def load_cranfield(folder: str | Path) -> Cranfield:
    """Parse ``cran.all.1400``, ``cran.qry`` and ``cranqrel`` from ``folder``."""
    folder = Path(folder)
    for name in ("cran.all.1400", "cran.qry", "cranqrel"):
        check_exists(folder / name)
    records = []
    for ident, fields in _parse_smart(folder / "cran.all.1400"):
        record = {"_id": ident}
        record.update({FIELDS[letter]: fields.get(letter, "") for letter in "TABW"})
        records.append(record)
    queries = {
        str(position): fields.get("W", "")
        for position, (_, fields) in enumerate(_parse_smart(folder / "cran.qry"), start=1)
    }
    qrels: dict[str, dict[str, int]] = {}
    source_docs: dict[str, str] = {}
    for lineno, line in enumerate((folder / "cranqrel").read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if len(parts) != 3:
            continue
        qid, did, code = parts[0], parts[1], int(parts[2])
        if code == -1:
            source_docs[qid] = did
        elif 1 <= code <= 4:
            qrels.setdefault(qid, {})[did] = 5 - code
        else:
            raise DataError(folder / "cranqrel", f"unexpected relevance code {code}", lineno)
    return Cranfield(records=records, queries=queries, qrels=qrels, source_docs=source_docs)
