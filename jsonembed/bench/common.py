"""Shared pieces of the jsonembed benchmarks: datasets as records, the dev / rest query split, misspelled queries."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from embedding_model.records import RecordSet, load_records, records_from
from embedding_model.typos import misspell
from embshared.io import Records, load_beir, load_cranfield

BENCH_DIR = Path(__file__).resolve().parent
#: the default run's results (a variant goes to results/<variant>/ through --results-dir)
RESULTS_DIR = BENCH_DIR / "results" / "default"
RUNS_DIR = BENCH_DIR / "runs"


def scifact(folder: Path) -> tuple[RecordSet, dict[str, str], dict[str, dict[str, int]]]:
    """SciFact train split: records are the ``{"_id", "title", "text"}`` objects of corpus.jsonl."""
    beir = load_beir(folder, split="train")
    records = load_records(folder / "corpus.jsonl", ignore_fields=["_id"], id_field="_id")  # metadata is {}: no text
    return records, beir.queries, beir.qrels


def cranfield(folder: Path) -> tuple[RecordSet, dict[str, str], dict[str, dict[str, int]]]:
    """Cranfield 1400 as ``{"_id", "title", "author", "source", "text"}`` records.

    Two documents (471 and 995) are empty in the source file; they are skipped (one qrel
    names 995, so that judgement is unreachable for every system alike).
    """
    collection = load_cranfield(folder)
    rows = Records(collection.records, path=str(folder / "cran.all.1400"))
    records = records_from(rows, ignore_fields=["_id"], skip_invalid=True, id_field="_id")
    return records, collection.queries, collection.qrels


DATASETS = {"scifact": scifact, "cranfield": cranfield}


#: config keys read only at search time: a model trained under configs differing only in these is the same model
SEARCH_KEYS = frozenset(
    {
        "device",
        "embed_batch_size",
        "fusion",
        "rrf_k",
        "rrf_depth",
        "rrf_dense_weight",
        "convex_dense_weight",
        "convex_ngram_weight",
        "ngram_max_df",
        "convex_known_dense_weight",
        "convex_known_ngram_weight",
    }
)


#: config keys read only when distilling: without a teacher, configs differing only in these train the same model
DISTILL_KEYS = frozenset(
    {"teacher_views", "distill_loss", "distill_weight", "nt_xent_weight", "noise_case_prob", "noise_space_prob"}
)


def same_training(a: dict, b: dict) -> bool:
    """True if two resolved configs (as dicts) train the same model (they may differ in search-time keys,
    and, when neither has a teacher, in the distillation keys)."""
    ignored = SEARCH_KEYS | (DISTILL_KEYS if a.get("teacher") is None and b.get("teacher") is None else frozenset())
    return {k: v for k, v in a.items() if k not in ignored} == {k: v for k, v in b.items() if k not in ignored}


def run_name(dataset: str, cfg) -> str:
    """The bench's model file stem: ``scifact`` (no teacher, as before distillation) or ``scifact-distilled``."""
    return dataset if cfg.teacher is None else f"{dataset}-distilled"


#: the typo track: each query word of TYPO_MIN_LETTERS+ letters gets one edit with TYPO_WORD_PROB
TYPO_WORD_PROB = 0.4
TYPO_MIN_LETTERS = 4
TYPO_SEED = 17
#: share of each dataset's judged queries in the dev split (the only queries settings are chosen on)
DEV_FRACTION = 0.3
DEV_SEED = 42


def misspelled_queries(queries: dict[str, str], seed: int = TYPO_SEED) -> dict[str, str]:
    """Every query with seeded typos (:func:`embedding_model.typos.misspell`, 40% of its 4+ letter words).

    Each query has its own generator seeded by ``(seed, query id)``, so a query's typos do
    not depend on which other queries are in the set.
    """
    return {
        qid: misspell(text, random.Random(f"typos:{seed}:{qid}"), TYPO_WORD_PROB, TYPO_MIN_LETTERS)[0]
        for qid, text in queries.items()
    }


def dev_rest_split(query_ids, fraction: float = DEV_FRACTION, seed: int = DEV_SEED) -> tuple[list[str], list[str]]:
    """(dev ids, rest ids): a seeded random ``fraction`` of the judged queries, sorted."""
    ids = sorted(query_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_dev = round(len(ids) * fraction)
    return sorted(ids[i] for i in order[:n_dev]), sorted(ids[i] for i in order[n_dev:])
