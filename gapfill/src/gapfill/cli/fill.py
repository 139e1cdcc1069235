"""Text for every gap of a running service's map, one JSON line per gap (gap -> text -> landing).

python -m gapfill.cli fill --url http://127.0.0.1:8000 --output gapfill/outputs/gaps.jsonl
"""

from __future__ import annotations

import argparse
import logging

from embshared.cli import start_run
from embshared.errors import cli_entry

logger = logging.getLogger("gapfill")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gapfill.cli fill", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    parser.add_argument("--output", required=True, help="JSONL file to write (atomically)")
    parser.add_argument("--max-gaps", type=int, default=None, help="at most this many gaps (default: the service's)")
    parser.add_argument("--max-seconds", type=float, default=None, help="time budget per gap")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_run()
    from embshared.files import write_jsonl
    from gapfill.fill import fill_gaps, http_client

    get, post = http_client(args.url)
    extra = {"max_seconds": args.max_seconds} if args.max_seconds else {}
    n = write_jsonl(args.output, fill_gaps(get, post, args.max_gaps, extra))
    logger.info("wrote %d gaps to %s", n, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
