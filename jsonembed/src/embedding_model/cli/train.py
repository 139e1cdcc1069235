"""Train a record embedder from scratch on a JSONL file.

    python -m embedding_model.cli.train your_data.jsonl --output my_model.pt \
        [--epochs 15 --batch-size 64 --config config/default.yaml] [key=value ...]

Every config key is also a flag (``--char_dim 48``) and a ``key=value`` override; the guide's
``--batch-size`` and ``--max-chars`` are kept. Writes the model file and, beside it,
``<name>.config.yaml`` (the resolved config), ``<name>.train.json`` (loss history, held-out
self-retrieval per epoch, speed) and ``<name>.loss.png``.

With ``teacher:`` set (the default: the packaged all-MiniLM-L6-v2) the teacher's vectors of
the records and their views are cached in ``.jsonembed_cache/teacher/`` beside the data (or
``--cache-dir``; ``--no-cache`` embeds them again and keeps nothing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embedding_model.cli.common import add_common_args, report_skipped, start
from embedding_model.config import DEFAULT_CONFIG, JsonEmbedConfig, resolve_config_path
from embedding_model.records import load_records
from embedding_model.teacher import Teacher, TeacherTargetCache
from embedding_model.train_outputs import training_summary, write_training_outputs
from embedding_model.training import train
from embshared.cli import add_config_arguments, config_from_args
from embshared.errors import UserError, cli_entry
from embshared.models import ModelNotAvailable
from embshared.runtime import pick_device

#: the guide's spellings of config keys (``--batch-size`` is ``--batch_size``)
GUIDE_FLAGS = {"--batch-size": "batch_size", "--max-chars": "max_chars"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embedding_model.cli.train",
        description="Train a character-level JSON record embedder from scratch (contrastive, no labels).",
        epilog=f"Without --config, {DEFAULT_CONFIG} is read from the current folder or jsonembed/ if there. "
        "Precedence: defaults < --config file < --<key> flags < key=value.",
    )
    parser.add_argument("data", help="training records: JSONL (one JSON object per line), JSON array or CSV")
    parser.add_argument("--output", "-o", required=True, help="model file to write, e.g. my_model.pt")
    add_config_arguments(parser, JsonEmbedConfig)  # --config FILE, --<key> per config key, trailing key=value
    for flag, key in GUIDE_FLAGS.items():
        parser.add_argument(flag, dest=key, default=argparse.SUPPRESS, metavar="INT", help=f"same as --{key}")
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="folder for the teacher's cached vectors (default: .jsonembed_cache/teacher beside the data)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="embed the teacher's vectors again; read and write no cache"
    )
    add_common_args(parser, device=False)  # --device is the config key's flag
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    # --device picks this run's device without writing it into the model's config (device=... does that)
    device = vars(args).pop("device", None)
    args.config = resolve_config_path(args.config)
    cfg: JsonEmbedConfig = config_from_args(JsonEmbedConfig, args)
    output = Path(args.output)
    if output.is_dir():
        raise UserError(f"{output}: is a folder; --output names the model file to write (e.g. my_model.pt)")
    start(args, seed=cfg.seed)

    records = load_records(args.data, cfg.ignore_fields, skip_invalid=args.skip_invalid, max_chars=cfg.max_chars)
    report_skipped(records.path, records.skipped)
    if len(records) < 2:
        raise UserError(f"{records.path}: training needs at least 2 records with text, found {len(records)}")

    device = pick_device(device or cfg.device or None)
    teacher = cache = None
    if cfg.teacher is not None:
        teacher = Teacher(cfg.teacher, device)
        try:
            teacher.path  # noqa: B018 - resolve now: a missing teacher is one line before any work
        except ModelNotAvailable as exc:
            raise UserError(f"key 'teacher': {exc} (teacher=null trains without a teacher)") from None
        cache = None if args.no_cache else TeacherTargetCache.beside(records.path, args.cache_dir)

    embedder, result = train(
        cfg, records.segments, device=device, show_progress=not args.quiet, teacher_cache=cache, teacher=teacher
    )

    info = write_training_outputs(output, embedder, cfg, result, records, args.data)
    print(training_summary(output, info, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
