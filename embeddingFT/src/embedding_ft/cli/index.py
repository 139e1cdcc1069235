"""Build a searchable index (FAISS + BM25 + documents) over a document collection.

    python -m embedding_ft.cli.index --model RUN/final_model --docs corpus.jsonl --index indexes/scifact
    python -m embedding_ft.cli.index --model RUN/final_model --backend onnx --docs docs.txt --index idx
    python -m embedding_ft.cli.index --model RUN/final_model --from-index indexes/base --index indexes/adapter

``--docs`` is a BEIR folder or corpus.jsonl, any JSONL/JSON/CSV/TSV with a text field
(``--text-field``, ``--id-field``), or a .txt file with one document per line. A ``fusion.json``
in the model folder (the hybrid fusion chosen on the training run's dev queries) is copied into
the index, and its BM25 is built with that setting's k1, b and stemming.

Documents are encoded through an embedding cache (``--cache-dir``, default ``<index>.cache``):
sorted by token length in token-budget batches, written in shards so a killed run resumes, and
reused by the next build over the same texts with the same model. ``--backend auto`` exports the
model to ONNX once, into the cache (never into the model folder), and uses the fastest file (those
and any already in the model folder) whose vectors pass ``--gate`` against PyTorch on a sample of
the documents, else PyTorch; the index records the choice.

Under ``accelerate launch`` (``make index-embed NPROC=2``, and ``NNODES`` / ``NODE_RANK`` /
``MASTER_ADDR`` / ``MASTER_PORT`` across machines, as for training) each process encodes its slice
of the documents and the main process writes the one index (:mod:`embedding_ft.ranks`).

``--faiss auto`` (the default) is exact (flat) below 100,000 documents and HNSW at or above;
``--vectors float16|int8`` stores the vectors (and the FAISS index) in 2 or 1 byte per dimension
instead of 4 (int8: ``sentence_transformers.quantize_embeddings`` with per-dimension ranges).

``--from-index`` (instead of ``--docs``) is for an adapter model (a head over a frozen base,
:mod:`embedding_ft.adapter`): the documents and their vectors come from an index built with the
adapter's base model, and each stored vector goes through the head; nothing is re-encoded.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from embedding_ft.backends import BACKENDS
from embshared.cli import start_run
from embshared.errors import UserError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.index", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder or name")
    parser.add_argument(
        "--backend",
        choices=[*BACKENDS, "auto"],
        default="torch",
        help="auto: export to ONNX once (into the cache) and use the fastest back end whose vectors match "
        "PyTorch's on a sample of the documents (--gate), else torch",
    )
    parser.add_argument(
        "--gate",
        choices=["exact", "approximate"],
        default="exact",
        help="--backend auto's parity gate: cosine >= 0.9999 for every sample text, or mean cosine >= 0.99",
    )
    parser.add_argument("--file-name", help="exported file inside the model folder (default: the int8 export)")
    parser.add_argument(
        "--compute-dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="bfloat16: torch under autocast, openvino's bf16 inference (fast where the CPU has AVX512-BF16 "
        "or AMX; measure with make bench-scale); --backend auto measures both where the CPU has it",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--docs", type=Path, help="the document collection")
    source.add_argument(
        "--from-index",
        type=Path,
        help="an index built with the base model of the adapter --model: reuse its documents and vectors",
    )
    parser.add_argument("--index", required=True, type=Path, help="the index folder to write")
    parser.add_argument("--text-field", help="the field holding the text (default: title+text, text, content, ...)")
    parser.add_argument("--id-field", help="the field holding the id (default: _id, id, doc_id, else the line)")
    parser.add_argument(
        "--faiss",
        choices=["auto", "flat", "hnsw", "ivf"],
        help="exact (flat) or approximate; default auto: flat below 100,000 documents, else hnsw "
        "(with --from-index: the base index's kind)",
    )
    parser.add_argument(
        "--vectors",
        choices=["float32", "float16", "int8"],
        help="precision of the stored vectors and of the FAISS index (default float32)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="token budget per batch: this many texts of 256 tokens"
    )
    parser.add_argument(
        "--shard-size", type=int, help="documents per resumable shard (default 8192): a killed run loses at most one"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="the embedding cache (resumable shards, vectors reused across builds); default <index>.cache",
    )
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.shard_size is not None and args.shard_size < 1:
        raise UserError(f"--shard-size must be at least 1, got {args.shard_size}")
    start_run()
    from embedding_ft.index import build_index, read_meta
    from embedding_ft.reindex import reindex_from_base
    from embshared.fusion_choice import FusionSetting
    from embshared.io import read_documents

    if args.from_index is not None:
        if args.backend not in ("torch", "auto") or args.file_name:
            raise UserError(
                "--from-index builds the adapter's index with the torch back end (no --backend/--file-name)"
            )
        if args.vectors not in (None, "float32"):
            raise UserError("--from-index builds a float32 index (no --vectors)")
        base_vectors = read_meta(args.from_index).get("vectors", "float32")
        if base_vectors != "float32":
            raise UserError(
                f"{args.from_index} stores {base_vectors} vectors; the adapter's head needs the base model's "
                "float32 vectors: rebuild it with --vectors float32"
            )
        folder, reused = reindex_from_base(args.from_index, args.model, args.index, args.faiss)
        n_docs = json.loads((folder / "meta.json").read_text(encoding="utf-8"))["n_docs"]
        print(
            f"{'reused' if reused else 'built'} {folder}: {n_docs} documents and their vectors from {args.from_index}"
        )
    elif _world_size() > 1:  # under accelerate launch (NPROC / NNODES): each rank encodes its slice
        folder, reused = _build_by_rank(args, read_documents(args.docs, args.text_field, args.id_field))
        if folder is None:
            return 0  # not the main process: it wrote nothing
    else:
        docs = read_documents(args.docs, args.text_field, args.id_field)
        folder, reused = build_index(
            args.index,
            docs,
            args.model,
            args.backend,
            args.file_name,
            args.batch_size,
            args.faiss or "auto",
            vectors=args.vectors or "float32",
            cache_dir=args.cache_dir,
            gate=args.gate,
            shard_size=args.shard_size,
            compute_dtype=args.compute_dtype,
        )
        print(f"{'reused' if reused else 'built'} {folder}: {len(docs)} documents from {docs.source}")
    meta = read_meta(folder)
    print(f"FAISS {meta.get('faiss_kind', 'flat')}, {meta.get('vectors', 'float32')} vectors")
    saved = FusionSetting.load(folder)
    print(f"hybrid fusion: {saved.describe() if saved else FusionSetting.default().describe() + ' [the default]'}")
    return 0


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _build_by_rank(args, docs):
    """(folder, reused) on the main process, (None, False) on the others: :func:`embedding_ft.ranks.encode_by_rank`."""
    import torch
    from accelerate import PartialState

    from embedding_ft.corpus_encoder import CorpusEncoder, EmbeddingCache
    from embedding_ft.index import build_index
    from embedding_ft.ranks import encode_by_rank

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo on CPU, NCCL on GPUs
    cache_dir = args.cache_dir or args.index.with_name(f"{args.index.name}.cache")
    corpus = CorpusEncoder(
        args.model, args.backend, args.file_name, cache=EmbeddingCache(cache_dir),
        token_budget=max(args.batch_size, 1) * 256, gate=args.gate, export=args.backend == "auto",
        compute_dtype=args.compute_dtype, **({"shard_size": args.shard_size} if args.shard_size else {}),
    )  # fmt: skip
    vectors = encode_by_rank(corpus, docs.texts, state)
    if not state.is_main_process:
        return None, False
    folder, reused = build_index(
        args.index, docs, args.model, corpus.backend, corpus.file_name, args.batch_size, args.faiss or "auto",
        encoder=corpus.encoder, embeddings=vectors, vectors=args.vectors or "float32", cache_dir=cache_dir,
        compute_dtype=corpus.compute_dtype,
    )  # fmt: skip
    print(f"{state.num_processes} processes encoded {len(docs)} documents from {docs.source}")
    return folder, reused


if __name__ == "__main__":
    raise SystemExit(main())
