"""The adapter's cost after the base encoding: training the head and re-indexing SciFact from a base index.

    python embeddingFT/bench/adapter_cost.py [--run NAME] [--threads 2]

The adapter recipe (``adapter: head``) trains a projection head over the frozen base model on
vectors the base model has already computed, and an index built with the base model becomes the
adapter's index by applying the head to its stored vectors (``make index-embed FROM_INDEX=...``).
This measures both on the full SciFact corpus (5,183 abstracts):

- the head's training, as the run logged it (``train.seconds``, query encoding included) for the
  bench run ``--run`` (default ``head_s42`` of ``bench_recipes.py --seeds``);
- ``reindex_from_base``: the base index (built here from the mining cache's base vectors, so the
  base encoding is not repeated) -> the adapter's index (head on the stored vectors, FAISS, BM25,
  documents), and the check that its vectors equal a fresh encoding of a sample by the adapter.

The issue's rail: the two together <= 2 minutes after the base encoding. Writes
``results/recipes/adapter_cost.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from bench_recipes import RESULTS, WORK

from embshared.bench import machine_facts, write_results
from embshared.runtime import setup_logging, shared_data_dir


def base_vectors(run_dir, texts: list[str]) -> np.ndarray | None:
    """The base model's vectors of ``texts`` from the bench's mining cache (the run's own mining id)."""
    from embedding_ft.config import TrainConfig
    from embedding_ft.corpus_encoder import EmbeddingCache
    from embshared.config import load_config

    cfg = load_config(TrainConfig, run_dir / "config.yaml", [])
    corpus = list(dict.fromkeys(texts))
    embeddings = EmbeddingCache(WORK / "cache" / "vectors").lookup(cfg.model_name, corpus, cfg.max_seq_length)
    if embeddings is None:
        return None
    row_of = {t: i for i, t in enumerate(corpus)}
    vectors = embeddings[[row_of[t] for t in texts]].astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="head_s42")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(args.threads)
    from embedding_ft.index import build_index
    from embedding_ft.reindex import reindex_from_base
    from embshared.io import Documents, load_beir

    run_dir = WORK / "runs" / args.run
    if not (shared_data_dir() / "scifact").is_dir() or not (run_dir / "metrics.json").is_file():
        print(f"skipped: needs {shared_data_dir() / 'scifact'} and {run_dir} (bench_recipes.py --seeds 1 --only head)")
        return 0
    summary = json.loads((run_dir / "metrics.json").read_text())
    beir = load_beir(shared_data_dir() / "scifact", split="train")
    corpus = beir.corpus_texts()
    docs = Documents(list(corpus), list(corpus.values()), "scifact")
    vectors = base_vectors(run_dir, docs.texts)
    if vectors is None:
        print("skipped: no base vectors in the mining cache (run bench_recipes.py first)")
        return 0
    base_index = WORK / "indexes" / "scifact-base"
    build_index(base_index, docs, summary["base_model"], embeddings=vectors)
    start = time.perf_counter()
    out, _ = reindex_from_base(base_index, run_dir / "final_model", WORK / "indexes" / f"scifact-{args.run}")
    reindex_seconds = time.perf_counter() - start
    train_seconds = summary["train"]["seconds"]
    report = {
        "run": args.run,
        "n_docs": len(docs),
        "head_training_seconds": train_seconds,
        "head_training_encode_seconds": summary["train"].get("encode_seconds"),
        "reindex_seconds": round(reindex_seconds, 2),
        "total_seconds": round(train_seconds + reindex_seconds, 2),
        "index": str(out),
    }
    lines = [
        "# The adapter's cost after the base encoding (SciFact, 5,183 abstracts)",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| head training (run `{args.run}`: {report['head_training_encode_seconds']} s of it encode the training "
        f"queries) | {train_seconds:.1f} |",
        f"| re-index from the base index's stored vectors (head, FAISS, BM25, documents, parity check) | "
        f"{reindex_seconds:.1f} |",
        f"| **together** (rail: 120 s) | **{report['total_seconds']:.1f}** |",
    ]
    write_results(RESULTS, "adapter_cost", report, "\n".join(lines), facts=machine_facts())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
