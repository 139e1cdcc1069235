"""The server's state: the engine in use, the batcher, and the hot swap (:class:`ServeState`).

A reload (``POST /admin/reload`` or SIGHUP) loads the new index, and the new model if the
index was built with other weights, beside the ones in use, runs one text through the new
model on the worker, then swaps the engine with one assignment. A request takes the engine
once, when it starts, and keeps it to the end: the requests in flight during a swap finish on
the old engine, which is freed when the last of them is done. A failed reload leaves the old
engine serving. One reload runs at a time (another meanwhile: 409).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time

import numpy as np

from embedding_ft.serve.batcher import Batcher, QueueFull
from embedding_ft.serve.engine import Engine
from embedding_ft.serve.errors import ServeError, one_line
from embedding_ft.serve.settings import ServeSettings
from embshared.errors import UserError

logger = logging.getLogger("embedding_ft.serve")


class ServeState:
    """The engine in use and what replaces it.

    Args:
        engine: the loaded model and index.
        settings: the server's limits.
        source: what a reload without arguments (SIGHUP) loads again: {"index", "model", "backend"}
            (default: the engine's index, the model and back end it was loaded with).
        on_reload: called with "ok" or "failed" after each reload (metrics).
    """

    def __init__(self, engine: Engine, settings: ServeSettings, source: dict | None = None, on_reload=None):
        self.engine = engine
        self.settings = settings
        if settings.served_name and engine is not None:
            engine.name = settings.served_name
        self.source = dict(source or {"index": str(engine.index), "model": None, "backend": None})
        self.batcher: Batcher | None = None
        self.on_reload = on_reload
        self.loaded_at = time.time()
        self._reloading = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.batcher is not None

    def current(self) -> Engine:
        """The engine a request runs on from start to end (taken once)."""
        if not self.ready:
            raise ServeError(503, "the model is not loaded yet", {"Retry-After": "5"})
        return self.engine

    async def embed(self, engine: Engine, texts: list[str], lengths: list[int]) -> np.ndarray:
        """(n, dim) unit vectors of ``texts``, computed by the batcher's worker with ``engine``'s model."""
        try:
            future = self.batcher.submit(engine.replicas, texts, lengths)
        except QueueFull as exc:
            raise ServeError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        except RuntimeError as exc:  # shutting down
            raise ServeError(503, str(exc)) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise ServeError(503, "timed out waiting for the model", {"Retry-After": "5"}) from None

    def reload(self, index: str | None = None, model: str | None = None, backend: str | None = None) -> dict:
        """Load ``index`` (default: the one in use) with ``model`` / ``backend`` beside the engine in use; swap."""
        if not self._reloading.acquire(blocking=False):
            raise ServeError(409, "a reload is already running")
        start = time.perf_counter()
        try:
            asked = {"index": index or self.source["index"], "model": model, "backend": backend}
            if index is None and model is None and backend is None:
                asked = dict(self.source)
            new = self._load(**asked)
            self.engine = new  # the swap: requests that took the old engine finish on it
            self.source = asked
            self.loaded_at = time.time()
        except Exception:
            self._notify("failed")
            raise
        finally:
            self._reloading.release()
        self._notify("ok")
        seconds = round(time.perf_counter() - start, 3)
        logger.info("reloaded %s in %.2f s (model %s)", new.index, seconds, "kept" if new.reused_model else "loaded")
        return {"reloaded": True, **new.describe(), "model_reloaded": not new.reused_model, "seconds": seconds}

    def _load(self, index: str, model: str | None, backend: str | None) -> Engine:
        """The new engine; the old model is kept when the new index was built with the same weights."""
        from embedding_ft.index import read_meta

        old = self.engine
        keep = old is not None and model is None and backend is None and old.same_model(read_meta(index))
        new = Engine(
            index,
            model,
            backend,
            encoder=old.replicas if keep else None,
            served_name=self.settings.served_name,
            workers=self.settings.workers,
        )
        if not keep and self.batcher is not None:  # the new model must work before it serves
            try:
                warm = self.batcher.submit(new.replicas, ["warm up"], [4])
            except QueueFull as exc:
                raise ServeError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from None
            warm.result(timeout=self.settings.request_timeout_s)
        return new

    def reload_in_background(self) -> threading.Thread:
        """Reload what :attr:`source` names on another thread, logging the outcome (SIGHUP)."""

        def run():
            try:
                self.reload()
            except ServeError as exc:
                logger.warning("reload skipped: %s", exc)
            except UserError as exc:
                logger.error("reload failed, still serving %s: %s", self.engine.index, one_line(str(exc)))
            except Exception:
                logger.exception("reload failed, still serving %s", self.engine.index)

        thread = threading.Thread(target=run, name="embed-reload", daemon=True)
        thread.start()
        return thread

    def _notify(self, outcome: str) -> None:
        if self.on_reload is not None:
            self.on_reload(outcome)


def install_sighup(state: ServeState) -> None:
    """SIGHUP reloads the index (and model) in :attr:`ServeState.source` (call from the main thread)."""
    signal.signal(signal.SIGHUP, lambda signum, frame: state.reload_in_background())
