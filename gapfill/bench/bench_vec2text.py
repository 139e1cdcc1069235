"""Benchmark: vec2text inversion of MiniLM embeddings on held-out STS-B sentences and gap points.

For each held-out STS-B dev sentence (not in the training sentences) the table reports,
per row, the mean cosine of the re-embedded output to the target embedding, BLEU against
the original sentence (sacrebleu, corpus level) and the perplexity of the outputs under the
plain SmolLM2-135M-Instruct (fluency; the originals' perplexity is the reference row):

- retrieval baseline: the nearest training sentence, after removing training sentences
  with cosine >= 0.95 to the target (STS-B repeats near-duplicates across splits);
- zero-step, top beam: the prefix model's first beam, no re-ranking and no correction;
- guided search alone: the training-free embedding-guided search with the plain SmolLM2
  proposing tokens (``gapfill.guided_search``);
- step 0, beams only: the best of the prefix model's ``beam_width`` beams by cosine;
- step 0: those beams and the guided search with the prefix model proposing tokens, the
  closest kept; steps 1..K: correction (beams and search conditioned on the best hypothesis,
  never a worse cosine).

Gap points: the largest empty circles of the STS-B map (parametric UMAP from
``bench_umap.py``); the target is the decoder's embedding of the gap centre, and "lands"
is the distance from the gap centre to where the generated text projects, over the median
spacing of the documents.

Usage: python gapfill/bench/bench_vec2text.py [n_targets=40] [num_steps=3] [beam_width=4] ...
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sacrebleu
import torch

from embshared.bench import cached_embeddings, machine_facts, write_results
from embshared.config import load_config
from embshared.errors import UserError, cli_entry
from embshared.models import DEFAULT_MODEL, load_sentence_transformer, load_smollm2
from embshared.runtime import repo_root, seed_everything, setup_logging, shared_data_dir
from gapfill import vec2text as v2t
from gapfill.config import GapConfig, GuidedSearchConfig
from gapfill.corpus import heldout_picks, sts_sentences, tuning_picks
from gapfill.gaps import find_gaps
from gapfill.guided_search import guided_search, sentence_proposer
from gapfill.parametric_umap import ParametricUMAP
from gapfill.pipeline import decode_point, spacing
from gapfill.rewrite import Rewriter
from gapfill.word_edits import Vocabulary

logger = logging.getLogger("bench_vec2text")
HERE = Path(__file__).resolve().parent
MODELS = repo_root() / "gapfill" / "models"


SOURCES = ("beam", "search", "refine", "words", "rewrite", "initial", "previous", "polish")


@dataclass
class BenchConfig:
    model: str = field(default=str(MODELS / "vec2text" / "stsb-prefix"), metadata={"help": "trained vec2text folder"})
    umap_model: str = field(
        default=str(MODELS / "parametric_umap" / "stsb-bench"), metadata={"help": "from bench_umap.py"}
    )
    n_targets: int = field(default=16, metadata={"help": "held-out sentences inverted"})
    tuning: int = field(
        default=0,
        metadata={
            "help": "invert this many *other* held-out dev sentences instead (never the bench's n_targets): "
            "for choosing settings; results go to results/vec2text_tuning/<tag>"
        },
    )
    n_gaps: int = field(default=5, metadata={"help": "gap points inverted"})
    use_search: bool = field(default=True, metadata={"help": "guided search inside the inversion steps"})
    init_retrieval: bool = field(
        default=False,
        metadata={"help": "the nearest training sentence (cos >= near_duplicate removed) competes at step 0"},
    )
    plain_search: bool = field(default=True, metadata={"help": "also run the guided search alone (plain SmolLM2)"})
    tag: str = field(default="vec2text", metadata={"help": "results file name (without extension)"})
    search: GuidedSearchConfig = field(
        default_factory=lambda: GuidedSearchConfig(beam_width=5, top_k=10, max_new_tokens=20, fluency_weight=0.05)
    )
    num_steps: int = field(default=3, metadata={"help": "correction steps"})
    beam_width: int = field(default=4, metadata={"help": "hypotheses per step"})
    near_duplicate: float = field(default=0.95, metadata={"help": "retrieval excludes texts at least this close"})
    threads: int = field(default=2, metadata={"help": "torch threads"})
    max_seconds: float = field(
        default=30.0, metadata={"help": "time budget per text: no stage starts that would end past it (0: none)"}
    )
    wait_for_umap: float = field(default=0.0, metadata={"help": "seconds to wait for umap_model to appear"})
    seed: int = 0
    output: str = field(default=str(HERE / "results" / "interactive"))


def bleu(hyps: list[str], refs: list[str]) -> float:
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = load_config(BenchConfig, None, argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    if not Path(cfg.model, v2t.PROJECTOR_FILE).is_file():
        raise UserError(f"{cfg.model}: no trained vec2text model; run `make gapfill-train-vec2text` first")
    facts = machine_facts()
    sts = shared_data_dir() / "stsbenchmark"
    train_texts = sts_sentences(sts, "train")
    dev_all = sts_sentences(sts, "dev")
    embed = v2t.sentence_embedder(load_sentence_transformer(DEFAULT_MODEL))
    cache = HERE / "cache"
    train_emb = cached_embeddings(train_texts, embed, cache, DEFAULT_MODEL)
    dev_emb_all = cached_embeddings(dev_all, embed, cache, DEFAULT_MODEL)
    if cfg.tuning:
        pick = tuning_picks(train_texts, dev_all, cfg.tuning, cfg.n_targets, cfg.seed)
    else:
        pick = heldout_picks(train_texts, dev_all, cfg.n_targets, cfg.seed)
    refs = [dev_all[i] for i in pick]
    targets = dev_emb_all[pick]

    base_lm, tokenizer = load_smollm2()
    lm, tok = load_smollm2()
    model = v2t.load(cfg.model, lm, tok)
    meta = __import__("json").loads(Path(cfg.model, v2t.META_FILE).read_text())

    # retrieval baseline without near-duplicates of the target
    sims = targets @ train_emb.T  # (n_targets, n_train)
    sims[sims >= cfg.near_duplicate] = -np.inf
    retrieved = sims.argmax(1)
    rows: dict[str, dict] = {}
    rows["retrieval (nearest train sentence, cos ≥ 0.95 removed)"] = {
        "texts": [train_texts[j] for j in retrieved],
        "cosines": [float(sims[i, j]) for i, j in enumerate(retrieved)],
    }
    vocabulary = None
    if cfg.use_search and cfg.search.word_rounds:
        # the words of the training sentences (never of the held-out targets)
        vocab_dir = cache / f"vocabulary-stsb-train-{len(train_texts)}"
        if (vocab_dir / "vocabulary.json").is_file():
            vocabulary = Vocabulary.load(vocab_dir)
        else:
            vocabulary = Vocabulary.from_texts(train_texts, embed)
            vocabulary.save(vocab_dir)
        logger.info("word edits with a vocabulary of %d training-sentence words", len(vocabulary))
    rewriter = None
    if cfg.use_search and (cfg.search.rewrite or cfg.search.fluent_margin > 0):
        rewriter = Rewriter(base_lm, tokenizer)  # the plain LM (the model's own may be trained)
    correctors = v2t.Correctors(cfg.search if cfg.use_search else None, vocabulary, rewriter)
    budget = cfg.max_seconds or None
    plain, plain_seconds = [], []
    for i, target in enumerate(targets if cfg.plain_search else []):
        start = time.perf_counter()
        plain.append(guided_search(sentence_proposer(base_lm, tokenizer), target, embed, cfg.search)[0])
        plain_seconds.append(time.perf_counter() - start)
        logger.info("%d/%d plain search %.1fs %.3f | %s", i + 1, len(targets), plain_seconds[-1], plain[-1].cosine, plain[-1].text)  # fmt: skip
    traces, seconds = [], []
    for i, target in enumerate(targets):
        start = time.perf_counter()
        initial = [train_texts[retrieved[i]]] if cfg.init_retrieval else []
        traces.append(
            v2t.invert(model, target, embed, cfg.num_steps, cfg.beam_width, correctors, initial, max_seconds=budget)
        )
        seconds.append(time.perf_counter() - start)
        logger.info("%d/%d %.1fs cos by step %s | %s -> %s", i + 1, len(targets), seconds[-1],
                    [round(s.cosine, 3) for s in traces[-1]], refs[i], traces[-1][-1].text)  # fmt: skip
    top = [t[0].candidates[0] for t in traces]
    rows["zero-step, top beam (no re-ranking)"] = {"texts": [c[0] for c in top], "cosines": [c[1] for c in top]}
    if plain:
        rows[f"guided search alone (plain SmolLM2, weight {cfg.search.fluency_weight:g})"] = {
            "texts": [c.text for c in plain],
            "cosines": [c.cosine for c in plain],
        }
    beams_only = [
        max(
            (c for c, src in zip(t[0].candidates, t[0].sources) if src == "beam"), key=lambda c: c[1], default=("", 0.0)
        )
        for t in traces
    ]
    rows[f"step 0, beams only (best of {cfg.beam_width})"] = {
        "texts": [c[0] for c in beams_only],
        "cosines": [c[1] for c in beams_only],
    }
    with_search = (" + guided search" if cfg.use_search else "") + (
        " + nearest training sentence" if cfg.init_retrieval else ""
    )
    for s in range(cfg.num_steps + 1):
        name = f"step 0 ({cfg.beam_width} beams{with_search})" if s == 0 else f"step {s} (correction{with_search})"
        kept = [t[min(s, len(t) - 1)] for t in traces]  # a text whose budget ended earlier keeps its last step
        rows[name] = {
            "texts": [k.text for k in kept],
            "cosines": [k.cosine for k in kept],
            "kept_from": {src: sum(k.source == src for k in kept) for src in SOURCES},
            "texts_reaching_step": sum(len(t) > s for t in traces),
        }
    table = {}
    for name, row in rows.items():
        table[name] = {
            "mean_cosine": float(np.mean(row["cosines"])),
            "bleu": bleu(row["texts"], refs),
            "perplexity": v2t.perplexity(base_lm, tokenizer, row["texts"]),
            "share_cosine_ge_0.9": float(np.mean(np.asarray(row["cosines"]) >= 0.9)),
            "kept_from": row.get("kept_from"),
            "texts_reaching_step": row.get("texts_reaching_step"),
        }
    table["original sentences (reference)"] = {
        "mean_cosine": 1.0,
        "bleu": 100.0,
        "perplexity": v2t.perplexity(base_lm, tokenizer, refs),
        "share_cosine_ge_0.9": 1.0,
    }

    curve = cosine_by_time(traces, max(seconds))

    # gap points
    gap_res = None
    deadline = time.monotonic() + cfg.wait_for_umap
    while not Path(cfg.umap_model, "config.json").is_file() and time.monotonic() < deadline:
        time.sleep(10)  # bench_umap.py may still be fitting the map in parallel
    if cfg.n_gaps and Path(cfg.umap_model, "config.json").is_file():
        umap = ParametricUMAP.load(cfg.umap_model)
        coords = umap.transform(train_emb)
        scale = spacing(coords)
        gaps = find_gaps(coords, GapConfig(max_gaps=cfg.n_gaps))
        gap_rows = []
        for g in gaps:
            target = decode_point(umap, (g.x, g.y))
            j = int(np.argmax(train_emb @ target))
            start = time.perf_counter()
            initial = [train_texts[j]] if cfg.init_retrieval else []
            trace = v2t.invert(
                model, target, embed, cfg.num_steps, cfg.beam_width, correctors, initial, max_seconds=budget
            )
            secs = time.perf_counter() - start
            text_emb = embed([trace[-1].text])[0]
            landed = umap.transform(text_emb[None])[0]
            gap_rows.append({
                "gap": [g.x, g.y], "radius_over_spacing": g.radius_ratio, "text": trace[-1].text,
                "cosine_by_step": [s.cosine for s in trace], "lands_over_spacing": float(np.linalg.norm(landed - [g.x, g.y]) / scale),
                "retrieval_text": train_texts[j], "retrieval_cosine": float(train_emb[j] @ target),
                "retrieval_lands_over_spacing": float(np.linalg.norm(coords[j] - [g.x, g.y]) / scale), "seconds": secs,
            })  # fmt: skip
            logger.info("gap %s: %s", [round(s.cosine, 3) for s in trace], trace[-1].text)
        if gap_rows:
            gap_res = {
                "n": len(gap_rows),
                "cosine_by_step": [
                    float(np.mean([r["cosine_by_step"][s] for r in gap_rows])) for s in range(cfg.num_steps + 1)
                ],
                "retrieval_cosine": float(np.mean([r["retrieval_cosine"] for r in gap_rows])),
                "lands_over_spacing": float(np.median([r["lands_over_spacing"] for r in gap_rows])),
                "retrieval_lands_over_spacing": float(np.median([r["retrieval_lands_over_spacing"] for r in gap_rows])),
                "perplexity": v2t.perplexity(base_lm, tokenizer, [r["text"] for r in gap_rows]),
                "rows": gap_rows,
            }
    examples = [
        {"original": refs[i], "retrieval": rows["retrieval (nearest train sentence, cos ≥ 0.95 removed)"]["texts"][i],
         "plain_search": plain[i].text if plain else "", "step0": traces[i][0].text, "final": traces[i][-1].text,
         "final_cosine": traces[i][-1].cosine}
        for i in range(len(refs))
    ]  # fmt: skip
    res = {
        "config": dataclasses.asdict(cfg),
        "model": {k: v for k, v in meta.items() if k != "train_log"},
        "model_config": dataclasses.asdict(model.config),
        "training": summarize_training(meta.get("train_log", [])),
        "n_targets": len(refs),
        "table": table,
        "seconds_per_text": float(np.mean(seconds)),
        "seconds_per_text_max": float(np.max(seconds)),
        "cosine_by_time": curve,
        "goals": {
            "mean_cosine_ge_0.90": float(np.mean([t[-1].cosine for t in traces])) >= 0.90,
            "at_most_30_seconds_per_text": float(np.mean(seconds)) <= 30.0,
        },
        "seconds_per_text_plain_search": float(np.mean(plain_seconds)) if plain_seconds else None,
        "gaps": gap_res,
        "examples": examples,
    }
    output = HERE / "results" / "vec2text_tuning" if cfg.tuning else cfg.output
    write_results(output, cfg.tag, res, markdown(res), command=command(res["config"]), facts=facts)
    print(markdown(res))
    return 0


def cosine_by_time(traces: list[list[v2t.Step]], horizon: float, points: int = 12) -> list[dict]:
    """Mean cosine of the kept text at evenly spaced times (a text's cosine at time t is that of the
    last step it finished by t; 0 before its first step ends), up to ``horizon`` seconds."""
    out = []
    for t in np.linspace(horizon / points, horizon, points):
        cos = [max((s.cosine for s in steps if s.seconds <= t), default=0.0) for steps in traces]
        done = sum(steps[0].seconds <= t for steps in traces)
        out.append({"seconds": float(t), "mean_cosine": float(np.mean(cos)), "texts_started": int(done)})
    return out


def summarize_training(log: list[dict]) -> dict:
    steps = [e for e in log if "loss" in e]
    val = [e for e in log if "val_loss" in e]
    if not steps:
        return {}
    return {
        "steps": max(e["step"] for e in log),
        "seconds": max(e["seconds"] for e in log),
        "first_loss": steps[0]["loss"],
        "last_loss": steps[-1]["loss"],
        "val_loss": val[-1]["val_loss"] if val else None,
    }


def command(c: dict) -> str:
    """The command line that reproduces a run: the options that differ from the defaults."""
    defaults = dataclasses.asdict(BenchConfig())
    root = str(repo_root()) + os.sep
    args = [
        f"{k}={str(v).removeprefix(root)}"
        for k, v in c.items()
        if k in defaults and k != "output" and not isinstance(v, dict) and v != defaults[k]
    ]
    args += [f"search.{k}={v}" for k, v in c.get("search", {}).items() if v != defaults["search"].get(k)]
    return " ".join(["python gapfill/bench/bench_vec2text.py", *args])


def markdown(r: dict) -> str:
    c, t, m = r["config"], r["training"], r["model_config"]
    lines = [
        "# Vec2Text on held-out STS-B sentences (all-MiniLM-L6-v2 → SmolLM2-135M-Instruct)",
        "",
        f"Model: {m['num_prefix']} prefix vectors from `[e_target, e_hyp, e_target − e_hyp]`, LM parameters trained: "
        f"`{m['trainable']}`; trained {t.get('steps', '?')} steps of {m['batch_size']} examples in {t.get('seconds', 0) / 60:.0f} min "
        f"(loss {t.get('first_loss', float('nan')):.2f} → {t.get('last_loss', float('nan')):.2f}, held-out loss "
        f"{t.get('val_loss') or float('nan'):.2f}) on {r['model'].get('n_texts', '?')} STS-B train sentences. "
        f"Inversion: beam width {c['beam_width']}, {c['num_steps']} correction steps"
        + (
            f", guided search at every step (beam width {c['search']['beam_width']}, top-{c['search']['top_k']} tokens, "
            f"at most {c['search']['max_new_tokens']} tokens, fluency weight {c['search']['fluency_weight']:g})"
            if c.get("use_search")
            else ""
        )
        + (
            f", {c['search']['refine_rounds']} rounds of LM token edits and {c['search']['word_rounds']} rounds of word "
            f"edits (top {c['search']['word_top_k']} words of the training sentences' vocabulary along the residual "
            "and the target"
            + (
                f", screened by one insertion each to the {c['search']['word_screen']} closest, tried at every position"
                if c["search"].get("word_screen")
                else ""
            )
            + ")"
            + (
                "; tokens proposed by int8 copies of the LMs (fluency choices by the fp32 LM)"
                if c["search"].get("lm_int8")
                else ""
            )
            if c.get("use_search") and c["search"].get("word_rounds")
            else ""
        )
        + (
            ", a fluent rewrite of each step's text by the plain SmolLM2-Instruct (guided search after a rewrite "
            f"prompt), and each step keeping the most fluent proposal within {c['search']['fluent_margin']:g} cosine "
            "of the closest (fluency: mean token log-prob under the plain SmolLM2)"
            if c.get("use_search") and c["search"].get("rewrite")
            else ""
        )
        + (
            "; the time left after the last correction step that fits goes to word edits of its text (polish)"
            if c.get("use_search") and c["search"].get("polish") and c["search"].get("word_rounds")
            else ""
        )
        + f", on {r['n_targets']} STS-B dev sentences that are not in the training sentences"
        + (" (tuning sentences: none of them is among the bench's)." if c.get("tuning") else "."),
        "",
        f"Time budget per text: {c.get('max_seconds') or 'none'} s (no correction step starts when the last "
        "step's duration would pass it, and within a step the LM token edits, word-edit rounds and the rewrite "
        "start only if their estimated time fits); a text whose budget ended keeps its last step in the later rows.",
        "",
        "| row | mean cosine to target | share ≥ 0.90 | BLEU vs original | perplexity (plain SmolLM2) | kept text from "
        f"({'/'.join(SOURCES)}) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in r["table"].items():
        kept = row.get("kept_from")
        kept = "/".join(str(kept.get(src, 0)) for src in SOURCES) if kept else ""
        lines.append(
            f"| {name} | {row['mean_cosine']:.4f} | {row['share_cosine_ge_0.9']:.2f} | {row['bleu']:.1f} | {row['perplexity']:.1f} | {kept} |"
        )
    lines += [
        "",
        f"Seconds per generated text: **{r['seconds_per_text']:.1f} s** for the prefix model with all steps, "
        + (
            f"{r['seconds_per_text_plain_search']:.1f} s for the guided search alone, on this CPU."
            if r.get("seconds_per_text_plain_search")
            else "on this CPU."
        ),
        "",
    ]
    curve = r.get("cosine_by_time") or []
    if curve:
        lines += [
            "Cosine by time (mean over the texts of the cosine kept by then; 0 before a text's first step):",
            "",
            "| seconds | " + " | ".join(f"{p['seconds']:.0f}" for p in curve) + " |",
            "| --- | " + " | ".join("---" for _ in curve) + " |",
            "| mean cosine | " + " | ".join(f"{p['mean_cosine']:.3f}" for p in curve) + " |",
            "",
        ]
    g = r.get("gaps")
    if g:
        steps = " → ".join(f"{v:.3f}" for v in g["cosine_by_step"])
        lines += [
            f"Gap points ({g['n']} largest empty circles of the STS-B map): cosine of the generated text to the decoded "
            f"target by step {steps}; nearest training sentence {g['retrieval_cosine']:.3f}. Median landing distance from "
            f"the gap centre: {g['lands_over_spacing']:.1f}× the document spacing (nearest training sentence: "
            f"{g['retrieval_lands_over_spacing']:.1f}×); perplexity {g['perplexity']:.1f}.",
            "",
        ]
    lines += [
        "Examples:",
        "",
        "| original | retrieval | guided search alone | step 0 | final (cosine) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in r["examples"]:
        cells = [
            e["original"],
            e["retrieval"],
            e.get("plain_search", ""),
            e["step0"],
            f"{e['final']} ({e['final_cosine']:.3f})",
        ]
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    lines += ["", f"Raw numbers in `{c['tag']}.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
