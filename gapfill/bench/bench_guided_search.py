"""Benchmark: the training-free embedding-guided search (plain SmolLM2 proposes, MiniLM chooses).

For held-out STS-B dev sentences (the first ``n_targets`` of the vec2text benchmark's
choice), the search runs with several fluency weights; each row reports the mean cosine of
the found text to the target, BLEU against the original, the perplexity of the texts under
the plain SmolLM2 (lower is more fluent) and seconds per text: the cosine / fluency trade-off.

Writes ``gapfill/bench/results/default/guided_search.{json,md}`` (``output=<folder>`` for another variant).

Usage: python gapfill/bench/bench_guided_search.py [n_targets=12] [weights=[0,0.05,0.15]] [search.top_k=10] ...
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

from embshared.bench import cached_embeddings
from embshared.config import load_config
from embshared.errors import cli_entry
from embshared.files import write_json, write_text
from embshared.models import DEFAULT_MODEL, load_sentence_transformer, load_smollm2
from embshared.runtime import seed_everything, setup_logging, shared_data_dir
from gapfill.config import GuidedSearchConfig
from gapfill.corpus import heldout_picks, sts_sentences
from gapfill.guided_search import guided_search, sentence_proposer
from gapfill.vec2text import perplexity, sentence_embedder

logger = logging.getLogger("bench_guided_search")
HERE = Path(__file__).resolve().parent


@dataclass
class BenchConfig:
    n_targets: int = field(default=12, metadata={"help": "held-out sentences searched for"})
    pick_from: int = field(default=16, metadata={"help": "the vec2text benchmark's n_targets (same choice)"})
    weights: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.15], metadata={"help": "fluency weights"})
    search: GuidedSearchConfig = field(
        default_factory=lambda: GuidedSearchConfig(beam_width=5, top_k=10, max_new_tokens=20)
    )
    threads: int = field(default=1, metadata={"help": "torch threads"})
    seed: int = 0
    output: str = field(default=str(HERE / "results" / "default"), metadata={"help": "results folder (a variant)"})


@cli_entry
def main(argv: list[str] | None = None) -> int:
    setup_logging()
    cfg = load_config(BenchConfig, None, argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    load_avg = os.getloadavg()[0]
    sts = shared_data_dir() / "stsbenchmark"
    train_texts, dev_all = sts_sentences(sts, "train"), sts_sentences(sts, "dev")
    embed = sentence_embedder(load_sentence_transformer(DEFAULT_MODEL))
    dev_emb = cached_embeddings(dev_all, embed, HERE / "cache", DEFAULT_MODEL)
    pick = heldout_picks(train_texts, dev_all, cfg.pick_from, cfg.seed)[: cfg.n_targets]
    refs, targets = [dev_all[i] for i in pick], dev_emb[pick]
    lm, tok = load_smollm2()
    rows = []
    for weight in cfg.weights:
        search = dataclasses.replace(cfg.search, fluency_weight=weight)
        texts, cosines, seconds = [], [], []
        for ref, target in zip(refs, targets):
            start = time.perf_counter()
            best, _ = guided_search(sentence_proposer(lm, tok), target, embed, search)
            seconds.append(time.perf_counter() - start)
            texts.append(best.text)
            cosines.append(best.cosine)
            logger.info("λ=%s %.1fs %.3f | %s -> %s", weight, seconds[-1], best.cosine, ref, best.text)
        rows.append({
            "fluency_weight": weight,
            "mean_cosine": float(np.mean(cosines)),
            "share_cosine_ge_0.9": float(np.mean(np.asarray(cosines) >= 0.9)),
            "bleu": float(sacrebleu.corpus_bleu(texts, [refs]).score),
            "perplexity": perplexity(lm, tok, texts),
            "seconds_per_text": float(np.mean(seconds)),
            "texts": texts,
            "cosines": cosines,
        })  # fmt: skip
    res = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average_1min_at_start": load_avg},
        "config": dataclasses.asdict(cfg),
        "references": refs,
        "reference_perplexity": perplexity(lm, tok, refs),
        "rows": rows,
    }  # fmt: skip
    out = Path(cfg.output)
    write_json(out / "guided_search.json", res)
    write_text(out / "guided_search.md", markdown(res))
    print(markdown(res))
    return 0


def markdown(r: dict) -> str:
    s, m = r["config"]["search"], r["machine"]
    lines = [
        "# Embedding-guided search without training (plain SmolLM2-135M-Instruct proposes, MiniLM chooses)",
        "",
        f"{len(r['references'])} held-out STS-B dev sentences (not in train). Beam width {s['beam_width']}, top-{s['top_k']} "
        f"tokens per beam, at most {s['max_new_tokens']} tokens, no repeated {s['no_repeat_ngram_size']}-grams; "
        "score = cosine + weight × mean token log-prob. The LM is prompted with `<|endoftext|>Sentence:` and a line "
        "break ends the text.",
        "",
        f"Machine: {m['cpu_count']} CPU cores **shared with other jobs** (1-min load average "
        f"{m['load_average_1min_at_start']:.1f} at start), {m['torch_threads']} torch thread(s).",
        "",
        "| fluency weight | mean cosine | share ≥ 0.90 | BLEU | perplexity (plain SmolLM2) | seconds per text |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['fluency_weight']:g} | {row['mean_cosine']:.4f} | {row['share_cosine_ge_0.9']:.2f} | "
            f"{row['bleu']:.1f} | {row['perplexity']:.1f} | {row['seconds_per_text']:.1f} |"
        )
    lines += [
        f"| original sentences | 1.0000 | 1.00 | 100.0 | {r['reference_perplexity']:.1f} | |",
        "",
        "Examples:",
        "",
        "| original | " + " | ".join(f"weight {row['fluency_weight']:g}" for row in r["rows"]) + " |",
        "| --- |" + " --- |" * len(r["rows"]),
    ]
    for i, ref in enumerate(r["references"][:6]):
        cells = [ref] + [f"{row['texts'][i]} ({row['cosines'][i]:.2f})" for row in r["rows"]]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += ["", "Command: `python gapfill/bench/bench_guided_search.py` (part of `make bench-gapfill`).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
