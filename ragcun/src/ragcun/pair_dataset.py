"""The dataset ``prepare_data`` writes: :class:`PrepareConfig` and :func:`prepare`, which read
documents (inverse-cloze pairs) or a CSV, split by document and write ``train.json``,
``val.json`` and ``test_eval.json`` (the steps are in :mod:`ragcun.preparation`)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embshared.config import ConfigError
from embshared.files import write_json
from ragcun.preparation import (
    add_negatives,
    check_fractions,
    eval_set,
    ict_pairs,
    read_csv_examples,
    read_documents,
    split_groups,
)

logger = logging.getLogger("ragcun.prepare_data")

OUTPUT_KEYS = ("query", "positive", "negative", "doc_id")


@dataclass
class PrepareConfig:
    """Options of prepare_data (those of the public guide, plus the ICT knobs)."""

    documents: str | None = field(
        default=None, metadata={"help": "documents: text (one per line) or JSONL with 'text'"}
    )
    generate_pairs: bool = field(default=False, metadata={"help": "make inverse-cloze pairs from --documents"})
    num_pairs: int | None = field(default=None, metadata={"help": "pairs to generate (default: one per document)"})
    add_negatives: bool = field(default=False, metadata={"help": "add a negative passage from another document"})
    csv_file: str | None = field(default=None, metadata={"help": "CSV with columns query,positive[,negative]"})
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1], metadata={"help": "train val test fractions"})
    output_dir: str = field(
        default="data/processed", metadata={"help": "where train.json, val.json, test_eval.json go"}
    )
    min_query_words: int = field(default=5, metadata={"help": "shortest sentence used as a pseudo-query"})
    max_query_fraction: float = field(default=0.5, metadata={"help": "share of a document's sentences used as queries"})
    seed: int = field(default=42, metadata={"help": "random seed"})

    def validate(self) -> None:
        check_fractions(self.split)
        if self.num_pairs is not None and self.num_pairs <= 0:
            raise ValueError(f"num_pairs must be positive, got {self.num_pairs}")
        if not 0 < self.max_query_fraction < 1:
            raise ValueError(f"max_query_fraction must lie in (0, 1), got {self.max_query_fraction}")


def prepare(config: PrepareConfig) -> dict[str, Any]:
    """Read, pair, split and write; returns counts. Nothing is written if any input is bad."""
    if bool(config.documents) == bool(config.csv_file):
        raise ConfigError("give exactly one of --documents or --csv_file")
    if config.documents and not config.generate_pairs:
        raise ConfigError("--documents needs --generate_pairs (pairs are generated from documents)")
    rng = random.Random(config.seed)
    if config.documents:
        documents = read_documents(config.documents)
        try:
            pairs, corpus = ict_pairs(
                documents, config.num_pairs, rng, config.min_query_words, config.max_query_fraction
            )
        except ValueError as exc:
            raise ConfigError(f"{config.documents}: {exc}") from None
        groups = [d.doc_id for d in documents]
    else:
        pairs, corpus = read_csv_examples(config.csv_file)
        if config.num_pairs is not None and config.num_pairs < len(pairs):
            pairs = rng.sample(pairs, config.num_pairs)
        groups = [p["doc_id"] for p in pairs]
    split_of = split_groups(groups, config.split, rng)
    missing_negatives = 0
    if config.add_negatives and not all("negative" in p for p in pairs):
        missing_negatives = add_negatives(pairs, corpus, split_of, rng)
    by_split = {name: [p for p in pairs if split_of[p["doc_id"]] == name] for name in ("train", "val", "test")}
    if not by_split["train"]:
        raise ConfigError("the train split is empty: too few documents for these fractions")
    test_ids = [d for d in corpus if split_of.get(d) == "test"]
    test_ids += [p["negative_id"] for p in by_split["test"] if "negative_id" in p]
    test_corpus = {d: corpus[d] for d in dict.fromkeys(test_ids)}

    out = Path(config.output_dir)
    written = {}
    for name, file_name in (("train", "train.json"), ("val", "val.json")):
        rows = [{k: p[k] for k in OUTPUT_KEYS if k in p} for p in by_split[name]]
        if rows:
            write_json(out / file_name, rows)
            written[file_name] = len(rows)
        elif config.split[("train", "val").index(name)] > 0:
            logger.warning("the %s split is empty; %s not written", name, file_name)
    if by_split["test"]:
        data = eval_set(by_split["test"], test_corpus)
        write_json(out / "test_eval.json", data)
        written["test_eval.json"] = len(data["queries"])
    elif config.split[2] > 0:
        logger.warning("the test split is empty; test_eval.json not written")
    documents_per_split = {
        name: sum(1 for g in set(groups) if split_of[g] == name) for name in ("train", "val", "test")
    }
    summary = {
        "pairs": len(pairs),
        "documents_per_split": documents_per_split,
        "pairs_per_split": {k: len(v) for k, v in by_split.items()},
        "test_corpus": len(test_corpus),
        "written": written,
    }
    if missing_negatives:
        summary["pairs_without_negative"] = missing_negatives
    return summary
