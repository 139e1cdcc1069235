"""What a training run leaves on disk: the model file and, beside it, ``<name>.config.yaml``
(the resolved config), ``<name>.train.json`` (loss history, held-out self-retrieval per epoch,
speed) and ``<name>.loss.png``."""

from __future__ import annotations

import os
from pathlib import Path

from embedding_model.config import JsonEmbedConfig
from embedding_model.embedder import JsonEmbedder
from embedding_model.model_file import save_model
from embedding_model.records import RecordSet
from embedding_model.training import TrainResult
from embshared.config import save_config
from embshared.files import atomic_write, write_json


def sidecar(output: Path, suffix: str) -> Path:
    """``my_model.pt`` -> ``my_model<suffix>``."""
    return output.with_name(output.stem + suffix)


def plot_history(result: TrainResult, path: Path) -> None:
    """Loss per logged step and held-out self-retrieval per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if result.history:
        left.plot([h["step"] for h in result.history], [h["loss"] for h in result.history], marker=".")
    left.set(xlabel="step", ylabel="loss" if result.teacher else "NT-Xent loss", title="training loss")
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


def write_training_outputs(
    output: str | os.PathLike,
    embedder: JsonEmbedder,
    cfg: JsonEmbedConfig,
    result: TrainResult,
    records: RecordSet,
    data_path: str | os.PathLike,
) -> dict:
    """Write the model file and its three companions; returns the info stored in the model file."""
    output = Path(output)
    info = {
        "train_data": str(Path(data_path).resolve()),
        "records": len(records),
        "skipped": records.skipped,
        "steps": result.steps,
        "train_records_per_second": round(result.records_per_second, 1),
        "final_validation": result.validation[-1] if result.validation else {},
    }
    if result.teacher:
        info["teacher"] = result.teacher  # its name and how many texts it embedded; no weights, no vectors
    save_model(output, embedder.encoder, embedder.vocab, cfg, info)
    save_config(cfg, sidecar(output, ".config.yaml"))
    write_json(
        sidecar(output, ".train.json"),
        {**info, "seconds": round(result.seconds, 2), "history": result.history, "validation": result.validation},
    )
    plot_history(result, sidecar(output, ".loss.png"))
    return info


def training_summary(output: str | os.PathLike, info: dict, result: TrainResult) -> str:
    """``wrote my_model.pt (N records, S steps, T s, held-out self-retrieval accuracy@1 A)``."""
    summary = f"wrote {output} ({info['records']} records, {result.steps} steps, {result.seconds:.0f} s"
    if result.teacher:
        summary += f", distilled from {result.teacher['name']}"
    final = info["final_validation"]
    if "accuracy@1" in final:
        summary += f", held-out self-retrieval accuracy@1 {final['accuracy@1']:.3f}"
    return summary + ")"
