"""Argument helpers shared by the entry points."""

from __future__ import annotations

import argparse
import logging

from embshared.errors import UserError
from embshared.runtime import setup_logging

#: libraries whose start-up chatter (CPU feature probing, index building) would bury the results
NOISY_LOGGERS = ("faiss", "faiss.loader", "bm25s", "matplotlib")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--device, --skip-invalid, --quiet."""
    parser.add_argument("--device", default=None, help="torch device (default: CUDA when available, else CPU)")
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip lines that are not JSON objects or records without text, and report how many",
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings only, no progress bars")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice; 1 on a busy machine)"
    )


def start(args: argparse.Namespace) -> None:
    """Logging and CPU threads for a CLI run."""
    setup_logging(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    threads = getattr(args, "threads", None)
    positive(threads, "--threads")
    if threads:
        import torch

        torch.set_num_threads(threads)


def positive(value: int | None, flag: str) -> None:
    """A one-line error for a count that must be positive (``--topk 0``)."""
    if value is not None and value <= 0:
        raise UserError(f"{flag} must be a positive integer, got {value}")


def report_skipped(path: str, skipped: int) -> None:
    """Tell the user how many invalid lines --skip-invalid left out (on stderr, even with --quiet)."""
    if skipped:
        logging.getLogger("embedding_model").warning(
            "%s: %d line(s) skipped in total (not JSON objects, or records without text)", path, skipped
        )
