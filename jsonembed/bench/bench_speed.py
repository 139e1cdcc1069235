"""Speed benchmark: training and embedding throughput, and search latency over 100k records.

    python jsonembed/bench/bench_speed.py [--records 100000] [--queries 200] [key=value ...]

- Training: records/s of the optimisation loop (a pair of views per record) on SciFact
  and Cranfield records, for a fixed number of steps with the configured model.
- Embedding: records/s of ``JsonEmbedder.embed_segments`` on all SciFact and Cranfield
  records in fp32, and in bf16 (CPU autocast) and int8 (dynamic quantisation of the
  projection; PyTorch has no dynamic int8 convolution) with their cosine to fp32.
- Latency: 100k records made by resampling real SciFact fields (a title from one abstract,
  the text of another; for this figure only), embedded once, then one query at a time
  (SciFact claims), each search as ``search`` runs it: dense = embed the query + exact
  inner products with every record + top 10; hybrid = that + BM25 over the 100k records +
  the fusion (convex with or without the character n-gram ranker, or RRF); BM25 alone.
  p50 / p95 in milliseconds.

Uses the model trained by bench_quality.py (bench/runs/scifact.pt, or scifact-distilled.pt with a
teacher) when present, else a freshly initialised one: speed does not depend on the weights.
Training with a teacher also reports the seconds the teacher took to embed its targets (not in
the records/s, which count the optimisation steps only). Writes results/default/speed.{json,md} (or ``--results-dir``)
through ``embshared.bench.write_results``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from common import DATASETS, RESULTS_DIR, RUNS_DIR, run_name, same_training

from embedding_model.config import build_config
from embedding_model.embedder import JsonEmbedder
from embedding_model.model import build_encoder
from embedding_model.records import RecordSet, flatten_record
from embedding_model.retrieval import FusionSettings, RecordSearch
from embedding_model.teacher import TeacherTargetCache
from embedding_model.training import train
from embedding_model.vocab import CharVocab
from embshared.bench import command_line, load_average, machine_facts, percentiles, write_results
from embshared.cli import start_run
from embshared.config import config_to_dict
from embshared.runtime import pick_device, seed_everything, shared_data_dir


def build_embedder(cfg, records: RecordSet) -> tuple[JsonEmbedder, str]:
    """The SciFact bench model if it was trained with this config, else fresh weights."""
    path = RUNS_DIR / f"{run_name('scifact', cfg)}.pt"
    device = pick_device(cfg.device or None)
    if path.is_file():
        embedder = JsonEmbedder.load(path, device)
        if same_training(config_to_dict(embedder.cfg), config_to_dict(cfg)):
            return embedder, str(path)
    vocab = CharVocab.build((t[: cfg.max_chars] for t in records.texts()), cfg.min_char_freq, cfg.lowercase)
    encoder = build_encoder(cfg, len(vocab)).to(device).eval()
    return JsonEmbedder(encoder, vocab, cfg, device), "fresh weights"


def training_speed(cfg, records: RecordSet, steps: int) -> dict:
    """Records/s of `steps` optimisation steps (no validation)."""
    n = min(len(records), steps * cfg.batch_size)
    run_cfg = dataclasses.replace(cfg, epochs=1, val_fraction=0.0)
    seed_everything(cfg.seed)
    cpu_started = time.process_time()
    _, result = train(
        run_cfg,
        records.segments[:n],
        device=pick_device(cfg.device or None),
        show_progress=False,
        teacher_cache=TeacherTargetCache(RUNS_DIR / "teacher"),
    )
    # includes building the vocabulary (small) and, with a teacher, its encoding when not cached (teacher_seconds)
    cpu_seconds = time.process_time() - cpu_started
    return {
        "steps": result.steps,
        "records": result.records_seen,
        "seconds": round(result.train_seconds, 2),
        "records_per_second": round(result.records_per_second, 1),
        "cpu_seconds": round(cpu_seconds, 2),
        "records_per_cpu_second": round(result.records_seen / cpu_seconds, 1),
        **({"teacher_seconds": result.teacher["seconds"]} if result.teacher else {}),
    }


def _rate(embed, records: RecordSet) -> tuple[np.ndarray, dict]:
    embed(records.segments[:256])  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    matrix = embed(records.segments)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return matrix, {
        "seconds": round(seconds, 2),
        "records_per_second": round(len(records) / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 2),
        "records_per_cpu_second": round(len(records) / cpu_seconds, 1),
    }


def embedding_speed(embedder: JsonEmbedder, records: RecordSet, precisions: bool = True) -> dict:
    """fp32 records/s, and bf16 / int8 records/s with their mean and lowest cosine to the fp32 vectors."""
    import torch

    chars = np.mean([min(len(t), embedder.cfg.max_chars) for t in records.texts()])
    fp32, out = _rate(embedder.embed_segments, records)
    out = {"records": len(records), "mean_chars_read": round(float(chars), 1), **out}
    if not precisions:
        return out

    def bf16(segments):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return embedder.embed_segments(segments)

    encoder = embedder.encoder
    int8 = JsonEmbedder(
        torch.ao.quantization.quantize_dynamic(encoder, {torch.nn.Linear}, dtype=torch.qint8),
        embedder.vocab,
        embedder.cfg,
        embedder.device,
    )
    for name, embed in (("bf16", bf16), ("int8", int8.embed_segments)):
        matrix, rate = _rate(embed, records)
        cosine = np.sum(matrix * fp32, axis=1) / np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
        out[name] = {
            **rate,
            "mean_cosine_to_fp32": round(float(cosine.mean()), 5),
            "min_cosine_to_fp32": round(float(cosine.min()), 5),
        }
    return out


def resampled_records(source: RecordSet, n: int, seed: int) -> RecordSet:
    """n records whose title and text are drawn independently from real records (latency figure only)."""
    rng = random.Random(seed)
    titles = [r["title"] for r in source.records if r.get("title")]
    texts = [r["text"] for r in source.records if r.get("text")]
    rows = [{"title": rng.choice(titles), "text": rng.choice(texts)} for _ in range(n)]
    segments = [flatten_record(r) for r in rows]
    return RecordSet(rows, segments, list(range(1, n + 1)), "resampled", ids=[str(i) for i in range(n)])


def latency(embedder: JsonEmbedder, records: RecordSet, queries: list[str], fusion: FusionSettings) -> dict:
    """Search latency; ``fusion`` is the configured one (the config's, not the model file's)."""
    started = time.perf_counter()
    matrix = embedder.embed_segments(records.segments, show_progress=True)
    embed_seconds = time.perf_counter() - started
    engine = RecordSearch(embedder, records, matrix, fusion)
    started = time.perf_counter()
    engine.bm25  # noqa: B018 - build the index outside the timed queries
    bm25_seconds = time.perf_counter() - started
    engine.tie_order  # noqa: B018
    started = time.perf_counter()
    engine.ngrams  # noqa: B018 - the character n-gram index, also built once
    ngram_seconds = time.perf_counter() - started
    # the n-gram row uses the configured weight, or 0.3 when the config leaves the n-grams out
    ngram_weight = engine.fusion.convex_ngram_weight or min(0.3, 1.0 - engine.fusion.convex_dense_weight)
    default_uses_ngrams = engine.fusion.uses_ngrams  # (engine.fusion is switched below)
    fusions = {
        "hybrid_convex": dataclasses.replace(engine.fusion, method="convex", convex_ngram_weight=0.0),
        "hybrid_convex_ngrams": dataclasses.replace(engine.fusion, method="convex", convex_ngram_weight=ngram_weight),
        "hybrid_rrf": dataclasses.replace(engine.fusion, method="rrf"),
    }
    times: dict[str, list[float]] = {"dense": [], "bm25_only": [], **{name: [] for name in fusions}}
    for query in queries:
        t0 = time.perf_counter()
        engine.dense([query], 10)
        times["dense"].append(time.perf_counter() - t0)
        for name, fusion in fusions.items():
            engine.fusion = fusion
            t0 = time.perf_counter()
            engine.hybrid([query], 10)
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        engine.lexical([query], 10)
        times["bm25_only"].append(time.perf_counter() - t0)
    return {
        "records": len(records),
        "queries": len(queries),
        "embed_records_per_second": round(len(records) / embed_seconds, 1),
        "embed_seconds": round(embed_seconds, 1),
        "bm25_build_seconds": round(bm25_seconds, 2),
        "ngram_build_seconds": round(ngram_seconds, 2),
        "ngram_features": engine.ngrams.n_features,
        "ngram_weight": ngram_weight,
        "default_uses_ngrams": default_uses_ngrams,
        **{name: percentiles([t * 1000 for t in values]) for name, values in times.items()},
    }


def markdown(report: dict) -> str:
    threads = report["machine"]["torch_threads"]
    lines = ["# jsonembed speed benchmark", "", f"Model: {report['model']}.", ""]
    lines += [
        f"records/s is wall-clock time; records per CPU-second (torch with {threads} thread(s)) is what the "
        "process got from the cores, the better guide on a busy machine.",
        "",
        "| measure | records | records/s | records per CPU-s | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in report["training"].items():
        lines.append(
            f"| training, {name} (a pair of views per record) | {row['records']} | {row['records_per_second']:.0f} | "
            f"{row['records_per_cpu_second']:.0f} | {row['seconds']:.1f} |"
        )
    for name, row in report["embedding"].items():
        lines.append(
            f"| embedding, {name} (mean {row['mean_chars_read']:.0f} chars read), fp32 | {row['records']} | "
            f"{row['records_per_second']:.0f} | {row['records_per_cpu_second']:.0f} | {row['seconds']:.1f} |"
        )
        for precision in ("bf16", "int8"):
            if precision in row:
                sub = row[precision]
                lines.append(
                    f"| embedding, {name}, {precision} (cosine to fp32: mean {sub['mean_cosine_to_fp32']:.4f}, "
                    f"lowest {sub['min_cosine_to_fp32']:.4f}) | {row['records']} | {sub['records_per_second']:.0f} | "
                    f"{sub['records_per_cpu_second']:.0f} | {sub['seconds']:.1f} |"
                )
    lat = report.get("latency")
    if lat:
        lines.append(
            f"| embedding, {lat['records']} resampled records, fp32 | {lat['records']} | "
            f"{lat['embed_records_per_second']:.0f} |  | {lat['embed_seconds']:.1f} |"
        )
        lines += [
            "",
            f"Search latency over {lat['records']:,} records, {lat['queries']} single-query calls, top 10 "
            f"(BM25 index built once, {lat['bm25_build_seconds']:.1f} s; character 3-5-gram TF-IDF index built once, "
            f"{lat.get('ngram_build_seconds', float('nan')):.1f} s, {lat.get('ngram_features', 0):,} n-grams):",
            "",
            "| search | p50 ms | p95 ms | goal (p95) |",
            "|---|---:|---:|---|",
        ]
        uses = lat.get("default_uses_ngrams", False)
        rows = {
            "dense (embed the query + exact inner products with all records)": ("dense", "<= 20 ms"),
            "hybrid, convex, char model + BM25 (all cosines + all BM25 scores, z-scored"
            + ("" if uses else "; the default")
            + ")": ("hybrid_convex", "" if uses else "<= 50 ms"),
            f"hybrid, convex + char n-grams (weight {lat.get('ngram_weight', 0):g}; all n-gram cosines too"
            + ("; the default" if uses else "")
            + ")": ("hybrid_convex_ngrams", "<= 50 ms" if uses else ""),
            "hybrid, RRF (dense top 100 + BM25 top 100)": ("hybrid_rrf", ""),
            "BM25 alone": ("bm25_only", ""),
        }
        for label, (key, goal) in rows.items():
            if key in lat:
                lines.append(f"| {label} | {lat[key]['p50_ms']:.1f} | {lat[key]['p95_ms']:.1f} | {goal} |")
    best = max((r["records_per_second"] for r in report["embedding"].values()), default=0)
    lines += [
        "",
        f"Goal: >= 1,000 records/s embedding. Best fp32 wall-clock rate in this run: {best:.0f} records/s "
        f"(goal {'met' if best >= 1000 else 'not met'} here).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="jsonembed config overrides")
    parser.add_argument("--config", default=None)
    parser.add_argument("--records", type=int, default=100_000, help="records for the latency figure (0 skips it)")
    parser.add_argument("--queries", type=int, default=200, help="single-query calls timed")
    parser.add_argument("--train-steps", type=int, default=20, help="optimisation steps timed per dataset")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a busy machine)")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where speed.{json,md} go")
    parser.add_argument("--no-precisions", action="store_true", help="fp32 embedding only (no bf16 / int8 runs)")
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite speed.md from speed.json, measure nothing"
    )
    args = parser.parse_intermixed_args(argv)
    start_run(threads=args.threads)
    if args.markdown_only:
        report = json.loads((Path(args.results_dir) / "speed.json").read_text())
        command, facts = report.pop("command"), report.pop("machine")
        write_results(args.results_dir, "speed", report, markdown({**report, "machine": facts}), command, facts)
        return 0
    cfg = build_config(args.config, args.overrides)
    data = shared_data_dir()
    sets = {name: DATASETS[name](data / name) for name in DATASETS if (data / name).is_dir()}
    if "scifact" not in sets:
        print(f"SciFact not found under {data}; nothing measured", file=sys.stderr)
        return 0
    facts = machine_facts()
    embedder, model = build_embedder(cfg, sets["scifact"][0])
    report = {
        "config": config_to_dict(cfg),
        "model": model,
        "training": {name: training_speed(cfg, records, args.train_steps) for name, (records, _, _) in sets.items()},
        "embedding": {
            name: embedding_speed(embedder, records, not args.no_precisions) for name, (records, _, _) in sets.items()
        },
    }
    if args.records > 0:
        records, queries, _ = sets["scifact"]
        many = resampled_records(records, args.records, cfg.seed)
        report["latency"] = latency(
            embedder, many, list(queries.values())[: args.queries], FusionSettings.from_config(cfg)
        )
    facts["load_average_end"] = load_average()
    _, md_path = write_results(
        args.results_dir,
        "speed",
        report,
        markdown({**report, "machine": facts}),
        command_line(None if argv is None else ["jsonembed/bench/bench_speed.py", *argv]),
        facts,
    )
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
