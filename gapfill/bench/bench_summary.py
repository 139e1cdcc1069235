"""The goals of ``make bench-gapfill`` in one table, from the results its benchmarks just wrote.

Reads ``umap.json`` (fit), ``gaps.json`` (text in the gap) and ``vec2text.json`` (held-out
inversion) from the results folder and writes ``summary.{json,md}`` beside them.

Usage: python gapfill/bench/bench_summary.py [results=gapfill/bench/results/interactive]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from embshared.bench import machine_facts, write_results
from embshared.errors import UserError, cli_entry

HERE = Path(__file__).resolve().parent


def read(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def goals(folder: Path) -> list[dict]:
    """One row per goal: what, the figure, the target, met or not (None: not measured)."""
    umap, gaps, v2t = read(folder, "umap"), read(folder, "gaps"), read(folder, "vec2text")
    rows = []
    if umap:
        fs, tf, th, tr = (
            umap["fit_seconds"],
            umap["trustworthiness_fit"],
            umap["trustworthiness_heldout"],
            umap["transform"],
        )
        rows += [
            ("fit wall time vs umap-learn", f"{fs['parametric']:.1f} s vs {fs['umap_learn']:.1f} s ({fs['ratio']:.2f}×)",
             "≤ 2×", fs["ratio"] <= 2),
            ("trustworthiness, fitted points", f"{tf['parametric']:.4f} vs {tf['umap_learn']:.4f}",
             "≥ umap-learn − 0.01", tf["parametric"] >= tf["umap_learn"] - 0.01),
            ("trustworthiness, held-out points", f"{th['parametric']:.4f} vs {th['umap_learn']:.4f}",
             "≥ umap-learn − 0.02", th["parametric"] >= th["umap_learn"] - 0.02),
            ("transform speed vs umap-learn", f"{tr['speedup']:.0f}×", "≥ 20×", tr["speedup"] >= 20),
        ]  # fmt: skip
    if gaps:
        rows += [
            ("text lands inside its gap's circle", f"{gaps['share_inside']:.0%} of {gaps['n_gaps']} gaps (median "
             f"{gaps['median_distance_radii']:.2f} radii, {gaps['median_lands_over_spacing']:.1f}× spacing)",
             "≥ 80% of ≥ 10 gaps", gaps["goals"]["inside_for_80_percent_of_at_least_10_gaps"]),
            ("seconds per gap", f"mean {gaps['seconds_per_gap']['mean']:.1f}, max {gaps['seconds_per_gap']['max']:.1f}",
             "≤ 15", gaps["goals"]["at_most_15_seconds_per_gap"]),
        ]  # fmt: skip
    if v2t:
        final = list(v2t["table"].values())[-2]  # the last step (the originals' row comes last)
        rows += [
            ("vec2text mean cosine, held-out", f"{final['mean_cosine']:.3f} on {v2t['n_targets']} sentences",
             "≥ 0.90", final["mean_cosine"] >= 0.90),
            ("vec2text seconds per text", f"{v2t['seconds_per_text']:.1f} (max {v2t['seconds_per_text_max']:.1f})",
             "≤ 30", v2t["seconds_per_text"] <= 30),
        ]  # fmt: skip
    return [{"goal": g, "figure": f, "target": t, "met": bool(m)} for g, f, t, m in rows]


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    folder = Path(args[0].split("=", 1)[1]) if args else HERE / "results" / "interactive"
    rows = goals(folder)
    if not rows:
        raise UserError(f"{folder}: no results of bench_umap / bench_gaps / bench_vec2text to summarise")
    lines = [
        "# gapfill interactive: the goals of one `make bench-gapfill` run",
        "",
        "| goal | figure | target | met |",
        "| --- | --- | --- | --- |",
        *(f"| {r['goal']} | {r['figure']} | {r['target']} | {'yes' if r['met'] else '**no**'} |" for r in rows),
        "",
        "Details: `umap.md`, `gaps.md`, `vec2text.md` in this folder.",
    ]
    write_results(folder, "summary", {"goals": rows}, "\n".join(lines), facts=machine_facts())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
