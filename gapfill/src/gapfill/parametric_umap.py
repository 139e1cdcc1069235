"""Parametric UMAP in PyTorch: an MLP encoder (embedding -> map) and an MLP decoder (map -> embedding).

Default route (``init="umap_learn"``): umap-learn optimises the layout (it is the field's
reference and fast), the encoder is regressed onto that layout, then fine-tuned for a few
epochs with UMAP's loss on umap-learn's own graph, and the decoder is trained on the final map.
The other route (``init="spectral"``, ``n_epochs=40``) makes the encoder *be* the UMAP
optimisation from the graph's spectral layout: edges sampled in proportion to their membership,
negatives drawn uniformly from all points (as umap-learn does; ``negative_sampling="batch"``
draws them from the batch's edge ends, as umap-learn's parametric UMAP does), UMAP's fuzzy
cross-entropy with ``a, b`` fitted from ``min_dist`` and ``spread`` (slow on a CPU: an MLP
trained by SGD on edge samples against umap-learn's compiled optimisation).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from embshared.cli import torch_threads
from embshared.config import load_config, save_config
from embshared.errors import UserError
from embshared.files import atomic_dir
from gapfill.config import UMAPConfig
from gapfill.graph import GraphBuilder, UmapLearnGraph, graph_edges
from gapfill.losses import RECONSTRUCTION_LOSSES, umap_cross_entropy
from gapfill.regression import SoftKnnPlacer, nearest_neighbours, synthetic_points

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "parametric_umap.safetensors"
DEFAULT_REFINE_EPOCHS = 100  # umap-learn's transform epochs for up to 10k fitted points
CONFIG_FILE = "config.json"

#: called after each epoch of each stage with (step, total steps, metrics of the epoch incl. "stage")
ProgressFn = Callable[[int, int, dict[str, float | str]], None]
#: called after each stage of a fit with (stage name, the model)
StageHook = Callable[[str, "ParametricUMAP"], None]


class _StageTracker:
    """Counts a fit's steps across its stages, reports progress, times each stage (hooks excluded)."""

    def __init__(self, seconds: dict, progress, total: int, should_stop, stage_hook, model):
        self.seconds, self.progress, self.total = seconds, progress, total
        self.should_stop, self.stage_hook, self.model = should_stop, stage_hook, model
        self.step = 0
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def stopping(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def epoch(self, stage: str, metrics: dict) -> bool:
        """One epoch of ``stage`` done; True when the fit should stop."""
        self.step += 1
        if self.progress is not None:
            self.progress(self.step, self.total, {"stage": stage, **metrics})
        return self.stopping()

    def done(self, stage: str, metrics: dict | None = None) -> bool:
        """``stage`` finished: record its time, call the hook; True when the fit should stop."""
        self.seconds[stage] = self.elapsed()
        if stage == "layout":
            self.epoch(stage, metrics or {})
        if self.stage_hook is not None:
            self.stage_hook(stage, self.model)
        self.start = time.perf_counter()
        return self.stopping()


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ParametricUMAP:
    """A parametric UMAP with a decoder.

    Args:
        config: the hyper-parameters (see :class:`gapfill.config.UMAPConfig`).
        device: torch device for training and inference.
        graph_builder: builds the fuzzy graph and fits ``a, b`` (default: umap-learn's).
    """

    def __init__(
        self, config: UMAPConfig | None = None, device: str = "cpu", graph_builder: GraphBuilder | None = None
    ):
        self.config = config or UMAPConfig()
        self.device = device
        self.graph_builder = graph_builder
        self.encoder: nn.Sequential | None = None
        self.decoder: nn.Sequential | None = None
        self.input_dim: int | None = None
        self.a: float | None = None
        self.b: float | None = None
        self.history: list[dict[str, float]] = []
        self.fit_seconds: dict[str, float] = {}
        # the fitted points and their map positions, for transform's refinement (transform_refine_epochs)
        self.anchors_x: torch.Tensor | None = None  # (n, dim)
        self.anchors_z: torch.Tensor | None = None  # (n, n_components)

    @property
    def is_fitted(self) -> bool:
        return self.encoder is not None

    def _build(self, input_dim: int) -> None:
        cfg = self.config
        self.input_dim = input_dim
        self.encoder = mlp([input_dim, *cfg.hidden_layers, cfg.n_components]).to(self.device)
        self.decoder = mlp([cfg.n_components, *reversed(cfg.hidden_layers), input_dim]).to(self.device)

    def fit(
        self,
        x: np.ndarray,
        graph: sp.spmatrix | None = None,
        progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None,
        stage_hook: StageHook | None = None,
    ) -> ParametricUMAP:
        """Train encoder and decoder on ``x``, in stages.

        1. ``layout``: the layout the encoder starts from. With ``init="umap_learn"`` (the
           default) umap-learn optimises it on its own fuzzy graph, which the later stages reuse;
           ``spectral`` / ``pca`` are computed from the graph / the data.
        2. ``regression``: ``init_epochs`` passes fitting the encoder to that layout (MSE).
        3. ``umap``: ``n_epochs`` passes of UMAP's loss over the graph's edges (a short fine-tune
           after umap-learn's layout; the whole optimisation after a spectral one).
        4. ``decoder``: ``decoder_epochs`` passes training only the decoder on the final map.

        Args:
            x: (n, dim) embeddings.
            graph: a precomputed (n, n) fuzzy graph of ``x`` (not with ``init="umap_learn"``,
                which takes umap-learn's); by default the graph builder makes one.
            progress: called as ``progress(step, total, metrics)`` after every epoch of every stage
                (``metrics["stage"]`` names the stage; the layout stage counts as one step).
            should_stop: polled after every epoch; training ends early when it returns True.
            stage_hook: called as ``stage_hook(stage, self)`` after each stage (for measuring
                what each stage buys); its time is not counted in ``fit_seconds``.

        Returns:
            self, with ``history`` holding the per-epoch losses and ``fit_seconds`` each stage's time.
        """
        # The networks are small (a 256-wide MLP on batches of 256): on a CPU, intra-op threads only
        # wait on each other (9 vs 108 ms per regression step with 1 vs 2 threads on 2 shared cores),
        # so the torch stages run with `mlp_threads`; umap-learn's layout (numba) is not affected.
        threads = self.config.mlp_threads if torch.device(self.device).type == "cpu" else None
        with torch_threads(threads):
            return self._fit(x, graph, progress, should_stop, stage_hook)

    def _fit(self, x, graph, progress, should_stop, stage_hook) -> ParametricUMAP:
        cfg = self.config
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or len(x) <= cfg.n_neighbors:
            raise UserError(f"need a 2-D array of more than n_neighbors={cfg.n_neighbors} embeddings, got {x.shape}")
        rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        n_val = round(len(x) * cfg.validation_split)
        if len(x) - n_val <= cfg.n_neighbors:
            n_val = 0
        order = rng.permutation(len(x))
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        builder = self.graph_builder or UmapLearnGraph()
        self.history, self.fit_seconds = [], {}
        total = 1 + (cfg.init_epochs if cfg.init != "random" else 0) + cfg.n_epochs + cfg.decoder_epochs
        tracker = _StageTracker(self.fit_seconds, progress, total, should_stop, stage_hook, self)

        layout = None
        if cfg.init == "umap_learn":
            if graph is not None:
                raise UserError("init=umap_learn builds umap-learn's own graph; do not pass a graph")
            layout_args = (cfg.n_neighbors, cfg.min_dist, cfg.spread, cfg.metric, cfg.n_components, cfg.seed)
            graph, layout = builder.layout(x[train_idx], *layout_args)
            logger.info("umap-learn layout of %d points in %.1f s", len(train_idx), tracker.elapsed())
        elif graph is None:
            graph = builder.graph(x[train_idx], cfg.n_neighbors, cfg.metric, cfg.seed)
            logger.info("fuzzy graph of %d points in %.1f s", len(train_idx), tracker.elapsed())
        else:
            graph = sp.csr_matrix(graph)[train_idx][:, train_idx]
        if cfg.init in ("spectral", "pca"):
            layout = initial_layout(cfg.init, x[train_idx], graph, cfg.n_components, cfg.seed)
        edges = graph_edges(graph, max(cfg.n_epochs, 1))
        self.a, self.b = builder.ab(cfg.spread, cfg.min_dist)
        self._build(x.shape[1])
        x_train = torch.from_numpy(x[train_idx]).to(self.device)  # (n_train, dim)
        generator = torch.Generator().manual_seed(cfg.seed)
        if tracker.done("layout", {"points": len(train_idx)}):
            return self
        if layout is not None and cfg.init_epochs:
            self._fit_encoder_to(x_train, torch.from_numpy(layout).to(self.device), generator, tracker)
            if tracker.done("regression"):
                return self
        if cfg.n_epochs:
            self._fit_umap(x_train, edges, generator, x[val_idx], tracker)
            if tracker.done("umap"):
                return self
        self._set_anchors(x[train_idx])
        if cfg.decoder_epochs:
            self._fit_decoder(x_train, generator, tracker)
            if len(val_idx):
                self.history[-1]["val_reconstruction_cosine"] = float(
                    np.mean(cosine_rows(self.inverse_transform(self.transform(x[val_idx])), x[val_idx]))
                )
            tracker.done("decoder")
        return self

    def _set_anchors(self, x: np.ndarray) -> None:
        """Keep the fitted points and their final map positions (transform's refinement pulls new points to them)."""
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        self.anchors_x = torch.from_numpy(np.ascontiguousarray(xn, dtype=np.float32))
        self.anchors_z = torch.from_numpy(self._apply(self.encoder, np.ascontiguousarray(x, dtype=np.float32)))

    def _fit_encoder_to(
        self, x: torch.Tensor, layout: torch.Tensor, generator: torch.Generator, tracker: _StageTracker
    ) -> None:
        """Regress the encoder onto an (n, n_components) layout: MSE, warm-up then cosine decay.

        With ``regression_mix`` or ``regression_noise`` every batch also holds as many synthetic
        points near the data (mixed with a neighbour, noised), placed by a soft k-NN teacher
        (:mod:`gapfill.regression`), so that the encoder learns a smooth map around the points
        and places new ones as their neighbours suggest, not only the fitted points.
        """
        cfg = self.config
        synthetic = cfg.regression_mix > 0 or cfg.regression_noise > 0
        if synthetic:
            placer = SoftKnnPlacer(x, layout, cfg.n_neighbors, cfg.regression_temperature)
            neighbours = nearest_neighbours(x, cfg.n_neighbors)[0] if cfg.regression_mix > 0 else None
        optimizer = torch.optim.AdamW(
            self.encoder.parameters(), lr=cfg.regression_learning_rate, weight_decay=cfg.regression_weight_decay
        )
        batch = min(256, len(x))
        steps = cfg.init_epochs * math.ceil(len(x) / batch)
        warm = max(1, steps // 10)

        def one_cycle(s: int) -> float:
            """Linear warm-up over a tenth of the steps, then cosine decay to ``final_lr_fraction``."""
            if s < warm:
                return (s + 1) / warm
            floor = cfg.final_lr_fraction
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, steps - warm))))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle)
        self.encoder.train()
        for _epoch in range(1, cfg.init_epochs + 1):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for i in range(0, len(x), batch):
                idx = order[i : i + batch]
                xb, zb = x[idx], layout[idx]  # (batch, dim), (batch, n_components)
                if synthetic:
                    xs = synthetic_points(x, idx, neighbours, cfg.regression_mix, cfg.regression_noise, generator)
                    xb, zb = torch.cat([xb, xs]), torch.cat([zb, placer(xs)])
                loss = (self.encoder(xb) - zb).pow(2).sum(-1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(idx)
            if tracker.epoch("regression", {"regression_mse": total / len(x)}):
                break
        logger.info("encoder fitted to the %s layout (MSE %.3f)", cfg.init, total / len(x))

    def _fit_umap(
        self,
        x_train: torch.Tensor,
        edges,
        generator: torch.Generator,
        x_val: np.ndarray,
        tracker: _StageTracker,
    ) -> None:
        """UMAP's loss on sampled edges for the encoder; with ``decoder_shapes_map`` the decoder learns from
        the edges' heads meanwhile (and its loss shapes the map)."""
        cfg = self.config
        head = torch.from_numpy(edges.head).to(self.device)
        tail = torch.from_numpy(edges.tail).to(self.device)
        weight = torch.from_numpy(edges.weight)
        joint = cfg.decoder_shapes_map
        params = [*self.encoder.parameters(), *(self.decoder.parameters() if joint else [])]
        optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
        steps_per_epoch = max(1, math.ceil(len(weight) / cfg.batch_size))
        total = cfg.n_epochs * steps_per_epoch
        floor = cfg.final_lr_fraction
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - (1.0 - floor) * s / total)
        recon_fn = RECONSTRUCTION_LOSSES[cfg.reconstruction_loss]
        rate, n = cfg.negative_sample_rate, len(x_train)
        for epoch in range(1, cfg.n_epochs + 1):
            self.encoder.train()
            self.decoder.train()
            sums = {"umap_loss": 0.0, "reconstruction_loss": 0.0}
            for _ in range(steps_per_epoch):
                pick = torch.multinomial(weight, cfg.batch_size, replacement=True, generator=generator)
                xh, xt = x_train[head[pick]], x_train[tail[pick]]  # (batch, dim)
                zh, zt = self.encoder(xh), self.encoder(xt)  # (batch, n_components)
                if cfg.negative_sampling == "uniform":
                    # A uniform sample of points (umap-learn samples negatives uniformly over vertices).
                    pool = self.encoder(x_train[torch.randint(0, n, (len(zh),), generator=generator)])
                else:
                    pool = torch.cat([zt, zh])  # the batch's own edge ends (umap-learn's parametric scheme)
                neg = pool[torch.randint(0, len(pool), (len(zh) * rate,), generator=generator)]  # (batch * rate, n_c)
                loss_umap = umap_cross_entropy(zh, zt, neg, self.a, self.b, cfg.repulsion_strength)
                loss = loss_umap
                if joint:
                    loss_rec = recon_fn(self.decoder(zh), xh)
                    loss = loss + cfg.reconstruction_weight * loss_rec
                    sums["reconstruction_loss"] += loss_rec.item()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(list(self.encoder.parameters()), 4.0)
                if joint:
                    nn.utils.clip_grad_norm_(list(self.decoder.parameters()), 4.0)
                optimizer.step()
                scheduler.step()
                sums["umap_loss"] += loss_umap.item()
            metrics = {k: v / steps_per_epoch for k, v in sums.items() if joint or k == "umap_loss"}
            if len(x_val) and joint:
                metrics["val_reconstruction_cosine"] = float(
                    np.mean(cosine_rows(self.inverse_transform(self.transform(x_val)), x_val))
                )
            metrics["epoch"] = epoch
            self.history.append(metrics)
            if epoch == 1 or epoch % 10 == 0 or epoch == cfg.n_epochs:
                logger.info("epoch %d/%d %s", epoch, cfg.n_epochs, {k: round(v, 4) for k, v in metrics.items()})
            if tracker.epoch("umap", metrics):
                logger.info("stopped after epoch %d", epoch)
                break

    def _fit_decoder(self, x_train: torch.Tensor, generator: torch.Generator, tracker: _StageTracker) -> None:
        """Train only the decoder on the final map: every point's coordinates -> its embedding."""
        cfg = self.config
        with torch.no_grad():
            self.encoder.eval()
            z = self.encoder(x_train)  # (n_train, n_components)
        recon_fn = RECONSTRUCTION_LOSSES[cfg.reconstruction_loss]
        optimizer = torch.optim.Adam(self.decoder.parameters(), lr=cfg.regression_learning_rate)
        batch = min(256, len(z))
        steps = cfg.decoder_epochs * math.ceil(len(z) / batch)
        floor = cfg.final_lr_fraction
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - (1.0 - floor) * s / steps)
        self.decoder.train()
        total = 0.0
        for _ in range(cfg.decoder_epochs):
            order = torch.randperm(len(z), generator=generator)
            total = 0.0
            for i in range(0, len(z), batch):
                idx = order[i : i + batch]
                loss = recon_fn(self.decoder(z[idx]), x_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(idx)
            if tracker.epoch("decoder", {"decoder_loss": total / len(z)}):
                break
        if not self.history:
            self.history.append({})
        self.history[-1]["decoder_loss"] = total / len(z)
        logger.info("decoder fitted on the final map (loss %.4f)", total / len(z))

    def _check(self, x: np.ndarray, dim: int, what: str) -> np.ndarray:
        if not self.is_fitted:
            raise UserError("the parametric UMAP is not trained")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != dim:
            raise UserError(f"{what} must have {dim} columns, got shape {tuple(x.shape)}")
        if not np.isfinite(x).all():
            raise UserError(f"{what} contain NaN or infinite values")
        return x

    @torch.no_grad()
    def _apply(self, net: nn.Module, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        net.eval()
        out = [net(torch.from_numpy(x[i : i + batch_size]).to(self.device)).cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, net[-1].out_features), dtype=np.float32)

    def transform(self, x: np.ndarray, refine: bool | None = None) -> np.ndarray:
        """Map (n, dim) embeddings to (n, n_components) map coordinates.

        The encoder places the points; with ``transform_refine_epochs`` (or ``refine=True``) they
        are then optimised against the fitted points as umap-learn's ``transform`` does
        (:func:`gapfill.refine.refine_placement`, started from the encoder's positions).
        """
        x = self._check(x, self.input_dim, "embeddings")
        z = self._apply(self.encoder, x)
        epochs = self.config.transform_refine_epochs
        if refine is not None:
            epochs = (epochs or DEFAULT_REFINE_EPOCHS) if refine else 0
        if epochs and self.anchors_x is not None and len(x):
            from gapfill.refine import refine_placement

            xn = torch.from_numpy(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).float()
            # A point the map was fitted on stays where the map put it (refining it against its own
            # anchor and its neighbours only blurs the fitted layout); only new points are refined.
            new = np.ones(len(x), dtype=bool)
            for i in range(0, len(x), 20000):
                best = (xn[i : i + 20000] @ self.anchors_x.T).max(dim=1)
                same = (best.values >= 1 - 1e-6).numpy()
                z[i : i + 20000][same] = self.anchors_z[best.indices[same]].numpy()
                new[i : i + 20000] = ~same
            idx = np.flatnonzero(new)
            for i in range(0, len(idx), 20000):
                chunk = idx[i : i + 20000]
                z[chunk] = refine_placement(
                    torch.from_numpy(z[chunk]), xn[chunk], self.anchors_x, self.anchors_z,
                    self.a, self.b, self.config.n_neighbors, epochs, self.config.negative_sample_rate,
                    seed=self.config.seed,
                ).numpy()  # fmt: skip
        return z

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Map (n, n_components) coordinates to (n, dim) embeddings.

        With the cosine reconstruction loss only the direction is trained, so the rows are
        L2-normalised (as the embeddings the encoder was trained on are); with MSE they are raw.
        """
        out = self._apply(self.decoder, self._check(z, self.config.n_components, "coordinates"))
        if self.config.reconstruction_loss == "cosine":
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write weights (safetensors) and the resolved config (JSON) into the folder ``path``, atomically."""
        if not self.is_fitted:
            raise UserError("the parametric UMAP is not trained; nothing to save")
        tensors = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in self.encoder.state_dict().items()}
        tensors.update({f"decoder.{k}": v.detach().cpu().contiguous() for k, v in self.decoder.state_dict().items()})
        if self.anchors_x is not None:
            tensors.update({"anchors.x": self.anchors_x.contiguous(), "anchors.z": self.anchors_z.contiguous()})
        meta = {"input_dim": str(self.input_dim), "a": repr(self.a), "b": repr(self.b)}
        with atomic_dir(path, overwrite=overwrite) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata=meta)
            save_config(self.config, tmp / CONFIG_FILE)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> ParametricUMAP:
        """Load a model written by :meth:`save`."""
        path = Path(path)
        if not (path / WEIGHTS_FILE).is_file():
            raise UserError(f"{path}: no {WEIGHTS_FILE} (not a saved parametric UMAP)")
        from safetensors import safe_open

        with safe_open(str(path / WEIGHTS_FILE), framework="pt") as handle:
            meta = handle.metadata() or {}
        model = cls(load_config(UMAPConfig, path / CONFIG_FILE), device=device)
        model._build(int(meta["input_dim"]))
        model.a, model.b = float(meta["a"]), float(meta["b"])
        tensors = load_file(str(path / WEIGHTS_FILE), device=device)
        model.encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
        model.decoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
        if "anchors.x" in tensors:
            model.anchors_x, model.anchors_z = tensors["anchors.x"].cpu(), tensors["anchors.z"].cpu()
        return model


def initial_layout(kind: str, x: np.ndarray, graph: sp.spmatrix, n_components: int, seed: int) -> np.ndarray:
    """The (n, n_components) starting layout, scaled as umap-learn scales its init (max |coordinate| = 10).

    ``spectral``: the eigenvectors of the fuzzy graph's normalised Laplacian (scikit-learn's
    ``spectral_embedding``, what umap-learn's default init computes); ``pca``: the first
    principal components of ``x``.
    """
    if kind == "spectral":
        from sklearn.manifold import spectral_embedding

        layout = spectral_embedding(sp.csr_matrix(graph), n_components=n_components, random_state=seed, drop_first=True)
    elif kind == "pca":
        from sklearn.decomposition import PCA

        layout = PCA(n_components=n_components, random_state=seed).fit_transform(x)
    else:
        raise ValueError(f"unknown init {kind!r}")
    layout = layout - layout.mean(0)
    return (10.0 * layout / max(float(np.abs(layout).max()), 1e-12)).astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, dim) arrays."""
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na, 1e-12)
