"""``prepare_data``: training pairs from documents (inverse cloze) or a CSV, split by document.

    python ragcun/scripts/prepare_data.py --documents corpus.jsonl --generate_pairs \\
        --num_pairs 10000 --add_negatives --split 0.8 0.1 0.1 --output_dir data/processed

writes train.json, val.json and test_eval.json (see :mod:`ragcun.pair_dataset`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embshared.cli import add_config_arguments, config_from_args, start_run
from embshared.errors import cli_entry
from ragcun.pair_dataset import PrepareConfig, prepare

logger = logging.getLogger("ragcun.prepare_data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prepare_data", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, PrepareConfig)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(PrepareConfig, args)
    start_run()
    summary = prepare(config)
    for file_name, count in summary["written"].items():
        logger.info("wrote %s (%d)", Path(config.output_dir) / file_name, count)
    logger.info(
        "%d pairs; documents per split %s; pairs per split %s",
        summary["pairs"], summary["documents_per_split"], summary["pairs_per_split"],
    )  # fmt: skip
    return 0
