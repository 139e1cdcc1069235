"""What the tuning scripts (tune_init.py, tune_refine.py) share: STS-B train sentences, embedded,
and the seeded draw that keeps the tuning sentences apart from the ones bench_umap.py fits."""

from __future__ import annotations

import numpy as np

from embshared.bench import cached_embeddings
from embshared.models import DEFAULT_MODEL, load_sentence_transformer
from embshared.runtime import repo_root, shared_data_dir
from gapfill.corpus import sts_sentences
from gapfill.vec2text import sentence_embedder

CACHE = repo_root() / "gapfill" / "bench" / "cache"


def tuning_split(n_fit: int, n_tune: int, seed: int, tune_seed: int, sort: bool = False):
    """(all embeddings, indices bench_umap fits, indices to tune on) of the STS-B train sentences.

    The fitted indices are bench_umap.load_sentences' draw (``seed``); the tuning ones are drawn
    with ``tune_seed`` from the rest (sorted with ``sort``), so they are never fitted.
    """
    texts = sts_sentences(shared_data_dir() / "stsbenchmark", "train")
    embed = sentence_embedder(load_sentence_transformer(DEFAULT_MODEL))
    x_all = cached_embeddings(texts, embed, CACHE, DEFAULT_MODEL)
    rng = np.random.default_rng(seed)  # the same draw as bench_umap.load_sentences
    fit_idx = np.sort(rng.choice(len(x_all), min(n_fit, len(x_all)), replace=False))
    rest = np.setdiff1d(np.arange(len(x_all)), fit_idx)
    tune_idx = np.random.default_rng(tune_seed).choice(rest, min(n_tune, len(rest)), replace=False)
    return x_all, fit_idx, np.sort(tune_idx) if sort else tune_idx
