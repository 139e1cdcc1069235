"""embeddingFT recipes on SciFact: candidate configs side by side, chosen on dev, reported on rest.

    python embeddingFT/bench/bench_recipes.py [--only NAME ...] [--tag TAG]

Every candidate is ``configs/scifact_finetune.yaml`` (the full fine-tuning recipe; ``configs/scifact.yaml`` is
now its ``head_merge0.3`` row) plus a few overrides, trained by
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
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from embshared.bench import machine_facts, write_results
from embshared.evaluate import evaluate_retrieval
from embshared.io import load_beir, read_sts
from embshared.metrics import similarity_correlations
from embshared.runtime import repo_root, setup_logging, shared_data_dir

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "recipes"
WORK = HERE / "work" / "recipes"
CONFIG = "embeddingFT/configs/scifact_finetune.yaml"
METRICS = ["ndcg@10", "mrr@10", "recall@100"]

#: trainer seeds of ``--seeds N``: the recipe's own seed (42) first
SEEDS = (42, 1, 2, 3, 4)
#: the reference every candidate is paired with under --seeds
REFERENCE = "recipe"

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
    REFERENCE: ([], "full fine-tuning, configs/scifact_finetune.yaml as it is: the reference of --seeds"),
    "head": (
        ["adapter=head"],
        "adapter: a projection head (768 hidden) over the frozen MiniLM, 40 epochs on cached vectors",
    ),
    "head_r10_50": (
        ["adapter=head", "mining.range_min=10", "mining.range_max=50", "mining.bm25_negatives=0"],
        "adapter head with ragcun's negatives: base ranks 10-50, no BM25 negative",
    ),
    "head_iso": (["adapter=head", "adapter_head.isotropy_weight=1.0"], "adapter head + SIGReg isotropy term (ragcun)"),
    "head_bm25": (
        ["adapter=head", "bm25_aware=true"],
        "adapter head trained on fused logits: cosine x 20 + 1.0 x z(BM25)",
    ),
    "head_bm25_03": (
        ["adapter=head", "bm25_aware=true", "bm25_weight=0.3"],
        "adapter head trained on fused logits: cosine x 20 + 0.3 x z(BM25)",
    ),
    "head_merge0.3": (
        ["adapter=head", "merge_with_base=0.3"],
        "adapter head, WiSE-FT: 0.3 x untrained head (the base's ranking) + 0.7 x trained",
    ),
    "head_merge0.5": (
        ["adapter=head", "merge_with_base=0.5"],
        "adapter head, WiSE-FT: 0.5 x untrained head + 0.5 x trained",
    ),
    "head_oversample": (
        ["adapter=head", "oversample_bm25_misses=2"],
        "adapter head, 2 extra copies of each row whose positive BM25 misses (top 10)",
    ),
    "head_on_ft": (
        ["adapter=head", "model_name={recipe_model}"],
        "adapter head over the fine-tuned recipe model of the same seed (its training time not counted)",
    ),
    "hybrid_loss": (["loss=hybrid"], "full fine-tuning on fused logits: cosine x 20 + 1.0 x z(BM25), cached"),
    "oversample": (["oversample_bm25_misses=2"], "the recipe, 2 extra copies of each row whose positive BM25 misses"),
    "keep_unmined": (
        ["mining.keep_unmined=true"],
        "the 9% of pairs no dense candidate passes the margin for kept, BM25 negatives in both slots",
    ),
}


def heldout_split() -> tuple[list[str], list[str], object, list[str]]:
    """(dev query ids, rest query ids, the held-out EvalSet, novel query ids) of the runs' 20% held-out
    claims, split as every run splits them (:func:`embedding_ft.evaluation.dev_rest_split`). *Novel*
    queries (of dev and rest) cite no document that a training claim cites: the situation of
    unseen test claims about other abstracts."""
    from embedding_ft.data import prepare
    from embedding_ft.evaluation import dev_rest_split

    prepared = prepare(str(shared_data_dir() / "scifact"), "train", 0.2, 42)
    dev, rest = dev_rest_split(prepared.eval_set.queries, 0.5, 0)
    seen = {r["doc_id"] for r in prepared.train.rows}
    novel = sorted(q for q, rels in prepared.eval_set.qrels.items() if not set(rels) & seen)
    return dev, rest, prepared.eval_set, novel


def novel_ndcg(per_query: dict, system: str, novel: list[str]) -> float | None:
    values = per_query.get(system, {})
    if not novel or not all(q in values for q in novel):
        return None
    return round(float(np.mean([values[q] for q in novel])), 4)


def _parts(scores) -> dict:
    return {"dev": scores.dev, "rest": scores.rest}


class Judge:
    """Scores a model on dev / rest — dense, hybrid with the fixed fusion, hybrid with the fusion chosen on
    dev — through the runs' own evaluator, plus the guard rails."""

    def __init__(self, dev: list[str], eval_set, hybrid_weight: float = 0.5):
        from embedding_ft.evaluation import RetrievalEvaluator

        self.evaluator = RetrievalEvaluator(eval_set, METRICS, "ndcg@10", 64, dev_ids=dev)
        self.eval_set = eval_set
        self.hybrid_weight = hybrid_weight
        self.pubmedqa = load_beir(shared_data_dir() / "pubmedqa", split="train")
        self.sts = read_sts(shared_data_dir() / "stsbenchmark" / "sts-dev.csv")
        self._bases: dict[str, tuple] = {}

    def bm25_row(self) -> dict:
        return _parts(self.evaluator.bm25())

    def from_run(self, summary: dict) -> dict | None:
        """dev / rest figures from a run's own summary, when it has the three rows (runs since the hybrid-first work)."""
        dev, rest = summary.get("metrics_dev", {}), summary.get("metrics_rest", {})
        systems = {"dense": "finetuned", "hybrid": "hybrid_finetuned", "hybrid_tuned": "hybrid_finetuned_tuned"}
        if not all(s in dev and s in rest for s in systems.values()):
            return None
        out = {kind: {"dev": dev[s], "rest": rest[s]} for kind, s in systems.items()}
        out["fusion"] = summary.get("fusion", {}).get("finetuned")
        return out

    def guard_rails(self, model, model_dir: str | None = None) -> dict:
        """STS-B dev Spearman and PubMedQA NDCG@10 of ``model``.

        For an adapter (``model_dir`` with adapter.json) the texts' vectors are its head applied to
        its base model's vectors, encoded once per base model: the same vectors as encoding with the
        adapter (tests/embeddingFT/test_adapter.py), in milliseconds instead of minutes."""
        from embedding_ft.adapter import AdapterInfo, apply_head

        info = AdapterInfo.load(model_dir) if model_dir else None
        if info is not None and info.base:
            base_encode = self._base_encoder(info.base["model"])

            def encode(texts):
                return apply_head(model_dir, base_encode(texts))
        else:

            def encode(texts):
                return model.encode(texts, batch_size=64, normalize_embeddings=True)

        a = encode([p.sentence1 for p in self.sts])
        b = encode([p.sentence2 for p in self.sts])
        sts = similarity_correlations(np.sum(a * b, axis=1).tolist(), [p.score for p in self.sts])["spearman"]
        pm = self.pubmedqa
        pm_docs = pm.corpus_texts()
        pm_ids = list(pm_docs)
        pm_emb = encode([pm_docs[d] for d in pm_ids])
        queries = list(pm.queries)
        q_emb = dict(zip(queries, encode([pm.queries[q] for q in queries])))

        def pm_score(texts):
            by_text = {pm.queries[q]: q_emb[q] for q in queries}
            return np.stack([by_text[t] for t in texts]) @ pm_emb.T

        pubmed = evaluate_retrieval(pm.queries, pm_docs, pm.qrels, pm_score, ["ndcg@10"], doc_ids=pm_ids)["ndcg@10"]
        return {"stsb_spearman": round(float(sts), 4), "pubmedqa_ndcg@10": round(float(pubmed), 4)}

    def _base_encoder(self, base_path: str):
        """texts -> the base model's unit vectors, memoised per text (the guard rails' texts, once per base)."""
        from embshared.models import load_sentence_transformer

        if base_path not in self._bases:
            model = load_sentence_transformer(base_path, device="cpu")
            model.max_seq_length = 256
            self._bases[base_path] = (model, {})
        model, memo = self._bases[base_path]

        def encode(texts):
            missing = [t for t in dict.fromkeys(texts) if t not in memo]
            if missing:
                memo.update(zip(missing, model.encode(missing, batch_size=64, normalize_embeddings=True)))
            return np.stack([memo[t] for t in texts])

        return encode

    def dense_rows(self, dense: np.ndarray) -> dict:
        """dense / fixed hybrid / chosen-fusion hybrid figures of one (n_queries, n_docs) cosine matrix."""
        import dataclasses

        from embshared.fusion_choice import FusionSetting

        ev = self.evaluator
        fixed = dataclasses.replace(FusionSetting.default(), dense_weight=self.hybrid_weight)
        chosen = ev.choose_fusion(dense)
        return {
            "dense": _parts(ev.score(dense)),
            "hybrid": _parts(ev.hybrid(dense, fixed)),
            "hybrid_tuned": _parts(ev.hybrid(dense, chosen)),
            "fusion": chosen.to_dict(),
        }

    def cached_corpus(self, model_path: str) -> np.ndarray | None:
        """The held-out corpus's vectors by ``model_path`` (at 256 tokens) from the bench's mining cache, when a
        run mined with that model there (the base model, and a fine-tuned one a head was trained over)."""
        from embedding_ft.corpus_encoder import EmbeddingCache

        texts = list(dict.fromkeys(self.eval_set.corpus.values()))  # the runs' mining corpus, in its order
        embeddings = EmbeddingCache(WORK / "cache" / "vectors").lookup(model_path, texts, 256)
        if embeddings is None:
            return None
        row_of = {t: i for i, t in enumerate(texts)}
        docs = embeddings[[row_of[self.eval_set.corpus[d]] for d in self.evaluator.doc_ids]].astype(np.float32)
        return docs / np.linalg.norm(docs, axis=1, keepdims=True)

    def model_rows(self, model, model_path: str | None = None) -> dict:
        """dense / hybrid / hybrid_tuned on dev and rest, truncated dimensions, and the guard rails.

        The corpus is encoded unless ``model_path``'s vectors are in the bench's mining cache."""
        ev = self.evaluator
        docs = self.cached_corpus(model_path) if model_path else None
        if docs is None:
            texts = [self.eval_set.corpus[d] for d in ev.doc_ids]
            docs = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=True)
        q = model.encode([self.eval_set.queries[x] for x in ev.query_ids], batch_size=64, normalize_embeddings=True)
        dense = q @ docs.T  # (n_queries, n_docs)
        truncated = {}
        for dim in (256, 128):  # what a Matryoshka-trained model should keep
            d, qq = docs[:, :dim], q[:, :dim]
            d = d / np.linalg.norm(d, axis=1, keepdims=True)
            qq = qq / np.linalg.norm(qq, axis=1, keepdims=True)
            truncated[str(dim)] = _parts(ev.score(qq @ d.T))
        return {**self.dense_rows(dense), "truncated": truncated, **self.guard_rails(model, model_path)}


def run_candidate(name: str, overrides: list[str], threads: int, reuse: bool = False) -> dict:
    """Train one candidate in its own process; returns its run summary (metrics.json) and wall time.

    With ``reuse``, a finished run folder of that name is read instead of trained again (``--seeds``
    pairs every candidate with the same reference runs)."""
    out = WORK / "runs"
    run_dir = out / name
    if reuse and (run_dir / "metrics.json").is_file() and (WORK / f"{name}.wall").is_file():
        summary = json.loads((run_dir / "metrics.json").read_text())
        wall = float((WORK / f"{name}.wall").read_text())
        return {"summary": summary, "wall_seconds": wall, "model_dir": str(run_dir / "final_model")}
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
    (WORK / f"{name}.wall").write_text(f"{seconds:.1f}")
    summary = json.loads((run_dir / "metrics.json").read_text())
    return {"summary": summary, "wall_seconds": round(seconds, 1), "model_dir": str(run_dir / "final_model")}


def seeded(name: str, overrides: list[str], seed: int) -> tuple[str, list[str]]:
    """The run name and overrides of ``name`` at trainer seed ``seed`` (``{recipe_model}`` in an override
    becomes the reference recipe's final model of the same seed: a head over the fine-tuned model)."""
    recipe_model = WORK / "runs" / f"{REFERENCE}_s{seed}" / "final_model"
    overrides = [o.replace("{recipe_model}", str(recipe_model)) for o in overrides]
    return f"{name}_s{seed}", [*overrides, f"training_seed={seed}"]


def fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else ""


def _ndcg(scores: dict, kind: str, part: str) -> float | None:
    value = scores.get(kind, {}).get(part, {}).get("ndcg@10")
    return None if value is None else float(value)


def paired(report: dict, name: str, seeds: list[int]) -> dict | None:
    """The candidate minus the reference, seed by seed (NDCG@10 on dev and rest, dense and both hybrids),
    and whether its paired mean on dev (hybrid, fusion chosen on dev) beats the reference by more than the
    reference's own spread over the seeds."""
    runs = report["candidates"]
    pairs = [(runs.get(f"{name}_s{s}"), runs.get(f"{REFERENCE}_s{s}")) for s in seeds]
    if not pairs or any(c is None or r is None for c, r in pairs):
        return None
    out: dict = {"seeds": seeds}
    for kind in ("hybrid_tuned", "hybrid", "dense"):
        for part in ("dev", "rest"):
            diffs = [_ndcg(c["scores"], kind, part) - _ndcg(r["scores"], kind, part) for c, r in pairs]
            out[f"{kind}_{part}"] = {
                "mean": round(float(np.mean(diffs)), 4),
                "sd": round(float(np.std(diffs, ddof=1)), 4) if len(diffs) > 1 else None,
                "per_seed": [round(d, 4) for d in diffs],
                "candidate_mean": round(float(np.mean([_ndcg(c["scores"], kind, part) for c, _ in pairs])), 4),
            }
    reference_dev = [_ndcg(r["scores"], "hybrid_tuned", "dev") for _, r in pairs]
    out["reference_spread_dev"] = round(max(reference_dev) - min(reference_dev), 4)
    base = report["base"]
    out["forgets"] = any(
        c["scores"][rail] < base[rail] - 0.01 for c, _ in pairs for rail in ("stsb_spearman", "pubmedqa_ndcg@10")
    )
    out["adopted"] = out["hybrid_tuned_dev"]["mean"] > out["reference_spread_dev"] and not out["forgets"]
    return out


def to_markdown(report: dict) -> str:
    base = report["base"]
    lines = [
        "# embeddingFT recipes on SciFact",
        "",
        f"{report['data']}. Recipes are chosen on **dev** ({report['n_dev']} claims) and reported on **rest** "
        f"({report['n_rest']} claims), never chosen on. *Hybrid, chosen*: BM25 + the model with the fusion "
        "(convex or RRF, dense weight, BM25 k1/b/stemming) chosen on dev for that model, as every run now "
        f"does and saves; *hybrid, fixed*: convex fusion, dense weight {report['hybrid_weight']}. Guard rails "
        "on the final model: STS-B dev Spearman and PubMedQA NDCG@10 within 0.01 of the base model's (base: "
        f"{base['stsb_spearman']:.4f} / {base['pubmedqa_ndcg@10']:.4f}). Rows without a chosen-fusion figure "
        "predate it.",
        "",
        "| recipe | what | hybrid, chosen dev | hybrid, chosen rest | hybrid, fixed dev | hybrid, fixed rest "
        "| model alone dev | model alone rest | novel | STS-B | PubMedQA | run min | peak GB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bm = report["bm25"]
    nb = report.get("novel_base") or {}
    lines.append(
        f"| BM25 | | | | | | {bm['dev']['ndcg@10']:.4f} | {bm['rest']['ndcg@10']:.4f} | {fmt(nb.get('bm25'))} | | | | |"
    )

    def row(name: str, what: str, r: dict, extra: str) -> str:
        cells = [fmt(_ndcg(r, k, p)) for k in ("hybrid_tuned", "hybrid", "dense") for p in ("dev", "rest")]
        return f"| {name} | {what} | " + " | ".join(cells) + f" | {extra}"

    lines.append(
        row(
            "base MiniLM",
            "",
            base,
            f"{fmt(nb.get('base'))} | {base['stsb_spearman']:.4f} | {base['pubmedqa_ndcg@10']:.4f} | | |",
        )
    )
    for name, c in report["candidates"].items():
        r = c["scores"]
        forgot = (
            r["stsb_spearman"] < base["stsb_spearman"] - 0.01 or r["pubmedqa_ndcg@10"] < base["pubmedqa_ndcg@10"] - 0.01
        )
        lines.append(
            row(
                name,
                c["what"],
                r,
                f"{fmt(c.get('novel_ndcg@10'))} | {r['stsb_spearman']:.4f}{' (!)' if forgot else ''} | "
                f"{r['pubmedqa_ndcg@10']:.4f} | {c['wall_seconds'] / 60:.1f} | {c['peak_rss_gb']:.2f} |",
            )
        )
    lines += _seed_means_markdown(report)
    lines += _paired_markdown(report)
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


def seed_means(report: dict) -> dict:
    """{candidate: {"seeds": [...], figure: mean}} over the candidate's ``<name>_s<seed>`` runs."""
    groups: dict[str, list[dict]] = {}
    for name, c in report["candidates"].items():
        base, _, seed = name.rpartition("_s")
        if base and seed.isdigit():
            groups.setdefault(base, []).append({**c, "seed": int(seed)})
    out = {}
    for base, runs in groups.items():
        row: dict = {"seeds": sorted(r["seed"] for r in runs)}
        for kind in ("hybrid_tuned", "hybrid", "dense"):
            for part in ("dev", "rest"):
                values = [_ndcg(r["scores"], kind, part) for r in runs]
                row[f"{kind}_{part}"] = None if None in values else round(float(np.mean(values)), 4)
        novel = [r.get("novel_ndcg@10") for r in runs]
        row["novel"] = None if None in novel else round(float(np.mean(novel)), 4)
        for rail in ("stsb_spearman", "pubmedqa_ndcg@10"):
            values = [r["scores"][rail] for r in runs]
            row[rail], row[f"{rail}_min"] = round(float(np.mean(values)), 4), min(values)
        row["minutes"] = round(float(np.mean([r["wall_seconds"] for r in runs])) / 60, 1)
        row["peak_gb"] = max(r["peak_rss_gb"] for r in runs)
        out[base] = row
    return out


def _seed_means_markdown(report: dict) -> list[str]:
    means = seed_means(report)
    if not means:
        return []
    base, bm = report["base"], report["bm25"]
    lines = [
        "",
        "## Means over trainer seeds (hybrid rows first)",
        "",
        "NDCG@10, mean over the seeds listed. Forgetting (!): a run more than 0.01 below the base model on STS-B "
        "or PubMedQA (the worst seed is shown).",
        "",
        "| recipe | seeds | hybrid, chosen dev | hybrid, chosen rest | hybrid, fixed rest | model alone dev "
        "| model alone rest | novel | STS-B (worst) | PubMedQA (worst) | run min | peak GB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| BM25 | | | | | {bm['dev']['ndcg@10']:.4f} | {bm['rest']['ndcg@10']:.4f} | "
        f"{fmt((report.get('novel_base') or {}).get('bm25'))} | | | | |",
        f"| base MiniLM (no training) | | {fmt(_ndcg(base, 'hybrid_tuned', 'dev'))} | "
        f"{fmt(_ndcg(base, 'hybrid_tuned', 'rest'))} | {fmt(_ndcg(base, 'hybrid', 'rest'))} | "
        f"{fmt(_ndcg(base, 'dense', 'dev'))} | {fmt(_ndcg(base, 'dense', 'rest'))} | "
        f"{fmt((report.get('novel_base') or {}).get('base'))} | {base['stsb_spearman']:.4f} | "
        f"{base['pubmedqa_ndcg@10']:.4f} | | |",
    ]
    order = sorted(means, key=lambda n: -(means[n]["hybrid_tuned_dev"] or 0))
    for name in order:
        m = means[name]
        sts_bad = m["stsb_spearman_min"] < base["stsb_spearman"] - 0.01
        pm_bad = m["pubmedqa_ndcg@10_min"] < base["pubmedqa_ndcg@10"] - 0.01
        lines.append(
            f"| {name} | {', '.join(map(str, m['seeds']))} | {fmt(m['hybrid_tuned_dev'])} | "
            f"{fmt(m['hybrid_tuned_rest'])} | {fmt(m['hybrid_rest'])} | {fmt(m['dense_dev'])} | "
            f"{fmt(m['dense_rest'])} | {fmt(m['novel'])} | {m['stsb_spearman_min']:.4f}{' (!)' if sts_bad else ''} | "
            f"{m['pubmedqa_ndcg@10_min']:.4f}{' (!)' if pm_bad else ''} | {m['minutes']:.1f} | {m['peak_gb']:.2f} |"
        )
    return lines


def _paired_markdown(report: dict) -> list[str]:
    pairs = report.get("paired", {})
    if not pairs:
        return []
    lines = [
        "",
        f"## Paired by trainer seed, against `{REFERENCE}` (configs/scifact_finetune.yaml as it is)",
        "",
        "Candidate minus reference, NDCG@10, mean ± sd over the seeds (each seed's difference in brackets). "
        "A candidate is adopted only if its paired mean on dev (hybrid, chosen fusion) beats the reference by "
        "more than the reference's own spread (max - min) over the same seeds, and no seed forgets (more than 0.01 "
        "below the base model on STS-B or PubMedQA). Rest is reported, never chosen on.",
        "",
        "| candidate | seeds | Δ hybrid chosen, dev | Δ hybrid chosen, rest | Δ model alone, dev | Δ model alone, rest "
        "| candidate hybrid chosen rest (mean) | reference spread dev | adopted |",
        "|---|---|---|---|---|---|---:|---:|---|",
    ]

    def cell(d: dict) -> str:
        sd = f" ± {d['sd']:.4f}" if d.get("sd") is not None else ""
        return f"{d['mean']:+.4f}{sd} [{', '.join(f'{x:+.3f}' for x in d['per_seed'])}]"

    for name, p in pairs.items():
        lines.append(
            f"| {name} | {', '.join(map(str, p['seeds']))} | {cell(p['hybrid_tuned_dev'])} | "
            f"{cell(p['hybrid_tuned_rest'])} | {cell(p['dense_dev'])} | {cell(p['dense_rest'])} | "
            f"{p['hybrid_tuned_rest']['candidate_mean']:.4f} | {p['reference_spread_dev']:.4f} | "
            f"{'yes' if p['adopted'] else 'no (forgets)' if p.get('forgets') else 'no'} |"
        )
    return lines


def judge_run(judge: Judge, name: str, overrides: list[str], what: str, run: dict, novel: list[str]) -> dict:
    """The bench row of one finished run: its own dev / rest figures when it has them, else the judge's."""
    from embshared.models import load_sentence_transformer

    model = load_sentence_transformer(run["model_dir"], device="cpu")
    model.max_seq_length = 256
    summary = run["summary"]
    own = judge.from_run(summary)
    if own is None or any("matryoshka" in o for o in overrides):
        scores = judge.model_rows(model, run["model_dir"])  # the corpus from the mining cache, else encoded
    else:
        scores = {**own, **judge.guard_rails(model, run["model_dir"])}
    return {
        "overrides": overrides,
        "what": what,
        "scores": scores,
        "wall_seconds": run["wall_seconds"],
        "peak_rss_gb": summary["cost"]["peak_rss_gb"],
        "loss": summary["loss"],
        "train_rows": summary["n_train_rows"],
        "run_metrics_all_heldout": summary["metrics"],
        "novel_ndcg@10": novel_ndcg(summary.get("per_query", {}), "finetuned", novel),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="candidates to (re)run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extra", nargs="*", default=[], help="NAME=override,override,... extra candidates")
    parser.add_argument(
        "--seeds",
        type=int,
        default=0,
        help=f"run each candidate and `{REFERENCE}` at the first N trainer seeds of {SEEDS} and report the paired "
        "differences (finished runs of the same name are reused)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the results from recipes.json and the run folders"
    )
    parser.add_argument(
        "--judge-only",
        action="store_true",
        help="train nothing: judge the finished runs not judged yet (run folders trained elsewhere, e.g. in the "
        "background one by one), skip the others",
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
        write_results(RESULTS, "recipes", report, to_markdown(report), facts=report.get("machine", facts))
        print(to_markdown(report))
        return 0
    candidates = dict(CANDIDATES)
    extra = []
    for spec in args.extra:
        name, _, rest = spec.partition("=")
        candidates[name] = (rest.split(","), "extra: " + rest.replace(",", " "))
        extra.append(name)
    dev, rest, eval_set, novel = heldout_split()
    judge = Judge(dev, eval_set)
    if "hybrid_tuned" not in report.get("base", {}):
        base_model = load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
        base_model.max_seq_length = 256
        report["base"] = judge.model_rows(base_model, "sentence-transformers/all-MiniLM-L6-v2")
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
    report.setdefault("paired", {})
    names = (args.only + extra) if args.only is not None else list(candidates)
    seeds = list(SEEDS[: args.seeds])
    jobs = [(n, *seeded(n, candidates[n][0], s), s) for n in [REFERENCE, *names] for s in seeds] if seeds else []
    jobs = jobs or [(n, n, candidates[n][0], None) for n in names]
    for base_name, name, overrides, _seed in jobs:
        what = candidates[base_name][1]
        finished = (WORK / "runs" / name / "metrics.json").is_file() and (WORK / f"{name}.wall").is_file()
        if args.judge_only and (not finished or name in report["candidates"]):
            print(f"== {name}: {'already judged' if finished else 'not finished'}, skipped", flush=True)
            continue
        print(f"== {name}: {' '.join(overrides) or '(scifact_finetune.yaml as it is)'}", flush=True)
        run = run_candidate(name, overrides, args.threads, reuse=bool(seeds) or args.judge_only)
        report["candidates"][name] = judge_run(judge, name, overrides, what, run, novel)
        summary = run["summary"]
        if summary["data"].get("false_negative_audit"):
            report["audit"][name] = summary["data"]["false_negative_audit"]
        if "novel_base" not in report:
            report["novel_base"] = {
                s: novel_ndcg(summary.get("per_query", {}), s, novel) for s in ("bm25", "base", "hybrid_base")
            }
        for n in names if seeds else []:
            if n != REFERENCE and (p := paired(report, n, seeds)) is not None:
                report["paired"][n] = p
        write_results(RESULTS, "recipes", report, to_markdown(report), facts=dict(facts))
        scores = report["candidates"][name]["scores"]
        print(
            f"   hybrid chosen dev {fmt(_ndcg(scores, 'hybrid_tuned', 'dev'))} rest "
            f"{fmt(_ndcg(scores, 'hybrid_tuned', 'rest'))}; alone dev {fmt(_ndcg(scores, 'dense', 'dev'))} rest "
            f"{fmt(_ndcg(scores, 'dense', 'rest'))}; sts {scores['stsb_spearman']:.4f} "
            f"pubmedqa {scores['pubmedqa_ndcg@10']:.4f}; {run['wall_seconds'] / 60:.1f} min",
            flush=True,
        )
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
