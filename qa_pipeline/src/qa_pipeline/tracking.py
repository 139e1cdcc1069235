"""The progress and metrics files of a fine-tuning run, as the guide documents them.

- ``training_progress.json``: status, timestamps, duration, data sizes, step counts and the
  final model's path; rewritten (atomically) at the start, at every log and save, and at
  the end (``training_completed: true``) or on failure (``status: "failed"``).
- ``training_metrics.jsonl``: one line per trainer log event: ``timestamp``, ``epoch``,
  ``step``, and ``loss`` / ``learning_rate`` / ``grad_norm`` or the evaluation metrics
  (``eval_ndcg@10``, ...).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from embshared.files import write_json, write_jsonl

PROGRESS_FILE = "training_progress.json"
METRICS_FILE = "training_metrics.jsonl"
#: keys every training_progress.json has.
PROGRESS_KEYS = (
    "status",
    "training_completed",
    "started_at",
    "updated_at",
    "completed_at",
    "duration_seconds",
    "base_model",
    "loss_function",
    "num_epochs",
    "train_examples",
    "eval_examples",
    "train_papers",
    "eval_papers",
    "global_step",
    "max_steps",
    "last_checkpoint",
    "resumed_from",
    "final_model_path",
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ProgressTracker:
    """Keeps ``training_progress.json`` up to date and appends to ``training_metrics.jsonl``.

    Args:
        output_dir: the run's output folder.
        info: fixed facts of the run (base model, loss, data sizes, final model path...).
    """

    def __init__(self, output_dir: str | os.PathLike, info: dict[str, Any]):
        self.output_dir = Path(output_dir)
        self.progress: dict[str, Any] = dict.fromkeys(PROGRESS_KEYS)
        self.progress.update(info)
        self._start: datetime | None = None

    @property
    def progress_path(self) -> Path:
        return self.output_dir / PROGRESS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / METRICS_FILE

    def _write(self) -> None:
        self.progress["updated_at"] = now()
        if self._start is not None:
            elapsed = datetime.now(timezone.utc) - self._start
            self.progress["duration_seconds"] = round(elapsed.total_seconds(), 1)
        write_json(self.progress_path, self.progress)

    def start(self, resumed_from: str | None = None) -> None:
        """Mark the run as running; on a resume, drop metric lines logged after the checkpoint."""
        self._start = datetime.now(timezone.utc)
        self.progress.update(
            status="running",
            training_completed=False,
            started_at=now(),
            completed_at=None,
            resumed_from=resumed_from,
        )
        if resumed_from and self.metrics_path.exists():
            step = int(Path(resumed_from).name.rsplit("-", 1)[-1])
            kept = [json.loads(line) for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if line]
            write_jsonl(self.metrics_path, [row for row in kept if row.get("step", 0) <= step])
        elif not resumed_from and self.metrics_path.exists():
            self.metrics_path.unlink()
        self._write()

    def log(self, step: int, epoch: float | None, logs: dict[str, Any]) -> dict[str, Any]:
        """Append one metrics line and update the step count; returns the line."""
        row: dict[str, Any] = {
            "timestamp": now(),
            "epoch": round(epoch, 4) if epoch is not None else None,
            "step": step,
        }
        for key, value in logs.items():
            if not isinstance(value, (int, float)) or key == "epoch":
                continue
            name = key.replace("eval_test_", "eval_") if key.startswith("eval_test_") else key
            row[name] = value
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        self.progress["global_step"] = step
        self._write()
        return row

    def update(self, **values: Any) -> None:
        self.progress.update(values)
        self._write()

    def finish(self, **values: Any) -> None:
        """Mark the run completed."""
        self.progress.update(values, status="completed", training_completed=True, completed_at=now())
        self._write()

    def fail(self, error: str) -> None:
        self.progress.update(status="failed", training_completed=False, error=error)
        self._write()


class ProgressCallback(TrainerCallback):
    """Feeds trainer events to a :class:`ProgressTracker` (main process only)."""

    def __init__(self, tracker: ProgressTracker):
        self.tracker = tracker

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.tracker.update(max_steps=state.max_steps, global_step=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.tracker.log(state.global_step, state.epoch, logs)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.tracker.update(last_checkpoint=str(checkpoint), global_step=state.global_step)
