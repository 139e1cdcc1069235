"""End-to-end test of the map page in headless Chromium (Debian's ``chromium`` package).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so no websocket client
or browser driver package is needed. The test loads the page, clicks on the map with a real
mouse event and waits for the generated text. Skipped when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
API = "/api/advanced-gap-filling"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)), reason=f"{CHROMIUM} not installed"
    ),
]


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, profile_dir: str):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        # In the child the protocol wants the pipe on fds 3 and 4; dup2 makes them inheritable,
        # and close_fds=False keeps them (Python's own fds are non-inheritable, so nothing else leaks).
        def wire_fds() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
             "--window-size=1100,760", f"--user-data-dir={profile_dir}", "--no-first-run", "about:blank"],
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
        while True:
            reply = self._read_message(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(tmp_path, tiny_lm_session, embed_fn, knn_graph, wait_job):
    """The service with small stand-in models, trained, served by uvicorn on a free local port."""
    import uvicorn
    from fastapi.testclient import TestClient

    from gapfill.config import GapTextConfig, ServiceConfig, UMAPConfig, Vec2TextConfig
    from gapfill.service import create_app

    cfg = ServiceConfig(
        data_dir=str(tmp_path / "data"),
        models_dir=str(tmp_path / "models"),
        umap=UMAPConfig(n_neighbors=8, n_epochs=10, batch_size=128, hidden_layers=[32, 32]),
        vec2text=Vec2TextConfig(projector_hidden=32, num_prefix=2, max_new_tokens=6, num_steps=1, beam_width=2),
        gap_text=GapTextConfig(samples=2, max_new_tokens=8, word_top_k=2),
    )
    app = create_app(
        cfg,
        embedder_factory=lambda: (embed_fn, 32),
        lm_factory=lambda: (copy.deepcopy(tiny_lm_session[0]), tiny_lm_session[1]),
        graph_builder=knn_graph,
    )
    words = ["guitar piano song band", "onion pizza cheese bread", "football tennis match goal"]
    docs = [
        {"content": f"{words[i % 3]} {w}"} for i, w in enumerate("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    ]
    with TestClient(app) as client:
        assert client.post(f"{API}/initialize", json={"documents": docs}).status_code == 200
        client.post(f"{API}/train-parametric-umap", json={})
        assert wait_job(client)["state"] == "done"
        client.post(f"{API}/train-vec2text", json={"epochs": 1})
        assert wait_job(client)["state"] == "done"
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
        server.should_exit = True
        thread.join(timeout=10)


def test_fit_progress_and_text_landing_in_a_gap(served_app, tmp_path):
    browser = DevTools(str(tmp_path / "profile"))
    try:
        browser.open(served_app)
        n_points = browser.wait_for("document.querySelectorAll('circle.doc').length")
        assert n_points == 52
        assert "click a gap" in browser.evaluate("document.getElementById('status').textContent")
        n_gaps = browser.evaluate("document.querySelectorAll('circle.gap').length")
        assert n_gaps >= 1
        # hovering a point shows its text
        box = json.loads(
            browser.evaluate("JSON.stringify(document.querySelector('circle.doc').getBoundingClientRect())")
        )
        browser.send(
            "Input.dispatchMouseEvent", type="mouseMoved", x=box["x"] + box["width"] / 2, y=box["y"] + box["height"] / 2
        )
        browser.wait_for("document.getElementById('tooltip').style.display === 'block'", timeout=10)
        # "Fit map" refits in the background; the page follows the job's stages to the end and redraws
        browser.wait_for("!document.getElementById('fit-button').disabled", timeout=10)
        button = json.loads(
            browser.evaluate("JSON.stringify(document.getElementById('fit-button').getBoundingClientRect())")
        )
        browser.click(button["x"] + button["width"] / 2, button["y"] + button["height"] / 2)
        browser.wait_for("document.getElementById('fit-stage').dataset.state === 'done'", timeout=60)
        assert browser.evaluate("document.getElementById('fit-progress').value") == 1
        assert "decoder" in browser.evaluate("document.getElementById('fit-stage').textContent")
        browser.wait_for("document.querySelectorAll('circle.doc').length === 52", timeout=10)
        # a click inside a gap asks for text at the gap's centre
        ring = json.loads(
            browser.evaluate("JSON.stringify(document.querySelector('circle.gap').getBoundingClientRect())")
        )
        centre = (ring["x"] + ring["width"] / 2, ring["y"] + ring["height"] / 2)
        browser.click(*centre)
        state = browser.wait_for(
            "['done', 'error'].includes(document.getElementById('result').dataset.state) && document.getElementById('result').dataset.state",
            timeout=60,
        )
        text = browser.evaluate("document.getElementById('result').textContent")
        assert state == "done", text
        assert text and text != "generating…"
        assert browser.evaluate("document.querySelectorAll('circle.target').length") == 1
        assert browser.evaluate("document.querySelectorAll('circle.landed').length") == 1
        assert browser.evaluate("document.querySelectorAll('circle.target-ring').length") == 1
        # the line runs from the target (the gap's centre) to the landing marker
        target = json.loads(
            browser.evaluate("JSON.stringify(document.querySelector('circle.target').getBoundingClientRect())")
        )
        landed = browser.evaluate(
            "[+document.querySelector('circle.landed').getAttribute('cx'), +document.querySelector('circle.landed').getAttribute('cy')]"
        )
        line = browser.evaluate("['x1','y1','x2','y2'].map(a => +document.querySelector('line.trip').getAttribute(a))")
        assert (
            abs(target["x"] + target["width"] / 2 - centre[0]) < 1.5
            and abs(target["y"] + target["height"] / 2 - centre[1]) < 1.5
        )
        assert line[2:] == pytest.approx(landed, abs=1e-6)
        metrics = browser.evaluate("document.getElementById('metrics').textContent")
        assert "radii from the point" in metrics
        assert browser.evaluate("document.querySelectorAll('#candidates li').length") >= 1
        if os.environ.get("GAPFILL_SCREENSHOT"):
            browser.screenshot(os.environ["GAPFILL_SCREENSHOT"])
    finally:
        browser.close()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
