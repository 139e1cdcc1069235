"""A searchable index over a document collection: FAISS (dense) + BM25 + the documents, in one folder.

    <index>/
        meta.json       model, back end, document source and hash, counts, dimension
        docs.jsonl      {"id", "text"} per document, in index order
        embeddings.npy  (n_docs, dim) float32 unit vectors (the hybrid scores every document)
        faiss/          embshared.search.FaissIndex (exact inner product by default)
        bm25/           embshared.search.BM25Index (k1, b, stemming of the fusion setting)
        fusion.json     the hybrid's embshared.fusion_choice.FusionSetting (absent: the default)

The folder appears atomically (built beside it and renamed). Building again over the same
documents with the same model, back end and fusion setting reuses it (another fusion setting
rebuilds it, reusing the vectors); an index is only ever searched with the model that built it.
Hybrid search fuses BM25 and cosine scores over every document with the index's fusion setting
(:func:`embshared.fusion_choice.fuse`): the one chosen on the training run's dev queries and
saved in the model folder's ``fusion.json``, else today's default, the convex fusion
``0.5 * z(bm25) + 0.5 * z(dense)`` with BM25 k1 1.5, b 0.75, stemmed.
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
from embshared.fusion_choice import FusionSetting, fuse
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
    fusion: FusionSetting | None = None,
) -> tuple[Path, bool]:
    """Embed ``docs`` and write the index folder; returns (folder, reused).

    Args:
        folder: the index folder (replaced atomically; an existing non-index folder is refused).
        docs: the collection (``embshared.io.read_documents``).
        model, backend, file_name: the model that embeds (see :func:`embedding_ft.backends.load_encoder`).
        faiss_kind: "flat" (exact), "hnsw" or "ivf" (approximate, for large collections).
        encoder: an already loaded encoder (else loaded here).
        embeddings: (n_docs, dim) unit vectors already computed by this model (benchmarks).
        fusion: the hybrid's fusion setting (default: the model folder's fusion.json if any,
            else none: the default fusion, and no fusion.json in the index).
    """
    from embedding_ft.backends import load_encoder

    folder = Path(folder)
    identity = model_identity(model, backend, file_name)
    digest = documents_hash(docs)
    fusion = fusion or model_fusion(model)
    fusion_meta = fusion.to_dict() if fusion is not None else None
    if folder.exists():
        if folder.is_dir() and not any(folder.iterdir()):
            pass
        else:
            meta = read_meta(folder)  # refuses a folder that is not an index
            same_model = all(meta.get(k) == v for k, v in identity.items() if k != "model")
            if same_model and meta.get("docs_hash") == digest:
                if meta.get("faiss_kind") == faiss_kind and meta.get("fusion") == fusion_meta:
                    logger.info("%s is up to date (same documents, model, back end and fusion): reused", folder)
                    return folder, True
                if embeddings is None and (folder / "embeddings.npy").is_file():
                    embeddings = np.load(folder / "embeddings.npy")  # same model and documents: same vectors
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
    setting = fusion or FusionSetting.default()
    bm25 = BM25Index(k1=setting.bm25_k1, b=setting.bm25_b, stem=setting.bm25_stem).index(docs.ids, docs.texts)
    with atomic_dir(folder, overwrite=True) as tmp:
        np.save(tmp / "embeddings.npy", embeddings)
        faiss.save(tmp / "faiss")
        bm25.save(tmp / "bm25")
        if fusion is not None:
            fusion.save(tmp)
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
                "fusion": fusion_meta,
                "encode_seconds": round(encode_seconds, 2),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
    logger.info("indexed %d documents in %.1f s into %s", len(docs), encode_seconds, folder)
    return folder, False


def _read_vectors(path: Path, meta: dict) -> np.ndarray:
    """The stored (n_docs, dim) float32 vectors; never unpickles (an object array is refused)."""
    vectors = np.load(path, allow_pickle=False)
    if vectors.ndim != 2 or vectors.dtype != np.float32 or vectors.shape != (meta["n_docs"], meta["dim"]):
        raise ValueError(
            f"a {vectors.dtype} array of shape {vectors.shape}, expected float32 ({meta['n_docs']}, {meta['dim']})"
        )
    return vectors


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
        # every part is read and checked before the model is loaded; a damaged one is one line naming it
        self.embeddings = _load_part(self.folder / "embeddings.npy", _read_vectors, self.meta)  # (n_docs, dim)
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
        sizes |= {"bm25": len(self.bm25.doc_ids), "embeddings.npy": self.embeddings.shape[0]}
        if len(set(sizes.values())) != 1:
            counts = ", ".join(f"{k} {v}" for k, v in sizes.items())
            raise IndexLoadError(
                f"{self.folder}: incomplete index (documents: {counts}); rebuild it with make index-embed"
            )
        self.encoder = encoder or load_encoder(self.meta["model"], self.meta["backend"], self.meta.get("file_name"))

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

    def search(self, query: str, k: int = 10, hybrid: bool = False, weight: float | None = None) -> list[Hit]:
        """The top-``k`` documents for ``query``: dense (FAISS) or hybrid (fused over all documents).

        The hybrid uses the index's fusion setting (:attr:`fusion`); an explicit ``weight`` makes
        it the convex fusion with that dense weight instead.
        """
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
        fused = fuse(self.fusion_for(weight), dense, lexical)[0]
        top = np.argpartition(-fused, k - 1)[:k]
        top = top[np.argsort(-fused[top], kind="stable")]
        return [Hit(r + 1, self.ids[i], float(fused[i]), self.texts[i]) for r, i in enumerate(top)]
