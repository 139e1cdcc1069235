"""``GET /metrics`` in the Prometheus text format, with prometheus_client (:class:`Metrics`).

Each app has its own registry (not the library's global one), so several apps in one process
(tests, the bench) do not share counts. Exported (all prefixed ``embed_serve_``):

- ``requests_total{route,method,status}`` and ``request_seconds{route}`` (a latency histogram),
  counted by :class:`MetricsMiddleware` around everything, refusals included; ``route`` is the
  route's path, or "other" (so unknown paths do not make new series);
- ``requests_in_flight``, ``queue_texts`` (texts waiting for the model, read at scrape time);
- ``batch_texts``, ``batch_padded_tokens``, ``batch_seconds``: each forward pass of the batcher;
- ``reloads_total{outcome}``: hot swaps, "ok" or "failed".
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: the routes named as such in the labels (anything else is "other")
ROUTES = ("/", "/health", "/metrics", "/v1/models", "/v1/embeddings", "/search", "/admin/reload")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768)


class Metrics:
    """The server's counters, gauges and histograms, in a registry of its own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        r, p = self.registry, "embed_serve_"
        self.requests = Counter(p + "requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            p + "request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.in_flight = Gauge(p + "requests_in_flight", "HTTP requests being answered", registry=r)
        self.queue = Gauge(p + "queue_texts", "texts waiting for the model", registry=r)
        self.batch_texts = Histogram(p + "batch_texts", "texts per forward pass", buckets=SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            p + "batch_padded_tokens", "texts x longest text per forward pass", buckets=TOKEN_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            p + "batch_seconds", "seconds per forward pass", buckets=LATENCY_BUCKETS, registry=r
        )
        self.reloads = Counter(p + "reloads", "hot swaps of the model or index", ["outcome"], registry=r)

    def watch_queue(self, depth) -> None:
        """Read the queue depth from ``depth()`` at each scrape."""
        self.queue.set_function(depth)

    def on_batch(self, texts: int, padded_tokens: int, seconds: float) -> None:
        self.batch_texts.observe(texts)
        self.batch_tokens.observe(padded_tokens)
        self.batch_seconds.observe(seconds)

    def on_reload(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: nothing is buffered)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = {"code": 500}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
            self.metrics.requests.labels(route, scope["method"], str(status["code"])).inc()
