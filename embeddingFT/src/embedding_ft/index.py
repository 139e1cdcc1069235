"""A searchable index over a document collection: FAISS (dense) + BM25 + the documents, in one folder.

    <index>/
        meta.json       model, back end, document source and hash, counts, dimension
        docs.jsonl      {"id", "text"} per document, in index order
        embeddings.npy  (n_docs, dim) float32 unit vectors (the hybrid scores every document)
        faiss/          embshared.search.FaissIndex (exact inner product by default)
        bm25/           embshared.search.BM25Index

The folder appears atomically (built beside it and renamed). Building again over the same
documents with the same model and back end reuses it; an index is only ever searched with the
model that built it. Hybrid search is the convex fusion of z-scored BM25 and cosine scores over
every document (:func:`embshared.fusion.convex_fusion`, the workspace's one fusion).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from embedding_ft.mining import model_fingerprint
from embshared.errors import UserError
from embshared.files import atomic_dir, write_json, write_jsonl
from embshared.fusion import convex_fusion
from embshared.io import Documents, read_jsonl
from embshared.search import BM25Index, FaissIndex, IndexLoadError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def documents_hash(docs: Documents) -> str:
    digest = hashlib.sha256()
    for doc_id, text in zip(docs.ids, docs.texts):
        digest.update(doc_id.encode())
        digest.update(b"\x00")
        digest.update(text.encode())
        digest.update(b"\x01")
    return digest.hexdigest()[:16]


def model_identity(model: str, backend: str, file_name: str | None) -> dict:
    """What an index remembers of its model: the name given, a fingerprint of its weights, the back end."""
    from embshared.models import resolve_model

    return {
        "model": model,
        "model_fingerprint": hashlib.sha256(model_fingerprint(resolve_model(model)).encode()).hexdigest()[:16],
        "backend": backend,
        "file_name": file_name,
    }


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


def build_index(
    folder: str | Path,
    docs: Documents,
    model: str,
    backend: str = "torch",
    file_name: str | None = None,
    batch_size: int = 64,
    faiss_kind: str = "flat",
    encoder=None,
    embeddings: np.ndarray | None = None,
) -> tuple[Path, bool]:
    """Embed ``docs`` and write the index folder; returns (folder, reused).

    Args:
        folder: the index folder (replaced atomically; an existing non-index folder is refused).
        docs: the collection (``embshared.io.read_documents``).
        model, backend, file_name: the model that embeds (see :func:`embedding_ft.backends.load_encoder`).
        faiss_kind: "flat" (exact), "hnsw" or "ivf" (approximate, for large collections).
        encoder: an already loaded encoder (else loaded here).
        embeddings: (n_docs, dim) unit vectors already computed by this model (benchmarks).
    """
    from embedding_ft.backends import load_encoder

    folder = Path(folder)
    identity = model_identity(model, backend, file_name)
    digest = documents_hash(docs)
    if folder.exists():
        if folder.is_dir() and not any(folder.iterdir()):
            pass
        else:
            meta = read_meta(folder)  # refuses a folder that is not an index
            same_model = all(meta.get(k) == v for k, v in identity.items() if k != "model")
            if same_model and meta.get("docs_hash") == digest and meta.get("faiss_kind") == faiss_kind:
                logger.info("%s is up to date (same documents, model and back end): reused", folder)
                return folder, True
    start = time.perf_counter()
    if embeddings is None:
        encoder = encoder or load_encoder(model, backend, file_name)
        embeddings = encoder.encode(
            docs.texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True
        )
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)  # (n_docs, dim)
    if embeddings.shape[0] != len(docs):
        raise ValueError(f"{embeddings.shape[0]} embeddings for {len(docs)} documents")
    encode_seconds = time.perf_counter() - start
    faiss = FaissIndex(embeddings.shape[1], metric="ip", kind=faiss_kind).add(docs.ids, embeddings)
    bm25 = BM25Index().index(docs.ids, docs.texts)
    with atomic_dir(folder, overwrite=True) as tmp:
        np.save(tmp / "embeddings.npy", embeddings)
        faiss.save(tmp / "faiss")
        bm25.save(tmp / "bm25")
        write_jsonl(tmp / "docs.jsonl", ({"id": i, "text": t} for i, t in zip(docs.ids, docs.texts)))
        write_json(
            tmp / "meta.json",
            {
                "kind": "embedding_ft.index",
                "format_version": FORMAT_VERSION,
                **identity,
                "docs_source": docs.source,
                "docs_hash": digest,
                "n_docs": len(docs),
                "dim": int(embeddings.shape[1]),
                "faiss_kind": faiss_kind,
                "encode_seconds": round(encode_seconds, 2),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
    logger.info("indexed %d documents in %.1f s into %s", len(docs), encode_seconds, folder)
    return folder, False


class Searcher:
    """Searches an index folder with the model that built it.

    Args:
        folder: the index folder.
        model: the model to encode queries with (default: the index's own); a different
            model (by weights fingerprint) or back end is refused, naming both.
        backend, file_name: override the back end of the queries (must match the index's).
        encoder: an already loaded encoder.
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
        self.encoder = encoder or load_encoder(self.meta["model"], self.meta["backend"], self.meta.get("file_name"))
        self.embeddings = np.load(self.folder / "embeddings.npy", mmap_mode=None)  # (n_docs, dim)
        self.faiss = FaissIndex.load(self.folder / "faiss")
        self.bm25 = BM25Index.load(self.folder / "bm25")
        docs = read_jsonl(self.folder / "docs.jsonl")
        self.ids = [d["id"] for d in docs]
        self.texts = [d["text"] for d in docs]
        self._row = {doc_id: i for i, doc_id in enumerate(self.ids)}
        if len(self.ids) != self.meta["n_docs"] or self.embeddings.shape[0] != len(self.ids):
            raise IndexLoadError(f"{self.folder}: incomplete index (documents and vectors disagree); rebuild it")

    def encode(self, queries: list[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode(queries, batch_size=32, normalize_embeddings=True), dtype=np.float32)

    def search(self, query: str, k: int = 10, hybrid: bool = False, weight: float = 0.5) -> list[Hit]:
        """The top-``k`` documents for ``query``: dense (FAISS) or hybrid (convex fusion over all documents)."""
        if not query or not query.strip():
            raise UserError("empty query")
        q = self.encode([query])  # (1, dim)
        k = min(k, len(self.ids))
        if not hybrid:
            import faiss

            faiss.omp_set_num_threads(1)  # one query: OpenMP threads only wait on each other on shared cores
            ids, scores = self.faiss.search(q, k)
            return [Hit(r + 1, d, s, self.texts[self._row[d]]) for r, (d, s) in enumerate(zip(ids[0], scores[0]))]
        dense = q @ self.embeddings.T  # (1, n_docs)
        lexical = self.bm25.score_matrix([query])  # (1, n_docs), bm25's own doc order = index order
        fused = convex_fusion(dense, lexical, weight)[0]
        top = np.argpartition(-fused, k - 1)[:k]
        top = top[np.argsort(-fused[top], kind="stable")]
        return [Hit(r + 1, self.ids[i], float(fused[i]), self.texts[i]) for r, i in enumerate(top)]
