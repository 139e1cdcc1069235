"""End-to-end test of the map page in headless Chromium (Debian's ``chromium`` package).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so no websocket client
or browser driver package is needed. The test loads the page, clicks on the map with a real
mouse event and waits for the generated text. Skipped when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
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


def test_fit_progress_and_text_landing_in_a_gap(served_app, tmp_path, devtools):
    browser = devtools(str(tmp_path / "profile"))
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
