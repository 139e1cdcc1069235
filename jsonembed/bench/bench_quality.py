"""Quality benchmark: jsonembed vs BM25 vs their RRF hybrid, with the packaged MiniLM as a reference.

    python jsonembed/bench/bench_quality.py [--datasets scifact,cranfield] [--reuse] [key=value ...]

For each dataset a model is trained from scratch on the records alone (no queries, no
labels), then Recall@10, Recall@100, NDCG@10 and MRR@10 are computed with
``embshared.evaluate`` for BM25 (``embshared.search.BM25Index``), jsonembed, jsonembed + BM25
(reciprocal-rank fusion, as ``search --hybrid``), all-MiniLM-L6-v2 and MiniLM + BM25. All
systems read the same text: the record's values (BM25, MiniLM) or its ``key=value`` text
(jsonembed). Writes ``results/quality.json`` and ``results/quality.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time

import numpy as np
from common import DATASETS, RESULTS_DIR, RUNS_DIR, machine_facts, machine_note

from embedding_model.config import build_config
from embedding_model.embedder import JsonEmbedder
from embedding_model.evaluation import evaluate_systems
from embedding_model.model_file import save_model
from embedding_model.retrieval import rrf_score_fn
from embedding_model.training import train
from embshared.config import config_to_dict
from embshared.evaluate import dense_score_fn, evaluate_retrieval, format_table, sentence_transformer_encoder
from embshared.files import write_json, write_text
from embshared.runtime import seed_everything, setup_logging, shared_data_dir
from embshared.search import BM25Index

logger = logging.getLogger("bench_quality")
METRICS = ["recall@10", "recall@100", "ndcg@10", "mrr@10"]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def train_or_reuse(name: str, cfg, records, reuse: bool) -> tuple[JsonEmbedder, dict]:
    """Train on the records (or reuse bench/runs/<name>.pt when trained with the same config)."""
    path = RUNS_DIR / f"{name}.pt"
    info_path = RUNS_DIR / f"{name}.train.json"
    if reuse and path.is_file() and info_path.is_file():
        embedder = JsonEmbedder.load(path)
        if config_to_dict(embedder.cfg) == config_to_dict(cfg):
            logger.info("%s: reusing %s", name, path)
            return embedder, json.loads(info_path.read_text())
    seed_everything(cfg.seed)
    embedder, result = train(cfg, records.segments, device=embedder_device(cfg))
    info = {
        "train_records": result.train_records,
        "val_records": result.val_records,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "train_records_per_second": round(result.records_per_second, 1),
        "final_validation": result.validation[-1],
        "validation": result.validation,
    }
    save_model(path, embedder.encoder, embedder.vocab, cfg, info)
    write_json(info_path, info)
    return embedder, info


def embedder_device(cfg) -> str:
    from embshared.runtime import pick_device

    return pick_device(cfg.device or None)


def minilm_embeddings(name: str, texts: list[str]) -> tuple[np.ndarray, object, float]:
    """MiniLM document embeddings (cached in bench/runs by a hash of the texts), the model, and seconds."""
    from embshared.models import load_sentence_transformer

    model = load_sentence_transformer(MINILM)
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]
    path = RUNS_DIR / f"minilm-{name}-{digest}.npy"
    started = time.perf_counter()
    if path.is_file():
        matrix = np.load(path)
    else:
        matrix = model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=True)
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        np.save(path, matrix)
    return matrix, model, time.perf_counter() - started


def run_dataset(name: str, folder, cfg, reuse: bool, with_minilm: bool) -> dict:
    records, queries, qrels = DATASETS[name](folder)
    logger.info("%s: %d records (%d skipped), %d judged queries", name, len(records), records.skipped, len(qrels))
    started = time.perf_counter()
    embedder, train_info = train_or_reuse(name, cfg, records, reuse)
    embed_started = time.perf_counter()
    doc_vectors = embedder.embed_segments(records.segments, show_progress=True)
    embed_seconds = time.perf_counter() - embed_started
    systems = evaluate_systems(embedder, records, queries, qrels, METRICS, doc_vectors)
    out = {
        "records": len(records),
        "skipped_records": records.skipped,
        "judged_queries": len(qrels),
        "mean_record_chars": round(float(np.mean([len(t) for t in records.texts()])), 1),
        "train": train_info,
        "embed_seconds": round(embed_seconds, 1),
        "embed_records_per_second": round(len(records) / embed_seconds, 1),
    }
    if with_minilm:
        doc_ids = list(records.ids)
        texts = records.plain_texts()
        matrix, model, seconds = minilm_embeddings(name, texts)
        encode = sentence_transformer_encoder(model)
        dense = dense_score_fn(encode, matrix, metric="cosine")
        corpus = dict(zip(doc_ids, texts))
        systems["all-MiniLM-L6-v2 (reference)"] = evaluate_retrieval(
            queries, corpus, qrels, dense, METRICS, doc_ids=doc_ids
        )
        bm25 = BM25Index().index(doc_ids, texts).score_matrix
        fused = rrf_score_fn([dense, bm25], depth=cfg.rrf_depth, k=cfg.rrf_k, floors=[None, 0.0])
        systems["MiniLM + BM25 (RRF)"] = evaluate_retrieval(queries, corpus, qrels, fused, METRICS, doc_ids=doc_ids)
        out["minilm_embed_seconds"] = round(seconds, 1)
    out["systems"] = systems
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def markdown(report: dict) -> str:
    lines = [
        "# jsonembed quality benchmark",
        "",
        f"Command: `{report['command']}`",
        "",
        "Every jsonembed model is trained from scratch on the dataset's records only (no queries, no labels); "
        "BM25 is `embshared.search.BM25Index` (bm25s, Lucene BM25, English stop words, Snowball stemming) over "
        "the record's values; the hybrid is reciprocal-rank fusion (k = "
        f"{report['config']['rrf_k']}, top {report['config']['rrf_depth']} of each side), the same as "
        "`search --hybrid`. all-MiniLM-L6-v2 is the packaged pretrained model, a reference, not a peer: "
        "it was trained on over a billion sentence pairs.",
        "",
    ]
    for name, data in report["datasets"].items():
        train_info = data["train"]
        val = train_info.get("final_validation", {})
        lines += [
            f"## {name}",
            "",
            f"{data['records']} records ({data['skipped_records']} skipped), {data['judged_queries']} judged "
            f"queries, mean record text {data['mean_record_chars']:.0f} characters (the model reads the first "
            f"{report['config']['max_chars']}).",
            "",
            format_table(data["systems"], METRICS),
            "",
            f"Training: {train_info['train_records']} records, {train_info['steps']} steps in "
            f"{train_info['seconds']:.0f} s ({train_info['train_records_per_second']:.0f} records/s); held-out "
            f"self-retrieval accuracy@1 {val.get('accuracy@1', float('nan')):.3f}. Embedding the records: "
            f"{data['embed_records_per_second']:.0f} records/s.",
            "",
        ]
        if name == "cranfield":
            lines += [
                "Cranfield qrels: graded relevance = 5 - code (code 1 'complete answer' -> 4 ... code 4 -> 1); the "
                "225 lines with code -1 (one per query, the query's own source document) are not relevance "
                "judgements and are left out. Query ids are positions in cran.qry, as the qrels use them.",
                "",
            ]
    lines += [machine_note(report["machine"], report.get("end_load_average")), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="jsonembed config overrides")
    parser.add_argument("--datasets", default="scifact,cranfield")
    parser.add_argument("--config", default=None, help="config file (default: jsonembed/config/default.yaml)")
    parser.add_argument("--reuse", action="store_true", help="reuse models in bench/runs trained with the same config")
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM reference")
    args = parser.parse_intermixed_args(argv)
    setup_logging()
    cfg = build_config(args.config, args.overrides)
    data = shared_data_dir()
    report = {
        "command": "python jsonembed/bench/bench_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_facts(),
        "config": config_to_dict(cfg),
        "datasets": {},
    }
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        folder = data / name
        if not folder.is_dir():
            logger.warning("%s not found, skipping %s", folder, name)
            continue
        report["datasets"][name] = run_dataset(name, folder, cfg, args.reuse, not args.no_minilm)
        print(f"\n{name}\n" + format_table(report["datasets"][name]["systems"], METRICS), flush=True)
    import os

    report["end_load_average"] = [round(x, 2) for x in os.getloadavg()]
    if not report["datasets"]:
        logger.warning("no dataset found under %s; nothing written", data)
        return 0
    write_json(RESULTS_DIR / "quality.json", report)
    write_text(RESULTS_DIR / "quality.md", markdown(report))
    print(f"wrote {RESULTS_DIR / 'quality.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
