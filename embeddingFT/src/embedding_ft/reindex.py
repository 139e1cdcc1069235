"""An adapter's index from a base-model index's stored vectors: the head applied to them, no second encoding pass.

A module of its own (it needs both the adapter and the index, which do not import each other).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from embedding_ft.adapter import AdapterInfo, apply_head, load_adapter
from embshared.errors import UserError

logger = logging.getLogger(__name__)


def _check_stored_vectors(model, info: AdapterInfo, texts: list[str], stored: np.ndarray, folder: Path, n=4) -> None:
    """Re-encode the ``n`` longest documents with the adapter's base part and compare with the stored
    vectors (catches what a fingerprint cannot, e.g. another max_seq_length)."""
    from sentence_transformers import SentenceTransformer

    if not texts:
        return
    base = SentenceTransformer(modules=list(model)[: info.base_modules], device=str(model.device))
    rows = sorted(np.argsort([-len(t) for t in texts], kind="stable")[:n].tolist())
    fresh = base.encode([texts[i] for i in rows], normalize_embeddings=True, convert_to_numpy=True)
    worst = float(np.abs(fresh - stored[rows]).max())
    if worst > 1e-3:
        raise UserError(
            f"{folder}: its stored vectors differ from what the adapter's base model gives (max difference "
            f"{worst:.3g}; another max_seq_length?): index the documents with the adapter directly"
        )


def reindex_from_base(
    base_index_dir: str | Path, model_dir: str | Path, out_dir: str | Path, faiss_kind: str | None = None
) -> tuple[Path, bool]:
    """Build the adapter's index from a base-model index's stored vectors; returns (folder, reused).

    The documents (docs.jsonl) and their base vectors (embeddings.npy) come from
    ``base_index_dir``; each vector goes through the head (:func:`apply_head`) instead of the
    transformer, and :func:`embedding_ft.index.build_index` writes the index for ``model_dir``
    (FAISS, BM25, documents; searched with the adapter like any other index).

    Args:
        base_index_dir: an index built with the adapter's base model (torch back end).
        model_dir: the adapter model folder.
        out_dir: the index folder to write.
        faiss_kind: "flat", "hnsw" or "ivf" (default: the base index's).

    Raises:
        UserError: one line, when the base index was built with another model (by weights
            fingerprint, as :class:`embedding_ft.index.Searcher` checks), another back end, or
            its stored vectors do not match the adapter's base.
    """
    from embedding_ft.index import build_index, load_vectors, read_meta
    from embshared.io import Documents, read_jsonl

    base_index_dir, model_dir = Path(base_index_dir), Path(model_dir).expanduser()
    meta = read_meta(base_index_dir)
    model, info = load_adapter(model_dir)
    base = info.base or {}
    if not base.get("model_fingerprint"):
        raise UserError(f"{model_dir} does not record its base model: index the documents with it directly")
    if meta.get("backend") != "torch":
        raise UserError(
            f"{base_index_dir} was built with the {meta.get('backend')} back end; the head needs the base "
            "model's own vectors: rebuild it with the torch back end"
        )
    if meta.get("model_fingerprint") != base["model_fingerprint"]:
        raise UserError(
            f"{base_index_dir} was built with {meta.get('model')}, not with {base['model']}, the base of "
            f"{model_dir}: rebuild it with that model, or index the documents with the adapter directly"
        )
    if meta.get("dim") != info.in_dim:
        raise UserError(f"{base_index_dir} holds {meta.get('dim')}-dim vectors; the head takes {info.in_dim}")
    rows = read_jsonl(base_index_dir / "docs.jsonl")
    docs = Documents([r["id"] for r in rows], [r["text"] for r in rows], meta.get("docs_source", str(base_index_dir)))
    stored = load_vectors(base_index_dir)  # (n_docs, in_dim) float32, checked like any index part
    if stored.shape[0] != len(docs):
        raise UserError(f"{base_index_dir}: incomplete index (documents and vectors disagree); rebuild it")
    _check_stored_vectors(model, info, docs.texts, stored, base_index_dir)
    vectors = apply_head(model_dir, stored)
    folder, reused = build_index(
        out_dir,
        docs,
        str(model_dir),
        "torch",
        None,
        faiss_kind=faiss_kind or meta.get("faiss_kind", "flat"),
        encoder=model,
        embeddings=vectors,
    )
    logger.info("%s %s from the base vectors of %s", "reused" if reused else "built", folder, base_index_dir)
    return folder, reused
