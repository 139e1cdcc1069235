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

import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the bench's own modules (common, cranfield, claims) import from this script's folder, which Python
# puts first on the module path when it runs a script

from claims import ClaimsConfig, run_claims
from common import (
    TrainSettings,
    evaluate_bm25,
    evaluate_model,
    generate_all,
    generate_with_budget,
    rows_of,
    scifact_papers,
    speed,
    train_on,
    tuned_model_id,
)
from cranfield import CranfieldConfig, run_cranfield

from embshared.bench import machine_facts, write_results
from embshared.config import config_to_dict, load_config
from embshared.errors import cli_entry
from embshared.evaluate import format_table
from embshared.files import write_text
from embshared.io import load_beir
from embshared.runtime import seed_everything, setup_logging, shared_data_dir
from qa_pipeline.benchmark_data import query_split
from qa_pipeline.extractors import GrobidClient
from qa_pipeline.extractors.agreement import compare_headings
from qa_pipeline.extractors.local import LocalExtractor
from qa_pipeline.extractors.tei import parse_tei
from qa_pipeline.generate import GenerateConfig
from qa_pipeline.generators import FallbackConfig, FallbackGenerator, LocalLLMGenerator, load_local_llm
from qa_pipeline.passages import PassageConfig

logger = logging.getLogger("bench_qa")
HERE = Path(__file__).resolve().parent
METRICS = ["ndcg@10", "mrr@10", "recall@10", "recall@100"]
#: the queries split into "dev" (for choosing settings) and "rest"
DEV_SEED, N_DEV = 7, 200
TRACKS = ("scifact", "cranfield", "claims")


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
    fallback_pdfs: bool = field(
        default=True,
        metadata={"help": "with compare_fallback: the peer also gets the PDFs' passages (false: abstracts only)"},
    )
    fallback_sample_sizes: list[int] = field(
        default_factory=list, metadata={"help": "with compare_fallback: also on this many abstracts (e.g. [1000])"}
    )
    grobid_url: str = "http://localhost:8070"
    extraction_repeats: int = 3
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default)"})
    smoke: bool = field(default=False, metadata={"help": "a quick check of the script on tiny subsets (not a result)"})
    tracks: list[str] = field(
        default_factory=lambda: ["scifact", "cranfield", "claims"],
        metadata={"help": "scifact (questions, SciFact claims as queries), cranfield (human questions), claims"},
    )
    cranfield: CranfieldConfig = field(default_factory=CranfieldConfig)
    claims: ClaimsConfig = field(default_factory=ClaimsConfig)
    work_dir: str = str(HERE / "work")
    results_dir: str = str(HERE / "results")

    def validate(self) -> None:
        unknown = sorted(set(self.tracks) - set(TRACKS))
        if unknown:
            raise ValueError(f"key 'tracks': unknown track(s) {', '.join(unknown)} (one of {', '.join(TRACKS)})")


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


# ---------------------------------------------------------------------------------------
# 3-4. Fine-tuning and evaluation


def markdown(report: dict) -> str:
    r = report
    ext = r["extraction"]
    lines = [
        "# qa_pipeline benchmark: SciFact (claims) and extraction",
        "",
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


def run_scifact(cfg: BenchConfig, data: Path, work: Path, load_llm, scifact, pubmedqa, t0: float) -> dict:
    """The SciFact track (SmolLM2 questions about SciFact abstracts and the shared PDFs)."""
    report: dict = {"config": config_to_dict(cfg), "notes": []}
    logger.info("1. extraction")
    report["extraction"] = bench_extraction(cfg, data / "papers")
    pdf_papers = [LocalExtractor().extract(p) for p in sorted((data / "papers").glob("*.pdf"))]

    logger.info("2. Q&A generation")
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
    llm = load_llm(abstract_cfg)
    name = llm.model_name
    llm_dir = work / "qa_smollm2"
    pdf_stats = generate_all(pdf_papers, llm, pdf_cfg, llm_dir)
    budget = max(0.0, cfg.gen_budget_minutes * 60 - pdf_stats["generation_seconds"])
    abstract_stats, n_done = generate_with_budget(
        papers, llm, abstract_cfg, llm_dir, budget, abstract_cfg.chunk_passages
    )
    del llm
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
        "speed": speed(abstract_stats),
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
            fb_dir = work / (f"qa_fallback_{size}" if cfg.fallback_pdfs else f"qa_fallback_{size}_abstracts")
            fb_stats = generate_all(everything[:size], fb, fb_cfg, fb_dir)
            report["generation"]["stats"][f"fallback inverse cloze ({size} abstracts)"] = fb_stats
            if cfg.fallback_pdfs:
                pdf_fb_stats = generate_all(pdf_papers, fb, pdf_cfg, fb_dir)
                report["generation"]["stats"][f"fallback inverse cloze (PDF passages, run {size})"] = pdf_fb_stats
            run = f"inverse_cloze_{size}"
            runs[run] = fb_dir / "questions_answers.jsonl"
            pdfs = f" + {len(pdf_papers)} PDFs" if cfg.fallback_pdfs else " (no PDFs)"
            report["run_data"][run] = f"no-model inverse-cloze pseudo-queries, {size} abstracts{pdfs}"

    logger.info("3-4. fine-tuning and evaluation")
    from sentence_transformers import SentenceTransformer

    from embshared.models import load_sentence_transformer

    settings = train_settings(cfg)
    cache = work / "cache"
    base = load_sentence_transformer(cfg.base_model)
    base.max_seq_length = cfg.max_seq_length
    base_id = f"{cfg.base_model}|{cfg.max_seq_length}"
    parts = scifact_split(scifact)
    report["scifact"] = {
        "bm25": evaluate_bm25(scifact, parts),
        "base": evaluate_model(base, scifact, "base", cache, base_id, parts),
    }
    report["pubmedqa"] = {
        "bm25": evaluate_bm25(pubmedqa),
        "base": evaluate_model(base, pubmedqa, "base", cache, base_id),
    }
    del base
    report["training"] = {}
    for run, path in runs.items():
        model_dir, info = train_on(path, work / f"model_{run}", settings, cache)
        report["training"][run] = info
        tuned = SentenceTransformer(str(model_dir), device="cpu")
        tuned.max_seq_length = cfg.max_seq_length
        label = f"fine-tuned ({run})"
        tid = tuned_model_id(model_dir, cfg.max_seq_length)
        report["scifact"][label] = evaluate_model(tuned, scifact, label, cache, tid, parts)
        report["pubmedqa"][label] = evaluate_model(tuned, pubmedqa, label, cache, tid)
    main_label = "fine-tuned (smollm2)"
    delta = report["scifact"][main_label]["ndcg@10"] - report["scifact"]["base"]["ndcg@10"]
    report["scifact_delta_ndcg10"] = round(delta, 4)
    report["pubmedqa_delta_ndcg10"] = round(
        report["pubmedqa"][main_label]["ndcg@10"] - report["pubmedqa"]["base"]["ndcg@10"], 4
    )
    report["goal_met"] = delta >= 0.02
    report["total_minutes"] = round((time.perf_counter() - t0) / 60, 2)
    return report


def train_settings(cfg: BenchConfig) -> TrainSettings:
    """The SciFact track's recipe from the bench's flat keys."""
    keys = {f.name for f in fields(TrainSettings)}
    return TrainSettings(**{k: getattr(cfg, k) for k in keys})


def scifact_split(scifact) -> dict[str, set[str]]:
    """SciFact's 809 train queries split into dev (200, seed 7) and rest, as in every earlier run."""
    return query_split(scifact.queries, DEV_SEED, N_DEV)


def smollm2_loader(cfg: BenchConfig):
    """A function gen_cfg -> SmolLM2 generator, loading the model once."""
    loaded: dict = {}

    def load(gen_cfg: GenerateConfig) -> LocalLLMGenerator:
        if "model" not in loaded:
            loaded["model"] = load_local_llm(gen_cfg.llm)
        model, tokenizer, name = loaded["model"]
        return LocalLLMGenerator(
            model,
            tokenizer,
            gen_cfg.llm,
            n=gen_cfg.questions_per_passage,
            seed=cfg.seed,
            model_name=name,
            kind=gen_cfg.query_kind,
        )

    return load


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cfg = load_config(BenchConfig, None, args)
    setup_logging()
    seed_everything(cfg.seed)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    if cfg.smoke:
        cfg.work_dir = str(Path(cfg.work_dir) / "smoke")
        cfg.results_dir = cfg.work_dir
    data = shared_data_dir()
    needed = {"scifact", "pubmedqa"} | ({"papers"} if "scifact" in cfg.tracks else set())
    needed |= {"cranfield"} if "cranfield" in cfg.tracks else set()
    for sub in sorted(needed):
        if not (data / sub).is_dir():
            print(f"shared data not found: {data / sub}; nothing to benchmark", file=sys.stderr)
            return 0
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    command = "make bench-qa " + " ".join(args)
    facts = machine_facts()
    scifact = load_beir(data / "scifact")
    pubmedqa = load_beir(data / "pubmedqa")
    if cfg.smoke:  # 30 queries, their documents and 300 others: checks the plumbing in minutes
        scifact = shrink(scifact, cfg.seed)
        pubmedqa = shrink(pubmedqa, cfg.seed)
    load_llm = smollm2_loader(cfg)
    results = Path(cfg.results_dir)
    for track in cfg.tracks:
        t0 = time.perf_counter()
        if track == "scifact":
            report = run_scifact(cfg, data, work, load_llm, scifact, pubmedqa, t0)
            name, text = "qa_bench", markdown(report)
        elif track == "cranfield":
            report, text = run_cranfield(cfg, data, work, load_llm, scifact, pubmedqa, scifact_split(scifact))
            name = "qa_cranfield"
        elif track == "claims":
            report, text = run_claims(cfg, work, load_llm, scifact, pubmedqa, scifact_split(scifact))
            name = "qa_claims"
        else:
            raise AssertionError(track)  # BenchConfig.validate allows only TRACKS
        report["total_minutes"] = round((time.perf_counter() - t0) / 60, 2)
        write_results(results, name, report, text, command, facts=dict(facts))
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
