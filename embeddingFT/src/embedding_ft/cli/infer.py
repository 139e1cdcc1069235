"""Use a trained model: pairwise similarities of a few texts, or embeddings of a file.

python -m embedding_ft.cli.infer --model RUN/final_model --texts "first text|second text|third"
python -m embedding_ft.cli.infer --model RUN/final_model --input docs.jsonl --field text --output emb.npy
python -m embedding_ft.cli.infer --model RUN/final_model --backend onnx --texts "a|b"   # after make export-embed
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from embedding_ft.backends import BACKENDS
from embshared.cli import start_run
from embshared.errors import UserError, cli_entry
from embshared.files import atomic_write


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.infer", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder or name (e.g. a run's final_model)")
    parser.add_argument("--texts", help="texts separated by '|': prints their pairwise cosine similarities")
    parser.add_argument("--input", type=Path, help="a .txt file (one text per line) or .jsonl/.json/.csv/.tsv file")
    parser.add_argument("--field", default=None, help="the text field of --input records (default: text, content, ...)")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="torch", help="torch, or an exported onnx / openvino file"
    )
    parser.add_argument("--file-name", help="exported file inside the model folder (default: the int8 export)")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the (n, dim) float32 unit-length embeddings (.npy); a killed run resumes from "
        "<output>.cache",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    return parser


def similarity_table(texts: list[str], similarities: np.ndarray) -> str:
    """A fixed-width table of pairwise similarities with the texts as row labels."""
    labels = [t if len(t) <= 40 else t[:37] + "..." for t in texts]
    width = max(len(label) for label in labels)
    header = " " * (width + 2) + " ".join(f"{i:>6d}" for i in range(len(texts)))
    rows = [f"{label:<{width}}  " + " ".join(f"{v:6.3f}" for v in row) for label, row in zip(labels, similarities)]
    return "\n".join([header, *(f"[{i}] {r}" for i, r in enumerate(rows))])


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.texts and not args.input:
        raise UserError("give --texts 'a|b' or --input FILE --output FILE.npy")
    if args.input and not args.output:
        raise UserError("--input needs --output FILE.npy")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    start_run(quiet=True)
    texts = [t.strip() for t in args.texts.split("|") if t.strip()] if args.texts else []
    if args.texts and len(texts) < 1:
        raise UserError("--texts holds no text")
    from embshared.io import read_documents

    inputs = read_documents(args.input, args.field).texts if args.input else []

    from embedding_ft.backends import load_encoder

    model = load_encoder(args.model, args.backend, args.file_name, device=args.device)
    if texts:
        emb = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)  # (n, dim)
        print(similarity_table(texts, emb @ emb.T))
    if inputs:  # the corpus encoder's pass: length-sorted batches, resumable shards in <output>.cache
        from embedding_ft.corpus_encoder import CorpusEncoder, EmbeddingCache

        cache = EmbeddingCache(args.output.with_name(f"{args.output.name}.cache"))
        corpus = CorpusEncoder(
            args.model, args.backend, args.file_name, cache=cache, token_budget=args.batch_size * 256, encoder=model
        )
        emb = corpus.encode(inputs)  # (n, dim) unit vectors
        with atomic_write(args.output, "wb") as handle:
            np.save(handle, np.asarray(emb, dtype=np.float32), allow_pickle=False)
        print(f"wrote {emb.shape[0]} x {emb.shape[1]} unit-length embeddings to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
