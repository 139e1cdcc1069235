"""The one benchmark harness: machine facts with one key set, results written as JSON +
Markdown with the command that produced them, an on-disk embedding cache, and a timer.

Every ``make bench-*`` writes ``<subproject>/bench/results/<variant>/<bench>.{json,md}``
through :func:`write_results`, so a reader finds the same keys and the same "how to
reproduce" line in every results file.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from embshared.files import atomic_write, write_json


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def busy_cpu_seconds() -> float | None:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``), None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (servers once stopped and waited for)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine_facts() -> dict:
    """Cores, torch threads, CPU model, versions and the load at the start: the context every figure needs.

    Keys: ``cpu``, ``cores``, ``torch_threads``, ``torch``, ``cuda``, ``python``, ``load_average_start``
    (1/5/15 min); :func:`write_results` adds ``load_average_end``, ``peak_rss_gb`` and, from the
    ``_cpu_start`` reading taken here, ``other_cpu_seconds``: what the machine's cores ran besides
    this process and its children over the run.
    """
    import torch

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "load_average_start": load_average(),
        "_cpu_start": [time.time(), busy_cpu_seconds(), own_cpu_seconds()],
    }


def other_cpu(facts: dict) -> dict:
    """``other_cpu_seconds`` and ``run_seconds`` since :func:`machine_facts`: the machine's busy CPU time
    minus this process's and its ended children's ({} when unknown). A child still running when
    this is read counts as other: benches read it after their servers are stopped.
    """
    start = facts.get("_cpu_start")
    busy = busy_cpu_seconds()
    if not start or start[1] is None or busy is None:
        return {}
    other = (busy - start[1]) - (own_cpu_seconds() - start[2])
    return {"other_cpu_seconds": round(max(0.0, other), 1), "run_seconds": round(time.time() - start[0], 1)}


def peak_rss_gb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children) in GB (ru_maxrss is in KiB on Linux)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024**2, 3)


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float | None:
    """A process's resident memory in MiB from ``/proc/<pid>/status`` (``field``: VmRSS now, VmHWM its peak);
    None where there is no such process or no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


#: other processes busier than this share of one core on average over the run: the cores were shared
OTHER_CPU_SHARE = 0.1


def shared_cores(facts: dict) -> bool:
    """True if other jobs ran on the cores: by ``other_cpu_seconds`` when measured, else by the load.

    The load average alone cannot tell a bench's own servers and clients from other jobs (it
    flagged every ``make bench-serve`` as shared), nor a run that just ended from one running.
    """
    if facts.get("run_seconds"):
        return facts["other_cpu_seconds"] > OTHER_CPU_SHARE * facts["run_seconds"]
    loads = list(facts.get("load_average_start", [0, 0])[:2]) + list(facts.get("load_average_end", [0, 0])[:2])
    return max(loads) > 0.8 * (facts.get("cores") or 1)


def machine_note(facts: dict) -> str:
    """A Markdown paragraph on the machine, saying plainly that the cores were shared if they were."""
    start = facts.get("load_average_start", [0, 0])
    text = (
        f"Machine: {facts['cpu']}, {facts['cores']} cores, torch {facts['torch']} with "
        f"{facts['torch_threads']} threads, CUDA {'yes' if facts['cuda'] else 'no'}. "
        f"Load average at the start: {start[0]} (1 min) / {start[1]} (5 min)"
    )
    end = facts.get("load_average_end")
    if end:
        text += f", at the end: {end[0]} / {end[1]}"
    text += "."
    if facts.get("run_seconds"):
        text += (
            f" Other processes than the bench's own used {facts['other_cpu_seconds']} CPU s over its "
            f"{facts['run_seconds']} s."
        )
    if shared_cores(facts):
        text += (
            f" **The {facts['cores']} cores were shared with other jobs during this run**, so absolute times "
            "and rates are lower than on an idle machine; ratios between systems measured in the same run "
            "are the more reliable figures."
        )
    return text


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran this process, as a shell line (``python path/to/bench.py args``)."""
    argv = list(sys.argv if argv is None else argv)
    return "python " + " ".join(shlex.quote(a) for a in argv)


def write_results(
    folder: str | os.PathLike,
    name: str,
    report: dict,
    markdown: str,
    command: str | None = None,
    facts: dict | None = None,
) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.json`` and ``<name>.md`` atomically.

    The JSON gets ``command`` and ``machine`` (``facts`` with the end load and peak RSS
    added); the Markdown ends with the command and the machine note.

    Returns:
        The two paths.
    """
    folder = Path(folder)
    facts = dict(facts or machine_facts())
    facts.setdefault("load_average_end", load_average())
    facts.setdefault("peak_rss_gb", peak_rss_gb())
    facts.update(other_cpu(facts))
    facts.pop("_cpu_start", None)
    command = command or command_line()
    report = {**report, "command": command, "machine": facts}
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    write_json(json_path, report)
    text = markdown.rstrip() + f"\n\nReproduce: `{command}`\n\n{machine_note(facts)}\n"
    with atomic_write(md_path, "w") as handle:
        handle.write(text)
    return json_path, md_path


def cached_embeddings(
    texts: list[str], embed: Callable[[list[str]], np.ndarray], cache_dir: str | os.PathLike | None, model_name: str
) -> np.ndarray:
    """``embed(texts)``, stored in ``cache_dir`` under a hash of the model name and the texts.

    No ``cache_dir``: always compute. A cached array of the wrong length is recomputed.
    """
    if cache_dir is None:
        return np.asarray(embed(texts), dtype=np.float32)
    digest = hashlib.sha1("\n".join([model_name, *texts]).encode("utf-8")).hexdigest()[:16]
    path = Path(cache_dir) / f"emb-{digest}.npy"
    if path.is_file():
        emb = np.load(path)
        if emb.shape[0] == len(texts):
            return emb
    emb = np.asarray(embed(texts), dtype=np.float32)
    with atomic_write(path, "wb") as handle:
        np.save(handle, emb)
    return emb


@contextmanager
def timed(record: dict, key: str):
    """``with timed(results, "fit_s"):`` stores the block's wall time in seconds under ``key``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record[key] = round(time.perf_counter() - start, 3)


def percentiles(values_ms: Sequence[float]) -> dict:
    """p50 / p95 / mean of latencies in milliseconds."""
    values = np.asarray(values_ms, dtype=np.float64)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "mean_ms": round(float(values.mean()), 2),
        "n": int(values.size),
    }


def latency_percentiles(call, items: Sequence) -> dict:
    """:func:`percentiles` of ``call(item)`` for each item, one at a time, after one warm-up call."""
    call(items[0])
    times = []
    for item in items:
        start = time.perf_counter()
        call(item)
        times.append(1000 * (time.perf_counter() - start))
    return percentiles(times)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence], align: str | None = None) -> list[str]:
    """The lines of a Markdown table: ``header``, then one line per row (cells formatted with ``str``).

    ``align``: one letter per column, "l" or "r" (default: the first column left, the others right).
    """
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(rule) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]
