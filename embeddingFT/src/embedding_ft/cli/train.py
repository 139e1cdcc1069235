"""Fine-tune an embedding model: ``python -m embedding_ft.cli.train --config CONFIG [key=value ...]``.

Every config key can be overridden as ``key=value`` (dotted for nested keys:
``mining.num_negatives=5``); ``--keys`` lists them all with their defaults.
"""

from __future__ import annotations

import argparse
import logging

from embedding_ft.config import TrainConfig
from embshared.cli import add_config_arguments, config_from_args, start_run
from embshared.config import config_help
from embshared.errors import cli_entry

DEFAULT_CONFIG = "embeddingFT/configs/default.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.train", description=__doc__.splitlines()[0])
    add_config_arguments(parser, TrainConfig)  # --config FILE, --<key> VALUE per key, trailing key=value
    parser.set_defaults(config=DEFAULT_CONFIG)
    parser.add_argument("--keys", action="store_true", help="list every config key with its type and default, and exit")
    parser.add_argument("--dry-run", action="store_true", help="resolve and print the config, then exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.keys:
        for key, kind, default in config_help(TrainConfig):
            print(f"{key:36s} {kind:28s} {default!r}")
        return 0
    cfg = config_from_args(TrainConfig, args)
    start_run(seed=cfg.seed)
    if args.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    if args.dry_run:
        import yaml

        from embshared.config import config_to_dict

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        return 0
    from embedding_ft.train import train

    result = train(cfg)
    report = result.run_dir / "metrics.md"
    if report.is_file():  # only the main process writes it
        print("\n" + report.read_text(encoding="utf-8"))
        print(f"model: {result.model_dir}  (loads with SentenceTransformer('{result.model_dir}'))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
