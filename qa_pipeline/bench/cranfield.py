"""The Cranfield track of the qa bench: a collection whose human queries are *questions*.

The 1,400 aerodynamics abstracts (embshared.io.load_cranfield) become one paper JSON each,
written and read back as qa-extract's output is (qa_pipeline.records, load_papers); SmolLM2
writes questions with the pipeline's generator and filters; MiniLM is fine-tuned on them
through qa_pipeline.finetune (embeddingFT); NDCG@10 / recall@100 on Cranfield's 225 human
questions (graded qrels) are reported for BM25, the base model, the fine-tuned model and the
no-model inverse-cloze peer trained the same way on the same abstracts. Settings are chosen
on a seeded *dev* half of the 225 questions; *rest* is reported, never used to choose.
Forgetting: the fine-tuned model on SciFact (809 train claims) and PubMedQA (500 questions).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    METRICS,
    TrainSettings,
    evaluate_bm25,
    evaluate_model,
    generate_all,
    rows_of,
    speed,
    train_on,
    tuned_model_id,
)

from embshared.evaluate import format_table
from embshared.files import write_json, write_text
from qa_pipeline.benchmark_data import cranfield_beir, cranfield_papers, limit_per_paper, query_split
from qa_pipeline.generation import GenerateConfig
from qa_pipeline.generators import FallbackConfig, FallbackGenerator
from qa_pipeline.passages import PassageConfig

logger = logging.getLogger("bench_qa")
#: the goal of the track: fine-tuned >= base + GOAL_GAIN NDCG@10 on the rest half, and
#: SciFact / PubMedQA NDCG@10 within FORGET_TOLERANCE of the base model's.
GOAL_GAIN, FORGET_TOLERANCE = 0.03, 0.01


@dataclass
class CranfieldConfig:
    """Knobs of the Cranfield track (``cranfield.<key>=value``)."""

    questions_per_passage: int = field(default=1, metadata={"help": "SmolLM2 candidates per abstract (cached)"})
    questions_per_abstract: int = field(
        default=0, metadata={"help": "use at most this many kept questions of each abstract in training (0: all)"}
    )
    dev_seed: int = field(default=18, metadata={"help": "seed of the dev / rest split of the 225 questions"})
    n_dev: int = field(default=112, metadata={"help": "questions in the dev half (settings are chosen on it)"})
    inverse_cloze: bool = field(default=True, metadata={"help": "train the no-model inverse-cloze peer too"})
    forgetting: bool = field(default=True, metadata={"help": "evaluate the fine-tuned model on SciFact and PubMedQA"})
    train: TrainSettings = field(default_factory=TrainSettings)


def generation_config(cfg, n: int) -> GenerateConfig:
    """The abstract-as-paper generation settings (one passage per abstract, as the SciFact track)."""
    gen = GenerateConfig(
        questions_per_passage=n,
        seed=cfg.seed,
        chunk_passages=cfg.llm_batch_size * 2,
        passages=PassageConfig(max_words=400, min_words=10, max_passages_per_paper=1),
    )
    gen.llm.batch_size = cfg.llm_batch_size
    gen.llm.max_passage_tokens = cfg.max_passage_tokens
    return gen


def run_cranfield(cfg, data: Path, work: Path, load_llm, scifact, pubmedqa, scifact_parts) -> tuple[dict, str]:
    """Run the track; ``cfg`` is the bench's config (``cfg.cranfield`` this track's),
    ``load_llm(gen_cfg)`` returns the SmolLM2 generator. Returns the report and its Markdown."""
    cc: CranfieldConfig = cfg.cranfield
    root = work / "cranfield"
    folder = data / "cranfield"
    papers, empty = cranfield_papers(folder, root / "papers")
    beir = cranfield_beir(folder, papers)
    if cfg.smoke:  # a check of the plumbing on 48 abstracts (the evaluation stays on all of them)
        papers = papers[:48]
    parts = query_split(beir.queries, cc.dev_seed, cc.n_dev)
    report: dict = {
        "papers": len(beir.corpus),
        "abstracts_generated_for": len(papers),
        "records_without_text": empty,
        "queries": len(beir.queries),
        "dev_queries": len(parts["dev"]),
        "rest_queries": len(parts["rest"]),
        "config": {"cranfield": {k: v for k, v in vars(cc).items() if k != "train"}, "train": vars(cc.train)},
    }

    logger.info("cranfield: SmolLM2 questions for %d abstracts", len(papers))
    gen_cfg = generation_config(cfg, cc.questions_per_passage)
    llm = load_llm(gen_cfg)
    gen_dir = root / f"qa_smollm2_n{cc.questions_per_passage}"  # the progress file knows papers, not settings
    stats = generate_all(papers, llm, gen_cfg, gen_dir)
    model_name = llm.model_name
    del llm
    rows = limit_per_paper(rows_of(gen_dir / "questions_answers.jsonl"), cc.questions_per_abstract)
    qa_file = root / f"smollm2_pairs_n{cc.questions_per_passage}_k{cc.questions_per_abstract}.jsonl"
    write_text(qa_file, "".join(json.dumps(r) + "\n" for r in rows))
    rng = random.Random(cfg.seed)
    report["generation"] = {
        "model": model_name,
        "stats": stats,
        "speed": speed(stats),
        "pairs_used": len(rows),
        "examples": [r["question"] for r in rng.sample(rows, min(8, len(rows)))],
    }
    runs = {"smollm2": qa_file}
    if cc.inverse_cloze:
        fb = FallbackGenerator(FallbackConfig(method="inverse_cloze"), n=cc.questions_per_passage, seed=cfg.seed)
        fb_cfg = generation_config(cfg, cc.questions_per_passage)
        fb_dir = root / f"qa_inverse_cloze_n{cc.questions_per_passage}"
        fb_stats = generate_all(papers, fb, fb_cfg, fb_dir)
        report["generation"]["inverse_cloze_stats"] = fb_stats
        runs["inverse_cloze"] = fb_dir / "questions_answers.jsonl"

    from embshared.models import load_sentence_transformer

    settings = cc.train
    cache = work / "cache"
    base = load_sentence_transformer(settings.base_model)
    base.max_seq_length = settings.max_seq_length
    base_id = f"{settings.base_model}|{settings.max_seq_length}"
    report["cranfield"] = {
        "bm25": evaluate_bm25(beir, parts),
        "base": evaluate_model(base, beir, "cranfield base", cache, base_id, parts),
    }
    report["scifact"], report["pubmedqa"] = {}, {}
    if cc.forgetting:
        report["scifact"]["base"] = evaluate_model(base, scifact, "scifact base", cache, base_id, scifact_parts)
        report["pubmedqa"]["base"] = evaluate_model(base, pubmedqa, "pubmedqa base", cache, base_id)
    del base

    from sentence_transformers import SentenceTransformer

    report["training"] = {}
    for run, path in runs.items():
        model_dir, info = train_on(path, root / f"model_{run}", settings, cache)
        report["training"][run] = info
        tuned = SentenceTransformer(str(model_dir), device="cpu")
        tuned.max_seq_length = settings.max_seq_length
        label = f"fine-tuned ({run})"
        tid = tuned_model_id(model_dir, settings.max_seq_length)
        report["cranfield"][label] = evaluate_model(tuned, beir, f"cranfield {label}", cache, tid, parts)
        if cc.forgetting and run == "smollm2":
            report["scifact"][label] = evaluate_model(tuned, scifact, f"scifact {label}", cache, tid, scifact_parts)
            report["pubmedqa"][label] = evaluate_model(tuned, pubmedqa, f"pubmedqa {label}", cache, tid)
        write_json(root / "report.partial.json", report)  # figures so far, should a long run be cut
    report["goal"] = goal(report)
    return report, markdown(report)


def goal(report: dict) -> dict:
    """The issue's goal on this run's figures."""
    ft, base = report["cranfield"]["fine-tuned (smollm2)"], report["cranfield"]["base"]
    out = {
        "delta_ndcg10_rest": round(ft["ndcg@10 rest"] - base["ndcg@10 rest"], 4),
        "delta_ndcg10_dev": round(ft["ndcg@10 dev"] - base["ndcg@10 dev"], 4),
        "delta_ndcg10_all": round(ft["ndcg@10"] - base["ndcg@10"], 4),
    }
    met = out["delta_ndcg10_rest"] >= GOAL_GAIN
    for name in ("scifact", "pubmedqa"):
        rows = report.get(name) or {}
        if "fine-tuned (smollm2)" in rows:
            d = rows["fine-tuned (smollm2)"]["ndcg@10"] - rows["base"]["ndcg@10"]
            out[f"{name}_delta_ndcg10"] = round(d, 4)
            met = met and d >= -FORGET_TOLERANCE
        else:
            met = False
    out["met"] = met
    return out


def markdown(r: dict) -> str:
    g = r["generation"]
    s = g["stats"]
    sp = g["speed"]
    t = r["config"]["train"]
    lines = [
        "# qa_pipeline benchmark: Cranfield (human questions)",
        "",
        f"{r['papers']} Cranfield abstracts as paper JSON (records without text, not written: "
        f"{', '.join(r['records_without_text']) or 'none'}); {r['queries']} human questions with graded qrels "
        f"split by a seeded draw into **dev** ({r['dev_queries']}, settings chosen on it) and **rest** "
        f"({r['rest_queries']}, reported only). No human question is used for training.",
        "",
        format_table(r["cranfield"], METRICS),
        "",
        format_table(r["cranfield"], ["ndcg@10 dev", "ndcg@10 rest", "recall@100 dev", "recall@100 rest"]),
        "",
        f"Fine-tuned on SmolLM2 questions vs base, NDCG@10: rest **{r['goal']['delta_ndcg10_rest']:+.4f}**, "
        f"dev {r['goal']['delta_ndcg10_dev']:+.4f}, all {r['goal']['delta_ndcg10_all']:+.4f} "
        f"(goal >= +{GOAL_GAIN} on rest with SciFact and PubMedQA within {FORGET_TOLERANCE} of base: "
        f"**{'met' if r['goal']['met'] else 'not met'}**).",
        "",
    ]
    if r.get("scifact"):
        lines += [
            "## Forgetting check",
            "",
            "SciFact (809 human train claims vs 5,183 abstracts):",
            "",
            format_table(r["scifact"], ["ndcg@10", "recall@100", "ndcg@10 dev", "ndcg@10 rest"]),
            "",
            "PubMedQA (500 human questions vs their 500 abstracts):",
            "",
            format_table(r["pubmedqa"], ["ndcg@10", "recall@100"]),
            "",
        ]
    lines += [
        "## Generation",
        "",
        f"{g['model']}, {r['config']['cranfield']['questions_per_passage']} candidate(s) per abstract: "
        f"{s['candidates']} candidates, {s['kept']} kept, dropped {s['rejected']}; "
        f"{g['pairs_used']} pairs used for training. Speed (recorded generation time): "
        f"**{sp['questions_per_second']} questions/s** ({sp['kept_questions_per_second']} kept/s, "
        f"{sp['seconds_per_paper']} s per abstract).",
        "",
        "Examples:",
        "",
        *[f"- {q}" for q in g["examples"]],
        "",
        "## Training",
        "",
        f"{t['base_model']}, {t['loss_function']}, {t['num_epochs']:g} epoch(s), batch {t['train_batch_size']}, "
        f"lr {t['learning_rate']:g}, max_seq_length {t['max_seq_length']}, "
        + (f"{t['num_negatives']} mined hard negative(s) per pair" if t["mining"] else "no mined negatives")
        + ", last checkpoint; pairs split 90/10 by paper.",
        "",
    ]
    for run, info in r["training"].items():
        lines.append(
            f"- {run}: {info['train_pairs']} train / {info['validation_pairs']} validation pairs, "
            f"{info['steps']} steps, {info['seconds']} s{' (reused)' if info['reused'] else ''}"
        )
    return "\n".join(lines) + "\n"
