"""Document collections to embed or index: a BEIR folder or ``corpus.jsonl``, any JSONL /
JSON / CSV / TSV file with a text field, or a ``.txt`` file with one document per line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from embshared.io.beir import document_text
from embshared.io.records import DataError, check_exists, read_records, read_text

#: fields tried, in order, when no text / id field is named.
TEXT_FIELDS = ("text", "document", "content", "body", "abstract", "passage", "sentence")
ID_FIELDS = ("_id", "id", "doc_id", "docid")


@dataclass
class Documents:
    """Parallel lists of document ids and texts, and where they came from."""

    ids: list[str]
    texts: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.ids)


def read_documents(path: str | os.PathLike, text_field: str | None = None, id_field: str | None = None) -> Documents:
    """Read a document collection.

    Args:
        path: a BEIR folder (its ``corpus.jsonl``), a ``.txt`` file (one document per
            non-empty line, ids are line numbers), or a record file (.jsonl/.json/.csv/.tsv).
        text_field: the field holding the text; by default "title text" for records with a
            ``title`` and ``text`` (the BEIR convention), else the first of TEXT_FIELDS present.
        id_field: the field holding the id; by default the first of ID_FIELDS present,
            else the record's line number.

    Raises:
        DataError: naming the file and line of a record without text, a duplicate id, or
            a file with no documents.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    check_exists(path)
    if path.suffix.lower() == ".txt":
        ids, texts = [], []
        for lineno, line in enumerate(read_text(path).split("\n"), start=1):
            if line.strip():
                ids.append(str(lineno))
                texts.append(line.strip())
        if not texts:
            raise DataError(path, "no documents found")
        return Documents(ids, texts, str(path))

    records = read_records(path)
    first = records[0]
    if text_field is None and not ("title" in first and "text" in first):
        text_field = next((f for f in TEXT_FIELDS if f in first), None)
        if text_field is None:
            fields = ", ".join(sorted(first)) or "none"
            raise DataError(
                path, f"no text field (tried {', '.join(TEXT_FIELDS)}; fields: {fields})", records.line_of(0)
            )
    if id_field is None:
        id_field = next((f for f in ID_FIELDS if f in first), None)
    ids, texts, seen = [], [], set()
    for index, record in enumerate(records):
        line = records.line_of(index)
        if text_field is None:
            text = document_text(record)
        else:
            if text_field not in record:
                raise DataError(path, f"field '{text_field}' missing", line)
            value = record[text_field]
            text = value.strip() if isinstance(value, str) else ""
            if not isinstance(value, str):
                raise DataError(path, f"field '{text_field}': expected a string", line)
        if not text:
            raise DataError(path, f"field '{text_field or 'title/text'}' is empty", line)
        if id_field is None:
            doc_id = str(line)
        elif id_field not in record:
            raise DataError(path, f"field '{id_field}' missing", line)
        else:
            doc_id = str(record[id_field])
        if doc_id in seen:
            raise DataError(path, f"field '{id_field}': duplicate id {doc_id!r}", line)
        seen.add(doc_id)
        ids.append(doc_id)
        texts.append(text)
    return Documents(ids, texts, str(path))
