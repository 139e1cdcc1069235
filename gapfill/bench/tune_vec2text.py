"""Choose vec2text's inversion settings on tuning sentences, never on the bench's.

    python gapfill/bench/tune_vec2text.py [--only TAG ...] [--report-only]

Each variant is ``bench_vec2text.py tuning=12 n_gaps=0 plain_search=false`` with a few search
overrides: 12 held-out STS-B dev sentences that are not among the bench's 16
(:func:`gapfill.corpus.tuning_picks`), each inverted within the bench's 30 s budget. A variant
whose results file is missing (or named with ``--only``) runs, one at a time; then
``results/vec2text_tuning/tuning.{json,md}`` lists every variant's mean cosine and seconds per
text, and the choice: the highest mean cosine whose mean seconds stay within the budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

from embshared.bench import machine_facts, write_results
from embshared.runtime import repo_root, setup_logging

HERE = repo_root() / "gapfill" / "bench"
RESULTS = HERE / "results" / "vec2text_tuning"
BUDGET = 30.0

#: tag -> (overrides of bench_vec2text.py, what changed). Variants before "reserve_" ran before
#: BUDGET_RESERVE existed (their stages were planned into the whole 30 s).
VARIANTS: dict[str, tuple[list[str], str]] = {
    "int8_off": (["search.lm_int8=false", "search.word_screen=0"], "fp32 LMs (the previous inversion)"),
    "int8": (["search.lm_int8=true", "search.word_screen=0"], "int8 copies of the LMs propose tokens"),
    "int8_screen8": (["search.word_screen=8"], "int8 + word edits screen 24 words to 8"),
    "int8_screen4": (["search.word_screen=4"], "int8 + word edits screen 24 words to 4"),
    "int8_screen8_top48": (["search.word_screen=8", "search.word_top_k=48"], "int8 + screen 48 words to 8"),
    "int8_screen8_rounds12": (["search.word_screen=8", "search.word_rounds=12"], "int8 + screen 8, 12 word rounds"),
    "reserve_screen4": (["search.word_screen=4"], "screen 4, stages planned into 95% of the budget"),
    "reserve_screen4_top48": (
        ["search.word_screen=4", "search.word_top_k=48"],
        "screen 48 words to 4, planned into 95% of the budget",
    ),
    "rerun_chosen": (
        ["search.polish=false", "search.fluent_margin=0.02"],
        "the defaults chosen on 2026-12-02 again, with the model retrained on 2026-12-03",
    ),
    "polish": (
        ["search.polish=true", "search.fluent_margin=0.02"],
        "+ word edits of the kept text in the time left after the last step",
    ),
    "polish_margin01": (
        ["search.polish=true", "search.fluent_margin=0.01"],
        "+ polish, steps keep the most fluent within 0.01 cosine of the closest (was 0.02)",
    ),
}


#: the variant that reruns the defaults chosen before (on the earlier model): whenever the model
#: is retrained it runs again, and only the variants with its model compete for the choice
MODEL_BASELINE = "rerun_chosen"


def run(tag: str) -> None:
    overrides, _ = VARIANTS[tag]
    cmd = [sys.executable, str(HERE / "bench_vec2text.py"), "tuning=12", "n_gaps=0", "plain_search=false"]
    subprocess.run([*cmd, f"tag={tag}", *overrides], check=True)


def summarize() -> dict:
    rows = {}
    for tag, (overrides, what) in VARIANTS.items():
        path = RESULTS / f"{tag}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        cos = [e["final_cosine"] for e in r["examples"]]
        step1 = next((v for k, v in r["table"].items() if k.startswith("step 1")), None)
        rows[tag] = {
            "model_steps": r.get("training", {}).get("steps"),
            "what": what,
            "overrides": overrides,
            "mean_cosine": float(np.mean(cos)),
            "share_ge_0.90": float(np.mean(np.asarray(cos) >= 0.9)),
            "seconds_mean": r["seconds_per_text"],
            "seconds_max": r["seconds_per_text_max"],
            "texts_reaching_step_1": step1["texts_reaching_step"] if step1 else 0,
        }
    # only variants run with the same trained model compete: the model in use is the one the
    # chosen defaults were last run with (retraining changes every row)
    current = rows.get(MODEL_BASELINE, {}).get("model_steps")
    within = {
        t: v
        for t, v in rows.items()
        if v["seconds_mean"] <= BUDGET and (current is None or v["model_steps"] == current)
    }
    choice = max(within, key=lambda t: within[t]["mean_cosine"]) if within else None
    return {"budget_seconds": BUDGET, "rows": rows, "choice": choice}


def markdown(res: dict) -> str:
    lines = [
        "# vec2text inversion settings, chosen on 12 tuning sentences (never the bench's 16)",
        "",
        f"Each row: `bench_vec2text.py tuning=12 n_gaps=0 plain_search=false` with its overrides, {BUDGET:g} s "
        "budget per text, the bench's model. Choice: the highest mean cosine whose mean seconds stay "
        "within the budget.",
        "",
        f"Only variants run with the same model as `{MODEL_BASELINE}` (the earlier defaults, rerun after "
        "the model was retrained) compete; the model column gives its training steps.",
        "",
        "| variant | what | overrides | model | mean cosine | share ≥ 0.90 | s/text mean | max | texts reaching step 1 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for tag, r in res["rows"].items():
        mark = " **(chosen)**" if tag == res["choice"] else ""
        lines.append(
            f"| {tag}{mark} | {r['what']} | {' '.join(r['overrides']) or '(defaults)'} | {r['model_steps']} steps | "
            f"{r['mean_cosine']:.4f} | "
            f"{r['share_ge_0.90']:.2f} | {r['seconds_mean']:.1f} | {r['seconds_max']:.1f} | "
            f"{r['texts_reaching_step_1']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="variants to (re)run")
    parser.add_argument("--report-only", action="store_true", help="only rewrite tuning.{json,md}")
    args = parser.parse_args()
    if not args.report_only:
        for tag in args.only or [t for t in VARIANTS if not (RESULTS / f"{t}.json").is_file()]:
            run(tag)
    res = summarize()
    write_results(
        RESULTS, "tuning", res, markdown(res), command="python gapfill/bench/tune_vec2text.py", facts=machine_facts()
    )
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
