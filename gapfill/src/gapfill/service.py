"""The gap-filling HTTP service (FastAPI) and its map page.

Endpoints live under ``/api/advanced-gap-filling/``: ``initialize``, ``train-parametric-umap``,
``train-vec2text``, ``evaluate-quality``, ``save-parametric-umap``, ``save-vec2text``,
``load-parametric-umap``, ``load-vec2text``, ``status``, ``gaps``, ``generate`` (plus
``map-data`` for the page and ``cancel`` for a running job). Training runs as one background
job at a time (a second request gets 409); bodies are validated (422); documents are read
only from ``data_dir`` and models written and read only inside ``models_dir``.

Run it with ``make gapfill-serve`` or ``python -m gapfill.cli serve [key=value ...]``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import typing
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from embshared.config import ConfigError, load_config
from embshared.errors import UserError
from embshared.io import read_records
from gapfill import vec2text as v2t
from gapfill.config import ServiceConfig, UMAPConfig, Vec2TextConfig
from gapfill.gap_text import LMSampler, write_for_point
from gapfill.gaps import find_gaps
from gapfill.graph import GraphBuilder
from gapfill.jobs import JobBusy, JobRunner
from gapfill.landing import circle_at
from gapfill.parametric_umap import ParametricUMAP
from gapfill.pipeline import decode_point, generate_at, spacing
from gapfill.quality import evaluate_quality
from gapfill.rewrite import Rewriter
from gapfill.word_edits import Vocabulary

logger = logging.getLogger(__name__)

PREFIX = "/api/advanced-gap-filling"
STATIC = Path(__file__).parent / "static"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TEXT_FIELDS = ("content", "text", "body", "abstract", "title")

#: () -> (embed function, embedding dimension)
EmbedderFactory = Callable[[], tuple[v2t.EmbedFn, int]]
#: () -> (causal LM, tokenizer)
LMFactory = Callable[[], tuple[Any, Any]]


class ServiceError(Exception):
    """An error answered with ``status`` and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _optional_fields_model(cls: type, name: str, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
    """A request model with every field of the config dataclass ``cls``, all optional.

    Unknown keys are rejected (422); the dataclass's own checks run when the body is merged
    into the service's defaults with ``load_config``.
    """
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: (hints[f.name] | None, Field(default=None, description=f.metadata.get("help")))
        for f in dataclasses.fields(cls)
        if f.name not in exclude
    }
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


UMAPRequest = _optional_fields_model(UMAPConfig, "UMAPRequest")
Vec2TextRequest = _optional_fields_model(Vec2TextConfig, "Vec2TextRequest", exclude=("embedder",))


class Document(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | int | None = None
    content: str | None = None
    embedding: list[float] | None = None


class InitializeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[Document] | None = Field(default=None, description="documents posted inline")
    path: str | None = Field(default=None, description="a JSONL/JSON/CSV file inside the data directory")
    text_field: str | None = Field(default=None, description="field holding the text (default: content, text, ...)")


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compare_umap_learn: bool = Field(default=False, description="also fit umap-learn (~25 s compile + fit)")
    n_neighbors: int = Field(default=10, ge=1, le=100, description="neighbourhood of trustworthiness")
    vec2text_samples: int = Field(default=0, ge=0, le=200, description="documents to invert with vec2text")


class NameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, description="a plain name: letters, digits, '.', '_', '-'")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float = Field(strict=True, allow_inf_nan=False, description="map x coordinate")
    y: float = Field(strict=True, allow_inf_nan=False, description="map y coordinate")
    method: Literal["landing", "vec2text"] = Field(
        default="landing",
        description="landing: LM candidates from the neighbouring documents chosen and edited by where they land "
        "(needs only the map); vec2text: invert the decoder's embedding of the point",
    )
    max_seconds: float | None = Field(default=None, gt=0, le=600, description="time budget of the landing method")
    num_steps: int | None = Field(default=None, ge=0, le=10)
    beam_width: int | None = Field(default=None, ge=1, le=16)
    guided_search: bool | None = Field(default=None, description="run the embedding-guided search (default: config)")
    start_from_nearest: bool = Field(
        default=False, description="the document nearest to the decoded embedding competes as a starting hypothesis"
    )
    word_edits: bool = Field(
        default=True, description="word edits with the documents' vocabulary inside the correction steps"
    )
    rewrite: bool = Field(
        default=True,
        description="fluent rewrites by a plain instruction LM inside the steps, each step preferring fluent text",
    )


def default_embedder(name: str) -> EmbedderFactory:
    def factory():
        from embshared.models import load_sentence_transformer

        model = load_sentence_transformer(name)
        return v2t.sentence_embedder(model), model.get_embedding_dimension()

    return factory


def default_lm() -> tuple[Any, Any]:
    from embshared.models import load_smollm2

    return load_smollm2()


class GapFillService:
    """The state behind the endpoints: documents, their embeddings and map, the two models.

    Args:
        config: directories, defaults of the components.
        embedder_factory: loads the embedding function (called once, on first use).
        lm_factory: loads a fresh causal LM and tokenizer for vec2text.
        graph_builder: the parametric UMAP's graph builder (default: umap-learn's).
    """

    def __init__(
        self,
        config: ServiceConfig,
        embedder_factory: EmbedderFactory,
        lm_factory: LMFactory,
        graph_builder: GraphBuilder | None = None,
    ):
        self.config = config
        self.embedder_factory = embedder_factory
        self.lm_factory = lm_factory
        self.graph_builder = graph_builder
        self.jobs = JobRunner()
        self.lock = threading.RLock()
        self._embed: v2t.EmbedFn | None = None
        self.dim: int | None = None
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.embeddings: np.ndarray | None = None
        self.umap: ParametricUMAP | None = None
        self.coords: np.ndarray | None = None
        self.gaps: list = []
        self.vec2text: v2t.Vec2Text | None = None
        self._vocabulary: Vocabulary | None = None
        self._rewriter: Rewriter | None = None

    # -- helpers ------------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            if self._embed is None:
                self._embed, self.dim = self.embedder_factory()
        return self._embed(texts)

    def vocabulary(self) -> Vocabulary:
        """The words of the documents, embedded once (for vec2text's word edits)."""
        with self.lock:
            if self._vocabulary is None:
                self._vocabulary = Vocabulary.from_texts(self.texts, self.embed)
            return self._vocabulary

    def rewriter(self) -> Rewriter:
        """A plain copy of the LM (vec2text's own may be trained) for fluent rewrites, loaded once."""
        with self.lock:
            if self._rewriter is None:
                self._rewriter = Rewriter(*self.lm_factory())
            return self._rewriter

    def embedding_dim(self) -> int:
        if self.dim is None:
            self.embed(["dimension probe"])
        return int(self.dim)

    def _inside(self, root: str, name: str, what: str) -> Path:
        """``root/name`` resolved, refusing anything that escapes ``root``."""
        base = Path(root).resolve()
        path = (base / name).resolve()
        if path == base or not path.is_relative_to(base):
            raise ServiceError(400, f"{what} '{name}' is outside the {what} directory")
        return path

    def _model_path(self, kind: str, name: str) -> Path:
        return self._inside(str(Path(self.config.models_dir) / kind), name, "model name")

    def _require(self, umap: bool = False, vec2text: bool = False) -> None:
        if self.embeddings is None:
            raise ServiceError(400, "no documents: call initialize first")
        if umap and self.umap is None:
            raise ServiceError(
                400, "the parametric UMAP is not trained: call train-parametric-umap or load-parametric-umap"
            )
        if vec2text and self.vec2text is None:
            raise ServiceError(400, "vec2text is not trained: call train-vec2text or load-vec2text")

    def _not_training(self, kind: str | None = None) -> None:
        if self.jobs.busy and (kind is None or self.jobs.current.kind == kind):
            raise ServiceError(409, f"a {self.jobs.current.kind} job is running; wait for it or cancel it")

    # -- documents ----------------------------------------------------------------------
    def initialize(self, req: InitializeRequest) -> dict:
        self._not_training()
        if (req.documents is None) == (req.path is None):
            raise ServiceError(422, "give either 'documents' or 'path'")
        if req.path is not None:
            path = self._inside(self.config.data_dir, req.path, "data path")
            try:
                records = read_records(path)
            except UserError as exc:
                raise ServiceError(422, str(exc).replace(str(Path(self.config.data_dir).resolve()) + "/", "")) from None
            docs = [dict(r) for r in records]
            where = [f"{req.path}:{line}" for line in records.lines]
        else:
            docs = [d.model_dump() for d in req.documents]
            where = [f"documents[{i}]" for i in range(len(docs))]
        if not docs:
            raise ServiceError(422, "no documents given")
        if len(docs) > self.config.max_documents:
            raise ServiceError(422, f"{len(docs)} documents exceed max_documents={self.config.max_documents}")
        fields = (req.text_field,) if req.text_field else TEXT_FIELDS
        texts, ids, given = [], [], []
        for i, doc in enumerate(docs):
            text = next((doc[f] for f in fields if isinstance(doc.get(f), str) and doc[f].strip()), None)
            if text is None:
                raise ServiceError(422, f"{where[i]}: no text in field {' / '.join(fields)}")
            texts.append(text.strip())
            ids.append(str(doc["id"]) if doc.get("id") is not None else str(i))
            given.append(doc.get("embedding"))
        if len(texts) <= max(self.config.umap.n_neighbors, 4):
            raise ServiceError(
                422, f"need more than {max(self.config.umap.n_neighbors, 4)} documents for a map, got {len(texts)}"
            )
        dim = self.embedding_dim()
        if any(g is not None for g in given):
            for i, g in enumerate(given):
                if g is None:
                    raise ServiceError(422, f"{where[i]}: no embedding (give embeddings for all documents or none)")
                if not isinstance(g, list) or len(g) != dim:
                    n = len(g) if isinstance(g, list) else type(g).__name__
                    raise ServiceError(422, f"{where[i]}: embedding has {n} dimensions, expected {dim}")
            emb = np.asarray(given, dtype=np.float32)
            if not np.isfinite(emb).all():
                raise ServiceError(422, "embeddings contain NaN or infinite values")
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        else:
            emb = self.embed(texts)
        with self.lock:
            self.ids, self.texts, self.embeddings = ids, texts, emb
            self.umap, self.coords, self.gaps = None, None, []
            self._vocabulary = None
        return {
            "documents": len(texts),
            "embedding_dim": dim,
            "embeddings": "given" if given[0] is not None else "computed",
        }

    # -- training -----------------------------------------------------------------------
    def _config(self, cls, defaults, body: BaseModel):
        data = dataclasses.asdict(defaults)
        data.update(body.model_dump(exclude_none=True))
        try:
            return load_config(cls, data=data)
        except ConfigError as exc:
            raise ServiceError(422, str(exc).removeprefix("config: ")) from None

    def train_umap(self, body: BaseModel) -> dict:
        self._require()
        cfg = self._config(UMAPConfig, self.config.umap, body)
        emb = self.embeddings

        def work(job):
            model = ParametricUMAP(cfg, graph_builder=self.graph_builder).fit(
                emb, progress=job.report, should_stop=job.cancelled
            )
            if job.cancelled():
                return
            coords = model.transform(emb)
            gaps = find_gaps(coords, self.config.gaps) if cfg.n_components == 2 else []
            with self.lock:
                if self.embeddings is emb:
                    self.umap, self.coords, self.gaps = model, coords, gaps

        return self._start("parametric-umap", work)

    def train_vec2text(self, body: BaseModel) -> dict:
        self._require()
        cfg = self._config(Vec2TextConfig, self.config.vec2text, body)
        cfg.embedder = self.config.embedder
        texts = list(self.texts)

        def work(job):
            lm, tokenizer = self.lm_factory()
            model = v2t.Vec2Text.build(lm, tokenizer, self.embedding_dim(), cfg)
            # Train on what the model can write: each text cut to max_length tokens, re-embedded.
            cut = [tokenizer.decode(model.encode_text(t), skip_special_tokens=True).strip() for t in texts]
            cut = [c for c in cut if c]
            emb = self.embed(cut)
            examples = v2t.make_examples(model, cut, emb, self.embed, cfg.correction_fraction, cfg.seed)
            v2t.train(model, examples, progress=job.report, should_stop=job.cancelled)
            if not job.cancelled():
                with self.lock:
                    self.vec2text = model

        return self._start("vec2text", work)

    def _start(self, kind: str, work) -> dict:
        try:
            job = self.jobs.start(kind, work)
        except JobBusy as exc:
            raise ServiceError(409, str(exc)) from None
        return {"started": kind, "job": job.to_dict()}

    # -- evaluation and use -------------------------------------------------------------
    def evaluate(self, req: EvaluateRequest) -> dict:
        self._require(umap=True)
        out: dict[str, Any] = {
            "parametric_umap": evaluate_quality(
                self.umap, self.embeddings, req.compare_umap_learn, req.n_neighbors, self.config.seed
            )
        }
        if req.vec2text_samples:
            self._require(vec2text=True)
            self._not_training("vec2text")
            idx = np.random.default_rng(self.config.seed).choice(
                len(self.texts), min(req.vec2text_samples, len(self.texts)), replace=False
            )
            correctors = v2t.Correctors.of(self.vec2text.config, None, self.vocabulary(), self.rewriter())
            traces = [v2t.invert(self.vec2text, self.embeddings[i], self.embed, correctors=correctors) for i in idx]
            n_steps = len(traces[0])
            out["vec2text"] = {
                "samples": len(idx),
                "cosine_by_step": [float(np.mean([t[s].cosine for t in traces])) for s in range(n_steps)],
                "examples": [
                    {"original": self.texts[i], "generated": t[-1].text, "cosine": t[-1].cosine}
                    for i, t in zip(idx[:5], traces[:5])
                ],
            }
        return out

    def gaps_for(self, max_gaps: int | None, grid_size: int | None) -> dict:
        self._require(umap=True)
        cfg = dataclasses.replace(
            self.config.gaps,
            **{k: v for k, v in {"max_gaps": max_gaps, "grid_size": grid_size}.items() if v is not None},
        )
        gaps = find_gaps(self.coords, cfg) if (max_gaps or grid_size) else self.gaps
        return {"gaps": [{**g.to_dict(), "nearest_texts": [self.texts[j][:200] for j in g.nearest]} for g in gaps]}

    def generate(self, req: GenerateRequest) -> dict:
        if req.method == "landing":
            return self.generate_landing(req)
        self._require(umap=True, vec2text=True)
        self._not_training("vec2text")
        initial = []
        if req.start_from_nearest:
            target = decode_point(self.umap, (req.x, req.y))
            initial = [self.texts[int(np.argmax(self.embeddings @ target))]]
        gen = generate_at(
            (req.x, req.y),
            self.umap,
            self.vec2text,
            self.embed,
            self.coords,
            req.num_steps,
            req.beam_width,
            correctors=v2t.Correctors.of(
                self.vec2text.config,
                req.guided_search,
                vocabulary=self.vocabulary() if req.word_edits else None,
                rewriter=self.rewriter() if req.rewrite else None,
            ),
            initial=initial,
        )
        out = gen.to_dict()
        if gen.nearest_document is not None:
            out["nearest_text"] = self.texts[gen.nearest_document][:300]
        circle = circle_at((req.x, req.y), self.coords)
        out.update(method="vec2text", radius=circle.radius, distance_radii=gen.distance / circle.radius)
        return out

    def generate_landing(self, req: GenerateRequest) -> dict:
        """Text for a point chosen by where it lands (:func:`gapfill.gap_text.write_for_point`)."""
        self._require(umap=True)
        rewriter = self.rewriter()
        cfg = self.config.gap_text
        if req.max_seconds is not None:
            cfg = dataclasses.replace(cfg, max_seconds=req.max_seconds)
        with self.lock:
            umap, coords, texts = self.umap, self.coords, list(self.texts)
        gen = write_for_point(
            (req.x, req.y),
            umap,
            self.embed,
            coords,
            texts,
            LMSampler(rewriter.lm, rewriter.tokenizer),
            rewriter.fluency,
            self.vocabulary() if req.word_edits else None,
            cfg,
        )
        out = gen.to_dict()
        out["method"] = "landing"
        out["distance_ratio"] = gen.best.distance / spacing(coords)
        out["nearest_texts"] = [texts[i][:300] for i in gen.neighbours[:3]]
        return out

    def map_data(self) -> dict:
        docs = []
        if self.coords is not None:
            docs = [
                {"id": i, "text": t[:300], "x": float(c[0]), "y": float(c[1])}
                for i, t, c in zip(self.ids, self.texts, self.coords)
            ]
        return {
            "documents": docs,
            "gaps": [g.to_dict() for g in self.gaps],
            "ready": self.umap is not None,
            "vec2text": self.vec2text is not None,
        }

    # -- persistence --------------------------------------------------------------------
    def save(self, kind: str, name: str) -> dict:
        path = self._model_path(kind, name)
        if kind == "parametric_umap":
            self._require(umap=True)
            self.umap.save(path)
        else:
            if self.vec2text is None:
                raise ServiceError(400, "vec2text is not trained: nothing to save")
            self._not_training("vec2text")
            v2t.save(self.vec2text, path)
        return {"saved": name, "kind": kind}

    def load(self, kind: str, name: str) -> dict:
        path = self._model_path(kind, name)
        if not path.is_dir():
            raise ServiceError(404, f"no saved {kind} model named '{name}'")
        self._not_training()
        try:
            if kind == "parametric_umap":
                model = ParametricUMAP.load(path)
                with self.lock:
                    self.umap = model
                    if self.embeddings is not None:
                        if model.input_dim != self.embeddings.shape[1]:
                            self.umap = None
                            raise ServiceError(
                                422,
                                f"model '{name}' expects {model.input_dim}-dim embeddings, documents have {self.embeddings.shape[1]}",
                            )
                        self.coords = model.transform(self.embeddings)
                        self.gaps = find_gaps(self.coords, self.config.gaps) if model.config.n_components == 2 else []
            else:
                lm, tokenizer = self.lm_factory()
                model = v2t.load(path, lm, tokenizer)
                if model.embed_dim != self.embedding_dim():
                    raise ServiceError(
                        422,
                        f"model '{name}' inverts {model.embed_dim}-dim embeddings, the embedder gives {self.embedding_dim()}",
                    )
                with self.lock:
                    self.vec2text = model
        except UserError as exc:
            raise ServiceError(422, str(exc)) from None
        return {"loaded": name, "kind": kind}

    def status(self) -> dict:
        job = self.jobs.current
        return {
            "documents": len(self.texts),
            "embedding_dim": self.dim,
            "parametric_umap": {
                "trained": self.umap is not None,
                "config": dataclasses.asdict(self.umap.config) if self.umap else None,
                "last_epoch": self.umap.history[-1] if self.umap and self.umap.history else None,
            },
            "vec2text": {
                "trained": self.vec2text is not None,
                "config": dataclasses.asdict(self.vec2text.config) if self.vec2text else None,
            },
            "gaps": len(self.gaps),
            "job": job.to_dict() if job else None,
        }


def create_app(
    config: ServiceConfig | None = None,
    embedder_factory: EmbedderFactory | None = None,
    lm_factory: LMFactory | None = None,
    graph_builder: GraphBuilder | None = None,
) -> FastAPI:
    """The FastAPI app; factories default to the packaged MiniLM, SmolLM2 and umap-learn (tests pass small ones)."""
    config = config or ServiceConfig()
    service = GapFillService(
        config, embedder_factory or default_embedder(config.embedder), lm_factory or default_lm, graph_builder
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.jobs.cancel()
        service.jobs.join(timeout=10)

    app = FastAPI(title="gapfill", description=__doc__.split("\n\n")[0], version="0.1.0", lifespan=lifespan)
    app.state.service = service

    def call(fn, *args):
        try:
            return fn(*args)
        except ServiceError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        except UserError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (STATIC / "map.html").read_text(encoding="utf-8")

    @app.post(f"{PREFIX}/initialize")
    def initialize(req: InitializeRequest) -> dict:
        """Embed a document collection (posted, or a file inside the data directory)."""
        return call(service.initialize, req)

    @app.post(f"{PREFIX}/train-parametric-umap", status_code=202)
    def train_parametric_umap(body: UMAPRequest | None = None) -> dict:  # type: ignore[valid-type]
        """Start training the parametric UMAP (a background job; see status)."""
        return call(service.train_umap, body or UMAPRequest())

    @app.post(f"{PREFIX}/train-vec2text", status_code=202)
    def train_vec2text(body: Vec2TextRequest | None = None) -> dict:  # type: ignore[valid-type]
        """Start training vec2text on the documents' texts (a background job; see status)."""
        return call(service.train_vec2text, body or Vec2TextRequest())

    @app.post(f"{PREFIX}/evaluate-quality")
    def evaluate(req: EvaluateRequest | None = None) -> dict:
        """Trustworthiness and round-trip errors of the map (and vec2text cosines if asked)."""
        return call(service.evaluate, req or EvaluateRequest())

    @app.post(f"{PREFIX}/save-parametric-umap")
    def save_umap(req: NameRequest) -> dict:
        return call(service.save, "parametric_umap", req.name)

    @app.post(f"{PREFIX}/save-vec2text")
    def save_vec2text(req: NameRequest) -> dict:
        return call(service.save, "vec2text", req.name)

    @app.post(f"{PREFIX}/load-parametric-umap")
    def load_umap(req: NameRequest) -> dict:
        return call(service.load, "parametric_umap", req.name)

    @app.post(f"{PREFIX}/load-vec2text")
    def load_vec2text(req: NameRequest) -> dict:
        return call(service.load, "vec2text", req.name)

    @app.get(f"{PREFIX}/status")
    def status() -> dict:
        return service.status()

    @app.post(f"{PREFIX}/cancel")
    def cancel() -> dict:
        """Ask the running training job to stop."""
        return {"cancelled": service.jobs.cancel()}

    @app.get(f"{PREFIX}/gaps")
    def gaps(
        max_gaps: Annotated[int | None, Query(ge=1, le=100)] = None,
        grid_size: Annotated[int | None, Query(ge=4, le=512)] = None,
    ) -> dict:
        """Empty regions of the map inside the documents' hull, largest first."""
        return call(service.gaps_for, max_gaps, grid_size)

    @app.post(f"{PREFIX}/generate")
    def generate(req: GenerateRequest) -> dict:
        """Text for a map point: decoder -> embedding -> vec2text, with where the text lands."""
        return call(service.generate, req)

    @app.get(f"{PREFIX}/map-data")
    def map_data() -> dict:
        """Documents' map points and texts, and the gaps (for the map page)."""
        return service.map_data()

    return app
