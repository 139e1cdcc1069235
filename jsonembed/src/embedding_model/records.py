"""JSON records as text: flattening nested objects into ``key=value`` segments.

A record ``{"name": "Lamp", "specs": {"watts": 40}, "tags": ["desk", "led"]}`` becomes the
segments ``[("name", "Lamp"), ("specs.watts", "40"), ("tags", "desk, led")]`` and the text
``name=Lamp | specs.watts=40 | tags=desk, led``. Lists of scalars become one segment with
the items joined by ", "; lists of objects are flattened item by item under the same key
(no index: ``items.sku`` rather than ``items[3].sku``), so the keys the model sees stay the
same from record to record. Nulls, empty strings and empty containers give no segment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from embshared.io import DataError, Records, read_records

Segment = tuple[str, str]

SEGMENT_SEP = " | "
KEY_SEP = "="


def _scalar_text(value: Any) -> str:
    """A JSON scalar as text: booleans as true/false, integral floats without ".0", whitespace collapsed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _flatten(value: Any, key: str, out: list[Segment]) -> None:
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _flatten(sub_value, f"{key}.{sub_key}" if key else str(sub_key), out)
    elif isinstance(value, (list, tuple)):
        if all(_is_scalar(item) for item in value):
            items = [_scalar_text(item) for item in value if item is not None]
            text = ", ".join(item for item in items if item)
            if text:
                out.append((key, text))
        else:
            for item in value:
                _flatten(item, key, out)
    elif value is not None:
        text = _scalar_text(value)
        if text:
            out.append((key, text))


def flatten_record(record: Mapping[str, Any], ignore_fields: Iterable[str] = ()) -> list[Segment]:
    """The ``(key, value)`` segments of a record, nested keys joined with ".".

    Args:
        record: a JSON object.
        ignore_fields: top-level keys to leave out (e.g. ``_id``).

    Returns:
        Segments in the record's own field order; empty values give none.
    """
    ignored = set(ignore_fields)
    out: list[Segment] = []
    for key, value in record.items():
        if key in ignored:
            continue
        _flatten(value, str(key), out)
    return out


def segments_to_text(segments: Sequence[Segment], with_keys: bool = True) -> str:
    """``key=value | key=value`` (or the values alone, joined the same way)."""
    if with_keys:
        return SEGMENT_SEP.join(f"{key}{KEY_SEP}{value}" for key, value in segments)
    return SEGMENT_SEP.join(value for _, value in segments)


def visible_segments(segments: Sequence[Segment], max_chars: int) -> list[Segment]:
    """The segments cut to what the model reads of the full record text (its first ``max_chars``)."""
    out: list[Segment] = []
    used = 0
    for key, value in segments:
        room = max_chars - used - len(key) - len(KEY_SEP)
        if room <= 0:
            break
        out.append((key, value[:room]))
        used += len(key) + len(KEY_SEP) + len(value) + len(SEGMENT_SEP)
    return out


def plain_text(segments: Sequence[Segment]) -> str:
    """The values joined by spaces: what BM25 and sentence models read."""
    return " ".join(value for _, value in segments)


@dataclass
class RecordSet:
    """Records read from a file, with their segments and where each came from.

    Attributes:
        records: the JSON objects as read.
        segments: the flattened segments of each record.
        lines: the 1-based source line of each record.
        path: the file.
        skipped: lines skipped as invalid (with ``skip_invalid``).
    """

    records: list[dict[str, Any]]
    segments: list[list[Segment]]
    lines: list[int]
    path: str
    skipped: int = 0
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def texts(self) -> list[str]:
        """The ``key=value`` text of every record (what the model embeds)."""
        return [segments_to_text(s) for s in self.segments]

    def plain_texts(self) -> list[str]:
        """The values-only text of every record (what BM25 indexes)."""
        return [plain_text(s) for s in self.segments]


def records_from(
    records: Records,
    ignore_fields: Iterable[str] = (),
    skip_invalid: bool = False,
    id_field: str | None = None,
    max_chars: int | None = None,
) -> RecordSet:
    """Flatten records already read; a record with no text is an error (or skipped).

    Args:
        records: as returned by :func:`embshared.io.read_records`.
        ignore_fields: top-level keys left out of the text.
        skip_invalid: skip records without text instead of raising (counted in ``skipped``).
        id_field: a field naming each record (e.g. ``_id``); when given it must be in every
            record. Without it, a record is named by its line number.
        max_chars: the characters a model reads; a record whose first ``max_chars`` hold
            no value at all (its keys fill them) is an error too, as the model would
            embed key names only.
    """
    ignore = list(ignore_fields)
    out = RecordSet(records=[], segments=[], lines=[], path=records.path, skipped=records.skipped)
    for index, record in enumerate(records):
        line = records.line_of(index)
        segments = flatten_record(record, ignore)
        if not segments:
            if skip_invalid:
                out.skipped += 1
                continue
            fields = ", ".join(record) or "none"
            raise DataError(records.path, f"record has no text (fields: {fields}; all empty or ignored)", line)
        if max_chars is not None and not any(value for _, value in visible_segments(segments, max_chars)):
            if skip_invalid:
                out.skipped += 1
                continue
            read = segments_to_text(segments)[:max_chars]
            raise DataError(
                records.path,
                f"record has no text within the first {max_chars} characters the model reads "
                f"(max_chars={max_chars}; they hold only keys: {read!r})",
                line,
            )
        if id_field:
            if id_field not in record or record[id_field] in (None, ""):
                if skip_invalid:
                    out.skipped += 1
                    continue
                raise DataError(records.path, f"field '{id_field}' missing", line)
            out.ids.append(str(record[id_field]))
        else:
            out.ids.append(str(line))
        out.records.append(record)
        out.segments.append(segments)
        out.lines.append(line)
    if not out.records:
        raise DataError(records.path, f"no record with text found ({out.skipped} invalid record(s) skipped)")
    return out


def load_records(
    path: str | os.PathLike,
    ignore_fields: Iterable[str] = (),
    skip_invalid: bool = False,
    id_field: str | None = None,
    max_chars: int | None = None,
) -> RecordSet:
    """Read a JSONL (or JSON array / CSV) file of records and flatten each.

    Raises:
        DataError: ``file:line: ...`` for a line that is not JSON, a value that is not an
            object, a record without text (or none within ``max_chars``), or an empty file.
    """
    return records_from(read_records(path, skip_invalid=skip_invalid), ignore_fields, skip_invalid, id_field, max_chars)
