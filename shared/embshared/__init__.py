"""embshared: the one small library every subproject of the workspace builds on.

Modules:
    errors   -- UserError and the CLI wrapper that prints it as one line.
    io       -- JSONL / JSON / CSV / TSV readers, pair formats, BEIR folders.
    config   -- dataclass configs from YAML/JSON plus ``key=value`` overrides.
    metrics  -- pure retrieval metrics over (ranked ids, relevance dict).
    evaluate -- rank a corpus with any scoring function and compute all metrics.
    search   -- BM25 (bm25s) and FAISS indexes with save/load.
    fusion   -- the one hybrid fusion (convex z-score, RRF); fusion_choice -- the fusion chosen on dev.
    heads    -- the projection head over a frozen base (ragcun, embeddingFT's adapter); isotropy -- SIGReg.
    models   -- offline base-model resolution and the SmolLM2 loader.
    files    -- atomic writes of files and folders.
    runtime  -- seeding, devices, logging.

Heavy dependencies (torch, sentence-transformers, faiss) are imported lazily, so that
``import embshared`` stays cheap.
"""

__version__ = "0.1.0"
