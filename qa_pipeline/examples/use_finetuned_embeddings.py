"""Use a fine-tuned embedding model: similarity, semantic search, and a FAISS index.

    python examples/use_finetuned_embeddings.py \
        [--model models/fine_tuned_embeddings/final_model] \
        [--pairs data/qa_outputs/jsonl/questions_answers.jsonl] [--query "How are stimulation sites chosen?"]

With ``--pairs`` the passages of the generated Q&A file become the corpus and a few of its
questions the queries; without it, a handful of built-in sentences are used. Works with any
SentenceTransformer folder (or the packaged base model, for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embshared.models import load_sentence_transformer
from embshared.search import FaissIndex

DEMO_PASSAGES = [
    "Functional electrical stimulation with electrode arrays can recruit single forearm muscles selectively.",
    "M-waves recorded after sub-threshold pulses identify the best stimulation electrodes for hand opening.",
    "SPECTER learns document embeddings from the citation graph with a triplet loss.",
    "Hard negatives are papers cited by a cited paper but not by the query paper.",
    "Transformer language models are pretrained with masked language modelling.",
]
DEMO_QUERIES = ["How are the best electrodes for hand opening found?", "What negatives does SPECTER train with?"]


def load_corpus(pairs: Path | None, n_queries: int) -> tuple[list[str], list[str]]:
    """(passages, queries) from a questions_answers.jsonl, or the demo sentences."""
    if pairs is None:
        return DEMO_PASSAGES, DEMO_QUERIES
    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines() if line.strip()]
    passages = list(dict.fromkeys(r["answer"] for r in rows))
    queries = [r["question"] for r in rows[:: max(1, len(rows) // n_queries)]][:n_queries]
    return passages, queries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="models/fine_tuned_embeddings/final_model", help="SentenceTransformer folder"
    )
    parser.add_argument("--pairs", type=Path, help="questions_answers.jsonl whose passages form the corpus")
    parser.add_argument("--query", action="append", help="a query (repeatable)")
    parser.add_argument("--k", type=int, default=3, help="results per query")
    args = parser.parse_args(argv)

    model = load_sentence_transformer(args.model)
    passages, queries = load_corpus(args.pairs, n_queries=3)
    queries = args.query or queries
    print(f"model: {args.model} (dimension {model.get_embedding_dimension()}), {len(passages)} passages\n")

    # 1. Similarity of two texts.
    a, b = queries[0], passages[0]
    embeddings = model.encode([a, b], normalize_embeddings=True)  # (2, dim)
    print(
        f"1. similarity\n   {a!r}\n   {b[:80]!r}...\n   cosine = {float(model.similarity(embeddings[:1], embeddings[1:])):.4f}\n"
    )

    # 2. Semantic search by brute force.
    corpus = model.encode(passages, normalize_embeddings=True, batch_size=64)  # (n_passages, dim)
    query_vectors = model.encode(queries, normalize_embeddings=True)  # (n_queries, dim)
    scores = model.similarity(query_vectors, corpus)  # (n_queries, n_passages)
    print("2. semantic search")
    for query, row in zip(queries, scores):
        top = row.argsort(descending=True)[: args.k].tolist()
        print(f"   {query}")
        for rank, i in enumerate(top, 1):
            print(f"     {rank}. {float(row[i]):.3f}  {passages[i][:100]}")
    print()

    # 3. A FAISS index (inner product = cosine on normalised vectors), saved and loaded again.
    index = FaissIndex(dim=corpus.shape[1], metric="ip").add([str(i) for i in range(len(passages))], corpus)
    with tempfile.TemporaryDirectory() as folder:
        index.save(folder)
        index = FaissIndex.load(folder)
    ids, hit_scores = index.search(query_vectors, k=args.k)
    print("3. FAISS index (saved, reloaded, searched)")
    for query, row_ids, row_scores in zip(queries, ids, hit_scores):
        best = ", ".join(f"#{i} ({s:.3f})" for i, s in zip(row_ids, row_scores))
        print(f"   {query[:60]!r}: {best}")


if __name__ == "__main__":
    main()
