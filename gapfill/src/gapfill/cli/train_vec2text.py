"""Train the embedding -> text (vec2text) model on sentences and save it.

    python -m gapfill.cli train-vec2text --texts stsb:../shared/data/stsbenchmark --output gapfill/models/vec2text/m \\
        --threads 1 batch_size=16 trainable=projector+norms max_train_seconds=1800

Sentences come from text files (one a line), STS-B (``stsb:<folder>``, ``stsb-dev:<folder>``)
or SciFact titles (``scifact:<folder>``); every key of ``Vec2TextConfig`` is a flag
(``--batch_size 16``) and a ``key=value`` override, after ``--config``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from embshared.cli import add_config_arguments, config_from_args, start_run
from embshared.errors import cli_entry
from gapfill.config import Vec2TextConfig
from gapfill.corpus import read_texts, sample_texts, unique

logger = logging.getLogger("gapfill")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gapfill.cli train-vec2text", description=__doc__.splitlines()[0])
    parser.add_argument("--texts", nargs="+", required=True, help="text file, stsb:<folder> or scifact:<folder>")
    parser.add_argument("--output", required=True, help="folder to save the model in")
    parser.add_argument("--device", default=None, help="torch device (default: the best available)")
    parser.add_argument("--cache-dir", default="gapfill/bench/cache", help="embedding cache ('' for none)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_config_arguments(parser, Vec2TextConfig)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(Vec2TextConfig, args)
    start_run(threads=args.threads, seed=cfg.seed)
    from gapfill.vec2text import save, train_on_texts

    texts = sample_texts(unique(t for spec in args.texts for t in read_texts(spec)), cfg.max_examples, cfg.seed)
    logger.info("%d training texts", len(texts))
    model, log = train_on_texts(texts, cfg, device=args.device, cache_dir=args.cache_dir or None)
    out = Path(args.output)
    save(model, out, extra={"n_texts": len(texts), "sources": args.texts, "train_log": log})
    logger.info("saved %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
