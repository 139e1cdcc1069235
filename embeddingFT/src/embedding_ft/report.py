"""Run reports: the summary a run writes (metrics.json), its Markdown table and the training curve PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embshared.evaluate import format_table

SYSTEM_NAMES = {
    "bm25": "BM25",
    "base": "base model",
    "finetuned": "fine-tuned",
    "hybrid_base": "hybrid (BM25 + base), fixed fusion",
    "hybrid_finetuned": "hybrid (BM25 + fine-tuned), fixed fusion",
    "hybrid_base_tuned": "hybrid (BM25 + base), fusion chosen on dev",
    "hybrid_finetuned_tuned": "hybrid (BM25 + fine-tuned), fusion chosen on dev",
}
#: hybrid rows first: what a user runs is the hybrid
ORDER = ["hybrid_finetuned_tuned", "hybrid_base_tuned", "hybrid_finetuned", "hybrid_base", "finetuned", "base", "bm25"]


@dataclass
class RunFacts:
    """Everything a run's summary is built from (one object, so the summary has one builder)."""

    run: str
    cfg: Any  # TrainConfig
    data_format: str
    loss: Any  # LossChoice
    n_train_examples: int
    n_test: int
    n_dev: int
    n_rest: int
    eval_kind: str
    primary: str | None
    data: dict
    train: dict
    cost: dict
    systems: dict  # system -> embedding_ft.evaluation.SystemScores
    fusions: dict  # "base" / "finetuned" -> FusionSetting or None
    config: dict


def build_summary(facts: RunFacts) -> dict:
    """The run summary written as metrics.json: metrics over all held-out queries, on dev and on rest,
    the per-query primary metric of every system, the fusions chosen on dev, the cost."""
    cfg, systems = facts.cfg, facts.systems
    per_query = {name: s.per_query for name, s in systems.items() if s.per_query}
    return {
        "run": facts.run,
        "dataset": cfg.dataset_name,
        "format": facts.data_format,
        "base_model": cfg.model_name,
        "loss": facts.loss.spec.name,
        "loss_reason": facts.loss.reason,
        "n_train_examples": facts.n_train_examples,
        "n_train_rows": facts.train["n_rows"],
        "n_test": facts.n_test,
        "n_dev": facts.n_dev,
        "n_rest": facts.n_rest,
        "eval_kind": facts.eval_kind,
        "primary_metric": facts.primary,
        "hybrid_weight": cfg.evaluation.hybrid_weight if "hybrid_base" in systems else None,
        "merge_with_base": cfg.merge_with_base,
        "data": facts.data,
        "train": facts.train,
        "cost": facts.cost,
        "metrics": {name: s.means for name, s in systems.items()},
        "metrics_dev": {name: s.dev for name, s in systems.items() if s.dev},
        "metrics_rest": {name: s.rest for name, s in systems.items() if s.rest},
        "fusion": {k: v.to_dict() for k, v in facts.fusions.items() if v is not None},
        "per_query": {"metric": facts.primary, **per_query} if per_query else {},
        "config": facts.config,
    }


def format_report(summary: dict) -> str:
    """A Markdown report: the metrics of BM25, the base and the fine-tuned model, and the run facts."""
    metrics = summary["metrics"]
    lines = [f"# Run {summary['run']}", ""]
    lines.append(
        f"Data `{summary['dataset']}` ({summary['format']}): {summary['n_train_examples']} training examples "
        f"({summary['n_train_rows']} rows after mining), {summary['n_test']} held-out "
        f"{'queries' if summary['eval_kind'] == 'retrieval' else 'pairs'}. Base model `{summary['base_model']}`, "
        f"loss {summary['loss']} ({summary.get('loss_reason', 'set in the config')})."
    )
    if summary.get("merge_with_base"):
        lines.append(
            f"Final weights: {summary['merge_with_base']:g} x base + {1 - summary['merge_with_base']:g} x fine-tuned."
        )
    lines.append("")
    if metrics:
        lines += _metric_tables(summary)
    else:
        lines.append("No held-out split (test_size=0): nothing evaluated.")
    t = summary["train"]
    if t.get("adapter") == "head":
        training = (
            f"Training: a projection head over the frozen base (adapter: head), epoch {t['best_epoch']} of "
            f"{t['epochs']} kept by validation loss, {t['seconds']:.0f} s with {t['encode_seconds']:.0f} s of "
            f"encoding, {t['torch_threads']} threads."
        )
    else:
        training = (
            f"Training: {t['steps']} steps, {t['seconds']:.0f} s, {t['train_samples_per_second'] or 0:.2f} "
            f"samples/s, device {t['device']}, bf16 {t['bf16']}, {t['torch_threads']} threads."
        )
    lines += ["", training]
    data = summary.get("data", {})
    if data.get("pseudo_queries"):
        lines.append(f"Pseudo-queries: {data['pseudo_queries']} pairs made from documents no training query points at.")
    if data.get("mined"):
        lines.append(
            f"Mining: {data['mined_rows']} rows in {data['mining_seconds']:.0f} s (0 s means the cache was used)."
        )
    audit = data.get("false_negative_audit")
    if audit:
        lines.append(
            f"False-negative audit: {audit['suspects']} of {audit['negatives']} mined negatives "
            f"({100 * audit['suspect_share']:.1f}%) look like unlabelled positives ({audit['above_positive']} score "
            f"above their positive, {audit['top10_bm25_and_dense']} in both BM25's and the model's top 10; median "
            f"rank of the negatives {audit['median_dense_rank_of_negatives']}); examples in "
            f"{audit.get('examples_file', '(not written)')}."
        )
    cost = summary.get("cost")
    if cost:
        line = f"Cost: whole run {cost['run_seconds']:.0f} s, peak memory {cost['peak_rss_gb']:.2f} GB"
        if cost.get("estimated_peak_gb"):
            line += f" (estimated {cost['estimated_peak_gb']:.1f} GB)"
        est = cost.get("training", {})
        if est.get("estimate_seconds"):
            line += (
                f"; training estimated at {est['estimate_seconds']:.0f} s after its first steps, took "
                f"{est['actual_seconds']:.0f} s ({100 * est['estimate_error']:+.0f}%)"
            )
        if est.get("prior_estimate_seconds"):
            line += f"; the cached calibration said {est['prior_estimate_seconds']:.0f} s ({100 * est['prior_estimate_error']:+.0f}%)"
        lines.append(line + ".")
    return "\n".join(lines) + "\n"


def _ordered(metrics: dict) -> dict:
    keys = [k for k in ORDER if k in metrics] + [k for k in metrics if k not in ORDER]
    return {SYSTEM_NAMES.get(k, k): metrics[k] for k in keys}


def _metric_tables(summary: dict) -> list[str]:
    """The rest table first (reported, never chosen on), then dev (where the fusion was chosen), then all."""
    lines: list[str] = []
    rest, dev, metrics = summary.get("metrics_rest"), summary.get("metrics_dev"), summary["metrics"]
    if rest:
        lines += [
            f"**Rest** ({summary['n_rest']} held-out queries, never chosen on):",
            "",
            format_table(_ordered(rest)),
            "",
            f"Dev ({summary['n_dev']} held-out queries: the fusion and the best checkpoint are chosen here):",
            "",
            format_table(_ordered(dev)),
            "",
            "All held-out queries:",
            "",
        ]
    lines.append(format_table(_ordered(metrics)))
    if summary.get("hybrid_weight") is not None:
        lines.append(
            f"\nFixed fusion: convex fusion of z-scored BM25 and cosine scores, dense weight "
            f"{summary['hybrid_weight']:g} (the config's, never tuned)."
        )
    for system, fusion in summary.get("fusion", {}).items():
        lines.append(f"Fusion chosen on dev for the {system} model: {_describe_fusion(fusion)}.")
    if "finetuned" in summary.get("fusion", {}):
        lines.append(
            "The fine-tuned model's is saved beside it (final_model/fusion.json): index-embed and search-embed use it."
        )
    primary = summary.get("primary_metric")
    table = rest or metrics
    if primary and "base" in table and "finetuned" in table:
        delta = table["finetuned"][primary] - table["base"][primary]
        where = "rest" if rest else "all held-out"
        lines += [
            "",
            f"{primary} ({where}): {table['base'][primary]:.4f} -> {table['finetuned'][primary]:.4f} ({delta:+.4f})",
        ]
    return lines


def _describe_fusion(fusion: dict) -> str:
    from embshared.fusion_choice import FusionSetting

    return FusionSetting.from_dict(fusion).describe()


def plot_training_curve(history: list[dict], path: Path, primary_metric: str | None = None) -> Path | None:
    """Plot training loss (and the primary eval metric, if logged) against the step; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    key = f"eval_test_{primary_metric}" if primary_metric else None
    evals = [(h["step"], h[key]) for h in history if key and key in h]
    if not losses and not evals:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    if losses:
        ax.plot(*zip(*losses), color="tab:blue", marker=".", label="training loss")
        ax.set_ylabel("training loss")
    ax.set_xlabel("step")
    if evals:
        ax2 = ax.twinx()
        ax2.plot(*zip(*evals), color="tab:orange", marker="o", label=f"held-out {primary_metric}")
        ax2.set_ylabel(f"held-out {primary_metric}")
    fig.legend(loc="upper right")
    ax.set_title("training curve")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
