"""A searchable index over a document collection: FAISS (dense) + BM25 + the documents, in one folder.

    <index>/
        meta.json              model, back end, document source and hash, counts, dimension,
                               FAISS kind (the one used), stored vector precision
        docs.jsonl             {"id", "text"} per document, in index order
        embeddings.npy         (n_docs, dim) unit vectors: float32, or float16 / int8 when asked
        embeddings_ranges.npy  (2, dim) float32 per-dimension min and max (int8 vectors only)
        dense_stats.npy        (dim + 1, dim) float64: the stored vectors' mean, then their covariance
        faiss/                 embshared.search.FaissIndex (exact below 100,000 documents, else HNSW)
        bm25/                  embshared.search.BM25Index (k1, b, stemming of the fusion setting)
        fusion.json            the hybrid's embshared.fusion_choice.FusionSetting (absent: the default)

The folder appears atomically (built beside it and renamed). Building again over the same
documents with the same model, back end and fusion setting reuses it (another fusion setting,
FAISS kind or vector precision rebuilds it, reusing the vectors when they are at least as precise
as asked); an index is only ever searched with the model that built it.
Hybrid search fuses BM25 and cosine scores with the index's fusion setting
(:func:`embshared.fusion_choice.fuse`): the one chosen on the training run's dev queries and
saved in the model folder's ``fusion.json``, else today's default, the convex fusion
``0.5 * z(bm25) + 0.5 * z(dense)`` with BM25 k1 1.5, b 0.75, stemmed. Below
:data:`CANDIDATE_HYBRID_MIN_DOCS` documents it scores every document; above, only the union of
BM25's and FAISS's top documents, with the same z-scores (see :meth:`Searcher.search`).

Older index folders (no ``vectors`` / ``dense_stats`` in meta.json) are float32 and read as before;
their dense statistics are computed from the vectors the first time a candidate hybrid needs them.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from embedding_ft.identity import model_identity
from embshared.errors import UserError
from embshared.files import atomic_dir, check_writable, write_json, write_jsonl
from embshared.fusion_choice import RRF_DEPTH, FusionSetting, fuse
from embshared.io import Documents, read_jsonl
from embshared.search import BM25Index, FaissIndex, IndexLoadError, resolve_faiss_kind

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1

# The stored vectors' precision (build_index(vectors=...)). float16 halves embeddings.npy and the
# FAISS index, int8 quarters them (sentence_transformers.quantize_embeddings with per-dimension
# ranges, the min and max over every document; dequantized to each bucket's middle).
# The FAISS index follows: a scalar quantizer (faiss QT_fp16 / QT_8bit, inner product) over the
# vectors rather than a float32 index over the dequantized ones, since memory is why one asks for
# int8: at 1M x 384 a float32 FAISS index is 1.5 GB, an 8-bit one 384 MB.
VECTOR_PRECISIONS = ("float32", "float16", "int8")
VECTORS_FILE = "embeddings.npy"
RANGES_FILE = "embeddings_ranges.npy"
STATS_FILE = "dense_stats.npy"

# The hybrid scores every document below this many (exact, and cheap: one (n, dim) product and
# one BM25 row per query, ~50 ms at 200k x 384 on one core); at or above it, it fuses only the
# union of BM25's and FAISS's top DEFAULT_CANDIDATES documents (the dense side costs an HNSW
# search and DEFAULT_CANDIDATES dot products instead of n). Why 200,000: the all-document dense
# pass grows linearly (~0.3 s and 1.5 GB read per query at 1M x 384) while the candidate fusion's
# z-scores are the same as the all-document fusion's (whole-collection mean and standard
# deviation on both sides), so its only loss is a document in neither top list, which at 1,000
# per side the bench must confirm is rare (NDCG@10 candidate vs all-document on SciFact).
CANDIDATE_HYBRID_MIN_DOCS = 200_000
DEFAULT_CANDIDATES = 1000
_CHUNK = 65_536  # rows decoded at a time (float16 / int8 vectors, dense statistics)


def documents_hash(docs: Documents) -> str:
    digest = hashlib.sha256()
    for doc_id, text in zip(docs.ids, docs.texts):
        digest.update(doc_id.encode())
        digest.update(b"\x00")
        digest.update(text.encode())
        digest.update(b"\x01")
    return digest.hexdigest()[:16]


def model_fusion(model: str) -> FusionSetting | None:
    """The fusion setting saved in a local model folder (``fusion.json``, written by the training run), else None."""
    folder = Path(model).expanduser()
    return FusionSetting.load(folder) if folder.is_dir() else None


@dataclass
class Hit:
    rank: int
    id: str
    score: float
    text: str

    def as_dict(self) -> dict:
        return {"rank": self.rank, "id": self.id, "score": round(self.score, 6), "text": self.text}


def read_meta(folder: str | Path) -> dict:
    """The index's meta.json, or one error saying the folder is missing or not an index."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IndexLoadError(f"{folder}: no such index folder (build it with make index-embed)")
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise IndexLoadError(f"{folder}: not an index built by embedding_ft.index (meta.json missing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError:
        raise IndexLoadError(f"{meta_path}: not valid JSON") from None
    if meta.get("kind") != "embedding_ft.index":
        raise IndexLoadError(f"{folder}: meta.json is not an embedding_ft index")
    return meta


def query_encoder_folder(folder: str | Path, meta: dict) -> str:
    """What the queries of the index in ``folder`` are encoded with: its model, or the export that encoded its documents.

    ``--backend auto`` exports into the embedding cache, never into the model folder; meta.json
    then names that copy (``encoder_folder``), since the model folder does not hold the file.
    """
    source = meta.get("encoder_folder")
    if source is None:
        return meta["model"]
    if not (Path(source) / meta.get("file_name", "")).is_file():
        raise IndexLoadError(
            f"{folder}: its documents were encoded by {meta.get('file_name')} exported into {source}, which is gone "
            f"(the embedding cache was removed?): rebuild the index with make index-embed"
        )
    return source


def build_index(
    folder: str | Path,
    docs: Documents,
    model: str,
    backend: str = "torch",
    file_name: str | None = None,
    batch_size: int = 64,
    faiss_kind: str = "auto",
    encoder=None,
    embeddings: np.ndarray | None = None,
    fusion: FusionSetting | None = None,
    vectors: str = "float32",
    cache_dir: str | Path | None = None,
    gate: str = "exact",
    shard_size: int | None = None,
    compute_dtype: str = "float32",
) -> tuple[Path, bool]:
    """Embed ``docs`` and write the index folder; returns (folder, reused).

    Args:
        folder: the index folder (replaced atomically; an existing non-index folder is refused).
        docs: the collection (``embshared.io.read_documents``).
        model, backend, file_name: the model that embeds (see :func:`embedding_ft.backends.load_encoder`).
        faiss_kind: "auto" (exact below :data:`embshared.search.FLAT_MAX_DOCS` documents, else
            HNSW), "flat" (exact), "hnsw" or "ivf" (approximate). meta.json records the kind used.
        encoder: an already loaded encoder (else loaded here).
        embeddings: (n_docs, dim) unit vectors already computed by this model (benchmarks).
        fusion: the hybrid's fusion setting (default: the model folder's fusion.json if any,
            else none: the default fusion, and no fusion.json in the index).
        vectors: the stored vectors' precision, "float32", "float16" or "int8" (:data:`VECTOR_PRECISIONS`).
        cache_dir: the :class:`embedding_ft.corpus_encoder.EmbeddingCache` the documents are encoded
            through (length-sorted token-budget batches of about ``batch_size`` texts of 256 tokens,
            resumable shards, vectors reused across builds); default ``<index>.cache`` beside the index.
        gate: the parity gate of ``backend="auto"`` ("exact" or "approximate"): the model is exported
            to ONNX once into the cache (fp32; int8 too under "approximate"), and the fastest file
            (those exports and any in the model folder) whose vectors match PyTorch's on a sample is
            used, else torch; the index records the back end chosen.
        shard_size: documents per resumable shard of the encoding pass (default 8,192).
        compute_dtype: "float32" or "bfloat16" (torch, openvino); under ``backend="auto"`` chosen with
            the back end. meta.json records it, and the queries are encoded the same way.
    """
    if vectors not in VECTOR_PRECISIONS:
        raise ValueError(f"vectors must be one of {VECTOR_PRECISIONS}, got {vectors!r}")
    from embedding_ft.corpus_encoder import CorpusEncoder, EmbeddingCache

    folder = Path(folder)
    cache = EmbeddingCache(cache_dir if cache_dir is not None else folder.with_name(f"{folder.name}.cache"))
    check_writable(folder, "index")  # before any encoding
    check_writable(cache.root / "probe", "embedding cache")
    corpus = CorpusEncoder(
        model,
        backend,
        file_name,
        cache=cache,
        token_budget=max(batch_size, 1) * 256,
        gate=gate,
        encoder=encoder,
        export=backend == "auto",
        compute_dtype=compute_dtype,
        **({"shard_size": shard_size} if shard_size else {}),
    )
    backend, file_name, compute_dtype = corpus.resolve_backend(docs.texts)  # "auto": chosen on a sample
    identity = model_identity(model, backend, file_name)
    source = corpus.source_folder()  # an export only in the cache: the queries must be encoded from it too
    encoder_folder = str(Path(source).resolve()) if source != model else None
    digest = documents_hash(docs)
    kind = resolve_faiss_kind(faiss_kind, len(docs))
    fusion = fusion or model_fusion(model)
    fusion_meta = fusion.to_dict() if fusion is not None else None
    stored = None  # the stored arrays, written again as they are (same precision)
    if folder.exists():
        if folder.is_dir() and not any(folder.iterdir()):
            pass
        else:
            meta = read_meta(folder)  # refuses a folder that is not an index
            same_model = all(meta.get(k) == v for k, v in identity.items() if k != "model")
            same_model = same_model and meta.get("compute_dtype", "float32") == compute_dtype
            if same_model and meta.get("docs_hash") == digest:
                old_precision = meta.get("vectors", "float32")
                if meta.get("faiss_kind") == kind and meta.get("fusion") == fusion_meta and old_precision == vectors:
                    logger.info("%s is up to date (same documents, model, back end and fusion): reused", folder)
                    return folder, True
                # same model and documents: same vectors, unless they were stored less precisely than asked
                if embeddings is None and _as_precise(old_precision, vectors):
                    try:
                        arrays = _read_stored(folder, meta)
                    except IndexLoadError as exc:  # a damaged part: encode again
                        logger.warning("%s: stored vectors not reused (%s)", folder, exc)
                    else:
                        embeddings = _decode(arrays, old_precision)
                        stored = arrays if old_precision == vectors else None
    start = time.perf_counter()
    if embeddings is None:
        embeddings = corpus.encode(docs.texts)  # memory-mapped from the cache
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)  # (n_docs, dim)
    if embeddings.shape[0] != len(docs):
        raise ValueError(f"{embeddings.shape[0]} embeddings for {len(docs)} documents")
    encode_seconds = time.perf_counter() - start
    # the model and its runtimes are done with: freed before FAISS and BM25 are built, so the
    # build's peak memory is the larger of the two phases, not their sum (the caller's encoder stays)
    corpus = encoder = None
    gc.collect()
    stored = stored or _encode(embeddings, vectors)
    stats = dense_stats(stored, vectors)  # (dim + 1, dim): mean, covariance of the vectors as stored
    faiss = FaissIndex(embeddings.shape[1], metric="ip", kind=kind, storage=vectors).add(docs.ids, embeddings)
    setting = fusion or FusionSetting.default()
    bm25 = BM25Index(k1=setting.bm25_k1, b=setting.bm25_b, stem=setting.bm25_stem).index(docs.ids, docs.texts)
    meta = {
        "kind": "embedding_ft.index",
        "format_version": FORMAT_VERSION,
        **identity,
        "docs_source": docs.source,
        "docs_hash": digest,
        "n_docs": len(docs),
        "dim": int(embeddings.shape[1]),
        "faiss_kind": kind,
        "faiss_kind_asked": faiss_kind,
        "vectors": vectors,
        "dense_stats": STATS_FILE,
        "fusion": fusion_meta,
        **({"encoder_folder": encoder_folder} if encoder_folder else {}),
        "compute_dtype": compute_dtype,
        "encode_seconds": round(encode_seconds, 2),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        _write_index(folder, stored, stats, faiss, bm25, fusion, docs, meta)
    except OSError as exc:  # e.g. the disk filled up: atomic_dir removed the partial folder
        raise UserError(
            f"{folder}: writing the index failed ({exc.strerror or exc}); nothing was written, and the "
            f"encoded vectors stay in {cache.root}: free space and run again"
        ) from None
    logger.info(
        "indexed %d documents in %.1f s into %s (FAISS %s, %s vectors)",
        len(docs),
        encode_seconds,
        folder,
        kind,
        vectors,
    )
    return folder, False


# ---------------------------------------------------------------------------------------
# stored vectors: float32, float16 or int8 (+ ranges)


def _write_index(folder: Path, stored: dict, stats, faiss, bm25, fusion, docs, meta: dict) -> None:
    """The index's files, built in a temporary folder renamed into place (nothing half-written)."""
    with atomic_dir(folder, overwrite=True) as tmp:
        np.save(tmp / VECTORS_FILE, stored["vectors"])
        if "ranges" in stored:
            np.save(tmp / RANGES_FILE, stored["ranges"])
        np.save(tmp / STATS_FILE, stats)
        faiss.save(tmp / "faiss")
        bm25.save(tmp / "bm25")
        if fusion is not None:
            fusion.save(tmp)
        write_jsonl(tmp / "docs.jsonl", ({"id": i, "text": t} for i, t in zip(docs.ids, docs.texts)))
        write_json(tmp / "meta.json", meta)


def _as_precise(stored: str, asked: str) -> bool:
    """Vectors stored in precision ``stored`` can stand for vectors asked in precision ``asked``."""
    return stored in VECTOR_PRECISIONS and VECTOR_PRECISIONS.index(stored) <= VECTOR_PRECISIONS.index(asked)


def _encode(embeddings: np.ndarray, precision: str) -> dict[str, np.ndarray]:
    """The arrays stored for ``embeddings`` (n, dim) float32: {"vectors"} (+ {"ranges"} for int8)."""
    if precision == "float32":
        return {"vectors": embeddings}
    if precision == "float16":
        return {"vectors": embeddings.astype(np.float16)}
    from sentence_transformers import quantize_embeddings

    # the ranges quantize_embeddings would take from calibration_embeddings=embeddings (each
    # dimension's min and max), computed here to be stored: every document calibrates, so no
    # document falls outside the buckets
    ranges = np.vstack([embeddings.min(axis=0), embeddings.max(axis=0)]).astype(np.float32)  # (2, dim)
    quantized = np.empty(embeddings.shape, dtype=np.int8)
    for start in range(0, len(embeddings), _CHUNK):  # a chunk at a time: its float temporaries stay small
        chunk = embeddings[start : start + _CHUNK]
        quantized[start : start + _CHUNK] = quantize_embeddings(chunk, precision="int8", ranges=ranges)
    return {"vectors": quantized, "ranges": ranges}


def _decode(stored: dict[str, np.ndarray], precision: str, rows=slice(None)) -> np.ndarray:
    """The float32 vectors of ``rows`` (an index, slice or array of row numbers) of the stored arrays."""
    vectors = stored["vectors"][rows]
    if precision != "int8":
        return np.asarray(vectors, dtype=np.float32)
    ranges = stored["ranges"]
    # quantize_embeddings: bucket = clip(floor((x - min) / step), 0, 255) - 128, step = (max - min) / 255
    # (a zero step stands for 1). Decoded to the bucket's middle; bucket 255 holds only the max.
    starts = ranges[0]
    steps = (ranges[1] - starts) / np.float32(255)  # a zero-width dimension decodes to its one value
    levels = np.minimum(vectors.astype(np.float32) + np.float32(128.5), np.float32(255))
    return starts + levels * steps


def dense_stats(stored: dict[str, np.ndarray], precision: str) -> np.ndarray:
    """(dim + 1, dim) float64: the mean of the stored vectors (row 0) and their covariance (rows 1:).

    For a query q, the mean of q . x over the documents is q . mean and the variance is
    q^T cov q: the candidate hybrid z-scores the dense side with them, as the all-document
    fusion would, without a pass over the documents (population covariance, ddof 0, as numpy's std).
    """
    n, dim = stored["vectors"].shape
    total = np.zeros(dim)
    for start in range(0, n, _CHUNK):
        total += _decode(stored, precision, slice(start, start + _CHUNK)).sum(axis=0, dtype=np.float64)
    mean = total / n
    cov = np.zeros((dim, dim))
    for start in range(0, n, _CHUNK):
        centred = _decode(stored, precision, slice(start, start + _CHUNK)).astype(np.float64) - mean
        cov += centred.T @ centred
    return np.vstack([mean[None, :], cov / n])


def _read_stored(folder: Path, meta: dict) -> dict[str, np.ndarray]:
    """The stored arrays of an index folder (checked as :class:`Searcher` checks them)."""
    stored = {"vectors": _load_part(folder / VECTORS_FILE, _read_vectors, meta)}
    if meta.get("vectors", "float32") == "int8":
        stored["ranges"] = _load_part(folder / RANGES_FILE, _read_ranges, meta)
    return stored


def load_vectors(folder: str | Path) -> np.ndarray:
    """The index's document vectors as (n_docs, dim) float32, whatever precision they are stored in."""
    folder = Path(folder)
    meta = read_meta(folder)
    return _decode(_read_stored(folder, meta), meta.get("vectors", "float32"))


def _read_vectors(path: Path, meta: dict) -> np.ndarray:
    """The stored (n_docs, dim) vectors in meta.json's precision (float32 when it names none); never unpickles."""
    expected = meta.get("vectors", "float32")
    if expected not in VECTOR_PRECISIONS:
        raise ValueError(f"meta.json names vectors {expected!r}, not one of {', '.join(VECTOR_PRECISIONS)}")
    vectors = np.load(path, allow_pickle=False)  # an object array is refused
    if vectors.ndim != 2 or vectors.dtype != np.dtype(expected) or vectors.shape != (meta["n_docs"], meta["dim"]):
        raise ValueError(
            f"a {vectors.dtype} array of shape {vectors.shape}, expected {expected} ({meta['n_docs']}, {meta['dim']})"
        )
    return vectors


def _read_ranges(path: Path, meta: dict) -> np.ndarray:
    """The int8 vectors' (2, dim) float32 per-dimension min and max."""
    ranges = np.load(path, allow_pickle=False)
    if ranges.dtype != np.float32 or ranges.shape != (2, meta["dim"]) or not np.isfinite(ranges).all():
        raise ValueError(f"a {ranges.dtype} array of shape {ranges.shape}, expected finite float32 (2, {meta['dim']})")
    if (ranges[1] < ranges[0]).any():
        raise ValueError("a maximum below its minimum")
    return ranges


def _read_stats(path: Path, meta: dict) -> np.ndarray:
    """The (dim + 1, dim) float64 mean and covariance of the stored vectors."""
    stats = np.load(path, allow_pickle=False)
    dim = meta["dim"]
    if stats.dtype != np.float64 or stats.shape != (dim + 1, dim) or not np.isfinite(stats).all():
        raise ValueError(f"a {stats.dtype} array of shape {stats.shape}, expected finite float64 ({dim + 1}, {dim})")
    return stats


def _load_part(path: Path, loader, *args):
    """``loader(path, *args)``, or one line naming the part of the index that is missing or damaged."""
    if not path.exists():
        raise IndexLoadError(f"{path}: missing; the index is incomplete: rebuild it with make index-embed")
    try:
        return loader(path, *args)
    except IndexLoadError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise IndexLoadError(f"{path}: damaged ({reason}); rebuild the index with make index-embed") from None


def _top_rows(scores: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` best ``scores``, best first; equal scores by ascending row (``rows``, default the position)."""
    rows = np.arange(len(scores)) if rows is None else rows
    keep = np.arange(len(scores))
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th best score
        keep = np.flatnonzero(scores >= kth)
    return keep[np.lexsort((rows[keep], -scores[keep]))[:k]]


class Searcher:
    """Searches an index folder with the model that built it.

    Args:
        folder: the index folder.
        model: the model to encode queries with (default: the index's own); a different
            model (by weights fingerprint) or back end is refused, naming both.
        backend, file_name: override the back end of the queries (must match the index's).
        encoder: an already loaded encoder.

    The stored vectors stay in their precision in memory (float16 / int8 are decoded a chunk,
    or the candidates' rows, at a time).
    """

    def __init__(self, folder: str | Path, model: str | None = None, backend: str | None = None, encoder=None):
        from embedding_ft.backends import load_encoder

        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        if model is not None or backend is not None:
            asked = model_identity(
                model or self.meta["model"], backend or self.meta["backend"], self.meta.get("file_name")
            )
            if asked["model_fingerprint"] != self.meta["model_fingerprint"] or asked["backend"] != self.meta["backend"]:
                raise UserError(
                    f"{self.folder} was built with {self.meta['model']} ({self.meta['backend']}); "
                    f"it cannot be searched with {model or self.meta['model']} ({backend or self.meta['backend']}): "
                    "rebuild it with make index-embed"
                )
        # every part is read and checked before the model is loaded; a damaged one is one line naming it
        self.precision = self.meta.get("vectors", "float32")  # of the stored vectors
        self._stored = _read_stored(self.folder, self.meta)  # {"vectors": (n_docs, dim)[, "ranges": (2, dim)]}
        self._stats = None  # (dim + 1, dim) dense mean and covariance; older indexes: computed when needed
        if self.meta.get("dense_stats"):
            self._stats = _load_part(self.folder / STATS_FILE, _read_stats, self.meta)
        self.faiss = _load_part(self.folder / "faiss", FaissIndex.load)
        self.bm25 = _load_part(self.folder / "bm25", BM25Index.load)
        saved = FusionSetting.load(self.folder)
        self.fusion = saved or FusionSetting.default()  # the hybrid's setting when no weight is given
        self.fusion_source = "the index's fusion.json" if saved is not None else "the default"
        docs = _load_part(self.folder / "docs.jsonl", read_jsonl)
        self.ids = [d["id"] for d in docs]
        self.texts = [d["text"] for d in docs]
        self._row = {doc_id: i for i, doc_id in enumerate(self.ids)}
        sizes = {"meta.json": self.meta["n_docs"], "docs.jsonl": len(self.ids), "faiss": len(self.faiss)}
        sizes |= {"bm25": len(self.bm25.doc_ids), "embeddings.npy": self._stored["vectors"].shape[0]}
        if len(set(sizes.values())) != 1:
            counts = ", ".join(f"{k} {v}" for k, v in sizes.items())
            raise IndexLoadError(
                f"{self.folder}: incomplete index (documents: {counts}); rebuild it with make index-embed"
            )
        if encoder is None:
            encoder = load_encoder(
                query_encoder_folder(self.folder, self.meta),
                self.meta["backend"],
                self.meta.get("file_name"),
                compute_dtype=self.meta.get("compute_dtype", "float32"),  # as its documents were encoded
            )
        self.encoder = encoder

    @property
    def embeddings(self) -> np.ndarray:
        """(n_docs, dim) float32 vectors: the stored array itself, or a decoded copy of float16 / int8 ones."""
        return _decode(self._stored, self.precision)

    def vectors(self, rows) -> np.ndarray:
        """The float32 vectors of ``rows`` (row numbers in index order)."""
        return _decode(self._stored, self.precision, rows)

    def dense_scores(self, q: np.ndarray) -> np.ndarray:
        """(batch, n_docs) inner products of the query vectors ``q`` (batch, dim) with every stored vector."""
        if self.precision == "float32":
            return q @ self._stored["vectors"].T
        n = len(self.ids)
        out = np.empty((q.shape[0], n), dtype=np.float32)
        for start in range(0, n, _CHUNK):
            out[:, start : start + _CHUNK] = q @ self.vectors(slice(start, start + _CHUNK)).T
        return out

    def dense_stats(self) -> np.ndarray:
        """(dim + 1, dim): the stored vectors' mean and covariance (:func:`dense_stats`)."""
        if self._stats is None:  # an index built before they were stored
            logger.info(
                "%s: computing the dense statistics of %d vectors (not stored in this index)",
                self.folder,
                len(self.ids),
            )
            self._stats = dense_stats(self._stored, self.precision)
        return self._stats

    def encode(self, queries: list[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode(queries, batch_size=32, normalize_embeddings=True), dtype=np.float32)

    def fusion_for(self, weight: float | None = None) -> FusionSetting:
        """The hybrid's setting: the index's (or the default) for ``weight=None``, else convex with that dense weight."""
        if weight is None:
            return self.fusion
        return FusionSetting(
            method="convex", dense_weight=weight, bm25_k1=self.bm25.k1, bm25_b=self.bm25.b, bm25_stem=self.bm25.stem
        )

    def describe_fusion(self, weight: float | None = None) -> str:
        """One line naming the hybrid's fusion and where it comes from."""
        if weight is not None:
            return f"{self.fusion_for(weight).describe()} [the weight given]"
        return f"{self.fusion.describe()} [{self.fusion_source}]"

    def candidate_depth(self, candidates: int | None = None) -> int | None:
        """How many of each ranker's top documents the hybrid fuses; None: every document.

        ``candidates=None``: every document below :data:`CANDIDATE_HYBRID_MIN_DOCS`, else
        :data:`DEFAULT_CANDIDATES`; 0: every document; N > 0: N.
        """
        if candidates is None:
            return DEFAULT_CANDIDATES if len(self.ids) >= CANDIDATE_HYBRID_MIN_DOCS else None
        if isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer)) or candidates < 0:
            raise UserError(f"candidates must be a whole number >= 0 (0: every document), got {candidates!r}")
        return int(candidates) or None

    def describe_candidates(self, candidates: int | None = None) -> str:
        """What the hybrid fuses, e.g. "every document" or "the union of BM25's and FAISS's top 1000"."""
        depth = self.candidate_depth(candidates)
        return "every document" if depth is None else f"the union of BM25's and FAISS's top {depth}"

    def search(
        self,
        query: str,
        k: int = 10,
        hybrid: bool = False,
        weight: float | None = None,
        candidates: int | None = None,
    ) -> list[Hit]:
        """The top-``k`` documents for ``query``: dense (FAISS) or hybrid (BM25 + dense, fused).

        The hybrid uses the index's fusion setting (:attr:`fusion`); an explicit ``weight`` makes
        it the convex fusion with that dense weight instead. It fuses every document, or, with
        ``candidates`` (:meth:`candidate_depth`: by default at or above
        :data:`CANDIDATE_HYBRID_MIN_DOCS` documents), only the union of BM25's top ``candidates``
        and FAISS's top ``candidates``:

        - convex: each side is z-scored with the query's mean and standard deviation over the
          whole collection, as in the all-document fusion: BM25 from its full score row (bm25s
          scores every document from the query terms' postings), dense from the stored vectors'
          mean and covariance (mean q . mu, variance q^T C q, :func:`dense_stats`); each
          candidate's dense score is its stored vector's dot product with the query, its BM25
          score read from the row. The fused scores of the documents returned are the
          all-document fusion's; only a document in neither top list can be missed.
        - RRF: each ranker's top :data:`embshared.fusion_choice.RRF_DEPTH` is all it uses; the
          dense one is FAISS's top max(candidates, depth) re-scored with the stored vectors.
        """
        if not query or not query.strip():
            raise UserError("empty query")
        depth = self.candidate_depth(candidates) if hybrid else None
        q = self.encode([query])  # (1, dim)
        k = min(k, len(self.ids))
        if not hybrid:
            import faiss

            faiss.omp_set_num_threads(1)  # one query: OpenMP threads only wait on each other on shared cores
            ids, scores = self.faiss.search(q, k)
            return [Hit(r + 1, d, s, self.texts[self._row[d]]) for r, (d, s) in enumerate(zip(ids[0], scores[0]))]
        setting = self.fusion_for(weight)
        lexical = self.bm25.score_matrix([query])  # (1, n_docs), bm25's own doc order = index order
        if depth is None:
            fused = fuse(setting, self.dense_scores(q), lexical)[0]
            rows = _top_rows(fused, k)
            return [Hit(r + 1, self.ids[i], float(fused[i]), self.texts[i]) for r, i in enumerate(rows)]
        rows, fused = self._candidate_fusion(setting, q, lexical[0], depth, k)
        top = _top_rows(fused, k, rows)
        return [Hit(r + 1, self.ids[rows[i]], float(fused[i]), self.texts[rows[i]]) for r, i in enumerate(top)]

    def _candidate_fusion(
        self, setting: FusionSetting, q: np.ndarray, lexical: np.ndarray, depth: int, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, fused scores) of the candidates: the union of BM25's and FAISS's top documents."""
        import faiss

        from embshared.fusion import ranks_from_scores

        n, w, rrf = len(self.ids), setting.dense_weight, setting.method == "rrf"
        faiss.omp_set_num_threads(1)
        found, _ = self.faiss.search(q, min(n, max(depth, k, RRF_DEPTH if rrf else 0)))
        dense_rows = np.array([self._row[d] for d in found[0]], dtype=np.int64)
        if rrf:  # BM25's ranking exactly as the all-document RRF makes it
            bm25_rows = np.array(ranks_from_scores(lexical[None], RRF_DEPTH)[0], dtype=np.int64)
        else:
            top = min(depth, n)
            bm25_rows = np.argpartition(-lexical, top - 1)[:top] if top < n else np.arange(n)
        rows = np.union1d(dense_rows, bm25_rows)  # sorted row numbers
        dense = self.vectors(rows) @ q[0]  # (m,) the stored vectors' scores, as the all-document fusion's
        if rrf:
            fused = np.zeros(len(rows), dtype=np.float32)
            at = dense[np.searchsorted(rows, dense_rows)]
            ranked = dense_rows[np.lexsort((dense_rows, -at))][:RRF_DEPTH]
            fused[np.searchsorted(rows, ranked)] += w / (setting.rrf_k + np.arange(1, len(ranked) + 1))
            ranked = bm25_rows[lexical[bm25_rows] > 0.0]  # a document sharing no term is not ranked
            fused[np.searchsorted(rows, ranked)] += (1.0 - w) / (setting.rrf_k + np.arange(1, len(ranked) + 1))
            return rows, fused
        fused = np.zeros(len(rows), dtype=np.float32)
        if w < 1.0:  # BM25: the query's mean and std over the whole row (as embshared.fusion.zscore_rows)
            mean, std = lexical.mean(), lexical.std()
            fused += (1.0 - w) * ((lexical[rows] - mean) / (std if std > 0 else 1.0))
        if w > 0.0:  # dense: mean q . mu and variance q^T C q over every stored vector
            stats = self.dense_stats()
            q64 = q[0].astype(np.float64)
            mean, var = float(stats[0] @ q64), float(q64 @ stats[1:] @ q64)
            std = np.sqrt(var) if var > 1e-20 else 1.0
            fused += (w * ((dense.astype(np.float64) - mean) / std)).astype(np.float32)
        return rows, fused
