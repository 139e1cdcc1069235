"""embeddingFT from a trained model to fast search: back ends, search latency, training memory.

    python embeddingFT/bench/bench_export.py [--model PATH] [--skip-backends] [--skip-search] [--skip-memory]

All parts run in one process on the same machine and say what the load was:

1. **Back ends** (``--model``, default the packaged MiniLM): sentences/s of PyTorch fp32, ONNX
   (optimised fp32), ONNX int8, OpenVINO fp32 and OpenVINO int8 on ``--speed-texts`` (500)
   SciFact abstracts (max_seq_length 256) and 1,000 short queries (SciFact claims, then
   PubMedQA questions), batch 32, 2 threads each; mean and minimum cosine of each back end's
   embeddings to PyTorch's; NDCG@10 of each on the 20% held-out SciFact train claims (seed 42)
   over ``--ndcg-docs`` abstracts (1,500: every abstract those claims cite plus seeded others;
   0 = all 5,183 — about 10 minutes per back end on 2 cores, so not the default). Targets: an int8 back end >= 2.0x PyTorch on abstracts and
   >= 3.0x on queries, mean cosine >= 0.99, NDCG@10 within 0.005.
2. **Search latency** of ``embedding_ft.index.Searcher`` (what search-embed runs), query
   encoding included, p50/p95 over 200 queries, dense and hybrid, over 5,183 and 100k records
   (the evaluated abstracts' embeddings copied with small noise and their texts with a copy
   number: synthetic, as the issue allows), PyTorch and ONNX int8.
3. **Training memory**: the default ``make train-embed`` run (bundled sample, seed 42) with
   plain MNRL (the previous default) and with ``loss: auto`` (the new default), each in its
   own process with a cold mining cache: peak RSS, wall time, NDCG@10.

Writes ``embeddingFT/bench/results/export/export.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from embshared.bench import latency_percentiles, machine_facts, write_results
from embshared.runtime import repo_root, setup_logging, shared_data_dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "export"
BACKENDS = [
    ("pytorch fp32", "torch", None),
    ("onnx fp32 (O2)", "onnx", "onnx/model_O2.onnx"),
    ("onnx int8", "onnx", "onnx/model_qint8.onnx"),
    ("openvino fp32", "openvino", "openvino/openvino_model.xml"),
    ("openvino int8", "openvino", "openvino/openvino_model_qint8_quantized.xml"),
]


def texts_for_speed(n_abstracts: int) -> tuple[list[str], list[str]]:
    from embshared.io import load_beir

    scifact = load_beir(shared_data_dir() / "scifact")
    abstracts = list(scifact.corpus_texts().values())[:n_abstracts]
    queries = list(scifact.queries.values())
    pubmed = load_beir(shared_data_dir() / "pubmedqa")
    queries = (queries + list(pubmed.queries.values()))[:1000]
    return abstracts, queries


def rate(encoder, texts: list[str], batch_size: int = 32) -> tuple[float, np.ndarray]:
    encoder.encode(texts[:32], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    emb = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - start), np.asarray(emb, dtype=np.float32)


def load(model_dir: Path, backend: str, file_name: str | None, threads: int):
    from embedding_ft.backends import ExportedEncoder
    from embshared.models import load_sentence_transformer

    if backend == "torch":
        enc = load_sentence_transformer(str(model_dir), device="cpu")
    else:
        enc = ExportedEncoder(model_dir, backend, file_name, threads=threads)
    enc.max_seq_length = 256
    return enc


def heldout(n_docs: int = 0):
    """The held-out claims; with n_docs, over the abstracts they cite plus seeded others (n_docs in all)."""
    import dataclasses
    import random

    from embedding_ft.data import prepare

    eval_set = prepare(str(shared_data_dir() / "scifact"), "train", 0.2, 42).eval_set
    if not n_docs or n_docs >= len(eval_set.corpus):
        return eval_set
    cited = {d for rel in eval_set.qrels.values() for d in rel}
    others = sorted(set(eval_set.corpus) - cited)
    keep = cited | set(random.Random(0).sample(others, max(0, n_docs - len(cited))))
    corpus = {d: t for d, t in eval_set.corpus.items() if d in keep}
    return dataclasses.replace(eval_set, corpus=corpus)


def ndcg(encoder, eval_set, corpus_emb: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    from embshared.evaluate import evaluate_retrieval

    doc_ids = list(eval_set.corpus)
    if corpus_emb is None:
        corpus_emb = np.asarray(
            encoder.encode([eval_set.corpus[d] for d in doc_ids], batch_size=32, normalize_embeddings=True),
            dtype=np.float32,
        )

    def score(texts):
        return encoder.encode(texts, batch_size=32, normalize_embeddings=True) @ corpus_emb.T

    value = evaluate_retrieval(eval_set.queries, eval_set.corpus, eval_set.qrels, score, ["ndcg@10"], doc_ids=doc_ids)
    return value["ndcg@10"], corpus_emb


def backends_part(model_dir: Path, threads: int, n_abstracts: int, n_docs: int) -> tuple[dict, dict]:
    from embedding_ft.export import export_model

    for backend, quant in [("onnx", "none"), ("onnx", "int8"), ("openvino", "none"), ("openvino", "int8")]:
        start = time.perf_counter()
        export_model(model_dir, backend, quant)
        print(f"exported {backend} {quant} in {time.perf_counter() - start:.1f} s", flush=True)
    abstracts, queries = texts_for_speed(n_abstracts)
    eval_set = heldout(n_docs)
    rows, reference, corpus_embeddings = {}, {}, {}
    for label, backend, file_name in BACKENDS:
        enc = load(model_dir, backend, file_name, threads)
        row = {}
        for name, texts in (("abstracts", abstracts), ("queries", queries)):
            r, emb = rate(enc, texts)
            row[f"{name}_per_s"] = round(r, 1)
            if backend == "torch":
                reference[name] = emb
            cos = np.sum(emb * reference[name], axis=1)
            row[f"{name}_cosine_mean"] = round(float(cos.mean()), 5)
            row[f"{name}_cosine_min"] = round(float(cos.min()), 5)
        row["ndcg@10"], corpus_embeddings[label] = ndcg(enc, eval_set)
        row["ndcg@10"] = round(row["ndcg@10"], 4)
        rows[label] = row
        print(label, row, flush=True)
    base = rows["pytorch fp32"]
    for row in rows.values():
        row["speedup_abstracts"] = round(row["abstracts_per_s"] / base["abstracts_per_s"], 2)
        row["speedup_queries"] = round(row["queries_per_s"] / base["queries_per_s"], 2)
        row["ndcg@10_delta"] = round(row["ndcg@10"] - base["ndcg@10"], 4)
    return rows, {"eval_set": eval_set, "corpus_embeddings": corpus_embeddings}


def search_part(model_dir: Path, threads: int, cache: dict, work: Path, n_docs: int) -> dict:
    from embedding_ft.index import Searcher, build_index
    from embshared.io import Documents

    eval_set = cache.get("eval_set") or heldout(n_docs)
    doc_ids = list(eval_set.corpus)
    texts = [eval_set.corpus[d] for d in doc_ids]
    queries = list(eval_set.queries.values())
    queries = (queries * 2)[:200]
    out = {}
    for label, backend, file_name in [BACKENDS[0], BACKENDS[2]]:
        enc = load(model_dir, backend, file_name, threads)
        emb = cache.get("corpus_embeddings", {}).get(label)
        if emb is None:
            emb = np.asarray(enc.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)
        sizes = {}
        for n, name in ((5_183, "5,183 records (SciFact's size)"), (100_000, "100k records")):
            rng = np.random.default_rng(0)
            copies = -(-n // len(doc_ids))
            noisy = [emb] + [emb + rng.normal(0, 0.02, emb.shape).astype(np.float32) for _ in range(copies - 1)]
            vectors = np.concatenate(noisy)[:n]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = [f"{d}-{c}" for c in range(copies) for d in doc_ids][:n]
            txts = [f"{t} [copy {c}]" if c else t for c in range(copies) for t in texts][:n]
            sizes[name] = (ids, txts, vectors)
        for size, (ids, txts, vectors) in sizes.items():
            folder = work / f"index-{backend}-{len(ids)}"
            build_index(folder, Documents(ids, txts, "bench"), str(model_dir), backend, file_name, embeddings=vectors)
            searcher = Searcher(folder, encoder=enc)
            for mode in ("dense", "hybrid"):
                search = lambda q, s=searcher, mode=mode: s.search(q, 10, hybrid=mode == "hybrid")  # noqa: E731
                out[f"{label} | {size} | {mode}"] = latency_percentiles(search, queries)
                print(label, size, mode, out[f"{label} | {size} | {mode}"], flush=True)
    return out


def memory_part(work: Path, threads: int) -> dict:
    runs = {}
    for label, overrides in (
        ("before: MultipleNegativesRankingLoss (the previous default)", ["loss=MultipleNegativesRankingLoss"]),
        ("after: loss auto (CachedMNRL, mini-batch 16, under max_memory_gb=4)", []),
    ):
        name = "mnrl" if overrides else "auto"
        cmd = [
            sys.executable,
            "-m",
            "embedding_ft.cli.train",
            "--config",
            "embeddingFT/configs/default.yaml",
            f"output_dir={work / 'runs'}",
            f"cache_dir={work / ('cache-' + name)}",
            f"run_name={name}",
            *overrides,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        with open(work / f"train-{name}.log", "w") as log:
            subprocess.run(cmd, cwd=repo_root(), env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        wall = time.perf_counter() - start
        summary = json.loads((work / "runs" / name / "metrics.json").read_text())
        runs[label] = {
            "wall_seconds": round(wall, 1),
            "run_seconds": summary["cost"]["run_seconds"],
            "train_seconds": summary["train"]["seconds"],
            "peak_rss_gb": summary["cost"]["peak_rss_gb"],
            "estimated_peak_gb": summary["cost"].get("estimated_peak_gb"),
            "loss": summary["loss"],
            "ndcg@10": round(summary["metrics"]["finetuned"]["ndcg@10"], 4),
            "base_ndcg@10": round(summary["metrics"]["base"]["ndcg@10"], 4),
            "training_estimate": summary["cost"]["training"],
        }
        print(label, runs[label], flush=True)
    before, after = runs.values()
    return {
        "runs": runs,
        "time_ratio": round(after["wall_seconds"] / before["wall_seconds"], 3),
        "ndcg@10_delta": round(after["ndcg@10"] - before["ndcg@10"], 4),
    }


def to_markdown(report: dict) -> str:
    lines = ["# embeddingFT: export, search latency and training memory", ""]
    b = report.get("backends")
    if b:
        lines += [
            f"## Back ends ({report['model']})",
            "",
            f"{report.get('speed_texts', 1000)} SciFact abstracts (256 tokens max) and 1,000 short queries, batch 32, "
            f"{report['threads']} threads; cosine to PyTorch fp32's embeddings; NDCG@10 on the 20% held-out "
            f"SciFact train claims over {report.get('ndcg_docs') or 5183} abstracts (every abstract they cite "
            "plus seeded others).",
            "",
            "| back end | abstracts/s | x | queries/s | x | cosine mean (abstracts / queries) | cosine min | NDCG@10 | delta |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|",
        ]
        for label, r in b.items():
            lines.append(
                f"| {label} | {r['abstracts_per_s']} | {r['speedup_abstracts']} | {r['queries_per_s']} | "
                f"{r['speedup_queries']} | {r['abstracts_cosine_mean']:.4f} / {r['queries_cosine_mean']:.4f} | "
                f"{min(r['abstracts_cosine_min'], r['queries_cosine_min']):.4f} | {r['ndcg@10']:.4f} | {r['ndcg@10_delta']:+.4f} |"
            )
        lines += [
            "",
            "Targets: an int8 back end >= 2.0x PyTorch on abstracts and >= 3.0x on queries, mean cosine >= 0.99, "
            "NDCG@10 within 0.005.",
            "",
        ]
    s = report.get("search")
    if s:
        lines += [
            "## Search latency (Searcher.search, query encoding included, 200 queries, top 10)",
            "",
            "Collections: the evaluated abstracts' embeddings and texts, repeated with small noise (synthetic "
            "copies) up to the size.",
            "",
            "| query encoder | collection | mode | p50 ms | p95 ms | mean ms |",
            "|---|---|---|---:|---:|---:|",
        ]
        for key, p in s.items():
            enc, size, mode = key.split(" | ")
            lines.append(f"| {enc} | {size} | {mode} | {p['p50_ms']} | {p['p95_ms']} | {p['mean_ms']} |")
        lines.append("")
    m = report.get("memory")
    if m:
        lines += [
            "## Training memory: the default `make train-embed` run (bundled sample, seed 42, cold mining cache)",
            "",
            "| run | loss | peak RSS GB (estimated) | wall s | training s | NDCG@10 (base) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for label, r in m["runs"].items():
            lines.append(
                f"| {label} | {r['loss']} | {r['peak_rss_gb']:.2f} ({r['estimated_peak_gb'] or '-'}) | {r['wall_seconds']} | "
                f"{r['train_seconds']} | {r['ndcg@10']:.4f} ({r['base_ndcg@10']:.4f}) |"
            )
        lines += [
            "",
            f"Wall-time ratio after/before: {m['time_ratio']} (target <= 1.15); NDCG@10 change {m['ndcg@10_delta']:+.4f} "
            "(target within 0.005); target peak <= 4 GB.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-backends", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--speed-texts", type=int, default=500, help="abstracts timed per back end")
    parser.add_argument("--ndcg-docs", type=int, default=1500, help="abstracts NDCG@10 ranks (0: all 5,183)")
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(args.threads)
    from embshared.models import resolve_model

    if not (shared_data_dir() / "scifact").is_dir():
        print("skipped: ../shared/data/scifact not found")
        return 0
    facts = machine_facts()
    previous = RESULTS / "export.json"
    report = json.loads(previous.read_text()) if previous.is_file() else {}
    report.update(model=args.model, threads=args.threads, speed_texts=args.speed_texts, ndcg_docs=args.ndcg_docs)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        shutil.copytree(resolve_model(args.model), model_dir)
        cache: dict = {}
        if not args.skip_backends:
            report["backends"], cache = backends_part(model_dir, args.threads, args.speed_texts, args.ndcg_docs)
            write_results(RESULTS, "export", report, to_markdown(report), facts=facts)  # kept if a later part fails
        if not args.skip_search:
            if args.skip_backends:
                from embedding_ft.export import export_model

                export_model(model_dir, "onnx", "int8")
            report["search"] = search_part(model_dir, args.threads, cache, work, args.ndcg_docs)
            write_results(RESULTS, "export", report, to_markdown(report), facts=facts)
        if not args.skip_memory:
            report["memory"] = memory_part(work, args.threads)
    write_results(RESULTS, "export", report, to_markdown(report), facts=facts)
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
