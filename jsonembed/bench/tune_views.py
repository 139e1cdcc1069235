"""Choosing the query-view and noise defaults on the dev split only.

    python jsonembed/bench/tune_views.py --variant base= --variant "noisy=noise_insert_prob=0.1 ..." [--datasets ...]

Each variant is ``name=overrides`` (space-separated ``key=value``; empty for the current
defaults). For every variant and dataset a model is trained from scratch on the records
and scored on the *dev* queries (a seeded 30% of the judged queries, ``common.dev_rest_split``),
clean and misspelled: the char model alone and the default hybrid, beside BM25. The rest
of the queries is never looked at here; ``bench_quality.py`` reports dev and rest
separately for the chosen defaults. Appends to ``results/tuning.jsonl`` (one line per
variant and dataset) and rewrites ``results/tuning.md`` from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time

from common import DATASETS, RESULTS_DIR, dev_rest_split, misspelled_queries

from embedding_model.config import build_config
from embedding_model.retrieval import fusion_settings
from embedding_model.training import train
from embshared.bench import command_line, load_average
from embshared.evaluate import evaluate_retrieval
from embshared.files import write_text
from embshared.runtime import seed_everything, setup_logging, shared_data_dir
from embshared.search import BM25Index

logger = logging.getLogger("tune_views")
METRICS = ["ndcg@10", "recall@100"]
LOG = RESULTS_DIR / "tuning.jsonl"


def lookup_fn(matrix, row_of):
    return lambda texts: matrix[[row_of[t] for t in texts]]


def evaluate_variant(name: str, overrides: list[str], dataset: str, data, bm25_cache: dict) -> dict:
    records, queries, qrels = data
    dev, _ = dev_rest_split([q for q in qrels if q in queries])
    sets = {"clean": {q: queries[q] for q in dev}}
    sets["misspelled"] = misspelled_queries(sets["clean"])
    dev_qrels = {q: qrels[q] for q in dev}
    cfg = build_config(None, overrides)
    seed_everything(cfg.seed)
    started = time.perf_counter()
    embedder, result = train(cfg, records.segments, show_progress=False)
    seconds = time.perf_counter() - started
    doc_ids = list(records.ids)
    corpus = dict(zip(doc_ids, records.plain_texts()))
    doc_vectors = embedder.embed_segments(records.segments)
    out = {
        "variant": name,
        "overrides": overrides,
        "dataset": dataset,
        "train_seconds": round(seconds, 1),
        "self_retrieval": result.validation[-1].get("accuracy@1"),
        "load_average": load_average(),
    }
    for kind, qs in sets.items():
        texts = list(dict.fromkeys(qs.values()))
        row_of = {t: i for i, t in enumerate(texts)}
        key = (dataset, kind)
        if key not in bm25_cache:
            bm25_cache[key] = lookup_fn(BM25Index().index(doc_ids, corpus.values()).score_matrix(texts), row_of)
        bm25_fn = bm25_cache[key]
        dense_fn = lookup_fn(embedder.embed_queries(texts) @ doc_vectors.T, row_of)
        hybrid_fn = fusion_settings(cfg).score_fn(dense_fn, bm25_fn)
        for system, fn in (("BM25", bm25_fn), ("char model", dense_fn), ("hybrid", hybrid_fn)):
            out[f"{kind}/{system}"] = evaluate_retrieval(qs, corpus, dev_qrels, fn, METRICS, doc_ids=doc_ids)
    return out


def markdown(rows: list[dict]) -> str:
    lines = [
        "# jsonembed: tuning the query views and noise on the dev queries",
        "",
        "Dev split only (a seeded 30% of each dataset's judged queries); NDCG@10, clean and misspelled "
        "(40% of the 4+ letter words of each query get one typo). Produced by `bench/tune_views.py`; one "
        "model trained from scratch per row.",
        "",
        "| dataset | variant | overrides | BM25 clean | char clean | hybrid clean | BM25 typo | char typo "
        "| hybrid typo | train s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [
            f"{r[f'{k}/{s}']['ndcg@10']:.4f}" for k in ("clean", "misspelled") for s in ("BM25", "char model", "hybrid")
        ]
        lines.append(
            f"| {r['dataset']} | {r['variant']} | `{' '.join(r['overrides']) or '(defaults)'}` | "
            + " | ".join(cells)
            + f" | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], help="name=space-separated key=value overrides")
    parser.add_argument("--datasets", default="scifact,cranfield")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--markdown-only", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    if not args.markdown_only:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        folder = shared_data_dir()
        bm25_cache: dict = {}
        for dataset in [d for d in args.datasets.split(",") if d]:
            data = DATASETS[dataset](folder / dataset)
            for spec in args.variant:
                name, _, rest = spec.partition("=")
                row = evaluate_variant(name, shlex.split(rest), dataset, data, bm25_cache)
                row["command"] = command_line()
                RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                with open(LOG, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(markdown([row]).splitlines()[-1], flush=True)
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    write_text(RESULTS_DIR / "tuning.md", markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
