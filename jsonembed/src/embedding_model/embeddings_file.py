"""The embed command's output: the float32 matrix as ``.npy`` (row i = the i-th record kept) and
``<stem>.meta.json`` beside it (the model and its hash, the input, the shape, and the source line of
every row, which differ from the rows when invalid lines were skipped)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedding_model.cache import file_sha256
from embedding_model.records import RecordSet
from embshared.files import atomic_write, write_json


def meta_path(output: str | os.PathLike) -> Path:
    """``embeddings.npy`` -> ``embeddings.meta.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".meta.json")


def write_embeddings(
    output: str | os.PathLike,
    matrix: np.ndarray,
    model_path: str | os.PathLike,
    input_path: str | os.PathLike,
    records: RecordSet,
) -> None:
    """Write ``matrix`` (one row per record of ``records``) and its ``.meta.json``, each atomically."""
    with atomic_write(Path(output), "wb") as handle:
        np.save(handle, matrix, allow_pickle=False)
    write_json(
        meta_path(output),
        {
            "model": str(Path(model_path).resolve()),
            "model_sha256": file_sha256(model_path),
            "input": str(Path(input_path).resolve()),
            "rows": int(matrix.shape[0]),
            "dim": int(matrix.shape[1]),
            "skipped": records.skipped,
            "lines": records.lines,
        },
    )
