"""Does a model trained at 256 tokens retrieve better when it encodes longer inputs? Dev / rest NDCG@10.

    python embeddingFT/bench/encode_length.py [--model PATH] [--lengths 256 384 512] [--threads 2]

71% of SciFact's abstracts are longer than 256 tokens, so the recipe truncates most of them. This
encodes the corpus and the bench's held-out claims with one model at each length (no retraining)
and scores dev and rest as ``bench_recipes.py`` does. Writes ``results/recipes/encode_length.{json,md}``.
"""

from __future__ import annotations

import argparse
import time

from bench_recipes import RESULTS, WORK, Judge, heldout_split

from embshared.bench import machine_facts, write_results
from embshared.runtime import setup_logging, shared_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(WORK / "runs" / "bm25neg" / "final_model"))
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 384, 512])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(args.threads)
    from embshared.models import load_sentence_transformer

    if not (shared_data_dir() / "scifact").is_dir():
        print(f"skipped: {shared_data_dir() / 'scifact'} not found")
        return 0
    dev, _rest, eval_set, _ = heldout_split()
    judge = Judge(dev, eval_set)
    ev = judge.evaluator
    model = load_sentence_transformer(args.model, device="cpu")
    rows = {}
    for length in args.lengths:
        model.max_seq_length = length
        start = time.perf_counter()
        docs = model.encode([eval_set.corpus[d] for d in ev.doc_ids], batch_size=32, normalize_embeddings=True)
        seconds = time.perf_counter() - start
        queries = model.encode([eval_set.queries[q] for q in ev.query_ids], batch_size=64, normalize_embeddings=True)
        scores = ev.score(queries @ docs.T)
        rows[length] = {"dev": round(scores.dev["ndcg@10"], 4), "rest": round(scores.rest["ndcg@10"], 4)}
        rows[length]["corpus_encode_s"] = round(seconds, 1)
        print(length, rows[length], flush=True)
    lines = [
        f"# Encoding length, model `{args.model}`",
        "",
        "| max_seq_length | NDCG@10 dev | NDCG@10 rest | corpus encode s |",
        "|---:|---:|---:|---:|",
        *(f"| {n} | {r['dev']:.4f} | {r['rest']:.4f} | {r['corpus_encode_s']} |" for n, r in rows.items()),
    ]
    report = {"model": args.model, "lengths": rows}
    write_results(RESULTS, "encode_length", report, "\n".join(lines), facts=machine_facts())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
