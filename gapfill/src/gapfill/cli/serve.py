"""Serve the gap-filling API and its map page (127.0.0.1:8000 by default).

    python -m gapfill.cli serve --config gapfill/configs/service.yaml --threads 1 port=8080 umap.n_epochs=50

Every key of ``ServiceConfig`` is a flag (``--port 8080``, ``--umap.n_epochs 50``) and a
``key=value`` override, after ``--config``.
"""

from __future__ import annotations

import argparse

from embshared.cli import add_config_arguments, config_from_args, start_run
from embshared.errors import cli_entry
from gapfill.config import ServiceConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gapfill.cli serve", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_config_arguments(parser, ServiceConfig)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(ServiceConfig, args)
    start_run(threads=args.threads, seed=cfg.seed)
    import uvicorn

    from gapfill.service import create_app

    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
