"""Command-line entry points: ``python -m gapfill.cli train-vec2text ...``, ``serve`` and ``fill``.

``train-vec2text`` trains the embedding -> text model on sentences from a text file (one per
line), STS-B (``stsb:<folder>``) or SciFact titles (``scifact:<folder>``) and saves it under
``--output``; ``serve`` runs the HTTP service. Both take ``--config`` (YAML/JSON) and
``key=value`` overrides. ``fill`` asks a running service for text for every gap of its map
and writes one JSON line per gap (gap -> text -> landing).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from embshared.bench import cached_embeddings
from embshared.config import load_config
from embshared.errors import UserError, cli_entry
from embshared.runtime import pick_device, seed_everything, setup_logging
from gapfill.config import ServiceConfig, Vec2TextConfig
from gapfill.corpus import scifact_titles, sts_sentences, unique

logger = logging.getLogger("gapfill")

SOURCES = {
    "stsb": lambda folder: sts_sentences(folder, "train"),
    "stsb-dev": lambda folder: sts_sentences(folder, "dev"),
    "scifact": scifact_titles,
}


def set_threads(threads: int | None) -> None:
    """Limit torch's CPU threads (1 is much faster than 2 when the cores are shared with other jobs)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def read_texts(spec: str) -> list[str]:
    """Sentences from ``stsb:<folder>``, ``stsb-dev:<folder>``, ``scifact:<folder>`` or a text file."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in SOURCES:
        return SOURCES[kind](rest)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{spec}: no such file (or use stsb:<folder>, scifact:<folder>)")
    return unique(line.strip() for line in path.read_text(encoding="utf-8").splitlines())


def train_vec2text_main(args: argparse.Namespace) -> int:
    from embshared.models import load_sentence_transformer, load_smollm2
    from gapfill import vec2text as v2t

    cfg = load_config(Vec2TextConfig, args.config, args.overrides)
    seed_everything(cfg.seed)
    set_threads(args.threads)
    texts = []
    for spec in args.texts:
        texts.extend(read_texts(spec))
    texts = unique(texts)
    if cfg.max_examples:
        rng = np.random.default_rng(cfg.seed)
        texts = [texts[i] for i in sorted(rng.choice(len(texts), min(cfg.max_examples, len(texts)), replace=False))]
    logger.info("%d training texts", len(texts))
    device = pick_device(args.device)
    embedder = load_sentence_transformer(cfg.embedder, device=device)
    embed = v2t.sentence_embedder(embedder)
    start = time.perf_counter()
    emb = cached_embeddings(texts, embed, args.cache_dir or None, cfg.embedder)
    logger.info("embedded in %.0f s", time.perf_counter() - start)
    lm, tokenizer = load_smollm2(device=device)
    model = v2t.Vec2Text.build(lm, tokenizer, emb.shape[1], cfg).to(device)
    examples = v2t.make_examples(model, texts, emb, embed, cfg.correction_fraction, cfg.seed)
    n_val = min(64, len(examples) // 10)
    log = v2t.train(model, examples[n_val:], val_examples=examples[:n_val])
    out = Path(args.output)
    v2t.save(model, out, extra={"n_texts": len(texts), "sources": args.texts, "train_log": log})
    logger.info("saved %s", out)
    return 0


def serve_main(args: argparse.Namespace) -> int:
    import uvicorn

    from gapfill.service import create_app

    cfg = load_config(ServiceConfig, args.config, args.overrides)
    seed_everything(cfg.seed)
    set_threads(args.threads)
    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level="info")
    return 0


def fill_main(args: argparse.Namespace) -> int:
    from embshared.files import write_jsonl
    from gapfill.fill import fill_gaps, http_client

    get, post = http_client(args.url)
    extra = {"max_seconds": args.max_seconds} if args.max_seconds else {}
    n = write_jsonl(args.output, fill_gaps(get, post, args.max_gaps, extra))
    logger.info("wrote %d gaps to %s", n, args.output)
    return 0


COMMANDS = {"train-vec2text": train_vec2text_main, "serve": serve_main, "fill": fill_main}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gapfill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train-vec2text", help="train the embedding -> text model")
    train.add_argument("--texts", nargs="+", required=True, help="text file, stsb:<folder> or scifact:<folder>")
    train.add_argument("--output", required=True, help="folder to save the model in")
    train.add_argument("--device", default=None)
    train.add_argument("--cache-dir", default="gapfill/bench/cache", help="embedding cache ('' for none)")
    serve = sub.add_parser("serve", help="run the HTTP service (127.0.0.1:8000 by default)")
    fill = sub.add_parser("fill", help="text for every gap of a running service's map, as JSONL")
    fill.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    fill.add_argument("--output", required=True, help="JSONL file to write (atomically)")
    fill.add_argument("--max-gaps", type=int, default=None, help="at most this many gaps (default: the service's)")
    fill.add_argument("--max-seconds", type=float, default=None, help="time budget per gap")
    for p in (train, serve):
        p.add_argument("--config", default=None, help="YAML/JSON config file")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
        p.add_argument("overrides", nargs="*", help="key=value config overrides")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
