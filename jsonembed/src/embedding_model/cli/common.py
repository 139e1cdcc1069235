"""Flags and the run start shared by the jsonembed commands (on top of :mod:`embshared.cli`).

Every command takes ``--skip-invalid``, ``--quiet``, ``--threads`` and (except ``train``, where
``--device`` is the config key's flag) ``--device``; :func:`start` starts the run.
"""

from __future__ import annotations

import argparse
import logging

from embshared.cli import start_run
from embshared.errors import UserError


def add_common_args(parser: argparse.ArgumentParser, device: bool = True) -> None:
    """--device (unless ``device`` is False), --skip-invalid, --quiet, --threads."""
    if device:
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


def start(args: argparse.Namespace, seed: int | None = None) -> None:
    """:func:`embshared.cli.start_run` with the command's --quiet and --threads (a positive count), and ``seed``."""
    positive(args.threads, "--threads")
    start_run(threads=args.threads, seed=seed, quiet=args.quiet)


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
