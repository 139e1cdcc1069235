"""embeddingFT benchmark: speed against a plain SentenceTransformerTrainer script, and SciFact quality.

    python embeddingFT/bench/bench_embed.py [--skip-quality] [--skip-speed] [key=value ...]

Speed (bundled SciFact sample, measured in the same run):
  - training rows/s of embedding_ft.train vs a plain script that trains the same mined rows
    with SentenceTransformerTrainer, the same model, batch size, sequence length, precision,
    loss and batch sampler (goal: ratio >= 1.0);
  - mining seconds (cold cache) and encoding sentences/s (fp32 and bf16).
Quality (../shared/data/scifact, BEIR train split): 20% of the queries held out by a fixed
seed, fine-tuning on the rest with mined negatives; NDCG@10 of BM25, the base model and the
fine-tuned model (goal: fine-tuned >= base + 3 points and above BM25, in about 15 minutes).

Writes embeddingFT/bench/results/default/bench_embed.{json,md}. key=value overrides
apply to the quality run's config (configs/scifact.yaml).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from embshared.bench import machine_facts, write_results
from embshared.config import load_config
from embshared.runtime import repo_root, seed_everything, setup_logging, shared_data_dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "default"


def plain_trainer_rows_per_second(rows: list[dict], cfg) -> tuple[float, float]:
    """The peer: the same rows trained by a minimal SentenceTransformerTrainer script.

    Returns rows per wall-clock second and rows per CPU second (all threads of the process).
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    from embshared.models import resolve_model

    seed_everything(cfg.seed)
    model = SentenceTransformer(resolve_model(cfg.model_name), device="cpu")
    model.max_seq_length = cfg.max_seq_length
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=cfg.num_epochs,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            warmup_steps=cfg.warmup_ratio,
            bf16=cfg.bf16 is True,
            use_cpu=True,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            report_to="none",
            seed=cfg.seed,
            logging_steps=cfg.logging_steps,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), loss=MultipleNegativesRankingLoss(model)
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return len(rows) * cfg.num_epochs / seconds, len(rows) * cfg.num_epochs / cpu_seconds


def encoding_speed(texts: list[str], bf16: bool, max_seq_length: int) -> float:
    import torch

    from embshared.models import load_sentence_transformer

    model = load_sentence_transformer("all-MiniLM-L6-v2", device="cpu")
    model.max_seq_length = max_seq_length
    model.encode(texts[:32], batch_size=32)  # warm-up
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model.encode(texts, batch_size=64)
    return len(texts) / (time.perf_counter() - start)


def speed(tmp: Path, sample_size: int | None = None) -> dict:
    from embedding_ft.config import TrainConfig
    from embedding_ft.train import resolve_bf16, train
    from embshared.io import load_beir

    repo = repo_root()
    overrides = [
        f"output_dir={tmp / 'speed-out'}",
        f"cache_dir={tmp / 'speed-cache'}",
        "run_name=speed",
        "evaluation.metrics=[ndcg@10]",
    ]
    if sample_size:
        overrides.append(f"sample_size={sample_size}")
    cfg = load_config(TrainConfig, repo / "embeddingFT/configs/default.yaml", overrides)
    cfg.bf16 = resolve_bf16(cfg.bf16, "cpu")
    load = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(cfg)
    total, cpu_total = time.perf_counter() - start, time.process_time() - cpu_start
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in next((tmp / "speed-cache").glob("mined-*.jsonl")).read_text().splitlines()]
    peer, peer_cpu = plain_trainer_rows_per_second(rows, cfg)
    # A-B-A: train-embed again after the peer (mined rows now cached), so that neither side
    # gets all of the process's warm-up or of a change in the machine's load.
    again = train(replace(cfg, run_name="speed-again"))
    rates, cpu_rates = [], []
    for run in (result, again):
        train_info = json.loads((run.run_dir / "metrics.json").read_text())["train"]
        rates.append(summary["n_train_rows"] * cfg.num_epochs / train_info["seconds"])
        cpu_rates.append(summary["n_train_rows"] * cfg.num_epochs / train_info["cpu_seconds"])
    ours, ours_cpu = sum(rates) / 2, sum(cpu_rates) / 2
    texts = list(load_beir(repo / "data/samples/scifact").corpus_texts().values())[:512]
    return {
        "data": "data/samples/scifact (bundled sample: 2,000 abstracts, 809 queries, 20% held out)"
        + (f"; sample_size={sample_size} training pairs" if sample_size else ""),
        "sample_size": sample_size,
        "load_average_at_start": round(load, 2),
        "batch_size": cfg.batch_size,
        "max_seq_length": cfg.max_seq_length,
        "bf16": cfg.bf16,
        "train_rows": summary["n_train_rows"],
        "train_embed_rows_per_s": round(ours, 3),
        "train_embed_rows_per_s_each": [round(r, 3) for r in rates],
        "plain_trainer_rows_per_s": round(peer, 3),
        "ratio_vs_plain_trainer": round(ours / peer, 3),
        "train_embed_rows_per_cpu_s": round(ours_cpu, 4),
        "plain_trainer_rows_per_cpu_s": round(peer_cpu, 4),
        "ratio_vs_plain_trainer_cpu": round(ours_cpu / peer_cpu, 3),
        "mining_seconds_cold": summary["data"]["mining_seconds"],
        "train_embed_total_seconds": round(total, 1),
        "train_embed_total_cpu_seconds": round(cpu_total, 1),
        "encode_sentences_per_s_fp32": round(encoding_speed(texts, False, cfg.max_seq_length), 2),
        "encode_sentences_per_s_bf16": round(encoding_speed(texts, True, cfg.max_seq_length), 2),
        "default_run_metrics": summary["metrics"],
    }


def quality(tmp: Path, overrides: list[str]) -> dict:
    from embedding_ft.config import TrainConfig
    from embedding_ft.train import train

    scifact = shared_data_dir() / "scifact"
    if not scifact.is_dir():
        return {"skipped": f"{scifact} not found"}
    cfg = load_config(
        TrainConfig,
        repo_root() / "embeddingFT/configs/scifact.yaml",
        [
            f"dataset_name={scifact}",
            f"output_dir={tmp / 'quality-out'}",
            f"cache_dir={tmp / 'quality-cache'}",
            "run_name=scifact",
            *overrides,
        ],
    )
    load = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(cfg)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    m = summary["metrics"]
    return {
        "data": f"{scifact} (5,183 abstracts; train queries, {cfg.test_size:.0%} held out, seed {cfg.seed})",
        "config": "embeddingFT/configs/scifact.yaml" + (f" + {' '.join(overrides)}" if overrides else ""),
        "n_train_queries_rows": summary["n_train_examples"],
        "n_test_queries": summary["n_test"],
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "load_average_at_start": round(load, 2),
        "metrics": m,
        "ndcg@10_gain_over_base": round(m["finetuned"]["ndcg@10"] - m["base"]["ndcg@10"], 4),
        "goal_met": m["finetuned"]["ndcg@10"] >= m["base"]["ndcg@10"] + 0.03
        and m["finetuned"]["ndcg@10"] > m["bm25"]["ndcg@10"],
    }


def to_markdown(report: dict) -> str:
    from embshared.evaluate import format_table

    lines = [
        "# embeddingFT benchmark",
        "",
        "Parts measured while the cores were shared with other jobs say so; there the CPU seconds and the "
        "ratios measured in the same run are the better guide than wall-clock times. The machine of the "
        "last run is described at the end.",
        "",
    ]
    s = report.get("speed")
    if s:
        run = (
            f"default config, sample_size={s['sample_size']}" if s.get("sample_size") else "`make train-embed` default"
        )
        lines += [
            "## Speed (bundled SciFact sample, same run)",
            "",
            s["data"]
            + f". Load average {s['load_average_at_start']:.1f} at its start"
            + (
                " (cores shared with other jobs)."
                if s["load_average_at_start"] >= 1.5
                else " (an otherwise idle machine)."
            )
            if "load_average_at_start" in s
            else s["data"] + ".",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| train-embed training rows/s (mean of the runs before and after the peer: {s.get('train_embed_rows_per_s_each', '')}) | {s['train_embed_rows_per_s']} |",
            f"| plain SentenceTransformerTrainer rows/s | {s['plain_trainer_rows_per_s']} |",
            f"| ratio, wall clock (goal >= 1.0) | {s['ratio_vs_plain_trainer']} |",
            f"| train-embed training rows per CPU second | {s.get('train_embed_rows_per_cpu_s', '')} |",
            f"| plain SentenceTransformerTrainer rows per CPU second | {s.get('plain_trainer_rows_per_cpu_s', '')} |",
            f"| ratio, CPU time (goal >= 1.0) | {s.get('ratio_vs_plain_trainer_cpu', '')} |",
            f"| mining seconds (cold cache) | {s['mining_seconds_cold']} |",
            f"| whole run ({run}), seconds | {s['train_embed_total_seconds']} |",
            f"| whole run, CPU seconds | {s.get('train_embed_total_cpu_seconds', '')} |",
            f"| encoding sentences/s, fp32 | {s['encode_sentences_per_s_fp32']} |",
            f"| encoding sentences/s, bf16 autocast | {s['encode_sentences_per_s_bf16']} |",
            "",
            f"batch {s['batch_size']}, max_seq_length {s['max_seq_length']}, bf16 {s['bf16']}, {s['train_rows']} training rows.",
            "",
            "That run's held-out queries:",
            "",
            format_table({k: v for k, v in s["default_run_metrics"].items()}),
            "",
        ]
    q = report.get("quality")
    if q and "metrics" in q:
        lines += [
            "## Quality: SciFact (BEIR, train queries)",
            "",
            f"{q['data']}; {q['config']}; {q['seconds']:.0f} s end to end, {q.get('cpu_seconds', float('nan')):.0f} CPU seconds"
            + (
                f"; load average {q['load_average_at_start']:.1f} at its start."
                if "load_average_at_start" in q
                else "."
            ),
            "",
            format_table(
                {
                    "BM25": q["metrics"]["bm25"],
                    "base MiniLM": q["metrics"]["base"],
                    "fine-tuned": q["metrics"]["finetuned"],
                }
            ),
            "",
            f"NDCG@10 gain over base: {q['ndcg@10_gain_over_base']:+.4f} (goal: >= +0.03 and above BM25: {'met' if q['goal_met'] else 'NOT met'}).",
            "",
        ]
    elif q:
        lines += ["## Quality", "", q["skipped"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--speed-sample",
        type=int,
        default=None,
        help="train the speed comparison on this many pairs (default: the whole default run)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    previous = RESULTS / "bench_embed.json"
    report: dict = json.loads(previous.read_text()) if previous.is_file() else {}
    facts = machine_facts()  # the parts not rerun keep their numbers
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        if not args.skip_speed:
            report["speed"] = speed(Path(tmp), args.speed_sample)
        if not args.skip_quality:
            report["quality"] = quality(Path(tmp), args.overrides)
    report.pop("machine", None)
    write_results(RESULTS, "bench_embed", report, to_markdown(report), facts=facts)
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
