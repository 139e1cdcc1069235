"""One background training job at a time, in a thread, with progress the service can report."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class JobBusy(Exception):
    """A job is already running."""


@dataclass
class Job:
    """A background job: what it is, how far it got, how it ended."""

    kind: str
    state: str = "running"  # running | done | failed | cancelled
    step: int = 0
    total: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    def report(self, step: int, total: int, metrics: dict[str, Any]) -> None:
        """Progress callback handed to the training loops."""
        self.step, self.total = step, total
        self.metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def to_dict(self) -> dict[str, Any]:
        end = self.finished or time.time()
        return {
            "kind": self.kind,
            "state": self.state,
            "step": self.step,
            "total": self.total,
            "progress": round(self.step / self.total, 4) if self.total else 0.0,
            "metrics": self.metrics,
            "error": self.error,
            "elapsed_seconds": round(end - self.started, 2),
        }


class JobRunner:
    """Runs at most one job; ``start`` raises :class:`JobBusy` while one runs."""

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.current: Job | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None and self.current.state == "running"

    def start(self, kind: str, work: Callable[[Job], None]) -> Job:
        """Start ``work(job)`` in a thread. Its exceptions mark the job failed with their message."""
        with self._lock:
            if self.busy:
                raise JobBusy(f"a {self.current.kind} job is running; wait for it or cancel it")
            job = Job(kind)
            self.current = job

        def run() -> None:
            try:
                work(job)
                job.state = "cancelled" if job.cancelled() else "done"
            except Exception as exc:
                logger.error("%s job failed: %s\n%s", kind, exc, traceback.format_exc())
                job.state, job.error = "failed", str(exc) or type(exc).__name__
            finally:
                job.finished = time.time()

        self._thread = threading.Thread(target=run, name=f"gapfill-{kind}", daemon=True)
        self._thread.start()
        return job

    def cancel(self) -> bool:
        """Ask the running job to stop (it stops at its next progress check)."""
        if not self.busy:
            return False
        self.current.cancel_event.set()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
