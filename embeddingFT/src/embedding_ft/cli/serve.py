"""Serve a model and its index over HTTP: OpenAI-compatible embeddings, search, a search page.

    python -m embedding_ft.cli.serve --index indexes/scifact [--model M] [--backend onnx] [--host 127.0.0.1] [--port 8080]
    EMBED_SERVE_API_KEY=secret python -m embedding_ft.cli.serve --index idx --host 0.0.0.0

Binds 127.0.0.1 unless told otherwise; any other address needs an API key (``--api-key`` or,
better, the ``EMBED_SERVE_API_KEY`` environment variable, which ``ps`` does not show), and then
every route except ``/health`` and ``/`` needs ``Authorization: Bearer <key>``. The index is
checked, then the model loaded, before the port is bound: a bad folder is one line and exit 2.
SIGHUP reloads the index (and its model if it changed) and swaps it in without dropping a
request; so does ``POST /admin/reload`` with the key. See :mod:`embedding_ft.serve`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from embshared.cli import start_run
from embshared.errors import UserError, cli_entry

KEY_ENV = "EMBED_SERVE_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    from embedding_ft.backends import BACKENDS

    parser = argparse.ArgumentParser(prog="python -m embedding_ft.cli.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path, help="the index folder (make index-embed)")
    parser.add_argument("--model", help="must be the index's model (checked; default: the index's)")
    parser.add_argument("--backend", choices=BACKENDS, help="must be the index's back end (checked)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (not loopback: needs an API key)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--api-key", default=os.environ.get(KEY_ENV) or None, help=f"Bearer token (default: ${KEY_ENV})"
    )
    parser.add_argument("--served-name", help="the model id clients send (default: the index's model)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per forward pass, fixed (default: all cores; with several workers, the "
        "cores shared among the workers busy at a batch's start, so a worker alone takes all)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="forward passes run at once, each on its own copy of the model (memory: one model per worker)",
    )
    limits = parser.add_argument_group("limits and batching")
    limits.add_argument("--max-texts", type=int, default=256, help="texts per request (more: 413)")
    limits.add_argument("--max-chars", type=int, default=32_768, help="characters per text (more: 413)")
    limits.add_argument("--batch-tokens", type=int, default=8192, help="padded tokens per forward pass")
    limits.add_argument("--batch-wait-ms", type=float, default=5.0, help="wait for more requests after the first")
    limits.add_argument("--queue-texts", type=int, default=1024, help="texts waiting at most (more: 429)")
    limits.add_argument("--timeout", type=float, default=60.0, help="seconds a request waits for the model (503)")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from embedding_ft.serve import Engine, ServeSettings, check_bind, create_app, install_sighup

    check_bind(args.host, args.api_key)  # before anything loads
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0-65535, got {args.port}")
    cores = os.cpu_count() or 1
    shared = args.threads is None and args.workers > 1  # the workers share the cores, per batch
    settings = ServeSettings(
        api_key=args.api_key,
        served_name=args.served_name,
        max_texts=args.max_texts,
        max_chars=args.max_chars,
        batch_tokens=args.batch_tokens,
        batch_wait_ms=args.batch_wait_ms,
        queue_texts=args.queue_texts,
        request_timeout_s=args.timeout,
        workers=args.workers,
        share_cores=cores if shared else None,
    )
    # the process's own setting; with shared cores each worker sets its own per batch
    start_run(threads=max(1, cores // args.workers) if shared else args.threads)
    source = {"index": str(args.index), "model": args.model, "backend": args.backend}
    # the engine is held by the app's state only: a local name here would keep the first engine (its
    # index, and its model after a model change) alive through every hot reload until the server stops
    app = create_app(
        Engine(args.index, args.model, args.backend, served_name=args.served_name, workers=args.workers),
        settings,
        source,
    )
    install_sighup(app.state.serve)
    import uvicorn

    name = app.state.serve.engine.name
    print(f"serving {name} and {args.index} on http://{args.host}:{args.port}/ (SIGHUP reloads)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
