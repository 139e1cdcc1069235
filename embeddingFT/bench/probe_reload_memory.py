"""Does a hot reload leak? Alternating engines over the serve bench's two indexes, in one process.

    python embeddingFT/bench/probe_reload_memory.py   (after make bench-serve built bench/work/serve/)

Loads ``index-full``, then swaps to ``index-half`` / ``index-full`` six times keeping the model, as
``POST /admin/reload`` does in the soak, running 90 searches on each engine. After each swap it
prints whether the old engine was freed (a weakref) and the process's RSS after a heap trim.
Measured 2026-12-07 on AMD EPYC: every old engine freed, RSS 729 / 748 MB alternating, no growth.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from embedding_ft.serve import Engine
from embshared.bench import rss_mb
from embshared.runtime import release_free_memory

WORK = Path(__file__).resolve().parent / "work" / "serve"
QUERIES = ["vitamin d and bone fractures", "statins reduce cholesterol", "zebrafish regeneration"] * 30


def work(engine: Engine) -> None:
    for query in QUERIES:
        vector = engine.encoder.encode([query], normalize_embeddings=True)[0]
        engine.search(query, vector, 10, True)
        engine.count_tokens_inline([query])


def main() -> None:
    engine = Engine(WORK / "index-full")
    work(engine)
    gc.collect()
    release_free_memory()
    print("start: RSS", round(rss_mb(), 1), "MB")
    for i in range(6):
        old = weakref.ref(engine)
        engine = Engine(WORK / ("index-half" if i % 2 == 0 else "index-full"), encoder=engine.replicas)
        work(engine)
        gc.collect()
        release_free_memory()
        print(f"reload {i + 1}: old engine freed {old() is None}, RSS {rss_mb():.1f} MB", flush=True)


if __name__ == "__main__":
    main()
