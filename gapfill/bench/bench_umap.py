"""Benchmark: the parametric map against umap-learn on STS-B sentences (MiniLM embeddings), same run.

The parametric map's default route lets umap-learn optimise the layout, regresses the encoder
onto it, fine-tunes the encoder for a few epochs with UMAP's loss on umap-learn's own graph and
trains the decoder on the final map. Measured on the same sentences in the same process:

- wall time of the whole parametric fit against umap-learn's ``fit`` (umap-learn is fitted
  twice, before and after ours, and the mean is the reference; numba is compiled by a small
  warm-up fit first, so neither side pays it);
- trustworthiness (k=10, cosine) on the fitted sentences and on held-out STS-B dev sentences
  placed with each method's ``transform``, after each stage of our fit (what each part buys);
- round trips of the decoder; ``transform`` speed on 100k points against umap-learn's.

Writes ``umap.{json,md}`` (and ``umap.png``) into ``output`` and saves the map and its
sentences to ``model_out`` for the gap benchmark.

Usage: python gapfill/bench/bench_umap.py [n_fit=3000] [umap.n_epochs=3] [threads=2] ...
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embshared.bench import cached_embeddings, machine_facts, write_results
from embshared.config import load_config
from embshared.errors import cli_entry
from embshared.models import DEFAULT_MODEL, load_sentence_transformer
from embshared.runtime import repo_root, seed_everything, setup_logging, shared_data_dir
from gapfill.config import UMAPConfig
from gapfill.corpus import sts_sentences
from gapfill.parametric_umap import ParametricUMAP
from gapfill.quality import round_trip, trustworthiness, umap_learn_layout
from gapfill.vec2text import sentence_embedder

logger = logging.getLogger("bench_umap")
HERE = Path(__file__).resolve().parent
DOCUMENTS_FILE = "documents.json"


@dataclass
class BenchConfig:
    n_fit: int = field(default=3000, metadata={"help": "STS-B train sentences the maps are fitted on"})
    n_heldout: int = field(default=1500, metadata={"help": "STS-B dev sentences placed with transform"})
    transform_points: int = field(default=100_000, metadata={"help": "points for the parametric transform timing"})
    umap_transform_points: int = field(default=10_000, metadata={"help": "points for umap-learn's transform timing"})
    threads: int = field(default=2, metadata={"help": "torch threads"})
    output: str = field(default=str(HERE / "results" / "interactive"), metadata={"help": "results folder"})
    model_out: str = field(default=str(repo_root() / "gapfill" / "models" / "parametric_umap" / "stsb-bench"))
    umap: UMAPConfig = field(default_factory=lambda: UMAPConfig(validation_split=0.0))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def load_sentences(cfg: BenchConfig):
    """The fitted sentences (a seeded sample of STS-B train) and held-out dev sentences not in train."""
    sts = shared_data_dir() / "stsbenchmark"
    train_texts = sts_sentences(sts, "train")
    dev_all = sts_sentences(sts, "dev")
    train_set = set(train_texts)
    dev_texts = [t for t in dev_all if t not in train_set]
    embed = sentence_embedder(load_sentence_transformer(DEFAULT_MODEL))
    cache = HERE / "cache"
    x_all = cached_embeddings(train_texts, embed, cache, DEFAULT_MODEL)
    x_dev_all = cached_embeddings(dev_all, embed, cache, DEFAULT_MODEL)
    dev_index = {t: i for i, t in enumerate(dev_all)}
    rng = np.random.default_rng(cfg.umap.seed)
    fit_idx = np.sort(rng.choice(len(x_all), min(cfg.n_fit, len(x_all)), replace=False))
    dev_pick = rng.choice(len(dev_texts), min(cfg.n_heldout, len(dev_texts)), replace=False)
    x_dev = x_dev_all[[dev_index[dev_texts[i]] for i in dev_pick]]
    return [train_texts[i] for i in fit_idx], x_all[fit_idx], x_dev, x_dev_all


@cli_entry
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = load_config(BenchConfig, None, argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.umap.seed)
    facts = machine_facts()
    texts, x, x_dev, x_dev_all = load_sentences(cfg)
    u = cfg.umap
    logger.info("fit on %d sentences, %d held out", len(x), len(x_dev))

    # numba compiles umap-learn's functions on first use (cached on disk after): a small fit pays it
    _, warmup_s = timed(umap_learn_layout, x[:300], u.n_neighbors, u.min_dist, u.spread, u.metric, u.seed)
    ref_args = (x, u.n_neighbors, u.min_dist, u.spread, u.metric, u.seed)
    (reducer, z_ref, _), ref_before_s = timed(umap_learn_layout, *ref_args)

    stages: dict[str, dict] = {}

    def measure(stage: str, model: ParametricUMAP) -> None:
        if stage in ("regression", "umap"):
            stages[stage] = {
                "trustworthiness_fit": trustworthiness(x, model.transform(x)),
                "trustworthiness_heldout": trustworthiness(x_dev, model.transform(x_dev)),
            }
            logger.info("after %s: %s", stage, stages[stage])

    param = ParametricUMAP(u)
    param.fit(x, stage_hook=measure)
    fit_s = sum(param.fit_seconds.values())  # the stages' own time, the hook's measurements excluded
    _, ref_after_s = timed(umap_learn_layout, *ref_args)
    ref_s = (ref_before_s + ref_after_s) / 2
    z_param = param.transform(x)

    res: dict = {"config": dataclasses.asdict(cfg), "n_fit": len(x), "n_heldout": len(x_dev)}
    res["fit_seconds"] = {
        "parametric": fit_s,
        "parametric_stages": param.fit_seconds,
        "umap_learn": ref_s,
        "umap_learn_runs": [ref_before_s, ref_after_s],
        "umap_learn_warmup_300_points": warmup_s,
        "ratio": fit_s / ref_s,
    }
    res["stages"] = stages
    res["trustworthiness_fit"] = {"parametric": trustworthiness(x, z_param), "umap_learn": trustworthiness(x, z_ref)}
    zd_ref = reducer.transform(x_dev)
    res["trustworthiness_heldout"] = {
        "parametric": trustworthiness(x_dev, param.transform(x_dev)),
        "umap_learn": trustworthiness(x_dev, zd_ref),
        # both ways whatever the config says: the encoder alone, and refined against the fitted points
        "parametric_encoder_only": trustworthiness(x_dev, param.transform(x_dev, refine=False)),
        "parametric_refined": trustworthiness(x_dev, param.transform(x_dev, refine=True)),
    }
    res["transform_refine_epochs"] = u.transform_refine_epochs
    res["round_trip_fit"] = round_trip(param, x)
    res["round_trip_heldout"] = round_trip(param, x_dev)

    # transform speed: parametric on transform_points, umap-learn on umap_transform_points (scaled)
    noise = np.random.default_rng(1)
    reps = int(np.ceil(cfg.transform_points / len(x_dev_all)))
    big = np.tile(x_dev_all, (reps, 1))[: cfg.transform_points]
    big = big + 0.01 * noise.standard_normal(big.shape).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    param.transform(big[:1000])  # warm-up
    _, t_param = timed(param.transform, big)
    _, t_encoder = timed(param.transform, big, refine=False)
    _, t_refined = timed(param.transform, big, refine=True)
    n_ref = min(cfg.umap_transform_points, len(big))
    _, t_ref = timed(reducer.transform, big[:n_ref])
    t_ref_scaled = t_ref * len(big) / n_ref
    res["transform"] = {
        "points": len(big),
        "parametric_seconds": t_param,
        "parametric_encoder_only_seconds": t_encoder,
        "parametric_refined_seconds": t_refined,
        "umap_learn_points_measured": n_ref,
        "umap_learn_seconds_measured": t_ref,
        "umap_learn_seconds_for_all_points": t_ref_scaled,
        "umap_learn_scaled_linearly": n_ref < len(big),
        "speedup": t_ref_scaled / t_param,
    }
    tf, th = res["trustworthiness_fit"], res["trustworthiness_heldout"]
    res["goals"] = {
        "fit_within_2x_umap_learn": fit_s <= 2 * ref_s,
        "trustworthiness_fit_within_0.01": tf["parametric"] >= tf["umap_learn"] - 0.01,
        "trustworthiness_heldout_within_0.02": th["parametric"] >= th["umap_learn"] - 0.02,
        "transform_20x_faster": res["transform"]["speedup"] >= 20,
    }
    param.save(cfg.model_out)
    (Path(cfg.model_out) / DOCUMENTS_FILE).write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    out = Path(cfg.output)
    plot_layouts(z_param, z_ref, res, out / "umap.png")
    write_results(out, "umap", res, markdown(res), facts=facts)
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
    tf, th, rt, rh, tr, fs = (
        r["trustworthiness_fit"],
        r["trustworthiness_heldout"],
        r["round_trip_fit"],
        r["round_trip_heldout"],
        r["transform"],
        r["fit_seconds"],
    )
    u, g, st = r["config"]["umap"], r["goals"], r["stages"]
    ok = {True: "met", False: "not met"}
    stage_s = fs["parametric_stages"]
    lines = [
        "# Parametric map vs umap-learn (STS-B sentences, all-MiniLM-L6-v2)",
        "",
        f"Fitted on {r['n_fit']} STS-B train sentences; {r['n_heldout']} STS-B dev sentences (not in train) placed "
        f"with each method's `transform`. Same settings (n_neighbors={u['n_neighbors']}, min_dist={u['min_dist']}, "
        f"metric={u['metric']}, seed {u['seed']}). Parametric route: umap-learn's layout (on its own graph) → encoder "
        f"regressed on it ({u['init_epochs']} epochs, hidden {u['hidden_layers']}, noise {u['regression_noise']:g}) → "
        f"{u['n_epochs']} epochs of UMAP's loss on the same graph (lr {u['learning_rate']:g}) → decoder "
        f"({u['decoder_epochs']} epochs on the final map).",
        "",
        "| | parametric (ours) | umap-learn | goal |",
        "| --- | --- | --- | --- |",
        f"| fit, seconds | {fs['parametric']:.1f} ({fs['ratio']:.2f}×) | {fs['umap_learn']:.1f} (runs "
        f"{fs['umap_learn_runs'][0]:.1f}, {fs['umap_learn_runs'][1]:.1f}) | ≤ 2×: {ok[g['fit_within_2x_umap_learn']]} |",
        f"| trustworthiness (k=10), fitted points | {tf['parametric']:.4f} | {tf['umap_learn']:.4f} | ≥ umap-learn − 0.01: "
        f"{ok[g['trustworthiness_fit_within_0.01']]} |",
        f"| trustworthiness (k=10), held-out points | {th['parametric']:.4f} | {th['umap_learn']:.4f} | ≥ umap-learn − "
        f"0.02: {ok[g['trustworthiness_heldout_within_0.02']]} |",
        f"| transform {tr['points']:,} points, seconds | {tr['parametric_seconds']:.2f} | "
        f"{tr['umap_learn_seconds_for_all_points']:.1f}"
        + (
            f" (measured {tr['umap_learn_seconds_measured']:.1f} s on {tr['umap_learn_points_measured']:,}, scaled)"
            if tr["umap_learn_scaled_linearly"]
            else ""
        )
        + f" | ≥ 20× faster: {tr['speedup']:.0f}×, {ok[g['transform_20x_faster']]} |",
        "",
        f"`transform` here: the encoder{' refined for ' + str(r['transform_refine_epochs']) + ' epochs against the fitted points' if r['transform_refine_epochs'] else ' alone'}. Both ways on the held-out points: "
        f"encoder alone {th['parametric_encoder_only']:.4f} ({tr['parametric_encoder_only_seconds']:.2f} s for "
        f"{tr['points']:,} points), refined as umap-learn's transform does {th['parametric_refined']:.4f} "
        f"({tr['parametric_refined_seconds']:.1f} s; {tr['umap_learn_seconds_for_all_points'] / tr['parametric_refined_seconds']:.0f}× faster than umap-learn's).",
        "",
        "What each stage of the parametric fit costs and buys:",
        "",
        "| stage | seconds | trustworthiness, fitted | trustworthiness, held-out |",
        "| --- | --- | --- | --- |",
        f"| umap-learn's layout (the encoder's target; umap-learn's own `transform` for held-out) | "
        f"{stage_s.get('layout', 0):.1f} | {tf['umap_learn']:.4f} | {th['umap_learn']:.4f} |",
    ]
    for name, label in (("regression", "encoder regressed on the layout"), ("umap", "+ fine-tune with UMAP's loss")):
        if name in st:
            lines.append(
                f"| {label} | {stage_s.get(name, 0):.1f} | {st[name]['trustworthiness_fit']:.4f} | "
                f"{st[name]['trustworthiness_heldout']:.4f} |"
            )
    lines += [
        f"| decoder (map → embedding) | {stage_s.get('decoder', 0):.1f} | | |",
        "",
        f"numba warm-up (umap-learn on 300 points, before any timing): {fs['umap_learn_warmup_300_points']:.1f} s.",
        "",
        "Round trips of the decoder:",
        "",
        "| | fitted points | held-out points |",
        "| --- | --- | --- |",
        f"| embedding → map → embedding, mean cosine | {rt['embedding_round_trip_cosine_mean']:.4f} | "
        f"{rh['embedding_round_trip_cosine_mean']:.4f} |",
        f"| reference: mean embedding of the 10 nearest map neighbours, cosine | {rt['knn_decoder_cosine_mean']:.4f} | "
        f"{rh['knn_decoder_cosine_mean']:.4f} |",
        f"| map → embedding → map, mean distance / document spacing | {rt['map_round_trip_distance_over_spacing']:.3f} | "
        f"{rh['map_round_trip_distance_over_spacing']:.3f} |",
        "",
        "Layouts side by side: `umap.png`; raw numbers in `umap.json`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
