"""The trained model as a tool: embed records and queries, explain matches."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from embedding_model.config import JsonEmbedConfig
from embedding_model.model import CharCNNEncoder
from embedding_model.model_file import load_model
from embedding_model.records import Segment, segments_to_text
from embedding_model.vocab import UNK, CharVocab
from embshared.runtime import pick_device

logger = logging.getLogger(__name__)


@dataclass
class FieldContribution:
    """How much one field of a hit made it match: the similarity lost when the field is removed."""

    key: str
    value: str
    contribution: float


class JsonEmbedder:
    """A trained character CNN with its vocabulary and config.

    Args:
        encoder: the network (moved to ``device`` by the caller).
        vocab: its character vocabulary.
        cfg: the config it was trained with (``max_chars``, ``ignore_fields``, batch sizes).
        device: where the encoder lives.
    """

    def __init__(self, encoder: CharCNNEncoder, vocab: CharVocab, cfg: JsonEmbedConfig, device: str = "cpu"):
        self.encoder = encoder
        self.vocab = vocab
        self.cfg = cfg
        self.device = device
        self.info: dict = {}
        #: (texts, characters) outside the vocabulary in the last embed_texts call; read as UNK, logged
        self.last_unknown: tuple[int, int] = (0, 0)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> JsonEmbedder:
        """Load a model file (CUDA when available unless ``device`` is given)."""
        device = pick_device(device)
        encoder, vocab, cfg, info = load_model(path, device)
        embedder = cls(encoder, vocab, cfg, device)
        embedder.info = info
        return embedder

    @property
    def dim(self) -> int:
        return self.encoder.projection.out_features

    @torch.inference_mode()
    def embed_texts(
        self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False
    ) -> np.ndarray:
        """(n, dim) float32 unit vectors; an empty text gives a zero vector.

        Texts are batched by length (longest first) so padding costs little, and returned
        in the input order. Characters the model never saw in training (another script, a
        new symbol) are read as UNK, never an error; how many is logged and kept in
        :attr:`last_unknown`.
        """
        batch_size = batch_size or self.cfg.embed_batch_size
        max_chars = self.cfg.max_chars
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -min(len(texts[i]), max_chars))
        order = [i for i in order if texts[i]]
        was_training = self.encoder.training
        self.encoder.eval()
        starts = range(0, len(order), batch_size)
        unknown_texts = unknown_chars = 0
        for start in tqdm(starts, desc="embedding", unit="batch", disable=not show_progress):
            rows = order[start : start + batch_size]
            ids = self.vocab.batch([texts[i] for i in rows], max_chars, self.encoder.min_length)  # (batch, length)
            unknown = (ids == UNK).sum(dim=1)  # (batch,)
            unknown_texts += int((unknown > 0).sum())
            unknown_chars += int(unknown.sum())
            vectors = self.encoder(ids.to(self.device))  # (batch, dim)
            out[rows] = vectors.float().cpu().numpy()
        self.encoder.train(was_training)
        self.last_unknown = (unknown_texts, unknown_chars)
        if unknown_chars:
            logger.info(
                "%d of %d text(s) hold %d character(s) outside the model's vocabulary; they are read as UNK",
                unknown_texts,
                len(texts),
                unknown_chars,
            )
        return out

    def embed_tensor(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, dim) embeddings as a tensor on the model's device, one padded batch (keeps gradients)."""
        ids = self.vocab.batch(list(texts), self.cfg.max_chars, self.encoder.min_length)
        return self.encoder(ids.to(self.device))

    def embed_segments(
        self, segments: Sequence[Sequence[Segment]], batch_size: int | None = None, show_progress: bool = False
    ) -> np.ndarray:
        """(n, dim) embeddings of flattened records."""
        return self.embed_texts([segments_to_text(s) for s in segments], batch_size, show_progress)

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """(n, dim) embeddings of free-text (or ``key=value``) queries."""
        return self.embed_texts([" ".join(q.split()) for q in queries])

    def explain(self, query_vector: np.ndarray, segments: Sequence[Segment]) -> list[FieldContribution]:
        """Each field's contribution to a hit: similarity(record) - similarity(record without the field).

        Returns:
            Fields sorted by contribution, largest first. A positive value means the field
            pulled the record towards the query.
        """
        variants = [segments_to_text(segments)]
        variants += [segments_to_text([s for j, s in enumerate(segments) if j != i]) for i in range(len(segments))]
        vectors = self.embed_texts(variants)  # (1 + n_fields, dim)
        sims = vectors @ np.asarray(query_vector, dtype=np.float32)  # (1 + n_fields,)
        full = float(sims[0])
        out = [FieldContribution(k, v, full - float(s)) for (k, v), s in zip(segments, sims[1:])]
        return sorted(out, key=lambda c: -c.contribution)
