"""Record files: JSON Lines, JSON arrays and CSV/TSV tables read into dict records.

Every error names the file and, where there is one, the line and the field:
``pairs.jsonl:17: expected a JSON object, got a list``; bytes that are not UTF-8 are such an
error too. Readers never return an empty list silently: an input with no records is an error.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterable
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


def type_name(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def check_exists(path: Path) -> None:
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file")


def read_text(path: Path) -> str:
    """The file's text as UTF-8 (a BOM is dropped); bytes that are not UTF-8 are a DataError naming the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8", line) from None


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
    check_exists(path)
    records = Records(path=str(path), lines=[])
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for lineno, line_bytes in enumerate(data.split(b"\n"), start=1):
        try:
            raw = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            if skip_invalid:
                records.skipped += 1
                continue
            raise DataError(
                path, f"not UTF-8 text (byte 0x{line_bytes[exc.start]:02x} at column {exc.start + 1})", lineno
            ) from None
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.rstrip("\r"))  # columns then point into the line, not past its end
        except json.JSONDecodeError as exc:
            if skip_invalid:
                records.skipped += 1
                continue
            raise DataError(path, f"invalid JSON ({exc.msg} at column {exc.colno})", lineno) from None
        if not isinstance(value, dict):
            if skip_invalid:
                records.skipped += 1
                continue
            raise DataError(path, f"expected a JSON object, got {type_name(value)}", lineno)
        records.append(value)
        records.lines.append(lineno)
    return _finish(records, path)


def read_json(path: str | os.PathLike, skip_invalid: bool = False) -> Records:
    """Read a JSON array of objects (or an object holding one under "data")."""
    path = Path(path)
    check_exists(path)
    try:
        value = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc.msg} at column {exc.colno})", exc.lineno) from None
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if not isinstance(value, list):
        raise DataError(path, f"expected a JSON array of objects, got {type_name(value)}")
    records = Records(path=str(path), lines=[])
    for index, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            if skip_invalid:
                records.skipped += 1
                continue
            raise DataError(path, f"element {index}: expected a JSON object, got {type_name(item)}")
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
    check_exists(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    records = Records(path=str(path), lines=[])
    with io.StringIO(read_text(path), newline="") as handle:
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
        check_exists(path)
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096).lstrip()
        # A .json file holding JSON lines is common; read it as such.
        if head.startswith("{") and "\n{" in head.replace("\r", ""):
            return read_jsonl(path, skip_invalid)
        return read_json(path, skip_invalid)
    if suffix in {".csv", ".tsv", ".tab"}:
        return read_table(path, skip_invalid=skip_invalid)
    raise DataError(path, f"unknown file type {suffix or '(none)'}; expected .jsonl, .json, .csv or .tsv")
