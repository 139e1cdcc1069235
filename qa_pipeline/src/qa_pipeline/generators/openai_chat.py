"""Questions from any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server...).

One ``POST {base_url}/chat/completions`` per passage asks for ``n`` questions (or claims), one
per line. Busy or failing servers (429, 5xx, timeouts) are retried with a doubling back-off;
a server that still fails, or cannot be reached, stops the run with a one-line error naming
the URL, since every later passage would fail too (the papers already written are kept).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import httpx

from embshared.errors import UserError
from qa_pipeline.generators.base import Candidate, chat_messages
from qa_pipeline.passages import Passage

logger = logging.getLogger(__name__)


@dataclass
class OpenAIChatConfig:
    """Settings of the OpenAI-compatible generator."""

    base_url: str = field(default="http://localhost:8000/v1", metadata={"help": "e.g. http://localhost:11434/v1"})
    model: str = field(default="", metadata={"help": "the served model's name (required)"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding the key"})
    temperature: float = 0.7
    max_tokens: int = 200
    timeout: float = 120.0
    max_retries: int = 3
    retry_delay: float = 2.0


class EndpointUnavailable(UserError):
    """The chat endpoint cannot be reached."""


class OpenAIChatGenerator:
    """Generate questions through an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        cfg: endpoint settings.
        n: questions per passage.
        transport: an ``httpx`` transport (tests pass a mock).
        kind: "question" or "claim": what the prompt asks for.
    """

    name = "openai"

    def __init__(
        self, cfg: OpenAIChatConfig, n: int = 2, transport: httpx.BaseTransport | None = None, kind: str = "question"
    ):
        self.cfg = cfg
        self.kind = kind
        self.n = n
        self.transport = transport
        self.model_name = cfg.model

    def _request(self, client: httpx.Client, passage: Passage) -> str:
        body = {
            "model": self.cfg.model,
            "messages": chat_messages(passage.text, self.n, self.kind),
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }
        url = f"{self.cfg.base_url.rstrip('/')}/chat/completions"
        delay = self.cfg.retry_delay
        for attempt in range(self.cfg.max_retries + 1):
            try:
                response = client.post(url, json=body)
            except httpx.ConnectError:
                raise EndpointUnavailable(f"chat endpoint {url} is not reachable (connection refused)") from None
            except httpx.TimeoutException:
                response = None
            if response is not None and response.status_code == 200:
                try:
                    return response.json()["choices"][0]["message"]["content"] or ""
                except (ValueError, KeyError, IndexError, TypeError):
                    logger.warning("%s: unexpected answer %r", url, response.text[:200])
                    return ""
            status = "timeout" if response is None else f"HTTP {response.status_code}"
            retryable = response is None or response.status_code in (429, 500, 502, 503, 504)
            if response is not None and response.status_code in (401, 403, 404):
                raise EndpointUnavailable(f"{url}: {status} {response.text[:200]} (check the URL, model and key)")
            if not retryable:
                logger.warning("%s: %s for passage %s; skipped", url, status, passage.passage_id)
                return ""
            if attempt == self.cfg.max_retries:
                # every later passage would fail the same way: stop, keeping the papers already written
                raise EndpointUnavailable(
                    f"chat endpoint {url} failed: {status} on {attempt + 1} attempts "
                    f"(back-off from {self.cfg.retry_delay:g} s); the papers finished so far are kept, rerun to go on"
                )
            logger.info("%s: %s; retrying in %.1f s", url, status, delay)
            time.sleep(delay)
            delay *= 2
        return ""

    def generate(self, passages: list[Passage]) -> list[list[Candidate]]:
        if not self.cfg.model:
            raise UserError("openai.model is empty: set the served model's name (openai.model=...)")
        key = os.environ.get(self.cfg.api_key_env, "") or "none"
        headers = {"Authorization": f"Bearer {key}"}
        out: list[list[Candidate]] = []
        with httpx.Client(timeout=self.cfg.timeout, transport=self.transport, headers=headers) as client:
            for passage in passages:
                text = self._request(client, passage)
                lines = [ln for ln in text.split("\n") if ln.strip()]
                out.append([Candidate(question=ln, kind=self.kind) for ln in lines[: self.n]])
        return out
