"""The documents of ``POST initialize``: read from the body or a file inside the data folder,
their texts found, their given embeddings checked; every refusal a 422 naming the document
(``file.jsonl:3`` or ``documents[2]``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embshared.errors import UserError
from embshared.io import read_records
from gapfill.service.errors import ServiceError, inside
from gapfill.service.schemas import InitializeRequest

TEXT_FIELDS = ("content", "text", "body", "abstract", "title")


@dataclass
class Documents:
    """Parsed documents: ids, texts, the embedding each brought (or None) and where each came from."""

    ids: list[str]
    texts: list[str]
    given: list
    where: list[str]


def parse_documents(req: InitializeRequest, data_dir: str, max_documents: int, min_documents: int) -> Documents:
    """The documents of a request: inline, or read from ``req.path`` inside ``data_dir``.

    Raises:
        ServiceError: 400 for a path outside ``data_dir``; 422 for neither or both of documents
            and path, an unreadable file, no documents, more than ``max_documents``, a document
            without text, or ``min_documents`` or fewer.
    """
    if (req.documents is None) == (req.path is None):
        raise ServiceError(422, "give either 'documents' or 'path'")
    if req.path is not None:
        path = inside(data_dir, req.path, "data path")
        try:
            records = read_records(path)
        except UserError as exc:
            raise ServiceError(422, str(exc).replace(str(Path(data_dir).resolve()) + "/", "")) from None
        docs = [dict(r) for r in records]
        where = [f"{req.path}:{line}" for line in records.lines]
    else:
        docs = [d.model_dump() for d in req.documents]
        where = [f"documents[{i}]" for i in range(len(docs))]
    if not docs:
        raise ServiceError(422, "no documents given")
    if len(docs) > max_documents:
        raise ServiceError(422, f"{len(docs)} documents exceed max_documents={max_documents}")
    fields = (req.text_field,) if req.text_field else TEXT_FIELDS
    texts, ids, given = [], [], []
    for i, doc in enumerate(docs):
        text = next((doc[f] for f in fields if isinstance(doc.get(f), str) and doc[f].strip()), None)
        if text is None:
            raise ServiceError(422, f"{where[i]}: no text in field {' / '.join(fields)}")
        texts.append(text.strip())
        ids.append(str(doc["id"]) if doc.get("id") is not None else str(i))
        given.append(doc.get("embedding"))
    if len(texts) <= min_documents:
        raise ServiceError(422, f"need more than {min_documents} documents for a map, got {len(texts)}")
    return Documents(ids, texts, given, where)


def given_embeddings(docs: Documents, dim: int) -> np.ndarray | None:
    """The documents' own embeddings, L2-normalised (n, dim), or None when none brought one.

    Raises:
        ServiceError: 422 when only some documents have one, one has the wrong dimension, or
            a value is NaN or infinite.
    """
    if all(g is None for g in docs.given):
        return None
    for i, g in enumerate(docs.given):
        if g is None:
            raise ServiceError(422, f"{docs.where[i]}: no embedding (give embeddings for all documents or none)")
        if not isinstance(g, list) or len(g) != dim:
            n = len(g) if isinstance(g, list) else type(g).__name__
            raise ServiceError(422, f"{docs.where[i]}: embedding has {n} dimensions, expected {dim}")
    emb = np.asarray(docs.given, dtype=np.float32)
    if not np.isfinite(emb).all():
        raise ServiceError(422, "embeddings contain NaN or infinite values")
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return emb
