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
from common import DATASETS, RESULTS_DIR, RUNS_DIR

from embedding_model.config import build_config
from embedding_model.embedder import JsonEmbedder
from embedding_model.model_file import save_model
from embedding_model.retrieval import fusion_settings
from embedding_model.training import train
from embshared.bench import machine_facts, machine_note
from embshared.config import config_to_dict
from embshared.evaluate import evaluate_retrieval, format_table, sentence_transformer_encoder
from embshared.files import write_json, write_text
from embshared.fusion import FUSIONS
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


#: weights of the model tried for each fusion (BM25's RRF weight is 1; convex gives BM25 1 - w)
SWEEPS = {"rrf": (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), "convex": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)}


def lookup_fn(matrix: np.ndarray, row_of: dict[str, int]):
    """A score function over precomputed (n_queries, n_docs) scores, found by query text."""
    return lambda texts: matrix[[row_of[t] for t in texts]]


def fusion_study(method, dense_fn, bm25_fn, queries, corpus, qrels, doc_ids, cfg) -> dict:
    """Hybrid quality as a function of the model's weight, and a 2-fold cross-validated weight.

    The folds split the judged queries in two at random (seeded); the weight with the best
    NDCG@10 on one fold is applied to the other, so no query is scored with a weight chosen
    on it.
    """

    def hybrid(weight: float, subset: list[str]) -> dict[str, float]:
        fn = fusion_settings(cfg, method, weight).score_fn(dense_fn, bm25_fn)
        sub_queries = {q: queries[q] for q in subset}
        sub_qrels = {q: qrels[q] for q in subset}
        return evaluate_retrieval(sub_queries, corpus, sub_qrels, fn, METRICS, doc_ids=doc_ids)

    judged = sorted(q for q in qrels if q in queries)
    sweep = {str(w): hybrid(w, judged) for w in SWEEPS[method]}
    order = np.random.default_rng(cfg.seed).permutation(len(judged))
    folds = [sorted(judged[i] for i in order[: len(order) // 2]), sorted(judged[i] for i in order[len(order) // 2 :])]
    chosen, parts = [], []
    for tune, test in ((folds[0], folds[1]), (folds[1], folds[0])):
        best = max(SWEEPS[method], key=lambda w: hybrid(w, tune)["ndcg@10"])
        chosen.append(best)
        parts.append((len(test), hybrid(best, test)))
    total = sum(n for n, _ in parts)
    cross_validated = {m: sum(n * r[m] for n, r in parts) / total for m in METRICS}
    return {"sweep": sweep, "cv_weights": chosen, "cross_validated": cross_validated}


def run_dataset(name: str, folder, cfg, reuse: bool, with_minilm: bool) -> dict:
    records, queries, qrels = DATASETS[name](folder)
    queries = {q: t for q, t in queries.items() if q in qrels}
    logger.info("%s: %d records (%d skipped), %d judged queries", name, len(records), records.skipped, len(qrels))
    started = time.perf_counter()
    embedder, train_info = train_or_reuse(name, cfg, records, reuse)
    embed_started = time.perf_counter()
    doc_vectors = embedder.embed_segments(records.segments, show_progress=True)
    embed_seconds = time.perf_counter() - embed_started
    doc_ids = list(records.ids)
    texts = records.plain_texts()
    corpus = dict(zip(doc_ids, texts))
    query_texts = list(dict.fromkeys(queries.values()))
    row_of = {t: i for i, t in enumerate(query_texts)}
    dense = embedder.embed_queries(query_texts) @ doc_vectors.T  # (n_queries, n_docs) cosine
    bm25 = BM25Index().index(doc_ids, texts).score_matrix(query_texts)  # (n_queries, n_docs)

    def evaluate(fn) -> dict[str, float]:
        return evaluate_retrieval(queries, corpus, qrels, fn, METRICS, doc_ids=doc_ids)

    dense_fn, bm25_fn = lookup_fn(dense, row_of), lookup_fn(bm25, row_of)
    systems = {"BM25": evaluate(bm25_fn), "jsonembed": evaluate(dense_fn)}
    equal = fusion_settings(cfg, "rrf", 1.0)
    systems["jsonembed + BM25 (RRF, equal weights)"] = evaluate(equal.score_fn(dense_fn, bm25_fn))
    studies = {}
    for method in FUSIONS:
        settings = fusion_settings(cfg, method)
        mark = " = search --hybrid" if method == cfg.fusion else ""
        systems[f"jsonembed + BM25 ({settings.label()}, default{mark})"] = evaluate(
            settings.score_fn(dense_fn, bm25_fn)
        )
        studies[method] = fusion_study(method, dense_fn, bm25_fn, queries, corpus, qrels, doc_ids, cfg)
        systems[f"jsonembed + BM25 ({method}, weight by 2-fold CV)"] = studies[method]["cross_validated"]
    out = {
        "records": len(records),
        "skipped_records": records.skipped,
        "judged_queries": len(qrels),
        "mean_record_chars": round(float(np.mean([len(t) for t in records.texts()])), 1),
        "train": train_info,
        "embed_seconds": round(embed_seconds, 1),
        "embed_records_per_second": round(len(records) / embed_seconds, 1),
        "fusion_sweeps": {m: st["sweep"] for m, st in studies.items()},
        "cv_weights": {m: st["cv_weights"] for m, st in studies.items()},
    }
    if with_minilm:
        matrix, model, seconds = minilm_embeddings(name, texts)
        minilm_q = sentence_transformer_encoder(model)(query_texts)
        minilm_q = minilm_q / np.linalg.norm(minilm_q, axis=1, keepdims=True)
        minilm_d = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        minilm_fn = lookup_fn(minilm_q @ minilm_d.T, row_of)
        systems["all-MiniLM-L6-v2 (reference)"] = evaluate(minilm_fn)
        systems["MiniLM + BM25 (RRF, equal weights)"] = evaluate(
            fusion_settings(cfg, "rrf", 1.0).score_fn(minilm_fn, bm25_fn)
        )
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
        "the record's values. Two fusions of jsonembed with BM25: convex = (1 - w) * z(BM25) + w * z(cosine), "
        "z-scored over all records per query (the default of `search --hybrid`), and RRF = w / (k + rank) + "
        f"1 / (k + rank_BM25) with k = {report['config']['rrf_k']} over the top {report['config']['rrf_depth']} "
        "of each. Each is shown at its default weight and at the weight chosen by 2-fold cross-validation over "
        "queries (tuned on one half, scored on the other). all-MiniLM-L6-v2 is the packaged pretrained model, "
        "a reference, not a peer: "
        "it was trained on over a billion sentence pairs.",
        "",
    ]
    if "--reuse" in report["command"]:
        lines += [
            "The jsonembed models were reused from `bench/runs/` (`--reuse`): they were trained by an earlier run "
            "of this script with the same config; the training figures below are that run's.",
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
            *[
                f"Hybrid NDCG@10 by the model's weight, {method} (all judged queries): "
                + ", ".join(f"{w}: {r['ndcg@10']:.4f}" for w, r in sweep.items())
                + f"; weights picked by the 2-fold cross-validation: {data['cv_weights'][method]}."
                for method, sweep in data["fusion_sweeps"].items()
            ],
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
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a busy machine)")
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite quality.md from quality.json, measure nothing"
    )
    args = parser.parse_intermixed_args(argv)
    setup_logging()
    if args.markdown_only:
        write_text(RESULTS_DIR / "quality.md", markdown(json.loads((RESULTS_DIR / "quality.json").read_text())))
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
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
