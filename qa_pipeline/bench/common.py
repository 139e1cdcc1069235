"""What every track of the qa bench shares: generation with cached progress, the dev/rest query
split, retrieval evaluation (BM25 and dense, with the embedding cache of embshared.bench) and
fine-tuning through qa_pipeline.finetuning (embeddingFT), reusing a model trained earlier on the
same pairs with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from embshared.bench import cached_embeddings
from embshared.config import config_to_dict
from embshared.evaluate import dense_score_fn, evaluate_retrieval, sentence_transformer_encoder
from embshared.files import write_json
from embshared.search import bm25_score_fn
from qa_pipeline.finetuning import FinetuneConfig, finetune
from qa_pipeline.generation import generate_pairs
from qa_pipeline.paper import Paper
from qa_pipeline.qa_rows import GenerationStats

logger = logging.getLogger("bench_qa")
METRICS = ["ndcg@10", "mrr@10", "recall@10", "recall@100"]


@dataclass
class TrainSettings:
    """The fine-tuning recipe of a bench run (the keys of qa_pipeline.finetune it sets)."""

    base_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    num_epochs: float = 1.0
    train_batch_size: int = 32
    learning_rate: float = 3e-5
    max_seq_length: int = 256
    loss_function: str = "MultipleNegativesRankingLoss"
    mining: bool = field(
        default=True,
        metadata={
            "help": "mine hard negatives (embeddingFT) among the pairs' documents; without them the generated "
            "questions are too easy to teach the model anything (in-batch loss ~0.05 from the first step)"
        },
    )
    num_negatives: int = field(default=1, metadata={"help": "mined hard negatives per pair (mining.num_negatives)"})
    bm25_negatives: int = field(
        default=0, metadata={"help": "per pair, also this many negatives from BM25's top hits (mining.bm25_negatives)"}
    )
    save_best_model: bool = field(
        default=False,
        metadata={
            "help": "keep the best checkpoint by validation NDCG@10 (saturates on tiny splits) instead of the last"
        },
    )
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast in training (slower than fp32 on our CPU)"})
    seed: int = 42


# ---------------------------------------------------------------------------------------
# Generation


def scifact_papers(corpus: dict[str, dict[str, str]], seed: int) -> list[Paper]:
    """Every SciFact abstract as a paper, in a seeded uniform random order."""
    ids = sorted(corpus)
    random.Random(seed).shuffle(ids)
    return [
        Paper(paper_id=f"scifact-{d}", title=corpus[d]["title"], abstract=corpus[d]["text"], extractor="scifact")
        for d in ids
        if corpus[d]["text"].strip()
    ]


def add_progress(total: GenerationStats, papers, out_dir: Path, progress_file: str) -> None:
    """Add the recorded statistics of ``papers`` (generated now or by an earlier run) to ``total``."""
    progress = json.loads((out_dir / progress_file).read_text())["papers"]
    for paper in papers:
        entry = progress[paper.paper_id]
        total.papers_done += 1
        total.passages += entry.get("passages", 0)
        total.candidates += entry.get("candidates", 0)
        total.kept += entry.get("pairs", 0)
        total.rejected.update(entry.get("rejected", {}))
        total.generation_seconds += entry.get("seconds", 0.0)


def generate_all(papers, generator, gen_cfg, out_dir: Path) -> dict:
    """Generate for ``papers``; statistics from progress.json, so reused papers count too."""
    generate_pairs(papers, generator, gen_cfg, out_dir)
    total = GenerationStats(generator=generator.name, model=generator.model_name)
    add_progress(total, papers, out_dir, gen_cfg.progress_file)
    return total.to_dict()


def generate_with_budget(papers, generator, gen_cfg, out_dir: Path, budget_s: float, chunk: int) -> tuple[dict, int]:
    """Generate for ``papers`` in order, chunk by chunk, until done or until the generation
    time of the papers done (by this run or an earlier one, from progress.json) exceeds
    ``budget_s``. A rerun with the same settings therefore uses the same papers.

    Returns the statistics of the papers used and how many papers were used.
    """
    total = GenerationStats(generator=generator.name, model=generator.model_name)
    done = 0
    for i in range(0, len(papers), chunk):
        if total.generation_seconds > budget_s:
            logger.info("generation budget used up after %d papers", done)
            break
        part = papers[i : i + chunk]
        generate_pairs(part, generator, gen_cfg, out_dir)
        add_progress(total, part, out_dir, gen_cfg.progress_file)
        done = i + len(part)
    return total.to_dict(), done


def rows_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def speed(stats: dict) -> dict:
    """Generation speed from recorded statistics: questions (candidates) per second, kept
    questions per second, seconds per paper."""
    seconds = stats.get("generation_seconds") or 0.0
    papers = stats.get("papers_done", 0) + stats.get("papers_skipped", 0)
    return {
        "questions_per_second": round(stats["candidates"] / seconds, 3) if seconds else None,
        "kept_questions_per_second": round(stats["kept"] / seconds, 3) if seconds else None,
        "seconds_per_paper": round(seconds / papers, 3) if papers else None,
    }


# ---------------------------------------------------------------------------------------
# Evaluation


def retrieval_metrics(beir, score_fn, parts: dict[str, set[str]] | None = None) -> dict[str, float]:
    """METRICS over all queries, plus NDCG@10 and recall@100 on each named subset of them
    (``ndcg@10 <part>``, ``recall@100 <part>``)."""
    corpus = beir.corpus_texts()
    ids = list(corpus)
    metrics = evaluate_retrieval(beir.queries, corpus, beir.qrels, score_fn, METRICS, doc_ids=ids)
    for part, keep in (parts or {}).items():
        queries = {q: t for q, t in beir.queries.items() if q in keep}
        if not queries:  # a smoke run's few queries may all fall on one side
            continue
        qrels = {q: beir.qrels[q] for q in queries}
        sub = evaluate_retrieval(queries, corpus, qrels, score_fn, ["ndcg@10", "recall@100"], doc_ids=ids)
        metrics[f"ndcg@10 {part}"] = sub["ndcg@10"]
        metrics[f"recall@100 {part}"] = sub["recall@100"]
    return metrics


def evaluate_model(
    model, beir, name: str, cache_dir: Path | None, model_id: str, parts: dict[str, set[str]] | None = None
) -> dict[str, float]:
    """Dense retrieval metrics of a SentenceTransformer; the corpus embeddings are cached in
    ``cache_dir`` under ``model_id`` and the texts (embshared.bench.cached_embeddings)."""
    encode = sentence_transformer_encoder(model, batch_size=64)
    start = time.perf_counter()
    corpus = beir.corpus_texts()
    doc_ids = list(corpus)
    doc_embeddings = cached_embeddings([corpus[d] for d in doc_ids], encode, cache_dir, model_id)  # (n_docs, dim)
    metrics = retrieval_metrics(beir, dense_score_fn(encode, doc_embeddings, "cosine"), parts)
    logger.info("%s evaluated in %.0f s: ndcg@10=%.4f", name, time.perf_counter() - start, metrics["ndcg@10"])
    return metrics


def evaluate_bm25(beir, parts: dict[str, set[str]] | None = None) -> dict[str, float]:
    corpus = beir.corpus_texts()
    ids = list(corpus)
    return retrieval_metrics(beir, bm25_score_fn(ids, [corpus[i] for i in ids]), parts)


def tuned_model_id(model_dir: Path, max_seq_length: int) -> str:
    """An id of a trained model for the embedding cache: its path and the size and time of
    its weight files (a retrained model gets a new id without hashing the weights)."""
    parts = [str(Path(model_dir).resolve()), str(max_seq_length)]
    for weights in sorted(Path(model_dir).rglob("*.safetensors")):
        stat = weights.stat()
        parts.append(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


# ---------------------------------------------------------------------------------------
# Fine-tuning


def finetune_config(qa_file: Path, out_dir: Path, settings: TrainSettings, cache_dir: Path) -> FinetuneConfig:
    ft = FinetuneConfig(
        input_jsonl=str(qa_file),
        output_dir=str(out_dir),
        base_model=settings.base_model,
        num_epochs=settings.num_epochs,
        train_batch_size=settings.train_batch_size,
        learning_rate=settings.learning_rate,
        loss_function=settings.loss_function,
        max_seq_length=settings.max_seq_length,
        save_best_model=settings.save_best_model,
        bf16=settings.bf16,
        train_split=0.9,
        seed=settings.seed,
        tensorboard=False,
        cache_dir=str(cache_dir),
        overwrite=True,
    )
    ft.mining.enabled = settings.mining
    ft.mining.num_negatives = settings.num_negatives
    ft.mining.bm25_negatives = settings.bm25_negatives
    return ft


def run_stamp(ft: FinetuneConfig, qa_file: Path) -> dict:
    """What identifies a training run: its config and the bytes of its pairs."""
    return {**config_to_dict(ft), "overwrite": None, "input_sha1": hashlib.sha1(qa_file.read_bytes()).hexdigest()}


def train_on(qa_file: Path, out_dir: Path, settings: TrainSettings, cache_dir: Path) -> tuple[Path, dict]:
    """Fine-tune on ``qa_file`` into ``out_dir`` (or reuse the model an earlier run trained there
    on the same bytes with the same config). Returns the final model's folder and a summary."""
    ft = finetune_config(qa_file, out_dir, settings, cache_dir)
    wanted = run_stamp(ft, qa_file)
    stamp = out_dir / "bench_run.json"
    progress_path = out_dir / "training_progress.json"
    same_run = stamp.is_file() and json.loads(stamp.read_text()) == wanted
    reuse = same_run and progress_path.is_file()
    reuse = reuse and json.loads(progress_path.read_text()).get("training_completed") is True
    if reuse:
        logger.info("reusing the model trained earlier in %s", out_dir)
    else:
        # the same run cut short (or failed after its last checkpoint) resumes from that checkpoint;
        # any other starts afresh. The stamp is written first so that a cut run is recognised.
        ft.overwrite = not same_run
        write_json(stamp, wanted)
        finetune(ft)
    progress = json.loads(progress_path.read_text())
    return Path(progress["final_model_path"]), {
        "seconds": progress["duration_seconds"],
        "reused": reuse,
        "train_pairs": progress["train_examples"],
        "validation_pairs": progress["eval_examples"],
        "steps": progress["global_step"],
        "validation_metrics": {
            k: {m: round(v, 4) for m, v in d.items()} for k, d in (progress.get("metrics") or {}).items()
        },
    }
