"""Where does the server's memory go in the soak? The soak's load on a server run in this process.

    python embeddingFT/bench/probe_soak_memory.py [--seconds 300] [--reload-at 90 | --reload-at -1] [--trace]

(after ``make bench-serve`` built ``bench/work/serve/``). The server (the app ``make serve-embed``
runs, on ``index-full``, PyTorch) runs on a thread of this process; the soak's request mix
(``bench_serve.soak_part``: 7 embeddings, 1 hybrid search in 8, concurrency 16) comes from a
child process, so the client's allocations are not counted; ``POST /admin/reload`` to
``index-half`` at ``--reload-at`` seconds (-1: none). Every 15 s it prints RSS, its anonymous
part (``/proc/self/smaps_rollup``), the blocks Python's allocator holds, the live Python
objects and, with ``--trace``, the 8 source lines whose allocations grew most since the
first minute (tracemalloc: slows the server; sizes only).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import threading
import time
import tracemalloc
import weakref
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "serve"

DRIVER = """
import asyncio, json
from bench_serve import bench_texts, drive
_, _, queries, _ = bench_texts({model!r})
reqs = [("/search", {{"query": q, "top_k": 10, "hybrid": True}}) if i % 8 == 7
        else ("/v1/embeddings", {{"model": {model!r}, "input": q}}) for i, q in enumerate(queries)]
out = asyncio.run(drive({url!r}, reqs, 16, 10_000_000, {seconds}, {{"Authorization": "Bearer k"}}))
print(json.dumps(out))
"""


def smaps() -> dict:
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--reload-at", type=float, default=90)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--trim-every", type=float, default=2.0, help="the batcher's trim_every_s")
    args = parser.parse_args()
    import httpx
    import uvicorn
    from bench_serve import free_port

    from embedding_ft.serve import Engine, ServeSettings, create_app
    from embshared.cli import start_run

    start_run(threads=None, quiet=True)
    if args.trace:
        tracemalloc.start(1)
    app = create_app(
        Engine(WORK / "index-full"), ServeSettings(api_key="k", trim_every_s=args.trim_every)
    )  # no reference kept here
    state = app.state.serve
    model = state.engine.name
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    code = DRIVER.format(model=model, url=url, seconds=args.seconds)
    # run from this folder, so that `python -c` finds bench_serve.py
    client = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=HERE)
    start, base, old = time.monotonic(), None, None
    reloaded = args.reload_at < 0
    while client.poll() is None:
        time.sleep(1.0)
        t = time.monotonic() - start
        if not reloaded and t >= args.reload_at:
            old = weakref.ref(state.engine)
            reply = httpx.post(
                url + "/admin/reload",
                json={"index": str(WORK / "index-half")},
                headers={"Authorization": "Bearer k"},
                timeout=120,
            )
            print(f"{t:6.0f} s reload: {reply.status_code}", flush=True)
            reloaded = True
        if int(t) % 15 == 0:
            mem = smaps()
            line = (
                f"{t:6.0f} s RSS {mem['Rss']:7.1f} MB anon {mem['Anonymous']:7.1f} "
                f"py blocks {sys.getallocatedblocks():9d} objects {len(gc.get_objects()):8d}"
            )
            if old is not None:
                line += f" old engine alive {old() is not None}"
            if args.trace:
                snap = tracemalloc.take_snapshot()
                line += f" traced {sum(s.size for s in snap.statistics('filename')) / 2**20:6.1f} MB"
                if base is None and t >= 60:
                    base = snap
            print(line, flush=True)
            time.sleep(1.0)
    print("client:", client.stdout.read().strip()[:300])
    if args.trace and base is not None:
        for stat in tracemalloc.take_snapshot().compare_to(base, "lineno")[:8]:
            print(stat)
    gc.collect()
    print("after gc: old engine alive", old() is not None if old else None, "RSS", smaps()["Rss"], "MB")
    if old is not None and old() is not None:
        for holder in gc.get_referrers(old()):
            if holder is not globals() and not isinstance(holder, type(sys._getframe())):
                print("held by", type(holder).__name__, repr(holder)[:200])
                for up in gc.get_referrers(holder)[:6]:
                    print("   which is held by", type(up).__name__, repr(up)[:160])
    server.should_exit = True


if __name__ == "__main__":
    main()
