"""Benchmark: parametric UMAP vs umap-learn on STS-B sentences (MiniLM embeddings).

Measures, on the same data and the same fuzzy-graph settings:
- trustworthiness (k=10, cosine) of both layouts on the fitted sentences and on held-out
  STS-B dev sentences placed with each method's ``transform``;
- the round trips of the parametric model (embedding -> map -> embedding cosine,
  map -> embedding -> map distance);
- ``transform`` speed for 100k new points (dev embeddings tiled with small noise), against
  umap-learn's ``transform`` (its time is measured on 10k points and scaled linearly when
  ``umap_transform_points`` is smaller than 100k, which is said in the results).

Writes ``gapfill/bench/results/umap.{json,md}`` and saves the fitted parametric model to
``gapfill/models/parametric_umap/stsb-bench`` for the vec2text benchmark's gap points.

Usage: python gapfill/bench/bench_umap.py [n_fit=3000] [umap.n_epochs=40] [threads=1] ...
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embshared.config import load_config
from embshared.errors import cli_entry
from embshared.files import write_json, write_text
from embshared.models import DEFAULT_MODEL, load_sentence_transformer
from embshared.runtime import repo_root, seed_everything, setup_logging, shared_data_dir
from gapfill.config import UMAPConfig
from gapfill.corpus import cached_embeddings, sts_sentences
from gapfill.parametric_umap import ParametricUMAP
from gapfill.quality import round_trip, trustworthiness, umap_learn_layout
from gapfill.vec2text import sentence_embedder

logger = logging.getLogger("bench_umap")
HERE = Path(__file__).resolve().parent


@dataclass
class BenchConfig:
    n_fit: int = field(default=3000, metadata={"help": "STS-B train sentences the maps are fitted on"})
    n_heldout: int = field(default=1500, metadata={"help": "STS-B dev sentences placed with transform"})
    transform_points: int = field(default=100_000, metadata={"help": "points for the parametric transform timing"})
    umap_transform_points: int = field(default=10_000, metadata={"help": "points for umap-learn's transform timing"})
    threads: int = field(default=1, metadata={"help": "torch threads (1 is fastest on shared cores)"})
    output: str = field(default=str(HERE / "results"), metadata={"help": "results folder"})
    model_out: str = field(default=str(repo_root() / "gapfill" / "models" / "parametric_umap" / "stsb-bench"))
    umap: UMAPConfig = field(default_factory=UMAPConfig)


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1min_at_start": os.getloadavg()[0],
    }


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


@cli_entry
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = load_config(BenchConfig, None, argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.umap.seed)
    facts = machine()
    sts = shared_data_dir() / "stsbenchmark"
    train_texts = sts_sentences(sts, "train")
    dev_texts = [t for t in sts_sentences(sts, "dev") if t not in set(train_texts)]
    embed = sentence_embedder(load_sentence_transformer(DEFAULT_MODEL))
    cache = HERE / "cache"
    x_all = cached_embeddings(train_texts, embed, cache, DEFAULT_MODEL)
    x_dev_all = cached_embeddings(sts_sentences(sts, "dev"), embed, cache, DEFAULT_MODEL)
    dev_index = {t: i for i, t in enumerate(sts_sentences(sts, "dev"))}
    rng = np.random.default_rng(cfg.umap.seed)
    x = x_all[np.sort(rng.choice(len(x_all), min(cfg.n_fit, len(x_all)), replace=False))]
    dev_pick = rng.choice(len(dev_texts), min(cfg.n_heldout, len(dev_texts)), replace=False)
    x_dev = x_dev_all[[dev_index[dev_texts[i]] for i in dev_pick]]
    logger.info("fit on %d sentences, %d held out", len(x), len(x_dev))

    umap_cfg = dataclasses.replace(cfg.umap, validation_split=0.0)
    param, fit_param_s = timed(ParametricUMAP(umap_cfg).fit, x)
    reducer_layout, fit_ref_s = timed(
        umap_learn_layout, x, umap_cfg.n_neighbors, umap_cfg.min_dist, umap_cfg.spread, umap_cfg.metric, umap_cfg.seed
    )
    reducer, z_ref, _ = reducer_layout
    z_param = param.transform(x)

    res: dict = {"machine": facts, "config": dataclasses.asdict(cfg), "n_fit": len(x), "n_heldout": len(x_dev)}
    res["fit_seconds"] = {"parametric": fit_param_s, "umap_learn": fit_ref_s}
    res["trustworthiness_fit"] = {
        "parametric": trustworthiness(x, z_param),
        "umap_learn": trustworthiness(x, z_ref),
    }
    zd_param = param.transform(x_dev)
    zd_ref, _ref_dev_s = timed(reducer.transform, x_dev)
    res["trustworthiness_heldout"] = {
        "parametric": trustworthiness(x_dev, zd_param),
        "umap_learn": trustworthiness(x_dev, zd_ref),
    }
    res["round_trip_fit"] = round_trip(param, x)
    res["round_trip_heldout"] = round_trip(param, x_dev)

    # transform speed: parametric on transform_points, umap-learn on umap_transform_points
    noise = np.random.default_rng(1)
    reps = int(np.ceil(cfg.transform_points / len(x_dev_all)))
    big = np.tile(x_dev_all, (reps, 1))[: cfg.transform_points]
    big = big + 0.01 * noise.standard_normal(big.shape).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    param.transform(big[:1000])  # warm-up
    _, t_param = timed(param.transform, big)
    n_ref = min(cfg.umap_transform_points, len(big))
    _, t_ref = timed(reducer.transform, big[:n_ref])
    t_ref_scaled = t_ref * len(big) / n_ref
    res["transform"] = {
        "points": len(big),
        "parametric_seconds": t_param,
        "umap_learn_points_measured": n_ref,
        "umap_learn_seconds_measured": t_ref,
        "umap_learn_seconds_for_all_points": t_ref_scaled,
        "umap_learn_scaled_linearly": n_ref < len(big),
        "speedup": t_ref_scaled / t_param,
    }
    res["goals"] = {
        "trustworthiness_within_0.02": res["trustworthiness_fit"]["umap_learn"]
        - res["trustworthiness_fit"]["parametric"]
        <= 0.02,
        "transform_20x_faster": res["transform"]["speedup"] >= 20,
    }
    param.save(cfg.model_out)
    out = Path(cfg.output)
    plot_layouts(z_param, z_ref, res, out / "umap.png")
    write_json(out / "umap.json", res)
    write_text(out / "umap.md", markdown(res))
    print(markdown(res))
    return 0


def plot_layouts(z_param: np.ndarray, z_ref: np.ndarray, res: dict, path: Path) -> None:
    """Both layouts side by side, points coloured by umap-learn's first coordinate (same colours in both)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colour = z_ref[:, 0]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, z, name, key in (
        (axes[0], z_param, "parametric (ours)", "parametric"),
        (axes[1], z_ref, "umap-learn", "umap_learn"),
    ):
        ax.scatter(z[:, 0], z[:, 1], c=colour, s=3, cmap="viridis")
        ax.set_title(f"{name}: trustworthiness {res['trustworthiness_fit'][key]:.3f}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{res['n_fit']} STS-B sentences (colour: umap-learn's x coordinate)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def markdown(r: dict) -> str:
    tf, th, rt, rh, tr = (
        r["trustworthiness_fit"],
        r["trustworthiness_heldout"],
        r["round_trip_fit"],
        r["round_trip_heldout"],
        r["transform"],
    )
    m = r["machine"]
    lines = [
        "# Parametric UMAP vs umap-learn (STS-B sentences, all-MiniLM-L6-v2)",
        "",
        f"Fitted on {r['n_fit']} STS-B train sentences; {r['n_heldout']} STS-B dev sentences (not in train) placed "
        f"with each method's `transform`. Same graph settings (n_neighbors={r['config']['umap']['n_neighbors']}, "
        f"min_dist={r['config']['umap']['min_dist']}, metric={r['config']['umap']['metric']}); parametric: "
        f"{r['config']['umap']['n_epochs']} epochs, hidden layers {r['config']['umap']['hidden_layers']}, batch "
        f"{r['config']['umap']['batch_size']} edges, {r['config']['umap']['negative_sample_rate']} {r['config']['umap'].get('negative_sampling', 'batch')} "
        f"negatives per edge, init {r['config']['umap'].get('init', 'random')}, reconstruction weight "
        f"{r['config']['umap']['reconstruction_weight']} ({'shaping the map' if r['config']['umap'].get('decoder_shapes_map', True) else 'decoder only'}), "
        f"{r['config']['umap'].get('decoder_epochs', 0)} decoder-only epochs after.",
        "",
        f"Machine: {m['cpu_count']} CPU cores **shared with other jobs** (1-min load average {m['load_average_1min_at_start']:.1f} "
        f"at start), torch {m['torch']} with {m['torch_threads']} thread(s). Times are wall-clock.",
        "",
        "| metric | parametric (ours) | umap-learn |",
        "| --- | --- | --- |",
        f"| trustworthiness (k=10), fitted points | {tf['parametric']:.4f} | {tf['umap_learn']:.4f} |",
        f"| trustworthiness (k=10), held-out points | {th['parametric']:.4f} | {th['umap_learn']:.4f} |",
        f"| fit seconds | {r['fit_seconds']['parametric']:.1f} | {r['fit_seconds']['umap_learn']:.1f} |",
        f"| transform {tr['points']:,} points, seconds | {tr['parametric_seconds']:.2f} | {tr['umap_learn_seconds_for_all_points']:.1f}"
        + (
            f" (measured {tr['umap_learn_seconds_measured']:.1f} s on {tr['umap_learn_points_measured']:,}, scaled linearly)"
            if tr["umap_learn_scaled_linearly"]
            else ""
        )
        + " |",
        "",
        f"Transform speed-up: **{tr['speedup']:.0f}×** (goal ≥ 20×: {'met' if r['goals']['transform_20x_faster'] else 'not met'}). "
        f"Trustworthiness gap on fitted points: {tf['umap_learn'] - tf['parametric']:+.4f} (goal ≤ 0.02: "
        f"{'met' if r['goals']['trustworthiness_within_0.02'] else 'not met'}).",
        "",
        "Round trips of the parametric model (decoder trained jointly):",
        "",
        "| | fitted points | held-out points |",
        "| --- | --- | --- |",
        f"| embedding → map → embedding, mean cosine | {rt['embedding_round_trip_cosine_mean']:.4f} | {rh['embedding_round_trip_cosine_mean']:.4f} |",
        f"| embedding → map → embedding, 10th percentile cosine | {rt['embedding_round_trip_cosine_p10']:.4f} | {rh['embedding_round_trip_cosine_p10']:.4f} |",
        f"| reference: mean embedding of the 10 nearest map neighbours, cosine | {rt['knn_decoder_cosine_mean']:.4f} | {rh['knn_decoder_cosine_mean']:.4f} |",
        f"| map → embedding → map, mean distance / document spacing | {rt['map_round_trip_distance_over_spacing']:.3f} | {rh['map_round_trip_distance_over_spacing']:.3f} |",
        f"| random map points → embedding → map, distance / spacing | {rt['map_round_trip_random_points_over_spacing']:.3f} | {rh['map_round_trip_random_points_over_spacing']:.3f} |",
        "",
        "Layouts side by side: `umap.png`.",
        "",
        "Command: `make bench-gapfill` (or `python gapfill/bench/bench_umap.py key=value ...`); raw numbers in `umap.json`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
