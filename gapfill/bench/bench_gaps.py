"""Benchmark: text for the gaps of the STS-B map, judged by where it lands.

For each gap (largest empty circle) of the map fitted by ``bench_umap.py``, the text is
written by :func:`gapfill.gap_text.write_for_point` (SmolLM2-Instruct candidates from the
gap's neighbouring documents, sampled rewrites, landing-guided word edits; every text scored
by distance in gap radii after embed -> encoder, plus fluency under the plain SmolLM2). The
results list every output beside its gap's nearest documents, so a reader can judge whether it
reads as a sentence; the figures are the share of gaps whose text lands inside the gap's
circle, the median landing distance in radii and in document spacings, the seconds per gap,
and the best text after each stage (what each stage buys).

Usage: python gapfill/bench/bench_gaps.py [n_gaps=12] [threads=2] [gap_text.max_seconds=12] ...
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
from embshared.errors import UserError, cli_entry
from embshared.models import DEFAULT_MODEL, load_sentence_transformer, load_smollm2
from embshared.runtime import repo_root, seed_everything, setup_logging
from gapfill import vec2text as v2t
from gapfill.config import GapConfig, GapTextConfig
from gapfill.gap_text import LMSampler, write_for_point
from gapfill.gaps import find_gaps
from gapfill.landing import Circle
from gapfill.parametric_umap import ParametricUMAP
from gapfill.pipeline import spacing
from gapfill.rewrite import Rewriter
from gapfill.word_edits import Vocabulary

logger = logging.getLogger("bench_gaps")
HERE = Path(__file__).resolve().parent
STAGES = ("candidates", "rewrites", "word_edits")


@dataclass
class BenchConfig:
    umap_model: str = field(
        default=str(repo_root() / "gapfill" / "models" / "parametric_umap" / "stsb-bench"),
        metadata={"help": "the map and its sentences, from bench_umap.py"},
    )
    n_gaps: int = field(default=12, metadata={"help": "largest gaps of the map written for"})
    threads: int = field(default=2, metadata={"help": "torch threads"})
    output: str = field(default=str(HERE / "results" / "interactive"), metadata={"help": "results folder"})
    tag: str = field(default="gaps", metadata={"help": "results file name"})
    transform_refine_epochs: int = field(
        default=-1, metadata={"help": "override the map's transform refinement (-1: the map's own setting)"}
    )
    gap_text: GapTextConfig = field(default_factory=GapTextConfig)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = load_config(BenchConfig, None, argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.gap_text.seed)
    facts = machine_facts()
    docs_file = Path(cfg.umap_model, "documents.json")
    if not docs_file.is_file():
        raise UserError(f"{docs_file}: no map; run `python gapfill/bench/bench_umap.py` first")
    texts = json.loads(docs_file.read_text(encoding="utf-8"))
    umap = ParametricUMAP.load(cfg.umap_model)
    if cfg.transform_refine_epochs >= 0:
        umap.config.transform_refine_epochs = cfg.transform_refine_epochs
    embed = v2t.sentence_embedder(load_sentence_transformer(DEFAULT_MODEL))
    x = cached_embeddings(texts, embed, HERE / "cache", DEFAULT_MODEL)
    coords = umap.transform(x)
    scale = spacing(coords)
    gaps = find_gaps(coords, GapConfig(max_gaps=cfg.n_gaps))
    logger.info("%d documents, %d gaps, spacing %.4f", len(texts), len(gaps), scale)

    lm, tokenizer = load_smollm2()
    rewriter = Rewriter(lm, tokenizer)  # its fluency: mean token log-prob under the plain LM
    sampler = LMSampler(lm, tokenizer, int8=cfg.gap_text.lm_int8)
    start = time.perf_counter()
    vocabulary = Vocabulary.from_texts(texts, embed)  # the map's documents' words (as the service uses)
    vocab_s = time.perf_counter() - start
    # warm-up (not timed): one full candidate stage, as a service that has answered once (the first call
    # of a process is slower: allocations, kernel set-up)
    warm = dataclasses.replace(cfg.gap_text, max_seconds=0.1)
    write_for_point(coords[0], umap, embed, coords, texts, sampler, rewriter.fluency, vocabulary, warm)  # warm-up
    rows = []
    for i, g in enumerate(gaps):
        out = write_for_point(
            (g.x, g.y), umap, embed, coords, texts, sampler, rewriter.fluency, vocabulary, cfg.gap_text,
            circle=Circle(g.x, g.y, g.radius),
        )  # fmt: skip
        row = out.to_dict()
        other = umap.transform(embed([out.best.text]), refine=not cfg.gap_text.refine_landing)[0]
        row.update(
            other_landing_radii=float(np.linalg.norm(other - [g.x, g.y]) / g.radius),  # the other way of landing
            gap=i,
            radius_over_spacing=g.radius_ratio,
            lands_over_spacing=out.best.distance / scale,
            inside=out.best.radii < 1.0,
            nearest_documents=[texts[j] for j in g.nearest],
        )
        rows.append(row)
        logger.info("gap %d/%d %.1fs %.2f radii (%s) | %s", i + 1, len(gaps), out.seconds, out.best.radii,
                    out.best.source, out.best.text)  # fmt: skip
    radii = np.array([r["distance_radii"] for r in rows])
    secs = np.array([r["seconds"] for r in rows])
    stage_rows = {}
    for st in STAGES:
        got = [r["stage_best"][st]["radii"] for r in rows if st in r["stage_best"]]
        if got:
            stage_rows[st] = {
                "share_inside": float(np.mean(np.array(got) < 1)),
                "median_radii": float(np.median(got)),
                "mean_seconds": float(np.mean([r["stage_seconds"].get(st, 0.0) for r in rows])),
            }
    res = {
        "config": dataclasses.asdict(cfg),
        "n_documents": len(texts),
        "transform_refine_epochs": umap.config.transform_refine_epochs,
        "n_gaps": len(rows),
        "spacing": scale,
        "vocabulary_words": len(vocabulary),
        "vocabulary_seconds": vocab_s,
        "share_inside": float(np.mean(radii < 1)),
        "share_inside_other_landing": float(np.mean([r["other_landing_radii"] < 1 for r in rows])),
        "median_distance_radii": float(np.median(radii)),
        "median_lands_over_spacing": float(np.median([r["lands_over_spacing"] for r in rows])),
        "seconds_per_gap": {"mean": float(secs.mean()), "max": float(secs.max())},
        "perplexity": v2t.perplexity(lm, tokenizer, [r["text"] for r in rows]),
        "perplexity_nearest_documents": v2t.perplexity(lm, tokenizer, [r["nearest_documents"][0] for r in rows]),
        "by_stage": stage_rows,
        "goals": {
            "inside_for_80_percent_of_at_least_10_gaps": len(rows) >= 10 and float(np.mean(radii < 1)) >= 0.8,
            "at_most_15_seconds_per_gap": float(secs.max()) <= 15.0,
        },
        "rows": rows,
    }
    write_results(cfg.output, cfg.tag, res, markdown(res), facts=facts)
    print(markdown(res))
    return 0


def markdown(r: dict) -> str:
    c = r["config"]["gap_text"]
    ok = {True: "met", False: "not met"}
    g = r["goals"]
    lines = [
        "# Text for the gaps of the STS-B map, judged by where it lands",
        "",
        f"The {r['n_gaps']} largest gaps (empty circles inside the hull) of the map of {r['n_documents']} STS-B "
        "sentences (`bench_umap.py`). Per gap: SmolLM2-135M-Instruct is shown the gap's "
        f"{c['n_neighbours']} nearest documents and samples {c['samples']} candidates per prompt (all of them; pairs "
        f"from opposite sides)"
        + (" from an int8 copy of the LM" if c.get("lm_int8") else "")
        + f", {c['rewrite_rounds']} round(s) of sampled rewrites of the best {c['rewrite_best']}, up "
        f"to {c['word_rounds']} rounds of word edits along the encoder's gradient ({c['word_top_k']} words of the "
        f"map's {r['vocabulary_words']:,}-word vocabulary) while the best text lands {c.get('edit_until', 0.5):g} radii or "
        "more away; every text scored by −max(distance in radii, "
        f"{c['inner']:g}) + {c['fluency_weight']:g} × mean token log-prob (plain SmolLM2) − "
        f"{c.get('outside_penalty', 0):g} if it lands outside the circle; budget "
        f"{c['max_seconds']:g} s (a stage starts only if its estimated time fits). Landing: "
        + (
            f"the map's `transform` (encoder refined for {r['transform_refine_epochs']} epochs against the fitted points)"
            if c.get("refine_landing", True) and r["transform_refine_epochs"]
            else "embed -> encoder (the map's `transform` without its refinement)"
        )
        + ".",
        "",
        "| figure | value | goal |",
        "| --- | --- | --- |",
        f"| text lands inside the gap's circle | {r['share_inside']:.0%} of {r['n_gaps']} gaps | ≥ 80% of ≥ 10 gaps: "
        f"{ok[g['inside_for_80_percent_of_at_least_10_gaps']]} |",
        f"| the same texts landed by the {'encoder alone' if c.get('refine_landing') else 'refined transform'} "
        f"(not the goal's landing; the refinement pulls a text to its nearest documents, on the gap's edge) | "
        f"{r['share_inside_other_landing']:.0%} inside | |",
        f"| median landing distance | {r['median_distance_radii']:.2f} gap radii, "
        f"{r['median_lands_over_spacing']:.1f}× the document spacing | |",
        f"| seconds per gap | mean {r['seconds_per_gap']['mean']:.1f}, max {r['seconds_per_gap']['max']:.1f} | ≤ 15: "
        f"{ok[g['at_most_15_seconds_per_gap']]} |",
        f"| perplexity (plain SmolLM2) of the texts | {r['perplexity']:.1f} (the gaps' nearest documents: "
        f"{r['perplexity_nearest_documents']:.1f}) | |",
        "",
        "What each stage buys (the best text after the stage):",
        "",
        "| after | inside the circle | median distance, radii | mean seconds of the stage |",
        "| --- | --- | --- | --- |",
    ]
    for st, v in r["by_stage"].items():
        lines.append(f"| {st} | {v['share_inside']:.0%} | {v['median_radii']:.2f} | {v['mean_seconds']:.1f} |")
    lines += [
        "",
        "Every gap's text beside its nearest documents (judge whether it reads as a sentence):",
        "",
        "| gap | radius / spacing | text (from) | lands, radii | s | nearest documents |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["rows"]:
        near = " / ".join(d.replace("|", "/") for d in row["nearest_documents"])
        lines.append(
            f"| {row['gap']} | {row['radius_over_spacing']:.1f} | {row['text'].replace('|', '/')} ({row['source']}) | "
            f"{row['distance_radii']:.2f} | {row['seconds']:.1f} | {near} |"
        )
    lines += ["", f"Raw numbers, the top-5 candidates per gap and their scores: `{r['config']['tag']}.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
