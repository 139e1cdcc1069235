"""SciFact benchmark of ragcun: BM25, base MiniLM (cosine) and the Gaussian model (L2), with an ablation.

Protocol (``make bench-ragcun``):
- data: ``../shared/data/scifact`` (BEIR layout, train split only; the test split is never used);
- hold out ``--test-fraction`` (20%) of the train queries by a fixed seed; of the rest,
  ``--val-fraction`` (10%) select the best epoch by validation loss and the others train;
- BM25 (embshared.search.BM25Index) and the base all-MiniLM-L6-v2 (cosine) are the peers;
- the Gaussian model is the base encoder, frozen, plus a projection head trained with
  contrastive + lambda_isotropy * SIGReg + lambda_reg * variance (ragcun.training.train);
  the ablation row is the same with lambda_isotropy = 0;
- metrics through embshared (NDCG@10, Recall@10/100, MRR@10, MAP@100) on the held-out
  queries, and separately on the held-out queries none of whose relevant documents is
  relevant to a training query (SciFact claims share abstracts: a held-out query's document
  may have been a training positive, which flatters any fine-tuned model);
- isotropy diagnostics (ragcun.diagnostics) of the corpus embeddings of each model.

The frozen base makes the Gaussian rows cheap on a CPU: the corpus is encoded once (the
base row's embeddings) and cached on disk in ``ragcun/outputs/bench_cache`` keyed by model
and texts (embshared.bench.cached_embeddings), so reruns skip it; the time of that encoding
is kept beside the cache (``encode_times.json``) and reported. Writes
``ragcun/bench/results/default/scifact.{json,md}`` through embshared.bench.write_results (with the
command and the machine facts) and ``scifact_spectrum.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from embshared.bench import cached_embeddings, machine_facts, write_results
from embshared.cli import set_threads, start_run
from embshared.evaluate import evaluate_retrieval, format_table
from embshared.files import atomic_write, write_json
from embshared.io import load_beir
from embshared.runtime import repo_root, shared_data_dir
from embshared.search import bm25_score_fn
from ragcun.checkpoint import load_weights, read_checkpoint
from ragcun.data import TrainExample
from ragcun.diagnostics import covariance_spectrum
from ragcun.evaluation import EvalSet, evaluate_encoder
from ragcun.losses import SIGReg
from ragcun.model import GaussianEmbeddingGemma, ModelConfig, ProjectionHead
from ragcun.training import TrainConfig, train

logger = logging.getLogger("bench_scifact")

METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100"]
ISOTROPY = ["std_mean", "mean_abs_mean", "eig_max_over_mean", "effective_rank_ratio", "sigreg", "sigreg_standardized"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(shared_data_dir() / "scifact"), help="BEIR folder (train qrels)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the query split")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2], help="one training run per seed")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--head-hidden-dim", type=int, default=768, help="0: linear head")
    parser.add_argument("--lambda-isotropy", type=float, default=1.0)
    parser.add_argument("--lambda-reg", type=float, default=0.1)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--num-slices", type=int, default=256)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--ict-pairs", type=int, default=0, help="add this many inverse-cloze pairs from the corpus")
    parser.add_argument(
        "--negative-ranks",
        type=int,
        nargs=2,
        default=[10, 50],
        metavar=("FROM", "TO"),
        help="hard negative: a random non-relevant abstract ranked FROM..TO by the base model (0 0: none)",
    )
    parser.add_argument("--cache-dir", default=str(repo_root() / "ragcun" / "outputs" / "bench_cache"))
    parser.add_argument("--no-cache", action="store_true", help="always re-encode the corpus")
    parser.add_argument("--runs-dir", default=str(repo_root() / "ragcun" / "outputs" / "bench_runs"))
    parser.add_argument("--output-dir", default=str(repo_root() / "ragcun" / "bench" / "results" / "default"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads for encoding (default: torch's)")
    parser.add_argument(
        "--train-threads",
        type=int,
        default=1,
        help="torch threads for training the heads: their ops are small, and on shared cores 2 threads made them ~7x slower",
    )
    return parser.parse_args(argv)


def split_queries(query_ids, test_fraction, val_fraction, seed):
    ids = sorted(query_ids)
    random.Random(seed).shuffle(ids)
    n_test = round(test_fraction * len(ids))
    test, rest = ids[:n_test], ids[n_test:]
    n_val = round(val_fraction * len(rest))
    return rest[n_val:], rest[:n_val], test


def encode_base_cached(model: GaussianEmbeddingGemma, texts: list[str], args, label: str) -> tuple[np.ndarray, dict]:
    """Base embeddings of ``texts`` through embshared's disk cache, also filling the model's
    in-memory cache; the time of the encoding is kept in ``encode_times.json`` beside the cache,
    so that a run that reads the cache still reports what the encoding cost."""
    cache_dir = None if args.no_cache else Path(args.cache_dir)
    model_id = f"{model.config.base_model} max_seq_length={args.max_seq_length}"
    measured: dict = {}

    def embed(batch: list[str]) -> np.ndarray:
        start = time.perf_counter()
        embeddings = model.encode_base(batch, batch_size=32, show_progress=True)
        measured.update(seconds=time.perf_counter() - start, measured=time.strftime("%Y-%m-%d %H:%M"))
        return embeddings

    embeddings = cached_embeddings(texts, embed, cache_dir, model_id)
    if not measured:  # read from the disk cache: fill the in-memory cache the encoding would have filled
        model.base_cache.update(zip(texts, torch.from_numpy(embeddings.astype(np.float32))))
        logger.info("%s: %d base embeddings from the cache in %s", label, len(texts), cache_dir)
    else:
        logger.info("%s: encoded %d texts in %.0f s", label, len(texts), measured["seconds"])
    if cache_dir is None:
        return embeddings, {"cached": False, **measured}
    times_path = cache_dir / "encode_times.json"
    times = json.loads(times_path.read_text(encoding="utf-8")) if times_path.is_file() else {}
    key = hashlib.sha1("\n".join([label, model_id, *texts]).encode("utf-8")).hexdigest()[:16]
    if measured:
        times[key] = measured
        write_json(times_path, times)
    return embeddings, {"cached": not measured, **times.get(key, {"seconds": None, "measured": None})}


def mine_negatives(
    examples: list[TrainExample],
    query_embeddings: dict[str, np.ndarray],
    doc_base: np.ndarray,
    doc_texts: list[str],
    ranks: tuple[int, int],
    seed: int,
) -> list[TrainExample]:
    """Give each (query, abstract) pair a hard negative: a random abstract that the base model
    ranks within ``ranks`` for the query and that is not one of its positives (the top ranks
    are skipped: they hold unlabelled positives too often)."""
    rng = random.Random(seed)
    positives: dict[str, set[str]] = {}
    for example in examples:
        positives.setdefault(example.query, set()).add(example.positive)
    candidates: dict[str, list[int]] = {}
    out = []
    for example in examples:
        if example.query not in candidates:
            scores = doc_base @ query_embeddings[example.query]  # (n_docs,) cosine: both unit-norm
            order = np.argsort(-scores, kind="stable")[ranks[0] : ranks[1]]
            candidates[example.query] = [int(i) for i in order if doc_texts[i] not in positives[example.query]]
        out.append(TrainExample(example.query, example.positive, doc_texts[rng.choice(candidates[example.query])]))
    return out


def ict_examples(corpus: dict[str, dict[str, str]], n: int, seed: int) -> list[TrainExample]:
    from ragcun.preparation import Document, ict_pairs, split_sentences

    documents = [Document(d, doc["title"], split_sentences(doc["text"])) for d, doc in corpus.items()]
    pairs, _ = ict_pairs(documents, n, random.Random(seed))
    return [TrainExample(p["query"], p["positive"]) for p in pairs]


def aggregate(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean over training seeds, plus the standard deviation of NDCG@10."""
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    out["ndcg@10 sd"] = float(np.std([r["ndcg@10"] for r in runs]))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    start_run(seed=args.seed, threads=args.threads)
    data = Path(args.data)
    if not data.is_dir():
        print(f"SciFact not found at {data}; nothing to benchmark", file=sys.stderr)
        return 0
    t_start = time.perf_counter()
    facts = machine_facts()  # the load at the start; torch_threads: the encoding threads
    beir = load_beir(data)
    texts = beir.corpus_texts()
    doc_ids = list(texts)
    doc_texts = [texts[d] for d in doc_ids]
    train_q, val_q, test_q = split_queries(beir.queries, args.test_fraction, args.val_fraction, args.seed)
    train_docs = {d for q in train_q + val_q for d, r in beir.qrels[q].items() if r > 0}
    unseen_q = [q for q in test_q if not any(d in train_docs for d in beir.qrels[q])]
    test_sets = {
        "held-out": EvalSet({q: beir.queries[q] for q in test_q}, texts, {q: beir.qrels[q] for q in test_q}),
        "unseen docs": EvalSet({q: beir.queries[q] for q in unseen_q}, texts, {q: beir.qrels[q] for q in unseen_q}),
    }
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}

    # BM25 (bm25s through embshared)
    start = time.perf_counter()
    bm25 = bm25_score_fn(doc_ids, doc_texts)
    results["BM25"] = {
        name: {"metrics": evaluate_retrieval(s.queries, texts, s.qrels, bm25, METRICS, doc_ids=doc_ids)}
        for name, s in test_sets.items()
    }
    timings["bm25_index_and_search_s"] = time.perf_counter() - start

    # The base model, frozen and shared by every Gaussian run through its embedding cache.
    model_config = ModelConfig(
        freeze_base=True, max_seq_length=args.max_seq_length, head_hidden_dim=args.head_hidden_dim
    )
    model = GaussianEmbeddingGemma.from_config(model_config)
    model.enable_base_cache()
    query_texts = sorted(set(beir.queries.values()))
    doc_base, encode_info = encode_base_cached(model, doc_texts, args, "corpus")
    query_base, query_info = encode_base_cached(model, query_texts, args, "queries")
    timings["corpus_encode_s"] = encode_info["seconds"]
    timings["query_encode_s"] = query_info["seconds"]

    def base_encode(batch):
        return model.encode_base(batch, batch_size=64)

    results["MiniLM (cosine)"] = {
        name: evaluate_encoder(
            base_encode, s, "cosine", METRICS, diagnostics=(name == "held-out"), doc_embeddings=doc_base
        )
        for name, s in test_sets.items()
    }
    spectra = {"MiniLM (cosine)": covariance_spectrum(doc_base)}

    # Training data: qrels pairs, hard negatives mined with the base model, optional ICT pairs.
    def pairs(qids):
        return [TrainExample(beir.queries[q], texts[d]) for q in qids for d, r in beir.qrels[q].items() if r > 0]

    train_examples, val_examples = pairs(train_q), pairs(val_q)
    if args.negative_ranks[1] > args.negative_ranks[0]:
        query_embeddings = dict(zip(query_texts, query_base))
        ranks = tuple(args.negative_ranks)
        train_examples = mine_negatives(train_examples, query_embeddings, doc_base, doc_texts, ranks, args.seed)
        val_examples = mine_negatives(val_examples, query_embeddings, doc_base, doc_texts, ranks, args.seed)
    if args.ict_pairs:
        ict = ict_examples(beir.corpus, args.ict_pairs, args.seed)
        if train_examples[0].negative is not None:  # one format per training set: negatives from other documents
            rng = random.Random(args.seed)
            ict = [TrainExample(e.query, e.positive, rng.choice(ict).positive) for e in ict]
        _, ict_info = encode_base_cached(model, sorted({t for e in ict for t in (e.query, e.positive)}), args, "ict")
        timings["ict_encode_s"] = ict_info["seconds"]
        train_examples += ict
    logger.info(
        "queries: %d train, %d val, %d held-out (%d with unseen abstracts); %d training examples",
        len(train_q), len(val_q), len(test_q), len(unseen_q), len(train_examples),
    )  # fmt: skip

    set_threads(args.train_threads)
    variants = {f"Gaussian (L2, λ_iso={args.lambda_isotropy:g})": args.lambda_isotropy, "ablation: λ_iso=0 (L2)": 0.0}
    train_summaries: dict[str, list[dict]] = {}
    for label, lambda_isotropy in variants.items():
        # two checkpoints per run: the epoch chosen by validation loss (the protocol) and the last one
        rows = {label: "best", f"{label}, last epoch": "final"}
        runs = {row: {name: [] for name in test_sets} for row in rows}
        isotropy: dict[str, dict] = {}
        train_summaries[label] = []
        for seed in args.train_seeds:
            torch.manual_seed(seed)
            head = ProjectionHead(model.base_dim, model.output_dim, model.config.head_hidden_dim)
            variant = GaussianEmbeddingGemma(model.base, head, replace(model.config)).to(model.device)
            variant.base_cache = model.base_cache
            run_dir = Path(args.runs_dir) / f"{'gaussian' if lambda_isotropy else 'ablation'}-seed{seed}"
            config = TrainConfig(
                model=ModelConfig(
                    freeze_base=True, head_hidden_dim=args.head_hidden_dim, max_seq_length=args.max_seq_length
                ),
                output_dir=str(run_dir),
                epochs=args.epochs,
                batch_size=args.batch_size,
                head_learning_rate=args.head_lr,
                warmup_steps=0,
                lambda_isotropy=lambda_isotropy,
                lambda_reg=args.lambda_reg,
                margin=args.margin,
                temperature=args.temperature,
                num_slices=args.num_slices,
                save_epoch_checkpoints=False,
                tensorboard=False,
                log_every=50,
                seed=seed,
            )
            start = time.perf_counter()
            result = train(config, train_examples, val_examples, model=variant, show_progress=False)
            seconds = time.perf_counter() - start
            first = seed == args.train_seeds[0]
            for row, which in rows.items():
                checkpoint = result.best_model if which == "best" else result.final_model
                load_weights(variant, read_checkpoint(checkpoint), checkpoint)

                def encode(batch, variant=variant):
                    return variant.encode(batch, batch_size=256)

                doc_emb = encode(doc_texts)
                for name, eval_set in test_sets.items():
                    evaluated = evaluate_encoder(
                        encode,
                        eval_set,
                        "l2",
                        METRICS,
                        diagnostics=first and name == "held-out",
                        doc_embeddings=doc_emb,
                    )
                    runs[row][name].append(evaluated["metrics"])
                    if "isotropy" in evaluated:
                        isotropy[row] = evaluated["isotropy"]
                if first and which == "best":
                    spectra[label] = covariance_spectrum(doc_emb)
            train_summaries[label].append(
                {"seed": seed, "seconds": seconds, "best_epoch": result.best_epoch, "best_val_loss": result.best_loss}
            )
            timings[f"train_{'gaussian' if lambda_isotropy else 'ablation'}_seed{seed}_s"] = seconds
        for row in rows:
            results[row] = {name: {"metrics": aggregate(r), "runs": r} for name, r in runs[row].items()}
            results[row]["held-out"]["isotropy"] = isotropy[row]

    timings["total_s"] = time.perf_counter() - t_start
    report = {
        "protocol": {
            "data": str(data),
            "queries": {
                "train": len(train_q),
                "val": len(val_q),
                "held_out": len(test_q),
                "held_out_unseen_docs": len(unseen_q),
            },
            "training_examples": len(train_examples),
            "corpus_size": len(doc_ids),
            "queries_total": len(beir.queries),
            "seed": args.seed,
            "config": {k: v for k, v in vars(args).items() if k not in {"cache_dir", "runs_dir", "output_dir", "data"}},
        },
        "encoding": {"corpus": encode_info, "queries": query_info, "torch_threads": facts["torch_threads"]},
        "timings_s": timings,
        "training": train_summaries,
        "results": results,
    }
    out = Path(args.output_dir)
    text = markdown(report)
    write_results(out, "scifact", report, text, facts=facts)
    plot_spectra(spectra, out / "scifact_spectrum.png")
    print(text)
    return 0


def markdown(report: dict) -> str:
    results = report["results"]
    protocol = report["protocol"]
    config = protocol["config"]
    encoding_info = report["encoding"]
    q = protocol["queries"]
    seeds = config["train_seeds"]
    negatives = config["negative_ranks"]
    columns = [*METRICS, "ndcg@10 sd"]
    lines = [
        "# ragcun on SciFact (train split): BM25 vs MiniLM vs the Gaussian model",
        "",
        f"Held out: {q['held_out']} of the {protocol['queries_total']} train queries (split seed {protocol['seed']}). "
        "The Gaussian model is "
        f"all-MiniLM-L6-v2, frozen, plus a projection head ({config['head_hidden_dim'] or 'linear'} hidden units, "
        f"residual) trained for {config['epochs']} epochs on {protocol['training_examples']} (query, abstract"
        + (f", hard negative from base ranks {negatives[0]}-{negatives[1]}" if negatives[1] > negatives[0] else "")
        + f") examples of {q['train']} queries; the epoch is chosen by the loss on {q['val']} more queries. "
        f"Loss: contrastive (margin {config['margin']:g}, temperature {config['temperature']:g}) + λ_iso·SIGReg "
        f"({config['num_slices']} slices) + {config['lambda_reg']:g}·variance. Gaussian rows are means over training "
        f"seeds {', '.join(map(str, seeds))} (`ndcg@10 sd`: their standard deviation); each is shown at the epoch "
        "with the lowest validation loss (the protocol) and at the last epoch. Corpus: all "
        f"{protocol['corpus_size']:,} abstracts. "
        "`make bench-ragcun` regenerates this file.",
        "",
        "## Retrieval, all held-out queries",
        "",
        format_table({name: r["held-out"]["metrics"] for name, r in results.items()}, columns),
        "",
        f"## Retrieval, the {q['held_out_unseen_docs']} held-out queries none of whose relevant abstracts a training query shares",
        "",
        "SciFact claims often share an abstract, so a held-out query's abstract may have been a training positive; "
        "this subset measures generalisation to unseen documents.",
        "",
        format_table({name: r["unseen docs"]["metrics"] for name, r in results.items()}, columns),
        "",
        "## Isotropy of the corpus embeddings",
        "",
        f"An isotropic N(0, I) has std 1, mean 0, eigenvalue max/mean 1, effective rank ratio 1 and SIGReg ≈ "
        f"{SIGReg().null_expectation():.2f}. `sigreg` tests the embeddings as they are against N(0, I) (the cosine "
        "model's unit vectors are far from it by scale alone); `sigreg_standardized` tests them after centring and one "
        "global rescaling (shape only). Both on 2,048 sampled abstracts with 1,024 fixed directions; Gaussian rows from "
        f"the seed-{seeds[0]} run.",
        "",
        format_table(
            {
                name: r["held-out"]["isotropy"]["documents"]
                for name, r in results.items()
                if "isotropy" in r["held-out"]
            },
            ISOTROPY,
            digits=3,
        ),
        "",
        "![covariance spectra](scifact_spectrum.png)",
        "",
        "## Cost",
        "",
    ]
    timings = report["timings_s"]

    def encoding(label: str, info: dict) -> str:
        if info["seconds"] is None:
            return f"- {label} with the base model: read from the cache (its time was not recorded)"
        cached = f" (read from the cache; measured {info['measured']})" if info["cached"] else ""
        return f"- {label} with the base model: {info['seconds']:.0f} s{cached}"

    lines += [
        encoding("corpus encoding", encoding_info["corpus"]),
        encoding("query encoding", encoding_info["queries"]),
        *(
            f"- {k.removesuffix('_s').replace('_', ' ')}: {v:.0f} s"
            for k, v in timings.items()
            if k not in {"corpus_encode_s", "query_encode_s"}
        ),
        *(
            f"- {name}: best epochs {', '.join(str(t['best_epoch']) for t in runs)} of {config['epochs']}"
            for name, runs in report["training"].items()
        ),
        "",
        f"torch threads: {encoding_info['torch_threads']} for encoding, {config['train_threads']} for training.",
        "",
    ]
    return "\n".join(lines)


def plot_spectra(spectra: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in spectra.items():
        ax.semilogy(np.arange(1, len(values) + 1), np.maximum(values, 1e-6), label=name)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="isotropic")
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("eigenvalue / mean eigenvalue")
    ax.set_title("Covariance spectrum of the SciFact corpus embeddings")
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
