"""Benchmark of the paper workflow: extraction, SmolLM2 Q&A generation, fine-tuning, retrieval.

    make bench-qa [sample_size=2880 learning_rate=3e-5 num_epochs=1 mining=true num_negatives=1 ...]
    (the defaults are the settings of the committed results; SmolLM2 writes ~1.2 questions/s on an idle
    2-core CPU, so about 40 min of generation and 1 h 30 in all from an empty bench/work)
    (or: cd qa_pipeline && python bench/bench_qa.py key=value ...)

1. Extraction: the local extractor on the shared PDFs (seconds per paper, section headings
   compared with GROBID's TEI of the same PDFs); GROBID itself when a server answers at
   ``grobid_url`` (none can run on the benchmark machines: reported as not measured), plus
   the time to parse its TEI.
2. Q&A: the SciFact abstracts (title + text of corpus.jsonl) are the papers, in a seeded
   uniform random order (never chosen by the qrels); the default generator (SmolLM2-135M-
   Instruct) writes questions for them until ``sample_size`` abstracts are done or the
   generation budget runs out, plus questions for the passages of the shared PDFs. No human
   question is used for training.
3. Fine-tuning through qa_pipeline.finetune (embeddingFT's training code), split by paper.
4. Retrieval: SciFact's 809 human train queries and qrels against the whole corpus (5,183
   abstracts): BM25, the base model and the fine-tuned model. Forgetting check: the same on
   PubMedQA (500 human questions against their 500 abstracts).
   Optionally the same fine-tuning on inverse-cloze pseudo-queries of the same abstracts
   (the no-model generator) as a peer in the same run.

Writes bench/results/qa_bench.json and qa_bench.md; intermediate data in bench/work/
(git-ignored; a rerun reuses generated questions).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embedding_ft.mining import model_fingerprint
from embshared.config import config_to_dict, load_config
from embshared.evaluate import dense_score_fn, evaluate_retrieval, format_table, sentence_transformer_encoder
from embshared.files import write_json, write_text
from embshared.io import load_beir
from embshared.runtime import seed_everything, setup_logging, shared_data_dir
from embshared.search import bm25_score_fn
from qa_pipeline.extractors import GrobidClient
from qa_pipeline.extractors.agreement import compare_headings
from qa_pipeline.extractors.local import LocalExtractor
from qa_pipeline.extractors.tei import parse_tei
from qa_pipeline.finetune import FinetuneConfig, finetune
from qa_pipeline.generate import GenerateConfig, GenerationStats, generate_pairs
from qa_pipeline.generators import FallbackConfig, FallbackGenerator, LocalLLMGenerator, load_local_llm
from qa_pipeline.paper import Paper
from qa_pipeline.passages import PassageConfig

logger = logging.getLogger("bench_qa")
HERE = Path(__file__).resolve().parent
METRICS = ["ndcg@10", "mrr@10", "recall@10", "recall@100"]
#: the queries split into "dev" (for choosing settings) and "rest"
DEV_SEED, N_DEV = 7, 200


@dataclass
class BenchConfig:
    """Knobs of the benchmark (override with key=value)."""

    seed: int = 42
    sample_size: int = field(default=2880, metadata={"help": "SciFact abstracts to generate for (at most)"})
    gen_budget_minutes: float = field(
        default=240.0, metadata={"help": "stop generating once the recorded generation time passes this"}
    )
    questions_per_passage: int = 1
    llm_batch_size: int = 16
    max_passage_tokens: int = field(default=192, metadata={"help": "abstract tokens shown to the LLM"})
    pdf_passages_per_paper: int = field(default=10, metadata={"help": "passages of each shared PDF to use"})
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
    save_best_model: bool = field(
        default=False,
        metadata={
            "help": "keep the best checkpoint by validation NDCG@10 (saturates on tiny splits) instead of the last"
        },
    )
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast in training (slower than fp32 on our CPU)"})
    compare_fallback: bool = field(
        default=False, metadata={"help": "also train on inverse-cloze pseudo-queries of the same abstracts"}
    )
    fallback_sample_sizes: list[int] = field(
        default_factory=list, metadata={"help": "with compare_fallback: also on this many abstracts (e.g. [1000])"}
    )
    grobid_url: str = "http://localhost:8070"
    extraction_repeats: int = 3
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default)"})
    smoke: bool = field(default=False, metadata={"help": "a quick check of the script on tiny subsets (not a result)"})
    work_dir: str = str(HERE / "work")
    results_dir: str = str(HERE / "results")


def machine_facts() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------------------------------
# 1. Extraction


def bench_extraction(cfg: BenchConfig, papers_dir: Path) -> dict:
    pdfs = sorted(papers_dir.glob("*.pdf"))
    local = LocalExtractor()
    out: dict = {"papers": {}, "grobid": {}}
    local_times, tei_times = [], []
    for pdf in pdfs:
        times = []
        for _ in range(cfg.extraction_repeats):
            start = time.perf_counter()
            paper = local.extract(pdf)
            times.append(time.perf_counter() - start)
        tei_path = pdf.with_name(pdf.stem + ".grobid.tei.xml")
        start = time.perf_counter()
        tei = parse_tei(tei_path)
        tei_times.append(time.perf_counter() - start)
        local_times.append(min(times))
        agreement = compare_headings(paper.headings, tei.headings)
        out["papers"][pdf.stem] = {
            "local_seconds": round(min(times), 3),
            "local_sections": len(paper.sections),
            "grobid_tei_sections": len(tei.sections),
            "local_references": len(paper.references),
            "grobid_references": len(tei.references),
            "title_equal": paper.title == tei.title,
            "headings": {k: round(v, 3) if isinstance(v, float) else v for k, v in agreement.items() if k != "matched"},
        }
    out["local_seconds_per_paper"] = round(sum(local_times) / len(local_times), 3)
    out["tei_parse_seconds_per_paper"] = round(sum(tei_times) / len(tei_times), 4)
    client = GrobidClient(cfg.grobid_url)
    if client.is_alive():
        times = []
        for pdf in pdfs:
            start = time.perf_counter()
            client.process_fulltext(pdf)
            times.append(time.perf_counter() - start)
        out["grobid"] = {"available": True, "seconds_per_paper": round(sum(times) / len(times), 3)}
    else:
        out["grobid"] = {"available": False, "note": f"no GROBID server at {cfg.grobid_url}; not measured"}
    return out


# ---------------------------------------------------------------------------------------
# 2. Q&A generation


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


def shrink(beir, seed: int, n_queries: int = 30, n_docs: int = 300):
    """A small BEIR subset for smoke runs: some queries, their relevant documents, others."""
    from embshared.io import BeirDataset

    rng = random.Random(seed)
    queries = rng.sample(sorted(beir.queries), min(n_queries, len(beir.queries)))
    docs = {d for q in queries for d in beir.qrels[q]} | set(rng.sample(sorted(beir.corpus), n_docs))
    return BeirDataset(
        corpus={d: beir.corpus[d] for d in sorted(docs)},
        queries={q: beir.queries[q] for q in queries},
        qrels={q: beir.qrels[q] for q in queries},
        source=beir.source,
    )


def rows_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


# ---------------------------------------------------------------------------------------
# 3-4. Fine-tuning and evaluation


def query_split(beir, seed: int = DEV_SEED, n_dev: int = N_DEV) -> dict[str, set[str]]:
    """A seeded split of the queries: "dev" (used to choose the bench's settings) and "rest"."""
    ids = sorted(beir.queries)
    random.Random(seed).shuffle(ids)
    return {"dev": set(ids[:n_dev]), "rest": set(ids[n_dev:])}


def evaluate_model(
    model, beir, name: str, cache: Path | None = None, parts: dict[str, set[str]] | None = None
) -> dict[str, float]:
    """Dense retrieval metrics; with ``cache``, the corpus embeddings are saved there and
    reused by a rerun (used for the base model, whose embeddings never change). With
    ``parts``, also NDCG@10 on each named subset of the queries (``ndcg@10 <part>``)."""
    encode = sentence_transformer_encoder(model, batch_size=64)
    start = time.perf_counter()
    corpus = beir.corpus_texts()
    doc_ids = list(corpus)
    if cache is not None and cache.is_file():
        doc_embeddings = np.load(cache)
    else:
        doc_embeddings = encode([corpus[d] for d in doc_ids])  # (n_docs, dim)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, doc_embeddings)
    metrics = retrieval_metrics(beir, dense_score_fn(encode, doc_embeddings, "cosine"), parts)
    logger.info("%s evaluated in %.0f s: ndcg@10=%.4f", name, time.perf_counter() - start, metrics["ndcg@10"])
    return metrics


def evaluate_bm25(beir, parts: dict[str, set[str]] | None = None) -> dict[str, float]:
    corpus = beir.corpus_texts()
    ids = list(corpus)
    return retrieval_metrics(beir, bm25_score_fn(ids, [corpus[i] for i in ids]), parts)


def retrieval_metrics(beir, score_fn, parts: dict[str, set[str]] | None = None) -> dict[str, float]:
    """METRICS over all queries, plus NDCG@10 on each named subset of them (``ndcg@10 <part>``)."""
    corpus = beir.corpus_texts()
    ids = list(corpus)
    metrics = evaluate_retrieval(beir.queries, corpus, beir.qrels, score_fn, METRICS, doc_ids=ids)
    for part, keep in (parts or {}).items():
        queries = {q: t for q, t in beir.queries.items() if q in keep}
        qrels = {q: beir.qrels[q] for q in queries}
        metrics[f"ndcg@10 {part}"] = evaluate_retrieval(queries, corpus, qrels, score_fn, ["ndcg@10"], doc_ids=ids)[
            "ndcg@10"
        ]
    return metrics


def run_stamp(ft: FinetuneConfig, qa_file: Path) -> dict:
    """What identifies a training run: its config and the bytes of its pairs."""
    return {**config_to_dict(ft), "overwrite": None, "input_sha1": hashlib.sha1(qa_file.read_bytes()).hexdigest()}


def finetune_config(qa_file: Path, out_dir: Path, cfg: BenchConfig) -> FinetuneConfig:
    ft = FinetuneConfig(
        input_jsonl=str(qa_file),
        output_dir=str(out_dir),
        base_model=cfg.base_model,
        num_epochs=cfg.num_epochs,
        train_batch_size=cfg.train_batch_size,
        learning_rate=cfg.learning_rate,
        loss_function=cfg.loss_function,
        max_seq_length=cfg.max_seq_length,
        save_best_model=cfg.save_best_model,
        bf16=cfg.bf16,
        train_split=0.9,
        seed=cfg.seed,
        tensorboard=False,
        cache_dir=str(Path(cfg.work_dir) / "cache"),
        overwrite=True,
    )
    ft.mining.enabled = cfg.mining
    ft.mining.num_negatives = cfg.num_negatives
    return ft


def train_on(qa_file: Path, out_dir: Path, cfg: BenchConfig) -> tuple[Path, dict]:
    ft = finetune_config(qa_file, out_dir, cfg)
    # A model trained by an earlier run on the same pairs with the same config is reused.
    wanted = run_stamp(ft, qa_file)
    stamp = out_dir / "bench_run.json"
    progress_path = out_dir / "training_progress.json"
    reuse = stamp.is_file() and json.loads(stamp.read_text()) == wanted and progress_path.is_file()
    reuse = reuse and json.loads(progress_path.read_text()).get("training_completed") is True
    if reuse:
        logger.info("reusing the model trained earlier in %s", out_dir)
    else:
        finetune(ft)
        write_json(stamp, wanted)
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


def markdown(report: dict) -> str:
    r = report
    ext = r["extraction"]
    lines = [
        "# qa_pipeline benchmark",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cpu_count']} cores, torch {r['machine']['torch']} with "
        f"{r['machine']['torch_threads']} threads, CUDA {r['machine']['cuda']}. The cores were shared with other "
        f"jobs (load average {r['machine']['load_average_start']} at the start, {r['machine'].get('load_average_end')} "
        "at the end), so times are upper bounds.  ",
        f"Total runtime: {r['total_minutes']:.1f} min.",
        "",
        "## Retrieval: SciFact (809 human train queries vs all 5,183 abstracts)",
        "",
        f"Training data: questions written by {r['generation']['model']} for a seeded uniform random sample of "
        f"**{r['generation']['scifact_abstracts']} SciFact abstracts** (of 5,183; chosen without the qrels) and "
        f"{r['generation']['pdf_papers']} shared PDFs; no human question is used for training.",
        "",
        format_table(r["scifact"], METRICS),
        "",
        f"NDCG@10 on a seeded split of the 809 queries: **dev** ({N_DEV} queries, seed {DEV_SEED}), on which the "
        f"current defaults were chosen, and **rest** (the other {809 - N_DEV}). Earlier runs of this bench were "
        "scored on all 809 queries, so *rest* is not a pristine held-out set; SciFact's test queries stay unused:",
        "",
        format_table(r["scifact"], ["ndcg@10 dev", "ndcg@10 rest"]),
        "",
        "Training data of each fine-tuned row: "
        + "; ".join(f"{run}: {what}" for run, what in r.get("run_data", {}).items())
        + ".",
        "",
        f"Fine-tuned (smollm2, the default generator) vs base NDCG@10: **{r['scifact_delta_ndcg10']:+.4f}** "
        f"(goal: >= +0.02: {'met' if r['goal_met'] else 'not met'}).",
        "",
        "## Forgetting check: PubMedQA (500 human questions vs their 500 abstracts)",
        "",
        format_table(r["pubmedqa"], METRICS),
        "",
        "## Q&A generation",
        "",
        "| generator | papers | passages | candidates | kept | dropped | s / question |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, g in r["generation"]["stats"].items():
        lines.append(
            f"| {name} | {g['papers_done'] + g['papers_skipped']} | {g['passages']} | {g['candidates']} | {g['kept']} | "
            f"{g['rejected']} | {g['seconds_per_question'] if g['seconds_per_question'] is not None else 'n/a'} |"
        )
    lines += ["", "Examples of generated questions:", ""]
    lines += [f"- {q}" for q in r["generation"]["examples"]]
    lines += [
        "",
        "## Extraction",
        "",
        f"Local extractor: {ext['local_seconds_per_paper']} s per paper (best of {r['config']['extraction_repeats']}). "
        f"GROBID: {ext['grobid'].get('seconds_per_paper', ext['grobid'].get('note'))}. Parsing GROBID's TEI: "
        f"{ext['tei_parse_seconds_per_paper']} s per paper.",
        "",
        "| paper | local s | sections local / GROBID | references local / GROBID | title equal | heading P / R / F1 |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, p in ext["papers"].items():
        h = p["headings"]
        lines.append(
            f"| {name} | {p['local_seconds']} | {p['local_sections']} / {p['grobid_tei_sections']} | "
            f"{p['local_references']} / {p['grobid_references']} | {p['title_equal']} | "
            f"{h['precision']:.2f} / {h['recall']:.2f} / {h['f1']:.2f} |"
        )
    lines += ["", "Headings GROBID has and the local extractor misses, and the reverse:", ""]
    for name, p in ext["papers"].items():
        lines.append(f"- {name}: missed {p['headings']['missed']}; extra {p['headings']['extra']}")
    c = r["config"]
    lines += [
        "",
        "## Training runs",
        "",
        f"Settings: {c['base_model']}, {c.get('loss_function', 'MultipleNegativesRankingLoss')}, "
        f"{c['num_epochs']:g} epochs, batch {c['train_batch_size']}, learning rate {c['learning_rate']:g}, "
        f"max_seq_length {c['max_seq_length']}, "
        + (
            f"{c.get('num_negatives', 1)} mined hard negative(s) per pair (embeddingFT's mining, candidates: the "
            "documents of the generated pairs)"
            if c["mining"]
            else "no mined negatives"
        )
        + (
            "; final model: the best checkpoint by validation NDCG@10"
            if c.get("save_best_model", True)
            else "; final model: the last checkpoint"
        )
        + ". Pairs split 90/10 by paper.",
        "",
    ]
    for name, t in r["training"].items():
        lines.append(
            f"- {name}: {t['train_pairs']} train / {t['validation_pairs']} validation pairs (split by paper), "
            f"{t['steps']} steps, {t['seconds']} s"
        )
    if r.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    cfg = load_config(BenchConfig, None, list(sys.argv[1:] if argv is None else argv))
    setup_logging()
    seed_everything(cfg.seed)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    if cfg.smoke:
        cfg.work_dir = str(Path(cfg.work_dir) / "smoke")
        cfg.results_dir = cfg.work_dir
    t0 = time.perf_counter()
    data = shared_data_dir()
    for sub in ("scifact", "pubmedqa", "papers"):
        if not (data / sub).is_dir():
            print(f"shared data not found: {data / sub}; nothing to benchmark", file=sys.stderr)
            return 0
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "command": "make bench-qa " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": config_to_dict(cfg),
        "machine": machine_facts(),
        "notes": [],
    }

    logger.info("1. extraction")
    report["extraction"] = bench_extraction(cfg, data / "papers")
    pdf_papers = [LocalExtractor().extract(p) for p in sorted((data / "papers").glob("*.pdf"))]

    logger.info("2. Q&A generation")
    scifact = load_beir(data / "scifact")
    pubmedqa = load_beir(data / "pubmedqa")
    if cfg.smoke:  # 30 queries, their documents and 300 others: checks the plumbing in minutes
        scifact = shrink(scifact, cfg.seed)
        pubmedqa = shrink(pubmedqa, cfg.seed)
    papers = scifact_papers(scifact.corpus, cfg.seed)[: cfg.sample_size]
    abstract_cfg = GenerateConfig(
        questions_per_passage=cfg.questions_per_passage,
        seed=cfg.seed,
        chunk_passages=cfg.llm_batch_size * 2,
        passages=PassageConfig(max_words=400, min_words=10, max_passages_per_paper=1),
    )
    abstract_cfg.llm.batch_size = cfg.llm_batch_size
    abstract_cfg.llm.max_passage_tokens = cfg.max_passage_tokens
    pdf_cfg = GenerateConfig(
        questions_per_passage=cfg.questions_per_passage,
        seed=cfg.seed,
        passages=PassageConfig(max_passages_per_paper=cfg.pdf_passages_per_paper),
    )
    pdf_cfg.llm = abstract_cfg.llm
    model, tokenizer, name = load_local_llm(abstract_cfg.llm)
    llm = LocalLLMGenerator(
        model, tokenizer, abstract_cfg.llm, n=cfg.questions_per_passage, seed=cfg.seed, model_name=name
    )
    llm_dir = work / "qa_smollm2"
    pdf_stats = generate_all(pdf_papers, llm, pdf_cfg, llm_dir)
    budget = max(0.0, cfg.gen_budget_minutes * 60 - pdf_stats["generation_seconds"])
    abstract_stats, n_done = generate_with_budget(
        papers, llm, abstract_cfg, llm_dir, budget, abstract_cfg.chunk_passages
    )
    del model, llm
    used_ids = {p.paper_id for p in papers[:n_done]}
    qa_rows = [
        r
        for r in rows_of(llm_dir / "questions_answers.jsonl")
        if r["paper_id"] in used_ids or not r["paper_id"].startswith("scifact-")
    ]
    qa_file = work / "smollm2_pairs.jsonl"
    write_text(qa_file, "".join(json.dumps(r) + "\n" for r in qa_rows))
    rng = random.Random(cfg.seed)
    report["generation"] = {
        "model": name,
        "scifact_abstracts": n_done,
        "pdf_papers": len(pdf_papers),
        "pairs": len(qa_rows),
        "stats": {"smollm2 (PDF passages)": pdf_stats, "smollm2 (SciFact abstracts)": abstract_stats},
        "examples": [r["question"] for r in rng.sample(qa_rows, min(8, len(qa_rows)))],
    }
    if n_done < cfg.sample_size:
        report["notes"].append(
            f"generation stopped by its {cfg.gen_budget_minutes:g}-minute budget after {n_done} of the "
            f"{cfg.sample_size} sampled abstracts (a prefix of the seeded random order, so still a uniform sample)"
        )

    runs = {"smollm2": qa_file}
    report["run_data"] = {"smollm2": f"SmolLM2 questions, {n_done} abstracts + {len(pdf_papers)} PDFs"}
    if cfg.compare_fallback:
        everything = scifact_papers(scifact.corpus, cfg.seed)  # the same seeded order: a superset
        fb = FallbackGenerator(FallbackConfig(method="inverse_cloze"), n=cfg.questions_per_passage, seed=cfg.seed)
        fb_cfg = GenerateConfig(questions_per_passage=cfg.questions_per_passage, seed=cfg.seed)
        fb_cfg.passages = abstract_cfg.passages
        for size in [n_done, *cfg.fallback_sample_sizes]:
            fb_dir = work / f"qa_fallback_{size}"
            fb_stats = generate_all(everything[:size], fb, fb_cfg, fb_dir)
            pdf_fb_stats = generate_all(pdf_papers, fb, pdf_cfg, fb_dir)
            report["generation"]["stats"][f"fallback inverse cloze ({size} abstracts)"] = fb_stats
            report["generation"]["stats"][f"fallback inverse cloze (PDF passages, run {size})"] = pdf_fb_stats
            run = f"inverse_cloze_{size}"
            runs[run] = fb_dir / "questions_answers.jsonl"
            report["run_data"][run] = (
                f"no-model inverse-cloze pseudo-queries, {size} abstracts + {len(pdf_papers)} PDFs"
            )

    logger.info("3-4. fine-tuning and evaluation")
    from sentence_transformers import SentenceTransformer

    from embshared.models import load_sentence_transformer

    base = load_sentence_transformer(cfg.base_model)
    base.max_seq_length = cfg.max_seq_length
    key = hashlib.sha1(f"{cfg.base_model}|{cfg.max_seq_length}".encode()).hexdigest()[:12]
    parts = query_split(scifact)
    report["scifact"] = {
        "bm25": evaluate_bm25(scifact, parts),
        "base": evaluate_model(base, scifact, "base", work / "cache" / f"scifact-base-{key}.npy", parts),
    }
    report["pubmedqa"] = {
        "bm25": evaluate_bm25(pubmedqa),
        "base": evaluate_model(base, pubmedqa, "base", work / "cache" / f"pubmedqa-base-{key}.npy"),
    }
    del base
    report["training"] = {}
    for run, path in runs.items():
        model_dir, info = train_on(path, work / f"model_{run}", cfg)
        report["training"][run] = info
        tuned = SentenceTransformer(str(model_dir), device="cpu")
        tuned.max_seq_length = cfg.max_seq_length
        label = f"fine-tuned ({run})"
        tag = hashlib.sha1(f"{model_fingerprint(str(model_dir))}|{cfg.max_seq_length}".encode()).hexdigest()[:12]
        cache = work / "cache"
        report["scifact"][label] = evaluate_model(tuned, scifact, label, cache / f"scifact-{run}-{tag}.npy", parts)
        report["pubmedqa"][label] = evaluate_model(tuned, pubmedqa, label, cache / f"pubmedqa-{run}-{tag}.npy")
    main_label = "fine-tuned (smollm2)"
    delta = report["scifact"][main_label]["ndcg@10"] - report["scifact"]["base"]["ndcg@10"]
    report["scifact_delta_ndcg10"] = round(delta, 4)
    report["pubmedqa_delta_ndcg10"] = round(
        report["pubmedqa"][main_label]["ndcg@10"] - report["pubmedqa"]["base"]["ndcg@10"], 4
    )
    report["goal_met"] = delta >= 0.02
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_minutes"] = round((time.perf_counter() - t0) / 60, 2)
    results = Path(cfg.results_dir)
    write_json(results / "qa_bench.json", report)
    write_text(results / "qa_bench.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
