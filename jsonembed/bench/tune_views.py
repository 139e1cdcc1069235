"""Choosing the query-view and noise defaults on the dev split only.

    python jsonembed/bench/tune_views.py --variant base= --variant "noisy=noise_insert_prob=0.1 ..." [--datasets ...]

Each variant is ``name=overrides`` (space-separated ``key=value``; empty for the current
defaults). For every variant and dataset a model is trained from scratch on the records
and scored on the *dev* queries (a seeded 30% of the judged queries, ``common.dev_rest_split``),
clean and misspelled: the char model alone and the default hybrid, beside BM25. The rest
of the queries is never looked at here; ``bench_quality.py`` reports dev and rest
separately for the chosen defaults. Each model is kept as ``bench/runs/tune-<dataset>-<variant>.pt``
(ignored by git) for later analysis; with a teacher (the default), its vectors are cached in
``bench/runs/teacher/`` and shared by the variants that draw the same views. Appends to ``results/default/tuning.jsonl`` (one line per
variant and dataset) and rewrites ``tuning.md`` beside it (or in ``--results-dir``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from common import DATASETS, RESULTS_DIR, RUNS_DIR, dev_rest_split, misspelled_queries

from embedding_model.config import build_config
from embedding_model.model_file import save_model
from embedding_model.retrieval import fusion_settings
from embedding_model.teacher import TeacherTargetCache
from embedding_model.training import train
from embshared.bench import command_line, load_average
from embshared.cli import start_run
from embshared.evaluate import evaluate_retrieval
from embshared.files import write_json, write_text
from embshared.runtime import seed_everything, shared_data_dir
from embshared.search import BM25Index

logger = logging.getLogger("tune_views")
METRICS = ["ndcg@10", "recall@100"]
WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


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
    embedder, result = train(
        cfg, records.segments, show_progress=False, teacher_cache=TeacherTargetCache(RUNS_DIR / "teacher")
    )
    seconds = time.perf_counter() - started
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    info = {**result.summary(), "overrides": overrides}
    save_model(RUNS_DIR / f"tune-{dataset}-{name}.pt", embedder.encoder, embedder.vocab, cfg, info)
    write_json(RUNS_DIR / f"tune-{dataset}-{name}.train.json", info)
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
        fusion = fusion_settings(cfg)
        if key not in bm25_cache:  # the rankers that do not depend on the variant, as bench_quality.py builds them
            bm25 = BM25Index().index(doc_ids, corpus.values())
            bm25_cache[key] = (
                lookup_fn(bm25.score_matrix(texts), row_of),
                lookup_fn(fusion.ngram_index(doc_ids, list(corpus.values())).score_matrix(texts), row_of),
                lookup_fn(bm25.knows_all_terms(texts), row_of),
            )
        bm25_fn, ngram_fn, known_fn = bm25_cache[key]
        dense_fn = lookup_fn(embedder.embed_queries(texts) @ doc_vectors.T, row_of)
        hybrid_fn = fusion.score_fn(dense_fn, bm25_fn, ngram_fn, known_fn)
        for system, fn in (("BM25", bm25_fn), ("char model", dense_fn), ("hybrid", hybrid_fn)):
            out[f"{kind}/{system}"] = evaluate_retrieval(qs, corpus, dev_qrels, fn, METRICS, doc_ids=doc_ids)
        out[f"{kind}/hybrid by weight"] = {
            str(w): evaluate_retrieval(
                qs,
                corpus,
                dev_qrels,
                # the model's weight w, the n-grams' as configured where it fits beside w
                fusion_settings(cfg, "convex", w, min(fusion.convex_ngram_weight, round(1 - w, 6))).score_fn(
                    dense_fn, bm25_fn, ngram_fn, known_fn
                ),
                ["ndcg@10"],
                doc_ids=doc_ids,
            )["ndcg@10"]
            for w in WEIGHTS
        }
    return out


def select(rows: list[dict], eligible: list[str]) -> tuple[str, float, list[str]]:
    """The (variant, convex weight) with the best mean dev NDCG@10 of the hybrid on misspelled
    queries over the datasets, among those whose hybrid on clean dev queries is at least BM25's
    on every dataset (the issue's goals: typo gain, no clean loss).

    Returns:
        (variant name, weight, its overrides).
    """
    by_variant: dict[str, dict[str, dict]] = {}
    for row in rows:
        if row["variant"] in eligible and "clean/hybrid by weight" in row:
            by_variant.setdefault(row["variant"], {})[row["dataset"]] = row
    datasets = {d for r in by_variant.values() for d in r}
    best, best_score = None, -1.0
    for variant, per_dataset in by_variant.items():
        if set(per_dataset) != datasets:
            continue
        for w in WEIGHTS:
            key = str(w)
            if any(r["clean/hybrid by weight"][key] < r["clean/BM25"]["ndcg@10"] for r in per_dataset.values()):
                continue
            score = sum(r["misspelled/hybrid by weight"][key] for r in per_dataset.values()) / len(per_dataset)
            if score > best_score:
                best, best_score = (variant, w, next(iter(per_dataset.values()))["overrides"]), score
    if best is None:
        raise SystemExit("no eligible variant keeps the hybrid at or above BM25 on clean dev queries")
    return best


def markdown(rows: list[dict]) -> str:
    lines = [
        "# jsonembed: tuning the query views and noise on the dev queries",
        "",
        "Dev split only (a seeded 30% of each dataset's judged queries); NDCG@10, clean and misspelled "
        "(40% of the 4+ letter words of each query get one typo). Produced by `bench/tune_views.py`; one "
        "model trained from scratch per row. The hybrid columns use the row's own convex weight (0.2 unless "
        "overridden); the sweep gives clean / misspelled hybrid NDCG@10 for each weight of the char model. "
        "Defaults are chosen by `tune_views.py --select`: the best mean misspelled-query hybrid NDCG@10 over "
        "the datasets among (variant, weight) pairs whose clean hybrid is at least BM25 on every dataset.",
        "",
        "| dataset | variant | overrides | BM25 clean | char clean | hybrid clean | BM25 typo | char typo "
        "| hybrid typo | hybrid clean / typo by weight | train s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        cells = [
            f"{r[f'{k}/{s}']['ndcg@10']:.4f}" for k in ("clean", "misspelled") for s in ("BM25", "char model", "hybrid")
        ]
        sweep = ", ".join(
            f"{w}: {r['clean/hybrid by weight'][w]:.3f} / {r['misspelled/hybrid by weight'][w]:.3f}"
            for w in r.get("clean/hybrid by weight", {})
        )
        lines.append(
            f"| {r['dataset']} | {r['variant']} | `{' '.join(r['overrides']) or '(defaults)'}` | "
            + " | ".join(cells)
            + f" | {sweep} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], help="name=space-separated key=value overrides")
    parser.add_argument("--datasets", default="scifact,cranfield")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where tuning.{jsonl,md} go")
    parser.add_argument("--markdown-only", action="store_true")
    parser.add_argument(
        "--select",
        default=None,
        help="comma-separated variants eligible as defaults: print 'variant|overrides' of the choice (see select())",
    )
    args = parser.parse_args(argv)
    start_run(threads=args.threads)
    results = Path(args.results_dir)
    log = results / "tuning.jsonl"
    if not args.markdown_only:
        folder = shared_data_dir()
        bm25_cache: dict = {}
        for dataset in [d for d in args.datasets.split(",") if d]:
            data = DATASETS[dataset](folder / dataset)
            for spec in args.variant:
                name, _, rest = spec.partition("=")
                row = evaluate_variant(name, shlex.split(rest), dataset, data, bm25_cache)
                row["command"] = command_line()
                results.mkdir(parents=True, exist_ok=True)
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(markdown([row]).splitlines()[-1], flush=True)
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    write_text(results / "tuning.md", markdown(rows))
    if args.select:
        variant, weight, overrides = select(rows, args.select.split(","))
        logger.info("selected %s with convex weight %s", variant, weight)
        print(variant + "|" + " ".join([*overrides, f"convex_dense_weight={weight}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
