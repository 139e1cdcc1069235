"""API tests with FastAPI's TestClient: small stand-ins for MiniLM, SmolLM2 and umap-learn."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gapfill.config import GapConfig, GapTextConfig, GuidedSearchConfig, ServiceConfig, UMAPConfig, Vec2TextConfig
from gapfill.service import create_app

API = "/api/advanced-gap-filling"
TOPICS = {
    "music": ["guitar", "piano", "song", "band", "concert", "drums", "singer", "melody"],
    "food": ["onion", "pizza", "cheese", "bread", "soup", "kitchen", "cook", "salad"],
    "sport": ["football", "tennis", "match", "goal", "team", "runner", "race", "ball"],
}


def documents(n_per_topic: int = 20, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    docs = []
    for topic, words in TOPICS.items():
        for i in range(n_per_topic):
            docs.append({"id": f"{topic}-{i}", "content": " ".join(rng.choice(words, 5))})
    return docs


@pytest.fixture
def make_client(tmp_path, tiny_lm_session, embed_fn, knn_graph):
    import copy

    def factory(**umap_overrides):
        cfg = ServiceConfig(
            data_dir=str(tmp_path / "data"),
            models_dir=str(tmp_path / "models"),
            umap=UMAPConfig(n_neighbors=8, n_epochs=8, batch_size=128, hidden_layers=[32, 32], **umap_overrides),
            vec2text=Vec2TextConfig(
                projector_hidden=32, num_prefix=2, max_new_tokens=6, batch_size=8, num_steps=1, beam_width=2
            ),
            gaps=GapConfig(grid_size=24),
            gap_text=GapTextConfig(samples=2, max_new_tokens=8, word_top_k=2),
        )
        (tmp_path / "data").mkdir(exist_ok=True)
        app = create_app(
            cfg,
            embedder_factory=lambda: (embed_fn, 32),
            lm_factory=lambda: (copy.deepcopy(tiny_lm_session[0]), tiny_lm_session[1]),
            graph_builder=knn_graph,
        )
        return TestClient(app)

    return factory


@pytest.fixture
def client(make_client):
    with make_client() as c:
        yield c


@pytest.fixture
def trained(client, wait_job):
    assert client.post(f"{API}/initialize", json={"documents": documents()}).status_code == 200
    assert client.post(f"{API}/train-parametric-umap", json={}).status_code == 202
    assert wait_job(client)["state"] == "done"
    assert client.post(f"{API}/train-vec2text", json={"epochs": 1}).status_code == 202
    assert wait_job(client)["state"] == "done"
    return client


def test_initialize_posted_and_from_file(client, tmp_path):
    r = client.post(f"{API}/initialize", json={"documents": documents()})
    assert r.status_code == 200 and r.json() == {"documents": 60, "embedding_dim": 32, "embeddings": "computed"}
    lines = [json.dumps({"id": d["id"], "text": d["content"]}) for d in documents(seed=1)]
    (tmp_path / "data" / "docs.jsonl").write_text("\n".join(lines) + "\n")
    r = client.post(f"{API}/initialize", json={"path": "docs.jsonl"})
    assert r.status_code == 200 and r.json()["documents"] == 60
    assert client.get(f"{API}/status").json()["documents"] == 60


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"documents": []}, 422, "no documents"),
        ({"documents": [{"content": "x"}] * 30 + [{"title": 3}]}, 422, "documents[30]: no text"),
        ({"documents": [{"content": "  "}] * 40}, 422, "documents[0]: no text"),
        ({}, 422, "either 'documents' or 'path'"),
        ({"path": "../outside.jsonl"}, 400, "outside"),
        ({"path": "/etc/passwd"}, 400, "outside"),
        ({"path": "missing.jsonl"}, 422, "no such file"),
        (
            {"documents": [{"content": f"doc {i}", "embedding": [0.1] * 5} for i in range(30)]},
            422,
            "5 dimensions, expected 32",
        ),
        ({"documents": [{"content": f"doc {i}"} for i in range(5)]}, 422, "need more than"),
        ({"documents": "not a list"}, 422, "list"),
    ],
)
def test_initialize_rejects_bad_input(client, body, status, message):
    r = client.post(f"{API}/initialize", json=body)
    assert r.status_code == status
    assert message in json.dumps(r.json()["detail"])
    assert client.get(f"{API}/status").status_code == 200  # still running


def test_initialize_reports_file_and_line_of_bad_jsonl(client, tmp_path):
    (tmp_path / "data" / "bad.jsonl").write_text('{"content": "ok"}\n[1, 2]\n')
    r = client.post(f"{API}/initialize", json={"path": "bad.jsonl"})
    assert r.status_code == 422 and "bad.jsonl:2" in r.json()["detail"]


def test_initialize_accepts_given_embeddings(client):
    docs = documents()
    rng = np.random.default_rng(0)
    for d in docs:
        d["embedding"] = rng.standard_normal(32).tolist()
    r = client.post(f"{API}/initialize", json={"documents": docs})
    assert r.status_code == 200 and r.json()["embeddings"] == "given"


def test_requests_before_training_are_4xx(client):
    assert client.post(f"{API}/train-parametric-umap", json={}).status_code == 400
    assert "initialize first" in client.post(f"{API}/generate", json={"x": 0, "y": 0}).json()["detail"]
    client.post(f"{API}/initialize", json={"documents": documents()})
    r = client.post(f"{API}/generate", json={"x": 0.0, "y": 1.0})
    assert r.status_code == 400 and "parametric UMAP is not trained" in r.json()["detail"]
    assert client.get(f"{API}/gaps").status_code == 400
    assert client.post(f"{API}/evaluate-quality", json={}).status_code == 400
    assert client.post(f"{API}/save-parametric-umap", json={"name": "m"}).status_code == 400
    assert client.post(f"{API}/save-vec2text", json={"name": "m"}).status_code == 400


def test_training_validates_bodies(client):
    client.post(f"{API}/initialize", json={"documents": documents()})
    for body in ({"n_epochs": "many"}, {"unknown_key": 1}, {"min_dist": 2.0, "spread": 1.0}, {"hidden_layers": [0]}):
        r = client.post(f"{API}/train-parametric-umap", json=body)
        assert r.status_code == 422, body
    assert client.post(f"{API}/train-vec2text", json={"beam_width": 0}).status_code == 422
    assert client.post(f"{API}/train-vec2text", json={"trainable": "everything"}).status_code == 422
    assert client.get(f"{API}/status").json()["job"] is None


def test_second_training_request_gets_409_and_cancel_stops_it(client, wait_job):
    client.post(f"{API}/initialize", json={"documents": documents()})
    r = client.post(f"{API}/train-parametric-umap", json={"n_epochs": 100000})
    assert r.status_code == 202 and r.json()["job"]["state"] == "running"
    assert client.post(f"{API}/train-parametric-umap", json={}).status_code == 409
    assert client.post(f"{API}/train-vec2text", json={}).status_code == 409
    assert client.post(f"{API}/initialize", json={"documents": documents()}).status_code == 409
    assert client.post(f"{API}/cancel").json() == {"cancelled": True}
    job = wait_job(client)
    assert job["state"] == "cancelled" and 0 < job["step"] < 100000
    assert not client.get(f"{API}/status").json()["parametric_umap"]["trained"]


def test_trained_service_end_to_end(trained):
    c = trained
    status = c.get(f"{API}/status").json()
    assert status["parametric_umap"]["trained"] and status["vec2text"]["trained"]
    assert status["job"]["state"] == "done" and status["job"]["progress"] == 1.0

    quality = c.post(f"{API}/evaluate-quality", json={"vec2text_samples": 2}).json()
    assert 0.5 < quality["parametric_umap"]["trustworthiness_parametric"] <= 1.0
    assert -1 <= quality["parametric_umap"]["embedding_round_trip_cosine_mean"] <= 1
    assert len(quality["vec2text"]["cosine_by_step"]) == 2  # zero-step + one correction
    assert quality["vec2text"]["cosine_by_step"][1] >= quality["vec2text"]["cosine_by_step"][0]

    gaps = c.get(f"{API}/gaps", params={"max_gaps": 3}).json()["gaps"]
    assert len(gaps) <= 3
    assert all(g["radius"] > 0 and len(g["nearest_texts"]) == 3 for g in gaps)

    data = c.get(f"{API}/map-data").json()
    assert len(data["documents"]) == 60 and data["ready"]
    xs = [d["x"] for d in data["documents"]]
    r = c.post(
        f"{API}/generate",
        json={"x": float(np.mean(xs)), "y": 0.0, "num_steps": 1, "beam_width": 2, "method": "vec2text"},
    )
    assert r.status_code == 200
    out = r.json()
    assert isinstance(out["text"], str) and len(out["landed"]) == 2
    assert out["distance"] == pytest.approx(np.linalg.norm(np.subtract(out["landed"], out["target"])), rel=1e-5)
    assert out["cosine_by_step"] == sorted(out["cosine_by_step"])
    # starting from the nearest document: the first step is at least as close as that document
    point = {"x": float(np.mean(xs)), "y": 0.0, "num_steps": 1, "beam_width": 1, "guided_search": False}
    point["method"] = "vec2text"
    r = c.post(f"{API}/generate", json={**point, "start_from_nearest": True})
    assert r.status_code == 200
    plain = c.post(f"{API}/generate", json=point).json()
    assert r.json()["cosine_by_step"][0] >= plain["cosine_by_step"][0] - 1e-6
    # word edits with the documents' words add proposals: step 0 (keeping the closest) can only get closer
    point = {"x": float(np.mean(xs)), "y": 0.0, "num_steps": 0, "beam_width": 1, "guided_search": True}
    point["method"] = "vec2text"
    words = c.post(f"{API}/generate", json={**point, "rewrite": False}).json()
    no_words = c.post(f"{API}/generate", json={**point, "word_edits": False, "rewrite": False}).json()
    assert words["cosine_by_step"][0] >= no_words["cosine_by_step"][0] - 1e-6
    # a fluent rewrite may win over a closer text, but by no more than the fluent margin
    rewritten = c.post(f"{API}/generate", json=point).json()
    margin = GuidedSearchConfig().fluent_margin
    assert rewritten["cosine_by_step"][0] >= words["cosine_by_step"][0] - margin - 1e-6


def test_generate_by_landing_is_consistent_with_transform_of_its_own_text(client, wait_job, embed_fn):
    """The default method needs only the map: its landing point and distance are those of its own text."""
    assert client.post(f"{API}/initialize", json={"documents": documents()}).status_code == 200
    assert client.post(f"{API}/train-parametric-umap", json={}).status_code == 202
    assert wait_job(client)["state"] == "done"
    gap = client.get(f"{API}/gaps", params={"max_gaps": 1}).json()["gaps"][0]
    out = client.post(f"{API}/generate", json={"x": gap["x"], "y": gap["y"]}).json()
    assert out["method"] == "landing" and out["text"]
    service = client.app.state.service
    landed = service.umap.transform(embed_fn([out["text"]]), refine=False)[0]  # embed -> encoder
    np.testing.assert_allclose(out["landed"], landed, atol=1e-5)
    distance = np.linalg.norm(landed - [gap["x"], gap["y"]])
    assert out["distance"] == pytest.approx(distance, rel=1e-4)
    assert out["radius"] == pytest.approx(gap["radius"], rel=1e-6)  # at a gap centre: the gap's circle
    assert out["distance_radii"] == pytest.approx(distance / gap["radius"], rel=1e-4)
    cands = out["candidates"]
    assert 1 <= len(cands) <= 5 and cands[0]["text"] == out["text"]
    assert [c["score"] for c in cands] == sorted((c["score"] for c in cands), reverse=True)
    assert all({"text", "landed", "radii", "fluency", "score"} <= set(c) for c in cands)

    # make gapfill-fill: GET gaps + POST generate on every gap, one record per gap
    from gapfill.fill import fill_gaps

    def get(path, query):
        return client.get(f"{API}/{path}", params={k: v for k, v in query.items() if v is not None}).json()

    def post(path, body):
        return client.post(f"{API}/{path}", json=body).json()

    records = list(fill_gaps(get, post, max_gaps=2))
    gaps = client.get(f"{API}/gaps", params={"max_gaps": 2}).json()["gaps"]
    assert [(r["x"], r["y"]) for r in records] == [(g["x"], g["y"]) for g in gaps]
    for r in records:
        assert r["inside"] == (r["distance_radii"] < 1)
        assert r["distance"] == pytest.approx(np.linalg.norm(np.subtract(r["landed"], [r["x"], r["y"]])), rel=1e-4)


@pytest.mark.parametrize(
    "body",
    [
        {"x": "left", "y": 0},
        {"x": 1},
        {"x": None, "y": 1},
        {"x": 1, "y": [2]},
        {"x": "1.5", "y": 0},
        {"x": 0, "y": 0, "beam_width": 99},
    ],
)
def test_generate_rejects_non_numbers(client, body):
    r = client.post(f"{API}/generate", json=body)
    assert r.status_code == 422


def test_save_and_load_models(trained, tmp_path):
    c = trained
    before = c.get(f"{API}/map-data").json()["documents"]
    assert c.post(f"{API}/save-parametric-umap", json={"name": "map-1"}).json() == {
        "saved": "map-1",
        "kind": "parametric_umap",
    }
    assert c.post(f"{API}/save-vec2text", json={"name": "v2t.1"}).status_code == 200
    assert (tmp_path / "models" / "parametric_umap" / "map-1" / "parametric_umap.safetensors").is_file()
    assert (tmp_path / "models" / "vec2text" / "v2t.1" / "projector.safetensors").is_file()
    assert c.post(f"{API}/load-parametric-umap", json={"name": "map-1"}).status_code == 200
    assert c.post(f"{API}/load-vec2text", json={"name": "v2t.1"}).status_code == 200
    after = c.get(f"{API}/map-data").json()["documents"]
    assert after[0]["x"] == pytest.approx(before[0]["x"], abs=1e-5)
    assert c.post(f"{API}/load-vec2text", json={"name": "nope"}).status_code == 404


@pytest.mark.parametrize("name", ["../escape", "..", "/tmp/x", "a/b", "", ".hidden", "x" * 65, "a\\b"])
def test_model_names_cannot_escape_the_models_directory(client, name, tmp_path):
    for endpoint in ("save-parametric-umap", "load-parametric-umap", "save-vec2text", "load-vec2text"):
        r = client.post(f"{API}/{endpoint}", json={"name": name})
        assert r.status_code == 422, (endpoint, name)
    assert not (tmp_path / "escape").exists()


def test_openapi_schema_and_page(client):
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for endpoint in (
        "initialize",
        "train-parametric-umap",
        "train-vec2text",
        "evaluate-quality",
        "save-parametric-umap",
        "save-vec2text",
        "load-parametric-umap",
        "load-vec2text",
        "status",
        "gaps",
        "generate",
    ):
        assert f"{API}/{endpoint}" in paths
    props = schema["components"]["schemas"]["UMAPRequest"]["properties"]
    assert {
        "n_components",
        "n_neighbors",
        "min_dist",
        "spread",
        "n_epochs",
        "batch_size",
        "learning_rate",
        "hidden_layers",
        "validation_split",
    } <= set(props)
    page = client.get("/")
    assert page.status_code == 200 and "map-data" in page.text and "<svg" in page.text
