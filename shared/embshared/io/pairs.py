"""The three training-pair formats: detection, aliases and normalisation to canonical fields.

``{query, document}`` pairs, ``{query, positive, negative}`` triplets and
``{doc1, doc2, similarity}`` similarity pairs (aliases such as ``anchor``/``positive`` or
``sentence1``/``sentence2``/``score`` accepted); a BEIR folder becomes pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embshared.io.records import DataError, Records, type_name

logger = logging.getLogger(__name__)


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
                    raise DataError(path, f"field '{key}': expected a number, got {type_name(value)}", line)
                try:
                    value = float(value)
                except ValueError:
                    raise DataError(path, f"field '{key}': expected a number, got {value!r}", line) from None
            else:
                if not isinstance(value, str):
                    raise DataError(path, f"field '{key}': expected a string, got {type_name(value)}", line)
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
