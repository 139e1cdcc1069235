"""Workspace-wide test fixtures.

The hub is never contacted (HF_HUB_OFFLINE), the packaged MiniLM is loaded once per session,
and the public datasets beside the checkout are optional: tests that need them skip cleanly.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import select
import subprocess
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

from embshared.runtime import repo_root, shared_data_dir

REPO = repo_root()
SAMPLE_SCIFACT = REPO / "data" / "samples" / "scifact"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sample_scifact() -> Path:
    """The bundled SciFact sample (BEIR layout, always present)."""
    return SAMPLE_SCIFACT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests using it skip when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def minilm_session():
    """The packaged all-MiniLM-L6-v2, loaded once (import + load costs ~7 s)."""
    from embshared.models import load_sentence_transformer

    return load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")


@pytest.fixture
def minilm(minilm_session):
    """A private copy of the packaged MiniLM for tests that train or modify it."""
    return copy.deepcopy(minilm_session)


def save_tiny_base(folder: Path, seed: int = 0, max_seq_length: int = 64, dropout: float = 0.1) -> str:
    """A 2-layer, 32-dim BERT with MiniLM's tokenizer saved as a sentence-transformers folder
    (Transformer + mean Pooling + Normalize, like the real base); random weights from ``seed``.
    Returns the folder of the sentence-transformers model."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embshared.models import resolve_model

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("sentence-transformers/all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    BertModel(config).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    transformer = Transformer(str(folder / "bert"), max_seq_length=max_seq_length)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder / "st"))
    return str(folder / "st")


@pytest.fixture(scope="session")
def tiny_base_factory():
    """:func:`save_tiny_base`: a tiny random sentence-transformers model, for tests of model plumbing."""
    return save_tiny_base


# ---------------------------------------------------------------------------------------
# Headless Chromium (Debian's ``chromium``) over the DevTools protocol on a pipe
# (``--remote-debugging-pipe``: JSON messages separated by NUL bytes on fds 3 and 4), so no
# websocket client or browser driver package is needed. gapfill's map page and embeddingFT's
# search page are tested with it; skipped where /usr/bin/chromium (or $CHROMIUM) is absent.


def chromium_path() -> str:
    return os.environ.get("CHROMIUM", "/usr/bin/chromium")


def chromium_available() -> bool:
    path = chromium_path()
    return os.path.isfile(path) and os.access(path, os.X_OK)


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, profile_dir: str, window_size: str = "1100,760"):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        # In the child the protocol wants the pipe on fds 3 and 4; dup2 makes them inheritable,
        # and close_fds=False keeps them (Python's own fds are non-inheritable, so nothing else leaks).
        def wire_fds() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
             f"--window-size={window_size}", f"--user-data-dir={profile_dir}", "--no-first-run", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=wire_fds,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def _read_message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, timeout: float = 30.0, **params) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        for _ in range(10_000):  # bounded: events before the reply are skipped
            reply = self._read_message(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(f"{method}: no reply")

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path) -> None:
        import base64

        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="session")
def devtools():
    """The :class:`DevTools` class (``devtools(profile_dir)`` starts a browser); skips without Chromium."""
    if not chromium_available():
        pytest.skip(f"{chromium_path()} not installed")
    return DevTools
