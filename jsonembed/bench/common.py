"""Shared pieces of the jsonembed benchmarks: datasets as records, machine facts, result files."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from embedding_model.records import RecordSet, load_records, records_from
from embshared.io import Records, load_beir, load_cranfield

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RUNS_DIR = BENCH_DIR / "runs"


def scifact(folder: Path) -> tuple[RecordSet, dict[str, str], dict[str, dict[str, int]]]:
    """SciFact train split: records are the ``{"_id", "title", "text"}`` objects of corpus.jsonl."""
    beir = load_beir(folder, split="train")
    records = load_records(folder / "corpus.jsonl", ignore_fields=["_id"], id_field="_id")  # metadata is {}: no text
    return records, beir.queries, beir.qrels


def cranfield(folder: Path) -> tuple[RecordSet, dict[str, str], dict[str, dict[str, int]]]:
    """Cranfield 1400 as ``{"_id", "title", "author", "source", "text"}`` records.

    Two documents (471 and 995) are empty in the source file; they are skipped (one qrel
    names 995, so that judgement is unreachable for every system alike).
    """
    collection = load_cranfield(folder)
    rows = Records(collection.records, path=str(folder / "cran.all.1400"))
    records = records_from(rows, ignore_fields=["_id"], skip_invalid=True, id_field="_id")
    return records, collection.queries, collection.qrels


DATASETS = {"scifact": scifact, "cranfield": cranfield}


def machine_facts() -> dict:
    """Cores, torch threads, CPU model and load: the context every figure needs."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def machine_note(facts: dict, end_load: list[float] | None = None) -> str:
    """A Markdown paragraph on the machine, saying plainly that the cores were shared if they were."""
    load = facts["load_average_1_5_15"]
    text = (
        f"Machine: {facts['cpu']}, {facts['cores']} cores, torch {facts['torch']} with "
        f"{facts['torch_threads']} threads, CUDA {'yes' if facts['cuda'] else 'no'}. "
        f"Load average at the start: {load[0]} (1 min) / {load[1]} (5 min)"
    )
    if end_load:
        text += f", at the end: {end_load[0]} / {end_load[1]}"
    text += "."
    if max(load[:2] + (end_load or [0])[:2]) > 0.8 * (facts["cores"] or 1):
        text += (
            f" **The {facts['cores']} cores were shared with other engineers' jobs during this run**, so every "
            "time and rate here is lower (often several times lower) than on an idle machine; ratios between "
            "systems measured in the same run are the more reliable figures."
        )
    return text
