"""Where the corpus encoder's RSS grows: the short tail of the 50k collection, by variant, one variant per process.

    python embeddingFT/bench/probe_encoder_memory.py VARIANT [TEXTS]
        VARIANT: base | cap8 | pad8 | all | cap8trim; TEXTS: the shortest N texts (16000)

Needs ``make bench-scale`` to have made ``bench/work/scale/collection-50000.jsonl`` and the OpenVINO
int8 export in ``bench/work/scale/exports/``. Encodes the shortest texts as the corpus encoder does
(longest first, shards of 2048, a token budget of 16,384) with ``cap8``: OpenVINO's
``CPU_RUNTIME_CACHE_CAPACITY`` at 8; ``pad8``: lengths padded to a multiple of 8; ``all``: both and
``malloc_trim`` after each shard; ``cap8trim``: no padding. Prints one JSON line: RSS at the start,
after each shard and at the end, the distinct input shapes and the seconds. Measured 2026-12-07
on AMD EPYC (16k texts): RSS growth after the first shard 0.40 / 0.25 / 0.12 / 0.07 / 0.27 GB,
shapes 120 / 120 / 30 / 30 / 120, seconds 175 / 178 / 168 / 168 / 160.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from embedding_ft import backends
from embedding_ft.corpus_encoder import _budget_batches
from embshared.bench import rss_mb
from embshared.runtime import release_free_memory

WORK = Path(__file__).resolve().parent / "work" / "scale"
FILE = "openvino/openvino_model_qint8_quantized.xml"


def status(field: str) -> float:
    """This process's ``field`` (VmRSS, VmHWM) in GiB."""
    return rss_mb("self", field) / 1024


def main(variant: str, n_tail: int = 16000) -> None:
    if variant not in ("base", "cap8", "pad8", "all", "cap8trim"):
        raise SystemExit(f"unknown variant {variant!r}")
    folder = next(p.parents[1] for p in sorted((WORK / "exports").glob(f"*/{FILE}")))
    texts = [json.loads(line)["text"] for line in (WORK / "collection-50000.jsonl").read_text().splitlines()]
    if variant in ("cap8", "all", "cap8trim"):
        import openvino as ov

        compile_model = ov.Core.compile_model

        def capped(self, path, device, config):
            return compile_model(self, path, device, {**config, "CPU_RUNTIME_CACHE_CAPACITY": "8"})

        ov.Core.compile_model = capped
    encoder = backends.ExportedEncoder(folder, "openvino", FILE)
    pad = 8 if variant in ("pad8", "all") else None
    ids = encoder.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    del ids
    order = np.argsort(-lengths, kind="stable")[-n_tail:]
    batch_lengths = -(-lengths // pad) * pad if pad else lengths
    encoder.encode(["warm up"] * 4)
    start_rss, started, shapes, trace = status("VmRSS"), time.time(), set(), []
    for s in range(0, len(order), 2048):
        rows = order[s : s + 2048]
        for lo, hi in _budget_batches(batch_lengths[rows], 16384):
            batch = [texts[i] for i in rows[lo:hi]]
            shapes.add((len(batch), int(batch_lengths[rows[lo]])))
            encoder.encode(batch, batch_size=len(batch), normalize_embeddings=True, pad_to_multiple_of=pad)
        if variant in ("all", "cap8trim"):
            release_free_memory()
        trace.append(round(status("VmRSS"), 3))
    print(json.dumps({
        "variant": variant, "start_rss_gb": round(start_rss, 3), "end_rss_gb": trace[-1],
        "growth_after_first_shard_gb": round(trace[-1] - trace[0], 3), "peak_gb": round(status("VmHWM"), 3),
        "shapes": len(shapes), "seconds": round(time.time() - started, 1), "rss_after_each_shard_gb": trace,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
