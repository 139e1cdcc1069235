"""The embedding cache: a data file is embedded once per (model, data) pair.

The matrix is stored beside the data, in ``<data folder>/.jsonembed_cache/``, under a name
made of the data file's name and the SHA-256 of the model file and of the data file, so
editing either makes a new entry and a stale matrix is never used. When the data folder is
read-only, the cache goes to ``~/.cache/jsonembed`` instead; ``cache_dir`` (``--cache-dir``)
puts it elsewhere on purpose.

A distilling ``train`` keeps its teacher's vectors the same way, in the ``teacher/`` folder of
the same place (:class:`embedding_model.teacher.TeacherTargetCache`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from embedding_model.embedder import JsonEmbedder
from embedding_model.records import RecordSet
from embshared.files import atomic_write

logger = logging.getLogger(__name__)

CACHE_DIR_NAME = ".jsonembed_cache"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def writable_dir(folder: Path) -> bool:
    """Create ``folder`` if needed; True if files can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cache_path(
    model_path: str | os.PathLike,
    data_path: str | os.PathLike,
    variant: str = "",
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Where the matrix of ``data_path`` embedded by ``model_path`` is cached."""
    data_path = Path(data_path)
    model_hash = file_sha256(model_path)[:16]
    data_digest = hashlib.sha256(file_sha256(data_path).encode() + variant.encode()).hexdigest()[:16]
    name = f"{data_path.name}.{model_hash}.{data_digest}.npy"
    if cache_dir is not None:
        return Path(cache_dir) / name
    folder = data_path.resolve().parent / CACHE_DIR_NAME
    if not writable_dir(folder):
        folder = Path.home() / ".cache" / "jsonembed"
    return folder / name


def cached_embeddings(
    embedder: JsonEmbedder,
    model_path: str | os.PathLike,
    records: RecordSet,
    use_cache: bool = True,
    show_progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """The (n_records, dim) embeddings of ``records``, from the cache when present.

    Args:
        embedder: the loaded model.
        model_path: its file (hashed for the cache key).
        records: the records read from ``records.path`` (hashed with the number of
            records kept, so ``--skip-invalid`` runs get their own entry).
        use_cache: read and write the cache (otherwise always embed).
        show_progress: a progress bar while embedding.
        cache_dir: a folder for the cache instead of the one beside the data.
    """
    if not use_cache:
        return embedder.embed_segments(records.segments, show_progress=show_progress)
    variant = f"records={len(records)};skipped={records.skipped}"
    path = cache_path(model_path, records.path, variant, cache_dir)
    if path.is_file():
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            matrix = None
        if matrix is not None and matrix.shape == (len(records), embedder.dim):
            logger.info("embeddings from cache %s", path)
            return matrix
        logger.warning("ignoring unreadable or mismatched cache %s", path)
    matrix = embedder.embed_segments(records.segments, show_progress=show_progress)
    with atomic_write(path, "wb") as handle:
        np.save(handle, matrix, allow_pickle=False)
    logger.info("cached %s embeddings in %s", matrix.shape, path)
    return matrix
