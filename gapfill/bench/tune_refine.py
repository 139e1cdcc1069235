"""Choose ``umap.transform_refine_epochs`` on tuning points, never on the bench's held-out ones.

    python gapfill/bench/tune_refine.py [threads=2] [n_tune=1500] [epochs=[0,10,20,30,50,100]]

The map bench_umap.py fitted (``model_out``, on its seeded 3,000 STS-B train sentences) places
``n_tune`` *other* STS-B train sentences (seeded; neither fitted nor the bench's dev sentences)
with the encoder alone and refined for each number of epochs; each row gives trustworthiness
(k=10) on those points and the seconds per 100,000 points (timed on the tuning points, scaled).
umap-learn's own ``transform`` of the same points is the reference. The choice: the fewest
epochs whose trustworthiness is within ``margin`` of umap-learn's while ``transform`` stays at
least ``min_speedup`` times faster than umap-learn's; written to ``choice.json`` beside the table.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tuning import tuning_split

from embshared.bench import machine_facts, write_results
from embshared.config import load_config
from embshared.errors import cli_entry
from embshared.runtime import repo_root, setup_logging
from gapfill.parametric_umap import ParametricUMAP
from gapfill.quality import trustworthiness, umap_learn_layout

HERE = repo_root() / "gapfill" / "bench"


@dataclass
class TuneConfig:
    threads: int = 2
    n_fit: int = 3000
    n_tune: int = 1500
    seed: int = 0
    epochs: list[int] = field(default_factory=lambda: [0, 10, 20, 30, 50, 100])
    margin: float = field(
        default=0.01, metadata={"help": "trustworthiness below umap-learn's allowed (half the goal's 0.02)"}
    )
    min_speedup: float = field(default=20.0, metadata={"help": "transform at least this much faster than umap-learn"})
    model: str = str(repo_root() / "gapfill" / "models" / "parametric_umap" / "stsb-bench")
    output: str = str(HERE / "results" / "refine_tuning")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = load_config(TuneConfig, None, argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(cfg.threads)
    facts = machine_facts()
    x_all, fit_idx, tune_idx = tuning_split(cfg.n_fit, cfg.n_tune, cfg.seed, cfg.seed + 1)
    x_fit, x_tune = x_all[fit_idx], x_all[tune_idx]

    param = ParametricUMAP.load(cfg.model)
    u = param.config
    umap_learn_layout(x_fit[:300], u.n_neighbors, u.min_dist, u.spread, u.metric, u.seed)  # numba warm-up
    reducer, _, _ = umap_learn_layout(x_fit, u.n_neighbors, u.min_dist, u.spread, u.metric, u.seed)
    start = time.perf_counter()
    z_ref = reducer.transform(x_tune)
    ref_s = (time.perf_counter() - start) * 100_000 / len(x_tune)
    ref_trust = trustworthiness(x_tune, z_ref)

    rows = []
    for epochs in cfg.epochs:
        param.config.transform_refine_epochs = epochs
        param.transform(x_tune[:50])  # warm-up
        start = time.perf_counter()
        z = param.transform(x_tune)
        seconds = (time.perf_counter() - start) * 100_000 / len(x_tune)
        rows.append(
            {"epochs": epochs, "trustworthiness": trustworthiness(x_tune, z), "seconds_per_100k": seconds,
             "speedup": ref_s / seconds}
        )  # fmt: skip
        print(rows[-1], flush=True)
    ok = [r for r in rows if r["trustworthiness"] >= ref_trust - cfg.margin and r["speedup"] >= cfg.min_speedup]
    fast = [r for r in rows if r["speedup"] >= cfg.min_speedup] or rows
    # none within the margin: the most trustworthy that is still fast enough (speed is a goal too)
    choice = min(ok, key=lambda r: r["epochs"]) if ok else max(fast, key=lambda r: r["trustworthiness"])
    report = {"config": vars(cfg), "umap_learn": {"trustworthiness": ref_trust, "seconds_per_100k": ref_s},
              "rows": rows, "choice": choice, "choice_meets_both": bool(ok)}  # fmt: skip
    lines = [
        "# gapfill: transform refinement epochs, chosen on tuning points",
        "",
        f"{len(x_tune)} STS-B train sentences neither fitted nor held out by bench_umap (seed {cfg.seed + 1}); "
        f"the map of `{cfg.model}`. umap-learn's transform: trustworthiness {ref_trust:.4f}, "
        f"{ref_s:.1f} s per 100,000 points.",
        "",
        "| refine epochs | trustworthiness | s per 100k points | x faster than umap-learn |",
        "| ---: | ---: | ---: | ---: |",
        *[
            f"| {r['epochs']} | {r['trustworthiness']:.4f} | {r['seconds_per_100k']:.1f} | {r['speedup']:.0f} |"
            for r in rows
        ],
        "",
        f"Chosen: **{choice['epochs']} epochs** (the fewest within {cfg.margin} of umap-learn's trustworthiness "
        f"at >= {cfg.min_speedup:g}x its speed{'' if ok else '; none met both, so the most trustworthy of those fast enough'}).",
    ]
    write_results(Path(cfg.output), "refine_tuning", report, "\n".join(lines), facts=facts)
    (Path(cfg.output) / "choice.json").write_text(json.dumps(choice))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
