"""Choose ``umap.init_epochs`` (the encoder's regression onto umap-learn's layout) on tuning sentences.

    python gapfill/bench/tune_init.py [threads=2] [n_tune=3000] [epochs=[100,125,150,175,200]]

``n_tune`` STS-B train sentences that bench_umap.py does not fit (seeded, drawn from the
others) are mapped by umap-learn (timed) and by the parametric map for each number of
regression epochs (the whole fit timed: umap-learn's layout, the regression, the decoder).
Each row gives the fit time as a multiple of umap-learn's and the trustworthiness (k=10) of
the fitted points. The choice: the fewest epochs whose trustworthiness is within ``margin``
of umap-learn's (half the bench goal's 0.01, so the bench's own sentences have room) and whose
fit takes at most ``max_ratio`` times umap-learn's; written to ``choice.json`` beside the table.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tuning import tuning_split

from embshared.bench import machine_facts, write_results
from embshared.config import load_config
from embshared.errors import cli_entry
from embshared.runtime import repo_root, setup_logging
from gapfill.config import UMAPConfig
from gapfill.parametric_umap import ParametricUMAP
from gapfill.quality import trustworthiness, umap_learn_layout

HERE = repo_root() / "gapfill" / "bench"


@dataclass
class TuneConfig:
    threads: int = 2
    n_fit: int = 3000  # bench_umap's fitted sentences (left out here)
    n_tune: int = 3000
    seed: int = 0
    epochs: list[int] = field(default_factory=lambda: [100, 125, 150, 175, 200])
    margin: float = field(default=0.005, metadata={"help": "trustworthiness below umap-learn's allowed"})
    max_ratio: float = field(default=2.0, metadata={"help": "fit time at most this multiple of umap-learn's"})
    output: str = str(HERE / "results" / "init_tuning")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = load_config(TuneConfig, None, argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(cfg.threads)
    facts = machine_facts()
    x_all, _, tune_idx = tuning_split(cfg.n_fit, cfg.n_tune, cfg.seed, cfg.seed + 2, sort=True)
    x = x_all[tune_idx]

    u = UMAPConfig(validation_split=0.0)  # as bench_umap fits
    umap_learn_layout(x[:300], u.n_neighbors, u.min_dist, u.spread, u.metric, u.seed)  # numba warm-up
    ref_args = (x, u.n_neighbors, u.min_dist, u.spread, u.metric, u.seed)
    ref_runs = []
    for _ in range(2):
        start = time.perf_counter()
        _, z_ref, _ = umap_learn_layout(*ref_args)
        ref_runs.append(time.perf_counter() - start)
    ref_s = float(np.mean(ref_runs))
    ref_trust = trustworthiness(x, z_ref)

    rows = []
    for epochs in cfg.epochs:
        param = ParametricUMAP(dataclasses.replace(u, init_epochs=epochs))
        param.fit(x)
        seconds = sum(param.fit_seconds.values())
        rows.append(
            {"epochs": epochs, "trustworthiness": trustworthiness(x, param.transform(x)), "fit_seconds": seconds,
             "ratio": seconds / ref_s, "stages": param.fit_seconds}
        )  # fmt: skip
        print({k: v for k, v in rows[-1].items() if k != "stages"}, flush=True)
    ok = [r for r in rows if r["trustworthiness"] >= ref_trust - cfg.margin and r["ratio"] <= cfg.max_ratio]
    choice = min(ok, key=lambda r: r["epochs"]) if ok else max(rows, key=lambda r: r["trustworthiness"])
    report = {"config": vars(cfg), "umap_learn": {"trustworthiness": ref_trust, "fit_seconds": ref_s,
              "runs": ref_runs}, "rows": rows, "choice": choice, "choice_meets_both": bool(ok)}  # fmt: skip
    lines = [
        "# gapfill: regression epochs of the parametric fit, chosen on tuning sentences",
        "",
        f"{len(x)} STS-B train sentences that bench_umap does not fit (seed {cfg.seed + 2}). umap-learn: "
        f"trustworthiness {ref_trust:.4f}, fit {ref_s:.1f} s (runs {', '.join(f'{s:.1f}' for s in ref_runs)}).",
        "",
        "| regression epochs | trustworthiness, fitted | fit seconds | × umap-learn |",
        "| ---: | ---: | ---: | ---: |",
        *[f"| {r['epochs']} | {r['trustworthiness']:.4f} | {r['fit_seconds']:.1f} | {r['ratio']:.2f} |" for r in rows],
        "",
        f"Chosen: **{choice['epochs']} epochs** (the fewest within {cfg.margin} of umap-learn's trustworthiness "
        f"with a fit of at most {cfg.max_ratio:g}× its time{'' if ok else '; none met both, so the most trustworthy'}).",
    ]
    write_results(Path(cfg.output), "init_tuning", report, "\n".join(lines), facts=facts)
    (Path(cfg.output) / "choice.json").write_text(json.dumps({k: v for k, v in choice.items() if k != "stages"}))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
