"""Data IO: record files, the three pair formats, BEIR folders, STS-B, Cranfield and document
collections. Every error names the file and, where there is one, the line and the field.

The public names are re-exported here: ``from embshared.io import read_records, load_beir``.
"""

from __future__ import annotations

import os
from pathlib import Path

from embshared.io.beir import BeirDataset, document_text, is_beir_folder, load_beir, read_qrels
from embshared.io.cranfield import Cranfield, load_cranfield
from embshared.io.documents import Documents, read_documents
from embshared.io.pairs import FORMAT_HELP, PAIR_FORMATS, Examples, detect_format, normalise_examples
from embshared.io.records import DataError, Records, read_json, read_jsonl, read_records, read_table, read_text
from embshared.io.stsb import StsPair, is_sts_file, read_sts, sts_examples


def load_examples(path: str | os.PathLike, split: str = "train", skip_invalid: bool = False) -> Examples:
    """Load training examples from a pairs/triplets/similarity file, an STS-B file or a BEIR folder.

    A BEIR folder becomes (query, document) pairs, one per relevant (score > 0) qrel; an
    STS-B file (tab-separated, no header) becomes similarity pairs with score / 5.
    """
    path = Path(path)
    if path.is_dir():
        return load_beir(path, split=split).to_pairs()
    if is_sts_file(path):
        return sts_examples(path)
    return normalise_examples(read_records(path, skip_invalid=skip_invalid))


__all__ = [
    "FORMAT_HELP",
    "PAIR_FORMATS",
    "BeirDataset",
    "Cranfield",
    "DataError",
    "Documents",
    "Examples",
    "Records",
    "StsPair",
    "detect_format",
    "document_text",
    "is_beir_folder",
    "is_sts_file",
    "load_beir",
    "load_cranfield",
    "load_examples",
    "normalise_examples",
    "read_documents",
    "read_json",
    "read_jsonl",
    "read_qrels",
    "read_records",
    "read_sts",
    "read_table",
    "read_text",
    "sts_examples",
]
