"""GaussianRetriever: Euclidean nearest-neighbour retrieval over Gaussian embeddings (FAISS L2).

The API of the public project's retriever, kept::

    from ragcun import GaussianRetriever

    retriever = GaussianRetriever("checkpoints/best_model.pt")
    retriever.add_documents(["Python is a programming language.", "ML is a subset of AI."])
    retriever.retrieve("What is ML?", top_k=1)   # [("ML is a subset of AI.", 7.31)]
    retriever.save_index("index/")               # FAISS index + documents, atomically

Distances are Euclidean (smaller is closer); embeddings are not normalised.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from embshared.errors import UserError
from embshared.files import atomic_dir, write_json, write_jsonl
from embshared.io import read_jsonl
from embshared.search import FaissIndex, IndexLoadError

logger = logging.getLogger(__name__)

INDEX_FORMAT = "ragcun.gaussian_retriever"


class GaussianRetriever:
    """Document retrieval by Euclidean distance between Gaussian embeddings.

    Args:
        model_path: a checkpoint written by training (``best_model.pt``); None builds the
            untrained default (base model + an uncalibrated orthogonal head), which ranks
            like the base model up to the head's scaling; useful only for trying the API.
        embedding_dim: the embedding size you expect; a checkpoint of another size is an
            error. None accepts the checkpoint's.
        use_gpu: encode on CUDA when available (the FAISS index stays on the CPU build).
        batch_size: encoding batch size.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        embedding_dim: int | None = None,
        use_gpu: bool = False,
        batch_size: int = 32,
    ):
        from ragcun.checkpoint import load_model
        from ragcun.model import GaussianEmbeddingGemma, ModelConfig

        if embedding_dim is not None and embedding_dim <= 0:
            raise UserError(f"embedding_dim must be positive, got {embedding_dim}")
        device = "cpu"
        if use_gpu:
            import torch

            if torch.cuda.is_available():
                device = "cuda"
            else:
                logger.warning("use_gpu=True but CUDA is not available; encoding on the CPU")
        requested = ModelConfig(output_dim=embedding_dim)
        if model_path is None:
            logger.warning("no model_path: using an untrained head on the base model")
            self.model = GaussianEmbeddingGemma.from_config(requested, device=device)
        else:
            self.model = load_model(model_path, device=device, requested=requested)
        self.model.eval()
        self.model_path = str(model_path) if model_path is not None else None
        self.embedding_dim = self.model.output_dim
        self.batch_size = batch_size
        self.documents: list[str] = []
        self.index = FaissIndex(self.embedding_dim, metric="l2")

    def __len__(self) -> int:
        return len(self.documents)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Gaussian embeddings (n, embedding_dim) of ``texts``."""
        return self.model.encode(texts, batch_size=self.batch_size, show_progress=show_progress)

    def add_documents(self, documents: list[str], show_progress: bool = False) -> None:
        """Embed ``documents`` and add them to the index."""
        if isinstance(documents, str):
            raise TypeError("add_documents takes a list of strings, got one string")
        documents = list(documents)
        if not documents:
            return
        bad = next((i for i, d in enumerate(documents) if not isinstance(d, str)), None)
        if bad is not None:
            raise TypeError(f"document {bad} is a {type(documents[bad]).__name__}, expected a string")
        vectors = self.encode(documents, show_progress=show_progress)  # (n, dim)
        start = len(self.documents)
        self.index.add([str(start + i) for i in range(len(documents))], vectors)
        self.documents.extend(documents)

    def retrieve_batch(self, queries: list[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each query, up to ``top_k`` (document, Euclidean distance) pairs, nearest first."""
        if not self.documents or top_k <= 0:
            return [[] for _ in queries]
        ids, distances = self.index.search(self.encode(list(queries)), k=top_k)
        return [[(self.documents[int(i)], d) for i, d in zip(row_ids, row_d)] for row_ids, row_d in zip(ids, distances)]

    def retrieve(self, query: str, top_k: int = 5) -> list[tuple[str, float]]:
        """Up to ``top_k`` (document, Euclidean distance) pairs for one query, nearest first."""
        return self.retrieve_batch([query], top_k)[0]

    def clear(self) -> None:
        """Forget every document."""
        self.documents = []
        self.index = FaissIndex(self.embedding_dim, metric="l2")

    def save_index(self, folder: str | os.PathLike) -> None:
        """Write the FAISS index, the documents and a small manifest to ``folder`` (replaced atomically)."""
        if not self.documents:
            raise UserError("nothing to save: no documents were added")
        with atomic_dir(folder, overwrite=True) as tmp:
            self.index.save(tmp / "faiss")
            write_jsonl(tmp / "documents.jsonl", ({"text": d} for d in self.documents))
            write_json(
                tmp / "retriever.json",
                {
                    "format": INDEX_FORMAT,
                    "embedding_dim": self.embedding_dim,
                    "count": len(self.documents),
                    "model_path": self.model_path,
                },
            )

    def load_index(self, folder: str | os.PathLike) -> None:
        """Replace the documents and index with those saved in ``folder``."""
        folder = Path(folder)
        manifest_path = folder / "retriever.json"
        if not manifest_path.is_file():
            raise IndexLoadError(f"{folder}: not a saved GaussianRetriever index (retriever.json missing)")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != INDEX_FORMAT:
            raise IndexLoadError(f"{manifest_path}: not a GaussianRetriever manifest")
        if manifest["embedding_dim"] != self.embedding_dim:
            raise IndexLoadError(
                f"{folder}: index of dimension {manifest['embedding_dim']}, but the model embeds into {self.embedding_dim}"
            )
        index = FaissIndex.load(folder / "faiss")
        documents = [row["text"] for row in read_jsonl(folder / "documents.jsonl")]
        if len(documents) != len(index) or len(documents) != manifest["count"]:
            raise IndexLoadError(f"{folder}: {len(documents)} documents but {len(index)} vectors in the index")
        self.index, self.documents = index, documents
