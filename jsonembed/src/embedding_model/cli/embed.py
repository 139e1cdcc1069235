"""Embed every record of a JSONL file into a NumPy matrix.

    python -m embedding_model.cli.embed --model my_model.pt --input production_data.jsonl \
        --output production_embeddings.npy

Row i of the matrix is the i-th record kept; ``<output stem>.meta.json`` beside it lists
the source line of every row (lines differ from rows when ``--skip-invalid`` skipped some).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from embedding_model.cli.common import add_common_args, positive, report_skipped, start
from embedding_model.embedder import JsonEmbedder
from embedding_model.embeddings_file import write_embeddings
from embedding_model.records import load_records
from embshared.errors import UserError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embedding_model.cli.embed", description="Embed JSON records with a trained jsonembed model."
    )
    parser.add_argument("--model", required=True, help="model file written by embedding_model.cli.train")
    parser.add_argument("--input", required=True, help="records to embed (JSONL)")
    parser.add_argument("--output", required=True, help="the .npy file to write, float32 (n_records, dim)")
    parser.add_argument("--batch-size", type=int, default=None, help="records per forward pass")
    add_common_args(parser)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start(args)
    positive(args.batch_size, "--batch-size")
    output = Path(args.output)
    if output.is_dir():
        raise UserError(f"{output}: is a folder; --output names the .npy file to write")

    embedder = JsonEmbedder.load(args.model, args.device)
    records = load_records(
        args.input, embedder.cfg.ignore_fields, skip_invalid=args.skip_invalid, max_chars=embedder.cfg.max_chars
    )
    report_skipped(records.path, records.skipped)

    started = time.perf_counter()
    matrix = embedder.embed_segments(records.segments, args.batch_size, show_progress=not args.quiet)
    seconds = time.perf_counter() - started
    write_embeddings(output, matrix, args.model, args.input, records)

    rate = len(records) / seconds if seconds else float("inf")
    print(f"wrote {output}: {matrix.shape[0]} x {matrix.shape[1]} float32 ({rate:.0f} records/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
