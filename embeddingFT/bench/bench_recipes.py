"""embeddingFT recipes on SciFact: candidate configs side by side, chosen on dev, reported on rest.

    python embeddingFT/bench/bench_recipes.py [--only NAME ...] [--tag TAG]

Every candidate is ``configs/scifact.yaml`` plus a few overrides, trained by
``python -m embedding_ft.cli.train`` in its own process (so its peak memory is its own) on the
same 80% of the SciFact train claims (seed 42). The other 20% are split once more, by a
seeded shuffle, into **dev** (to choose the recipe on) and **rest** (reported, never
chosen on). The judged figure is on SciFact's test claims, which nobody here has.

For each candidate: NDCG@10 on dev and rest (dense and hybrid), wall time and peak RSS of the
run, and the guard rails measured on the final model: STS-B dev Spearman and PubMedQA
NDCG@10 against the base model's (forgetting = more than 0.01 below base). Results accumulate
in ``bench/results/recipes/recipes.json`` (a candidate rerun replaces its row) and
``recipes.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from embshared.bench import machine_facts, write_results
from embshared.evaluate import evaluate_retrieval, format_table
from embshared.fusion import convex_fusion
from embshared.io import load_beir, read_sts
from embshared.metrics import similarity_correlations
from embshared.runtime import repo_root, setup_logging, shared_data_dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "recipes"
WORK = HERE / "work" / "recipes"
CONFIG = "embeddingFT/configs/scifact.yaml"
METRICS = ["ndcg@10", "mrr@10", "recall@100"]

#: name -> (overrides, what it tests). The first is the reference (the recipe before this bench).
CANDIDATES: dict[str, tuple[list[str], str]] = {
    "mnrl_1neg": (["loss=MultipleNegativesRankingLoss"], "the previous recipe: MNRL, 1 mined negative, 1 epoch"),
    "auto_1neg": ([], "loss auto: cached MNRL (mini-batch 16) under max_memory_gb=4, else the same"),
    "neg3": (["mining.num_negatives=3"], "3 mined negatives per pair"),
    "bm25neg": (["mining.bm25_negatives=1"], "1 dense + 1 BM25 negative per pair (the recipe since 2026-12-03)"),
    "bm25neg2": (["mining.bm25_negatives=2"], "1 dense + 2 BM25 negatives per pair (the recipe has 1)"),
    "gist": (["loss=CachedGISTEmbedLoss"], "GIST: the base model filters in-batch false negatives"),
    "symmetric": (["symmetric_loss=true"], "query->doc and doc->query"),
    "epochs2": (["num_epochs=2"], "2 epochs"),
    "lr1e-4": (["learning_rate=1e-4"], "learning rate 1e-4"),
    "titles1000": (["pseudo_queries.kind=titles", "pseudo_queries.max_pairs=1000"], "+1,000 title -> body pairs"),
    "ict1000": (["pseudo_queries.kind=inverse_cloze", "pseudo_queries.max_pairs=1000"], "+1,000 inverse-cloze pairs"),
    "merge0.3": (["merge_with_base=0.3"], "WiSE-FT: 0.3 base + 0.7 fine-tuned"),
    "matryoshka": (["matryoshka_dims=[384,256,128,64]"], "MatryoshkaLoss over 384/256/128/64 dims"),
    "skip10": (["mining.range_min=10"], "negatives mined from ranks 10-100: skip where unlabelled positives sit"),
    "train60": (["test_size=0.4"], "learning curve: train on 60% of the claims (dev and rest still held out)"),
    "seed1": (["training_seed=1"], "run-to-run spread: the recipe with another trainer seed (batch order)"),
    "seed2": (["training_seed=2"], "run-to-run spread: the recipe with a third trainer seed"),
    "auto_seed1": (["mining.bm25_negatives=0", "training_seed=1"], "loss auto (no BM25 negative), trainer seed 1"),
    "auto_seed2": (["mining.bm25_negatives=0", "training_seed=2"], "loss auto (no BM25 negative), trainer seed 2"),
    "batch16": (["batch_size=16"], "batch 16: twice the optimizer steps (42) in the same epoch"),
    "keep_unmined": (
        ["mining.keep_unmined=true"],
        "the 9% of pairs no dense candidate passes the margin for kept, BM25 negatives in both slots",
    ),
}


def heldout_split(seed: int = 0) -> tuple[list[str], list[str], object, list[str]]:
    """(dev query ids, rest query ids, the SciFact BEIR set, novel query ids) of the runs' 20% held-out
    claims. *Novel* queries (of dev and rest) cite no document that a training claim cites: the
    situation of unseen test claims about other abstracts."""
    from embedding_ft.data import prepare

    prepared = prepare(str(shared_data_dir() / "scifact"), "train", 0.2, 42)
    ids = sorted(prepared.eval_set.queries)
    random.Random(seed).shuffle(ids)
    half = len(ids) // 2
    seen = {r["doc_id"] for r in prepared.train.rows}
    novel = sorted(q for q, rels in prepared.eval_set.qrels.items() if not set(rels) & seen)
    return ids[:half], ids[half:], load_beir(shared_data_dir() / "scifact", split="train"), novel


def novel_ndcg(per_query: dict, system: str, novel: list[str]) -> float | None:
    values = per_query.get(system, {})
    if not novel or not all(q in values for q in novel):
        return None
    return round(float(np.mean([values[q] for q in novel])), 4)


class Judge:
    """Encodes SciFact's corpus once per model and scores dev / rest, dense and hybrid, plus the guard rails."""

    def __init__(self, dev: list[str], rest: list[str], beir, hybrid_weight: float = 0.5):
        from embshared.search import BM25Index

        self.parts = {"dev": dev, "rest": rest}
        self.beir = beir
        self.corpus = beir.corpus_texts()
        self.doc_ids = list(self.corpus)
        self.query_ids = dev + rest
        self.queries = {q: beir.queries[q] for q in self.query_ids}
        bm25 = BM25Index().index(self.doc_ids, [self.corpus[d] for d in self.doc_ids])
        self.bm25 = bm25.score_matrix([self.queries[q] for q in self.query_ids])
        self.hybrid_weight = hybrid_weight
        self.pubmedqa = load_beir(shared_data_dir() / "pubmedqa", split="train")
        self.sts = read_sts(shared_data_dir() / "stsbenchmark" / "sts-dev.csv")

    def _score(self, matrix: np.ndarray) -> dict:
        out = {}
        for part, ids in self.parts.items():
            rows = [self.query_ids.index(q) for q in ids]
            sub = {q: self.queries[q] for q in ids}
            texts = [self.queries[q] for q in ids]
            row_of = dict(zip(texts, rows))

            def score_fn(batch, row_of=row_of):
                return matrix[[row_of[t] for t in batch]]

            qrels = {q: self.beir.qrels[q] for q in ids}
            out[part] = evaluate_retrieval(sub, self.corpus, qrels, score_fn, METRICS, doc_ids=self.doc_ids)
        return out

    def bm25_row(self) -> dict:
        return self._score(self.bm25)

    def from_run(self, per_query: dict) -> dict | None:
        """dev / rest NDCG@10 (dense and hybrid) from a run's own per-query values, when it has them all."""
        needed = set(self.query_ids)
        if per_query.get("metric") != "ndcg@10" or not all(
            needed <= set(per_query.get(s, {})) for s in ("finetuned", "hybrid_finetuned")
        ):
            return None
        return {
            kind: {
                part: {"ndcg@10": float(np.mean([per_query[system][q] for q in ids]))}
                for part, ids in self.parts.items()
            }
            for kind, system in (("dense", "finetuned"), ("hybrid", "hybrid_finetuned"))
        }

    def guard_rails(self, model) -> dict:
        """STS-B dev Spearman and PubMedQA NDCG@10 of ``model``."""
        a = model.encode([p.sentence1 for p in self.sts], batch_size=64, normalize_embeddings=True)
        b = model.encode([p.sentence2 for p in self.sts], batch_size=64, normalize_embeddings=True)
        sts = similarity_correlations(np.sum(a * b, axis=1).tolist(), [p.score for p in self.sts])["spearman"]
        pm = self.pubmedqa
        pm_docs = pm.corpus_texts()
        pm_ids = list(pm_docs)
        pm_emb = model.encode([pm_docs[d] for d in pm_ids], batch_size=64, normalize_embeddings=True)

        def pm_score(texts):
            return model.encode(texts, batch_size=64, normalize_embeddings=True) @ pm_emb.T

        pubmed = evaluate_retrieval(pm.queries, pm_docs, pm.qrels, pm_score, ["ndcg@10"], doc_ids=pm_ids)["ndcg@10"]
        return {"stsb_spearman": round(float(sts), 4), "pubmedqa_ndcg@10": round(float(pubmed), 4)}

    def model_rows(self, model) -> dict:
        """{"dense": {dev, rest}, "hybrid": {dev, rest}, "truncated", "stsb_spearman", "pubmedqa_ndcg@10"}."""
        docs = model.encode([self.corpus[d] for d in self.doc_ids], batch_size=64, normalize_embeddings=True)
        q = model.encode([self.queries[x] for x in self.query_ids], batch_size=64, normalize_embeddings=True)
        dense = q @ docs.T  # (n_queries, n_docs)
        hybrid = convex_fusion(dense, self.bm25, self.hybrid_weight)
        truncated = {}
        for dim in (256, 128):  # what a Matryoshka-trained model should keep
            d, qq = docs[:, :dim], q[:, :dim]
            d = d / np.linalg.norm(d, axis=1, keepdims=True)
            qq = qq / np.linalg.norm(qq, axis=1, keepdims=True)
            truncated[str(dim)] = self._score(qq @ d.T)
        return {
            "dense": self._score(dense),
            "hybrid": self._score(hybrid),
            "truncated": truncated,
            **self.guard_rails(model),
        }


def run_candidate(name: str, overrides: list[str], threads: int) -> dict:
    """Train one candidate in its own process; returns its run summary (metrics.json) and wall time."""
    out = WORK / "runs"
    run_dir = out / name
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    cmd = [
        sys.executable,
        "-m",
        "embedding_ft.cli.train",
        "--config",
        CONFIG,
        f"dataset_name={shared_data_dir() / 'scifact'}",
        f"output_dir={out}",
        f"cache_dir={WORK / 'cache'}",
        f"run_name={name}",
        *overrides,
    ]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    with open(WORK / f"{name}.log", "w") as log:
        subprocess.run(cmd, cwd=repo_root(), env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    seconds = time.perf_counter() - start
    summary = json.loads((run_dir / "metrics.json").read_text())
    return {"summary": summary, "wall_seconds": round(seconds, 1), "model_dir": str(run_dir / "final_model")}


def fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else ""


def to_markdown(report: dict) -> str:
    base = report["base"]
    lines = [
        "# embeddingFT recipes on SciFact",
        "",
        f"{report['data']}. Recipes are chosen on **dev** ({report['n_dev']} claims) and reported on **rest** "
        f"({report['n_rest']} claims), never chosen on. Guard rails on the final model: STS-B dev Spearman and "
        f"PubMedQA NDCG@10 within 0.01 of the base model's (base: {base['stsb_spearman']:.4f} / "
        f"{base['pubmedqa_ndcg@10']:.4f}). Hybrid: convex fusion, dense weight {report['hybrid_weight']}.",
        "",
        "| recipe | what | NDCG@10 dev | NDCG@10 rest | novel | hybrid dev | hybrid rest | STS-B | PubMedQA "
        "| run min | peak GB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bm = report["bm25"]
    nb = report.get("novel_base") or {}
    lines.append(
        f"| BM25 | | {bm['dev']['ndcg@10']:.4f} | {bm['rest']['ndcg@10']:.4f} | {fmt(nb.get('bm25'))} | | | | | | |"
    )
    lines.append(
        f"| base MiniLM | | {base['dense']['dev']['ndcg@10']:.4f} | {base['dense']['rest']['ndcg@10']:.4f} | "
        f"{fmt(nb.get('base'))} | "
        f"{base['hybrid']['dev']['ndcg@10']:.4f} | {base['hybrid']['rest']['ndcg@10']:.4f} | "
        f"{base['stsb_spearman']:.4f} | {base['pubmedqa_ndcg@10']:.4f} | | |"
    )
    for name, c in report["candidates"].items():
        r = c["scores"]
        forgot = (
            r["stsb_spearman"] < base["stsb_spearman"] - 0.01 or r["pubmedqa_ndcg@10"] < base["pubmedqa_ndcg@10"] - 0.01
        )
        lines.append(
            f"| {name} | {c['what']} | {r['dense']['dev']['ndcg@10']:.4f} | {r['dense']['rest']['ndcg@10']:.4f} | "
            f"{fmt(c.get('novel_ndcg@10'))} | "
            f"{r['hybrid']['dev']['ndcg@10']:.4f} | {r['hybrid']['rest']['ndcg@10']:.4f} | "
            f"{r['stsb_spearman']:.4f}{' (!)' if forgot else ''} | {r['pubmedqa_ndcg@10']:.4f} | "
            f"{c['wall_seconds'] / 60:.1f} | {c['peak_rss_gb']:.2f} |"
        )
    lines += [
        "",
        f"Novel: the {report.get('n_novel', '?')} held-out claims (of dev and rest) that cite no abstract a training "
        "claim cites, as unseen test claims about other abstracts do. "
        "(!) marks a guard rail broken. Run minutes are the whole `train-embed` process (mining from a warm "
        "embedding cache after the first candidate, baselines, training, final evaluation); peak GB is its "
        "peak resident memory.",
    ]
    if report.get("audit"):
        lines += ["", "False-negative audit of the mined negatives (per candidate):", ""]
        for name, audit in report["audit"].items():
            lines.append(
                f"- {name}: {audit['suspects']} of {audit['negatives']} negatives suspect "
                f"({100 * audit['suspect_share']:.1f}%), median rank {audit['median_dense_rank_of_negatives']}"
            )
    detail = {"BM25 (dev)": report["bm25"]["dev"], "base (dev)": base["dense"]["dev"]}
    for name, c in report["candidates"].items():
        detail[f"{name} (dev)"] = c["scores"]["dense"]["dev"]
        detail[f"{name} (rest)"] = c["scores"]["dense"]["rest"]
    lines += ["", "All metrics:", "", format_table(detail)]
    dims = {"base": base.get("truncated")} | {n: c["scores"].get("truncated") for n, c in report["candidates"].items()}
    dims = {n: t for n, t in dims.items() if t}
    if dims:
        lines += ["", "Embeddings truncated to 256 / 128 dimensions (renormalised), NDCG@10 dev / rest:", ""]
        lines += ["| model | 256 dev | 256 rest | 128 dev | 128 rest |", "|---|---:|---:|---:|---:|"]
        for n, t in dims.items():
            lines.append(
                f"| {n} | {t['256']['dev']['ndcg@10']:.4f} | {t['256']['rest']['ndcg@10']:.4f} | "
                f"{t['128']['dev']['ndcg@10']:.4f} | {t['128']['rest']['ndcg@10']:.4f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="candidates to (re)run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extra", nargs="*", default=[], help="NAME=override,override,... extra candidates")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the results from recipes.json and the run folders"
    )
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(args.threads)
    from embshared.models import load_sentence_transformer

    if not (shared_data_dir() / "scifact").is_dir():
        print(f"skipped: {shared_data_dir() / 'scifact'} not found")
        return 0
    facts = machine_facts()
    WORK.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "recipes.json"
    report = json.loads(previous.read_text()) if previous.is_file() else {}
    if args.report_only:
        dev, rest, beir, novel = heldout_split()
        report["n_novel"] = len(novel)
        for name, c in report.get("candidates", {}).items():
            summary_file = WORK / "runs" / name / "metrics.json"
            if summary_file.is_file():
                per_query = json.loads(summary_file.read_text()).get("per_query", {})
                c["novel_ndcg@10"] = novel_ndcg(per_query, "finetuned", novel)
                report.setdefault(
                    "novel_base", {s: novel_ndcg(per_query, s, novel) for s in ("bm25", "base", "hybrid_base")}
                )
        write_results(RESULTS, "recipes", report, to_markdown(report), facts=report.get("machine", facts))
        print(to_markdown(report))
        return 0
    candidates = dict(CANDIDATES)
    extra = []
    for spec in args.extra:
        name, _, rest = spec.partition("=")
        candidates[name] = (rest.split(","), "extra: " + rest.replace(",", " "))
        extra.append(name)
    dev, rest, beir, novel = heldout_split()
    judge = Judge(dev, rest, beir)
    base_model = load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    base_model.max_seq_length = 256
    if "base" not in report:
        report["base"] = judge.model_rows(base_model)
        report["bm25"] = judge.bm25_row()
    report.update(
        data="../shared/data/scifact: 5,183 abstracts; 80% of the 809 train claims train (seed 42), the other "
        "20% split into dev and rest (seed 0)",
        n_dev=len(dev),
        n_rest=len(rest),
        n_novel=len(novel),
        hybrid_weight=judge.hybrid_weight,
    )
    report.setdefault("candidates", {})
    report.setdefault("audit", {})
    names = (args.only + extra) if args.only is not None else list(candidates)
    for name in names:
        overrides, what = candidates[name]
        print(f"== {name}: {' '.join(overrides) or '(scifact.yaml as it is)'}", flush=True)
        run = run_candidate(name, overrides, args.threads)
        model = load_sentence_transformer(run["model_dir"], device="cpu")
        model.max_seq_length = 256
        summary = run["summary"]
        own = judge.from_run(summary.get("per_query", {}))
        if own is None or any("matryoshka" in o for o in overrides):
            scores = judge.model_rows(model)  # encodes the corpus again (also for the truncated dims)
        else:
            scores = {**own, **judge.guard_rails(model)}
        report["candidates"][name] = {
            "overrides": overrides,
            "what": what,
            "scores": scores,
            "wall_seconds": run["wall_seconds"],
            "peak_rss_gb": summary["cost"]["peak_rss_gb"],
            "loss": summary["loss"],
            "train_rows": summary["n_train_rows"],
            "run_metrics_all_heldout": summary["metrics"],
        }
        report["candidates"][name]["novel_ndcg@10"] = novel_ndcg(summary.get("per_query", {}), "finetuned", novel)
        if "novel_base" not in report:
            report["novel_base"] = {
                s: novel_ndcg(summary.get("per_query", {}), s, novel) for s in ("bm25", "base", "hybrid_base")
            }
        if summary["data"].get("false_negative_audit"):
            report["audit"][name] = summary["data"]["false_negative_audit"]
        write_results(RESULTS, "recipes", report, to_markdown(report), facts=dict(facts))
        print(
            f"   dev {scores['dense']['dev']['ndcg@10']:.4f} rest {scores['dense']['rest']['ndcg@10']:.4f} "
            f"hybrid dev {scores['hybrid']['dev']['ndcg@10']:.4f}  sts {scores['stsb_spearman']:.4f} "
            f"pubmedqa {scores['pubmedqa_ndcg@10']:.4f}  {run['wall_seconds'] / 60:.1f} min "
            f"{summary['cost']['peak_rss_gb']:.2f} GB",
            flush=True,
        )
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
