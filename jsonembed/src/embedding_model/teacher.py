"""The teacher of distillation and its targets: a local sentence model's vectors of your records, cached.

With ``teacher:`` set, training asks the char model to reproduce what a pretrained sentence
model (the packaged all-MiniLM-L6-v2 by default) makes of the same texts, so it learns some
of the meaning that self-supervision on a few thousand records cannot give it. The teacher
reads *clean* texts, once, before training:

- each record's text: the values of the part the char model reads (its first ``max_chars``
  characters; the student cannot be asked for what it never sees), values only, as sentence
  models read records in this workspace (``records.plain_text``);
- ``teacher_views`` query-shaped views of each training record (a field value, a span, a
  code, a few words: :meth:`~embedding_model.augment.Augmenter.clean_query_views`), drawn
  with a generator seeded by ``seed`` (the view seed).

The vectors (``normalize_embeddings=True``, batches of 64) go into one ``.npy`` file
(``allow_pickle=False``, written atomically) in a :class:`TeacherTargetCache` folder, named
by the teacher's fingerprint (a hash of its files), a hash of every text it embedded (the
records, and the views they gave under the view seed and the view settings) and the view
seed. A second run on the same records with the same teacher reads the file and never loads
the teacher; a changed record, teacher or view setting makes a new file.

The model is resolved with :func:`embshared.models.resolve_model` and loaded with
:func:`embshared.models.load_sentence_transformer`: a local folder or a packaged model,
nothing is downloaded. Its weights stay in memory during the run and go nowhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedding_model.augment import Augmenter
from embedding_model.cache import CACHE_DIR_NAME, file_sha256, writable_dir
from embedding_model.records import Segment, plain_text, visible_segments
from embshared.files import atomic_write

logger = logging.getLogger(__name__)

#: the issue's encoding settings: batches of 64, unit vectors
TEACHER_BATCH_SIZE = 64
TEACHER_CACHE_SUBDIR = "teacher"
_TEXT_SEP = "\x1e"  # record separator: no text of a record holds it after flattening


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """Hex SHA-256 over every file of a model folder (relative path and content), in path order.

    Weights, tokenizer and configs all change what the model outputs, so all are hashed;
    hashing the 90 MB of all-MiniLM-L6-v2 takes a fraction of a second.
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode() + b"\n")
    return digest.hexdigest()


class Teacher:
    """A sentence-transformers model that embeds clean texts for distillation targets.

    Loaded lazily: a run whose targets are all in the cache never loads it.

    Args:
        name: a local folder, or a packaged model name (``embshared.models``).
        device: torch device for the teacher (CUDA when available).
    """

    def __init__(self, name: str, device: str | None = None):
        self.name = name
        self.device = device
        self._model = None
        self._path: str | None = None
        self._fingerprint: str | None = None

    @property
    def path(self) -> str:
        """The resolved local path (raises ``ModelNotAvailable`` with one line when there is none)."""
        if self._path is None:
            from embshared.models import resolve_model

            self._path = resolve_model(self.name)
        return self._path

    @property
    def fingerprint(self) -> str:
        """A hash of the model: of its folder's files, else (a hub name found offline) of its loaded weights."""
        if self._fingerprint is None:
            if Path(self.path).is_dir():
                self._fingerprint = folder_fingerprint(self.path)
            else:
                digest = hashlib.sha256(self.name.encode())
                for name, tensor in self.model.state_dict().items():
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().float().numpy().tobytes())
                self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def model(self):
        """The loaded SentenceTransformer (in eval mode)."""
        if self._model is None:
            from embshared.models import load_sentence_transformer

            self._model = load_sentence_transformer(self.path, device=self.device)
            self._model.eval()
        return self._model

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors of clean texts."""
        vectors = self.model.encode(
            list(texts),
            batch_size=TEACHER_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class TeacherTargetCache:
    """The one folder where a teacher's vectors of your texts are kept between runs.

    Files are ``<teacher fingerprint>.<texts hash>.seed<view seed>.npy``: a new teacher, a
    changed record or other views never reuse a stale matrix (see the module docstring).

    Args:
        folder: the cache folder (created when first written).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @classmethod
    def beside(cls, data_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> TeacherTargetCache:
        """``<data folder>/.jsonembed_cache/teacher`` (``~/.cache/jsonembed/teacher`` when the data folder is
        read-only), or ``cache_dir`` when given: the same places as the search cache."""
        if cache_dir is not None:
            return cls(cache_dir)
        folder = Path(data_path).resolve().parent / CACHE_DIR_NAME / TEACHER_CACHE_SUBDIR
        if not writable_dir(folder):
            folder = Path.home() / ".cache" / "jsonembed" / TEACHER_CACHE_SUBDIR
        return cls(folder)

    def path(self, fingerprint: str, texts_digest: str, seed: int) -> Path:
        return self.folder / f"{fingerprint[:16]}.{texts_digest[:16]}.seed{seed}.npy"

    def load(self, path: Path, rows: int) -> np.ndarray | None:
        """The cached (rows, dim) matrix at ``path``, or None when absent, unreadable or of another shape."""
        if not path.is_file():
            return None
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            matrix = None
        if matrix is None or matrix.ndim != 2 or matrix.shape[0] != rows or matrix.dtype != np.float32:
            logger.warning("ignoring unreadable or mismatched teacher cache %s", path)
            return None
        return matrix

    def save(self, path: Path, matrix: np.ndarray) -> None:
        with atomic_write(path, "wb") as handle:
            np.save(handle, matrix, allow_pickle=False)


def texts_digest(texts: Sequence[str]) -> str:
    """Hex SHA-256 of a list of texts, in order."""
    return hashlib.sha256(_TEXT_SEP.join(texts).encode("utf-8")).hexdigest()


def teacher_text(segments: Sequence[Segment], max_chars: int) -> str:
    """What the teacher reads of a record: the values of the part the char model reads."""
    return plain_text(visible_segments(segments, max_chars))


@dataclass
class TeacherTargets:
    """The teacher's vectors of the training records, their views and the held-out records.

    ``vectors`` has one row per distinct text; the ``*_rows`` lists point into it.
    """

    vectors: np.ndarray  # (n_texts, teacher_dim) float32 unit rows
    record_rows: list[int]  # per training record
    view_texts: list[list[str]]  # per training record: its clean views (the student gets noisy copies)
    view_rows: list[list[int]]  # per training record: the row of each view
    val_rows: list[int]  # per held-out record
    fingerprint: str
    cache_path: Path | None = None
    encoded: bool = False  # the teacher ran (False: read from the cache)
    seconds: float = 0.0

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def summary(self) -> dict:
        """Small facts kept with the trained model (no vectors)."""
        return {
            "texts": int(self.vectors.shape[0]),
            "dim": self.dim,
            "fingerprint": self.fingerprint[:16],
            "from_cache": not self.encoded,
            "seconds": round(self.seconds, 1),
        }


def build_targets(
    teacher: Teacher,
    augmenter: Augmenter,
    train_segments: Sequence[Sequence[Segment]],
    val_segments: Sequence[Sequence[Segment]],
    max_chars: int,
    views_per_record: int,
    seed: int,
    cache: TeacherTargetCache | None = None,
    show_progress: bool = False,
) -> TeacherTargets:
    """Draw the views, then the teacher's vectors of every distinct text, from ``cache`` when there.

    Args:
        teacher: the teacher (loaded only when the cache misses).
        augmenter: draws the clean query-shaped views (:meth:`Augmenter.clean_query_views`).
        train_segments, val_segments: the training and held-out records.
        max_chars: the characters the student reads (the teacher reads the same part).
        views_per_record: views drawn per training record (distinct ones kept).
        seed: the view seed.
        cache: where vectors are kept between runs; None embeds every time.
        show_progress: a progress bar while the teacher embeds.
    """
    started = time.perf_counter()
    rng = random.Random(f"teacher-views:{seed}")
    view_texts = [augmenter.clean_query_views(s, views_per_record, rng) for s in train_segments]
    row_of: dict[str, int] = {}

    def row(text: str) -> int:
        return row_of.setdefault(text, len(row_of))

    record_rows = [row(teacher_text(s, max_chars)) for s in train_segments]
    view_rows = [[row(v) for v in views] for views in view_texts]
    val_rows = [row(teacher_text(s, max_chars)) for s in val_segments]
    texts = list(row_of)
    fingerprint = teacher.fingerprint
    path = cache.path(fingerprint, texts_digest(texts), seed) if cache is not None else None
    vectors = cache.load(path, len(texts)) if cache is not None else None
    encoded = vectors is None
    if vectors is None:
        logger.info(
            "teacher %s: embedding %d texts (%d records, %d views)",
            teacher.name,
            len(texts),
            len(train_segments) + len(val_segments),
            sum(map(len, view_texts)),
        )
        vectors = teacher.encode(texts, show_progress=show_progress)
        if cache is not None:
            cache.save(path, vectors)
            logger.info("cached the teacher's vectors in %s", path)
    else:
        logger.info("teacher vectors of %d texts from cache %s", len(texts), path)
    return TeacherTargets(
        vectors=vectors,
        record_rows=record_rows,
        view_texts=view_texts,
        view_rows=view_rows,
        val_rows=val_rows,
        fingerprint=fingerprint,
        cache_path=path,
        encoded=encoded,
        seconds=time.perf_counter() - started,
    )
