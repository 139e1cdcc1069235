"""Train a record embedder from scratch on a JSONL file.

    python -m embedding_model.cli.train your_data.jsonl --output my_model.pt \
        [--epochs 15 --batch-size 64 --config config/default.yaml] [key=value ...]

Writes the model file and, beside it, ``<name>.config.yaml`` (the resolved config),
``<name>.train.json`` (loss history, held-out self-retrieval per epoch, speed) and
``<name>.loss.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embedding_model.cli.common import add_common_args, report_skipped, start
from embedding_model.config import JsonEmbedConfig, build_config
from embedding_model.model_file import save_model
from embedding_model.records import load_records
from embedding_model.training import TrainResult, train
from embshared.config import save_config
from embshared.errors import UserError, cli_entry
from embshared.files import write_json
from embshared.runtime import pick_device, seed_everything

#: command-line flag -> config key (flags override the file, key=value overrides override both)
FLAG_KEYS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "max_chars": "max_chars",
    "temperature": "temperature",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embedding_model.cli.train",
        description="Train a character-level JSON record embedder from scratch (contrastive, no labels).",
    )
    parser.add_argument("data", help="training records: JSONL (one JSON object per line), JSON array or CSV")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. char_dim=48")
    parser.add_argument("--output", "-o", required=True, help="model file to write, e.g. my_model.pt")
    parser.add_argument("--config", default=None, help="YAML config (default: config/default.yaml)")
    parser.add_argument("--epochs", type=int, help="override 'epochs'")
    parser.add_argument("--batch-size", type=int, help="override 'batch_size'")
    parser.add_argument("--lr", type=float, help="override 'lr'")
    parser.add_argument("--seed", type=int, help="override 'seed'")
    parser.add_argument("--max-chars", type=int, help="override 'max_chars'")
    parser.add_argument("--temperature", type=float, help="override 'temperature'")
    add_common_args(parser)
    return parser


def sidecar(output: Path, suffix: str) -> Path:
    """``my_model.pt`` -> ``my_model<suffix>``."""
    return output.with_name(output.stem + suffix)


def plot_history(result: TrainResult, path: Path) -> None:
    """Loss per logged step and held-out self-retrieval per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from embshared.files import atomic_write

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if result.history:
        left.plot([h["step"] for h in result.history], [h["loss"] for h in result.history], marker=".")
    left.set(xlabel="step", ylabel="NT-Xent loss", title="training loss")
    epochs = [v["epoch"] for v in result.validation if "accuracy@1" in v]
    if epochs:
        right.plot(epochs, [v["accuracy@1"] for v in result.validation if "accuracy@1" in v], label="accuracy@1")
        right.plot(epochs, [v["mrr@10"] for v in result.validation if "mrr@10" in v], label="MRR@10")
        right.legend()
    right.set(xlabel="epoch", ylim=(0, 1), title="held-out self-retrieval")
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    start(args)
    flags = [f"{key}={getattr(args, flag)}" for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None]
    cfg: JsonEmbedConfig = build_config(args.config, flags + list(args.overrides))
    output = Path(args.output)
    if output.is_dir():
        raise UserError(f"{output}: is a folder; --output names the model file to write (e.g. my_model.pt)")
    seed_everything(cfg.seed)
    device = pick_device(args.device or cfg.device or None)

    records = load_records(args.data, cfg.ignore_fields, skip_invalid=args.skip_invalid, max_chars=cfg.max_chars)
    report_skipped(records.path, records.skipped)
    if len(records) < 2:
        raise UserError(f"{records.path}: training needs at least 2 records with text, found {len(records)}")

    embedder, result = train(cfg, records.segments, device=device, show_progress=not args.quiet)
    final = result.validation[-1] if result.validation else {}
    info = {
        "train_data": str(Path(args.data).resolve()),
        "records": len(records),
        "skipped": records.skipped,
        "steps": result.steps,
        "train_records_per_second": round(result.records_per_second, 1),
        "final_validation": final,
    }
    save_model(output, embedder.encoder, embedder.vocab, cfg, info)
    save_config(cfg, sidecar(output, ".config.yaml"))
    write_json(
        sidecar(output, ".train.json"),
        {**info, "seconds": round(result.seconds, 2), "history": result.history, "validation": result.validation},
    )
    plot_history(result, sidecar(output, ".loss.png"))
    summary = f"wrote {output} ({len(records)} records, {result.steps} steps, {result.seconds:.0f} s"
    if "accuracy@1" in final:
        summary += f", held-out self-retrieval accuracy@1 {final['accuracy@1']:.3f}"
    print(summary + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
