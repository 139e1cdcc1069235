"""The claims track of the qa bench: SmolLM2 asked for a *claim the abstract supports* (SciFact's
queries are claims), measured against the no-model inverse-cloze peer on the same abstracts.

Inverse cloze pairs a sentence copied from the abstract with the rest of it; a 135M model asked
for a claim tends to copy a sentence too, so the filter drops claims that repeat a sentence of
the abstract (``copied_sentence``) and the track reports how many were dropped, then trains
both sets the same way and scores them on SciFact's 809 human claims (dev / rest) and PubMedQA.
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
    scifact_papers,
    speed,
    train_on,
    tuned_model_id,
)
from cranfield import generation_config

from embshared.evaluate import format_table
from embshared.files import write_json, write_text
from qa_pipeline.filters import sentence_similarity
from qa_pipeline.generators import FallbackConfig, FallbackGenerator

logger = logging.getLogger("bench_qa")


@dataclass
class ClaimsConfig:
    """Knobs of the claims track (``claims.<key>=value``)."""

    sample_size: int = field(
        default=400, metadata={"help": "SciFact abstracts (a prefix of the scifact track's seeded order)"}
    )
    train: TrainSettings = field(default_factory=TrainSettings)


def run_claims(cfg, work: Path, load_llm, scifact, pubmedqa, parts) -> tuple[dict, str]:
    """Claims vs inverse cloze on the first ``claims.sample_size`` abstracts of the seeded order."""
    cc: ClaimsConfig = cfg.claims
    root = work / "claims"
    papers = scifact_papers(scifact.corpus, cfg.seed)[: 48 if cfg.smoke else cc.sample_size]
    gen_cfg = generation_config(cfg, 1)
    gen_cfg.query_kind = "claim"
    llm = load_llm(gen_cfg)
    claim_dir = root / "qa_claim"
    claim_stats = generate_all(papers, llm, gen_cfg, claim_dir)
    model_name = llm.model_name
    del llm
    fb = FallbackGenerator(FallbackConfig(method="inverse_cloze"), n=1, seed=cfg.seed)
    ict_dir = root / f"qa_inverse_cloze_{cc.sample_size}"
    ict_stats = generate_all(papers, fb, generation_config(cfg, 1), ict_dir)
    ids = {p.paper_id for p in papers}
    runs = {}
    for run, folder in (("claims", claim_dir), ("inverse_cloze", ict_dir)):
        rows = [r for r in rows_of(folder / "questions_answers.jsonl") if r["paper_id"] in ids]
        path = root / f"{run}_{cc.sample_size}.jsonl"
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        runs[run] = (path, rows)
    claim_rows = runs["claims"][1]
    rng = random.Random(cfg.seed)
    report: dict = {
        "abstracts": len(papers),
        "config": {"sample_size": cc.sample_size, "train": vars(cc.train)},
        "generation": {
            "model": model_name,
            "claims": claim_stats,
            "speed": speed(claim_stats),
            "inverse_cloze": ict_stats,
            # how close the kept claims still are to a sentence of their abstract (1.0 = a copy,
            # which every inverse-cloze query is by construction)
            "kept_claim_sentence_similarity_mean": round(
                sum(sentence_similarity(r["question"], r["answer"]) for r in claim_rows) / max(len(claim_rows), 1), 4
            ),
            "examples": [
                {"claim": r["question"], "abstract": r["answer"][:200]}
                for r in rng.sample(claim_rows, min(6, len(claim_rows)))
            ],
        },
    }
    from sentence_transformers import SentenceTransformer

    from embshared.models import load_sentence_transformer

    settings = cc.train
    cache = work / "cache"
    base = load_sentence_transformer(settings.base_model)
    base.max_seq_length = settings.max_seq_length
    base_id = f"{settings.base_model}|{settings.max_seq_length}"
    report["scifact"] = {
        "bm25": evaluate_bm25(scifact, parts),
        "base": evaluate_model(base, scifact, "scifact base", cache, base_id, parts),
    }
    report["pubmedqa"] = {"base": evaluate_model(base, pubmedqa, "pubmedqa base", cache, base_id)}
    del base
    report["training"] = {}
    for run, (path, _) in runs.items():
        model_dir, info = train_on(path, root / f"model_{run}_{cc.sample_size}", settings, cache)
        report["training"][run] = info
        tuned = SentenceTransformer(str(model_dir), device="cpu")
        tuned.max_seq_length = settings.max_seq_length
        label = f"fine-tuned ({run})"
        tid = tuned_model_id(model_dir, settings.max_seq_length)
        report["scifact"][label] = evaluate_model(tuned, scifact, label, cache, tid, parts)
        report["pubmedqa"][label] = evaluate_model(tuned, pubmedqa, label, cache, tid)
        write_json(root / "report.partial.json", report)  # figures so far, should a long run be cut
    sc = report["scifact"]
    report["claims_minus_inverse_cloze"] = {
        k: round(sc["fine-tuned (claims)"][k] - sc["fine-tuned (inverse_cloze)"][k], 4)
        for k in ("ndcg@10", "ndcg@10 dev", "ndcg@10 rest")
        if k in sc["base"]  # a smoke run's queries may all be dev
    }
    return report, markdown(report)


def markdown(r: dict) -> str:
    g = r["generation"]
    c, i = g["claims"], g["inverse_cloze"]
    d = r["claims_minus_inverse_cloze"]
    t = r["config"]["train"]
    lines = [
        "# qa_pipeline benchmark: SmolLM2 claims vs inverse cloze (SciFact)",
        "",
        f"The first {r['abstracts']} SciFact abstracts of the bench's seeded order. {g['model']} asked for one "
        f"claim the abstract supports: {c['candidates']} candidates, {c['kept']} kept, dropped {c['rejected']} "
        f"(`copied_sentence`: within 0.8 word-sequence similarity of a sentence of the abstract). Kept claims are "
        f"at {g['kept_claim_sentence_similarity_mean']} mean similarity to their closest abstract sentence (an "
        f"inverse-cloze query is at 1.0). Inverse cloze: {i['kept']} pairs. Speed: "
        f"{g['speed']['questions_per_second']} claims/s.",
        "",
        "SciFact (809 human train claims vs 5,183 abstracts; dev = the 200 queries of seed 7):",
        "",
        format_table(r["scifact"], [*METRICS, "ndcg@10 dev", "ndcg@10 rest"]),
        "",
        "Claims minus inverse cloze, NDCG@10: " + ", ".join(f"{k} {v:+.4f}" for k, v in d.items()) + ".",
        "",
        "PubMedQA (500 human questions vs their 500 abstracts):",
        "",
        format_table(r["pubmedqa"], ["ndcg@10", "recall@100"]),
        "",
        f"Training: {t['base_model']}, {t['loss_function']}, {t['num_epochs']:g} epoch(s), batch "
        f"{t['train_batch_size']}, lr {t['learning_rate']:g}, "
        + (f"{t['num_negatives']} mined hard negative(s)" if t["mining"] else "no mined negatives")
        + ", last checkpoint, split 90/10 by paper.",
        "",
    ]
    for run, info in r["training"].items():
        lines.append(f"- {run}: {info['train_pairs']} train pairs, {info['steps']} steps, {info['seconds']} s")
    lines += ["", "Examples of kept claims:", ""]
    lines += [f"- {e['claim']}  \n  (abstract: {e['abstract']}...)" for e in g["examples"]]
    return "\n".join(lines) + "\n"
