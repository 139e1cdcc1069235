"""Run reports: the before/after Markdown table and the training curve PNG."""

from __future__ import annotations

from pathlib import Path

from embshared.evaluate import format_table

SYSTEM_NAMES = {
    "bm25": "BM25",
    "base": "base model",
    "finetuned": "fine-tuned",
    "hybrid_base": "hybrid (BM25 + base)",
    "hybrid_finetuned": "hybrid (BM25 + fine-tuned)",
}
ORDER = ["bm25", "base", "finetuned", "hybrid_base", "hybrid_finetuned"]


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
        keys = [k for k in ORDER if k in metrics] + [k for k in metrics if k not in ORDER]
        rows = {SYSTEM_NAMES.get(k, k): metrics[k] for k in keys}
        lines.append(format_table(rows))
        if summary.get("hybrid_weight") is not None:
            lines.append(
                f"\nHybrid rows: convex fusion of z-scored BM25 and cosine scores, dense weight "
                f"{summary['hybrid_weight']:g} (fixed in the config, not tuned on these queries)."
            )
        primary = summary.get("primary_metric")
        if primary and "base" in metrics and "finetuned" in metrics:
            delta = metrics["finetuned"][primary] - metrics["base"][primary]
            lines += [
                "",
                f"{primary}: {metrics['base'][primary]:.4f} -> {metrics['finetuned'][primary]:.4f} ({delta:+.4f})",
            ]
    else:
        lines.append("No held-out split (test_size=0): nothing evaluated.")
    t = summary["train"]
    lines += [
        "",
        f"Training: {t['steps']} steps, {t['seconds']:.0f} s, {t['train_samples_per_second'] or 0:.2f} samples/s, "
        f"device {t['device']}, bf16 {t['bf16']}, {t['torch_threads']} threads.",
    ]
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
