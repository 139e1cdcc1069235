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
3. Fine-tuning through qa_pipeline.finetuning (embeddingFT's training code), split by paper.
4. Retrieval: SciFact's 809 human train queries and qrels against the whole corpus (5,183
   abstracts): BM25, the base model and the fine-tuned model. Forgetting check: the same on
   PubMedQA (500 human questions against their 500 abstracts).
   Optionally the same fine-tuning on inverse-cloze pseudo-queries of the same abstracts
   (the no-model generator) as a peer in the same run.

The tracks: scifact (the above: scifact.py, with extraction.py), cranfield (cranfield.py) and claims
(claims.py); what they share is in common.py. Writes ``qa_bench`` / ``qa_cranfield`` / ``qa_claims``
``.json`` + ``.md`` into ``results_dir`` (default bench/results/default/; a variant goes to its own
bench/results/<variant>/ with results_dir=...); intermediate data in
bench/work/ (git-ignored; a rerun reuses generated questions).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the bench's own modules (common, scifact, extraction, cranfield, claims) import from this script's
# folder, which Python puts first on the module path when it runs a script

from claims import ClaimsConfig, run_claims
from cranfield import CranfieldConfig, run_cranfield
from scifact import markdown, run_scifact, scifact_split

from embshared.bench import machine_facts, write_results
from embshared.cli import add_config_arguments, config_from_args, start_run
from embshared.errors import cli_entry
from embshared.io import load_beir
from embshared.runtime import shared_data_dir
from qa_pipeline.generation import GenerateConfig
from qa_pipeline.generators import LocalLLMGenerator, load_local_llm

HERE = Path(__file__).resolve().parent
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
    results_dir: str = field(
        default=str(HERE / "results" / "default"),
        metadata={"help": "where the results go: bench/results/<variant>/ (default: the default settings' run)"},
    )

    def validate(self) -> None:
        unknown = sorted(set(self.tracks) - set(TRACKS))
        if unknown:
            raise ValueError(f"key 'tracks': unknown track(s) {', '.join(unknown)} (one of {', '.join(TRACKS)})")


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser, BenchConfig)
    cfg = config_from_args(BenchConfig, parser.parse_args(args))
    start_run(seed=cfg.seed, threads=cfg.threads)
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
