"""Training examples: loading (query, positive[, negative]) records, batching, false-negative masks."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from embshared.io import DataError, load_beir, normalise_examples, read_records

NEGATIVE_KEYS = ("negative", "neg")


@dataclass(frozen=True)
class TrainExample:
    """One training triplet; ``negative`` is None for a plain pair."""

    query: str
    positive: str
    negative: str | None = None


def load_training_examples(path: str | os.PathLike, split: str = "train") -> list[TrainExample]:
    """Read training examples from a JSON array / JSONL / CSV file or a BEIR folder.

    Records are ``{"query", "positive", "negative"}`` triplets or ``{"query", "positive"}``
    pairs (the aliases of :data:`embshared.io.PAIR_FORMATS` are accepted); a BEIR folder
    gives one pair per relevant qrel of ``split``.

    Raises:
        DataError: a file of the wrong shape, a record without a required field, a similarity
            data set, or negatives given for some records only (naming file and line).
    """
    path = Path(path)
    if path.is_dir():
        rows = load_beir(path, split=split).to_pairs().rows
        return [TrainExample(r["query"], r["document"]) for r in rows]
    records = read_records(path)
    examples = normalise_examples(records)
    if examples.format == "similarity":
        raise DataError(
            path, "expected {query, positive[, negative]} records, got {doc1, doc2, similarity} (a similarity set)"
        )
    if examples.format == "triplets":
        return [TrainExample(r["query"], r["positive"], r["negative"]) for r in examples.rows]
    for index, record in enumerate(records):
        key = next((k for k in NEGATIVE_KEYS if k in record), None)
        if key is not None:
            raise DataError(
                path,
                f"field '{key}' given here but not in the first record; give negatives for every record or none",
                records.line_of(index),
            )
    return [TrainExample(r["query"], r["document"]) for r in examples.rows]


def positives_by_query(examples: Sequence[TrainExample]) -> dict[str, set[str]]:
    """Every positive text of each query text (queries with several relevant documents)."""
    out: dict[str, set[str]] = {}
    for example in examples:
        out.setdefault(example.query, set()).add(example.positive)
    return out


def exclusion_mask(batch: Sequence[TrainExample], known_positives: dict[str, set[str]]) -> torch.Tensor:
    """(B, C) bool: candidate j (positives, then negatives) is a positive of query i.

    Such in-batch "negatives" are false negatives (a duplicate document, or a second
    relevant document of the same query) and are left out of the contrastive loss.
    """
    candidates = [e.positive for e in batch]
    if batch and batch[0].negative is not None:
        candidates += [e.negative for e in batch]
    mask = torch.zeros(len(batch), len(candidates), dtype=torch.bool)
    for i, example in enumerate(batch):
        relevant = known_positives.get(example.query, {example.positive}) | {example.positive}
        for j, text in enumerate(candidates):
            mask[i, j] = text in relevant
    return mask


def iterate_batches(
    examples: Sequence[TrainExample], batch_size: int, generator: torch.Generator | None = None
) -> Iterator[list[TrainExample]]:
    """Batches of ``batch_size`` in a random order (fixed order if no generator).

    A last batch of a single example is dropped: in-batch negatives and the per-batch
    statistics of SIGReg and the variance term need at least two.
    """
    order = (
        torch.randperm(len(examples), generator=generator).tolist() if generator is not None else range(len(examples))
    )
    order = list(order)
    for start in range(0, len(order), batch_size):
        batch = [examples[i] for i in order[start : start + batch_size]]
        if len(batch) >= 2:
            yield batch


def count_batches(n_examples: int, batch_size: int) -> int:
    """How many batches :func:`iterate_batches` yields."""
    full, rest = divmod(n_examples, batch_size)
    return full + int(rest >= 2)
