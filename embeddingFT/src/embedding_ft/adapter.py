"""The adapter recipe: a trained projection head over a FROZEN base model, saved as a sentence-transformers folder.

    text -> base model (frozen; its own modules) [-> Normalize] -> Dense (GELU) -> Dense -> Normalize

The head is :class:`embshared.heads.ProjectionHead` (orthogonal linear map + residual MLP whose
output starts at 0), so an untrained adapter ranks exactly like its base under cosine. It is
saved as two standard ``Dense`` modules that compute it exactly (:func:`embshared.heads.head_as_dense`),
so ``SentenceTransformer(path)`` loads the adapter like any model; ``adapter.json`` beside the
modules says where the head starts and which base it was trained over. ragcun's SciFact bench
(frozen MiniLM + a 768-unit head, 40 epochs on cached base vectors, negatives from the base
model's ranks 10-50, epoch chosen by validation loss) beat full fine-tuning on unseen queries
after about a minute of training.

- :func:`train_head`: in-batch InfoNCE on cached base vectors (cosine logits with a scale, known
  positives masked, optional SIGReg isotropy term and optional fixed z-scored BM25 term), the
  epoch kept by validation loss on held-out queries.
- :func:`attach_head` / :class:`AdapterInfo` / :func:`is_adapter` / :func:`load_adapter`: the model.
- :func:`apply_head`: the adapter's vectors of documents already embedded by the base model.
- :func:`reindex_from_base`: an index for the adapter built from a base-model index's stored
  vectors (no second encoding pass over the documents).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embshared.cli import torch_threads
from embshared.errors import UserError
from embshared.heads import ProjectionHead, head_as_dense
from embshared.isotropy import SIGReg

logger = logging.getLogger(__name__)

__all__ = [
    "AdapterInfo",
    "HeadOptions",
    "apply_head",
    "attach_head",
    "is_adapter",
    "load_adapter",
    "train_head",
    "zscore_lookup",
]

#: (query indices (B,), doc indices (B, C)) -> (B, C) z-scored BM25 scores
BM25Z = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: (query index, positive doc index, negative doc indices)
Example = tuple[int, int, Sequence[int]]


@dataclass
class HeadOptions:
    """How :func:`train_head` trains a head.

    Attributes:
        hidden_dim: width of the head's residual MLP (0: linear head).
        epochs, batch_size: passes over the training examples, examples per batch.
        learning_rate, weight_decay: AdamW; the rate decays linearly to 0 over the run.
        scale: cosine logit scale (as in MultipleNegativesRankingLoss).
        isotropy_weight: weight of SIGReg on the head's (unnormalised) outputs; ragcun credits it
            with +0.035 NDCG@10 on SciFact. 0 turns it off.
        bm25_weight: lambda of the hybrid-aware term: logits + lambda * z(BM25(q, d)), fixed scores
            (no gradient), so the head learns what BM25 does not already rank. 0 turns it off.
        validation_fraction: share of the QUERIES held out to choose the epoch (0: keep the last).
        seed: head init, query split, batch order and SIGReg directions.
        merge_with_init: WiSE-FT for the head: the kept head's parameters become ``(1 - w) * trained +
            w * untrained`` (the untrained head ranks exactly like the base), trading some of the
            gain for less forgetting outside the training domain; 0: the trained head.
        threads: torch intra-op threads while training (None: as set). The ops are tiny: on this
            2-core machine shared with other jobs, 2 threads made an epoch ~30x slower than 1.
    """

    hidden_dim: int = 768
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    scale: float = 20.0
    isotropy_weight: float = 0.0
    bm25_weight: float = 0.0
    validation_fraction: float = 0.1
    seed: int = 0
    threads: int | None = 1
    merge_with_init: float = 0.0

    def validate(self) -> None:
        if self.hidden_dim < 0:
            raise UserError(f"hidden_dim must be >= 0, got {self.hidden_dim}")
        if self.epochs < 1 or self.batch_size < 2:
            raise UserError(f"epochs must be >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")
        if self.learning_rate <= 0 or self.scale <= 0:
            raise UserError(f"learning_rate and scale must be positive, got {self.learning_rate} and {self.scale}")
        if self.weight_decay < 0 or self.isotropy_weight < 0 or self.bm25_weight < 0:
            raise UserError("weight_decay, isotropy_weight and bm25_weight must be >= 0")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise UserError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")


# ---------------------------------------------------------------------------------------
# Training


def zscore_lookup(scores: np.ndarray) -> BM25Z:
    """A ``bm25_z`` for :func:`train_head` from a dense (n_queries, n_docs) BM25 score matrix.

    Each query's row is z-scored over all documents (as the index's hybrid does,
    :func:`embshared.fusion.zscore_rows`); the callable picks ``z[q, d]``.
    """
    from embshared.fusion import zscore_rows

    z = zscore_rows(np.asarray(scores, dtype=np.float32))  # (n_queries, n_docs)
    return lambda queries, docs: z[np.asarray(queries)[:, None], np.asarray(docs)]


def _split_queries(queries: list[int], fraction: float, seed: int) -> tuple[set[int], set[int]]:
    """(train, validation) query sets; the validation share rounded, at least 1 when asked, never all."""
    order = sorted(queries)
    random.Random(seed).shuffle(order)
    n_val = min(max(round(fraction * len(order)), 1), len(order) - 1) if fraction > 0 and len(order) >= 2 else 0
    return set(order[n_val:]), set(order[:n_val])


class _Objective:
    """The loss of one batch of examples; the same for training and validation."""

    def __init__(self, queries, docs, positives, options: HeadOptions, bm25_z: BM25Z | None, generator):
        self.queries, self.docs, self.positives = queries, docs, positives
        self.options = options
        self.bm25_z = bm25_z if options.bm25_weight > 0 else None
        self.sigreg = SIGReg(num_slices=256) if options.isotropy_weight > 0 else None
        self.generator = generator

    def __call__(self, head: ProjectionHead, batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, InfoNCE part) of ``batch``."""
        q_idx = [q for q, _, _ in batch]
        candidates = list(dict.fromkeys([p for _, p, _ in batch] + [n for _, _, negs in batch for n in negs]))
        column = {d: j for j, d in enumerate(candidates)}
        target = torch.tensor([column[p] for _, p, _ in batch])  # (B,)
        mask = torch.zeros(len(batch), len(candidates), dtype=torch.bool)  # (B, C): other known positives
        for row, (q, p, _) in enumerate(batch):
            for d in self.positives.get(q, ()):
                if d != p and d in column:
                    mask[row, column[d]] = True
        zq = head(self.queries[q_idx])  # (B, out_dim)
        zd = head(self.docs[candidates])  # (C, out_dim)
        logits = self.options.scale * (F.normalize(zq, dim=-1) @ F.normalize(zd, dim=-1).T)  # (B, C)
        if self.bm25_z is not None:
            doc_grid = np.broadcast_to(np.asarray(candidates), (len(batch), len(candidates)))
            lexical = np.asarray(self.bm25_z(np.asarray(q_idx), doc_grid), dtype=np.float32)  # (B, C)
            logits = logits + self.options.bm25_weight * torch.from_numpy(lexical)
        nce = F.cross_entropy(logits.masked_fill(mask, float("-inf")), target)
        if self.sigreg is None:
            return nce, nce
        isotropy = 0.5 * (self.sigreg(zq, self.generator) + self.sigreg(zd, self.generator))
        return nce + self.options.isotropy_weight * isotropy, nce


def _batches(examples: list[Example], size: int) -> list[list[Example]]:
    return [examples[i : i + size] for i in range(0, len(examples), size)]


def train_head(
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    examples: Sequence[Example],
    positives: Mapping[int, Iterable[int]] | None = None,
    options: HeadOptions | None = None,
    bm25_z: BM25Z | None = None,
) -> tuple[ProjectionHead, list[tuple[int, float, float | None]]]:
    """Train a head on cached base vectors; returns (head of the best epoch, history).

    A hand-written loop rather than ``SentenceTransformerTrainer``: the trainer would run the
    frozen transformer forward on every step (~1.5 rows/s for MiniLM at max_seq_length 256 on this
    2-core machine, ``embeddingFT/bench/results/default/bench_embed.md``: ~7 min per epoch of 656
    rows), while here the base vectors are computed once (the same pass that indexes the corpus)
    and an epoch is a few small matrix products. Measured on SciFact-size random tensors (800 x 384
    queries, 5,183 x 384 docs, 656 examples with one negative, batch 64, 768 hidden units, 10%
    validation, one thread, load average ~2.6 on the 2 cores): ~80 ms per epoch, 4.4 s for 40
    epochs; with isotropy_weight > 0 (SIGReg, 256 slices) ~200 ms per epoch, 8.1 s for 40.

    Args:
        query_vectors: (n_q, d) base vectors of the queries (unit vectors, as the base model gives).
        doc_vectors: (n_docs, d) base vectors of the documents.
        examples: (query index, positive doc index, negative doc indices) per training pair.
        positives: every known positive doc of each query index (e.g. all of its qrels), masked out
            of its row when it is not the row's target; default: the positives in ``examples``.
        options: see :class:`HeadOptions`.
        bm25_z: (query indices (B,), doc indices (B, C)) -> z-scored BM25 scores, used only when
            ``options.bm25_weight > 0`` (e.g. :func:`zscore_lookup`).

    Candidates of a batch are all its positives and negatives (each document once). A seeded
    ``validation_fraction`` of the queries (all of a query's examples on one side) is held out;
    its InfoNCE loss is evaluated before training (epoch 0) and after every epoch, and the head
    of the lowest one is returned (the untrained head, ranking like the base, when nothing beats
    it). History rows are (epoch, train loss, validation loss or None); epoch 0 holds the losses of
    the untrained head, later rows the mean training loss over the epoch's batches.
    """
    options = options or HeadOptions()
    options.validate()
    with torch_threads(options.threads):
        return _train_head(query_vectors, doc_vectors, examples, positives, options, bm25_z)


def _train_head(query_vectors, doc_vectors, examples, positives, options: HeadOptions, bm25_z):
    queries = torch.as_tensor(np.asarray(query_vectors, dtype=np.float32))  # (n_q, d)
    docs = torch.as_tensor(np.asarray(doc_vectors, dtype=np.float32))  # (n_docs, d)
    if queries.dim() != 2 or docs.dim() != 2 or queries.shape[1] != docs.shape[1]:
        raise UserError(
            f"query and doc vectors must be (n, d) with one d, got {tuple(queries.shape)}, {tuple(docs.shape)}"
        )
    examples = [(int(q), int(p), [int(n) for n in negs]) for q, p, negs in examples]
    if not examples:
        raise UserError("no training examples")
    for q, p, negs in examples:
        if not 0 <= q < len(queries) or not all(0 <= d < len(docs) for d in (p, *negs)):
            raise UserError(f"example ({q}, {p}, {negs}) indexes outside {len(queries)} queries / {len(docs)} docs")
    if options.bm25_weight > 0 and bm25_z is None:
        raise UserError("bm25_weight > 0 needs bm25_z (z-scored BM25 scores)")
    if positives is None:
        known: dict[int, set[int]] = {}
        for q, p, _ in examples:
            known.setdefault(q, set()).add(p)
    else:
        known = {int(q): {int(d) for d in ds} for q, ds in positives.items()}

    train_q, val_q = _split_queries(sorted({q for q, _, _ in examples}), options.validation_fraction, options.seed)
    train_examples = [e for e in examples if e[0] in train_q]
    val_examples = [e for e in examples if e[0] in val_q]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        head = ProjectionHead(queries.shape[1], queries.shape[1], options.hidden_dim)
    if options.isotropy_weight > 0:
        # SIGReg wants about unit variance per dimension; a global scale leaves cosine rankings as they are
        with torch.no_grad():
            head.rescale(1.0 / math.sqrt(max(float(head(docs).var(dim=0).mean()), 1e-12)))
    initial_state = copy.deepcopy(head.state_dict())
    generator = torch.Generator().manual_seed(options.seed)
    objective = _Objective(queries, docs, known, options, bm25_z, generator)
    optimizer = torch.optim.AdamW(head.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    total_steps = options.epochs * math.ceil(len(train_examples) / options.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps))

    def evaluate(rows: list[Example]) -> float | None:
        if not rows:
            return None
        head.eval()
        with torch.no_grad():
            losses = [(float(objective(head, b)[1]), len(b)) for b in _batches(rows, options.batch_size)]
        return sum(loss * n for loss, n in losses) / len(rows)

    start = time.perf_counter()
    with torch.no_grad():
        head.eval()
        first = [float(objective(head, b)[0]) for b in _batches(train_examples, options.batch_size)]
    history: list[tuple[int, float, float | None]] = [(0, float(np.mean(first)), evaluate(val_examples))]
    best_loss, best_state = history[0][2], copy.deepcopy(head.state_dict())
    for epoch in range(1, options.epochs + 1):
        head.train()
        order = torch.randperm(len(train_examples), generator=generator).tolist()
        losses = []
        for batch in _batches([train_examples[i] for i in order], options.batch_size):
            loss, _ = objective(head, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        val_loss = evaluate(val_examples)
        history.append((epoch, float(np.mean(losses)), val_loss))
        if val_loss is None or val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(head.state_dict())
    if options.merge_with_init:
        from embedding_ft.merge import interpolate_state_dicts

        best_state = interpolate_state_dicts(best_state, initial_state, options.merge_with_init)
    head.load_state_dict(best_state)
    head.eval()
    best = min(history, key=lambda row: row[2]) if val_examples else history[-1]
    logger.info(
        "head trained in %.1f s on %d examples of %d queries (%d validation queries); kept epoch %d of %d",
        time.perf_counter() - start, len(train_examples), len(train_q), len(val_q), best[0], options.epochs,
    )  # fmt: skip
    return head, history


# ---------------------------------------------------------------------------------------
# The model


ADAPTER_FILE = "adapter.json"


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter folder records beside its modules (``adapter.json``): where the head starts, its
    shape, and the base it was trained over (name + weights fingerprint, as an index records a model)."""

    base_modules: int
    in_dim: int
    out_dim: int
    hidden_dim: int
    base: dict | None = None

    def save(self, folder: str | Path) -> None:
        from embshared.files import write_json

        write_json(Path(folder) / ADAPTER_FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls, folder: str | Path) -> AdapterInfo | None:
        path = Path(folder).expanduser() / ADAPTER_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
        except (ValueError, TypeError) as exc:
            raise UserError(f"{path}: not a valid adapter file ({exc})") from None


def _base_identity(base_model, base_name: str | None) -> dict | None:
    """What the head was trained over, as an index remembers a model (name + weights fingerprint)."""
    from embedding_ft.identity import model_identity

    if base_name is None:  # the folder the base was loaded from, when it was loaded from one
        try:
            path = Path(base_model[0].auto_model.config._name_or_path)
        except (AttributeError, IndexError, TypeError):
            return None
        base_name = next((str(p) for p in (path, path.parent) if (p / "modules.json").is_file()), None)
        if base_name is None:
            return None
    identity = model_identity(base_name, "torch", None)
    return {"model": base_name, "model_fingerprint": identity["model_fingerprint"]}


def attach_head(base_model, head: ProjectionHead, base_name: str | None = None):
    """(SentenceTransformer, AdapterInfo): ``base_model``'s modules [+ Normalize] + the head as ``Dense``
    modules (:func:`embshared.heads.head_as_dense`) + Normalize.

    The saved folder is an ordinary sentence-transformers folder (``SentenceTransformer(path)``
    loads it); save the info beside it (``info.save(folder)``) so that :func:`apply_head` and
    :func:`reindex_from_base` find the head. The base modules are shared with ``base_model``.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    dim = base_model.get_embedding_dimension()
    if dim != head.in_dim:
        raise ValueError(f"the head takes {head.in_dim}-dim vectors, the base gives {dim}")
    modules = list(base_model)
    info = AdapterInfo(len(modules), head.in_dim, head.out_dim, head.hidden_dim, _base_identity(base_model, base_name))
    if not isinstance(modules[-1], Normalize):
        modules.append(Normalize())
    modules += [*head_as_dense(head), Normalize()]
    model = SentenceTransformer(
        modules=modules,
        device=str(base_model.device),
        prompts=dict(base_model.prompts),
        default_prompt_name=base_model.default_prompt_name,
        similarity_fn_name="cosine",
    )
    return model, info


def is_adapter(path) -> bool:
    """Whether a model folder holds an adapter (its adapter.json; nothing loaded)."""
    return isinstance(path, (str, Path)) and (Path(path).expanduser() / ADAPTER_FILE).is_file()


def load_adapter(path: str | Path, device: str | None = None):
    """(SentenceTransformer, AdapterInfo) of the adapter saved in ``path`` (one error line when it is not one)."""
    from embshared.models import load_sentence_transformer
    from embshared.runtime import pick_device

    path = Path(path).expanduser()
    info = AdapterInfo.load(path)
    if info is None:
        raise UserError(f"{path}: not an adapter model ({ADAPTER_FILE} missing)")
    return load_sentence_transformer(str(path), device=pick_device(device)), info


def apply_head(head_or_folder, base_vectors: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """The adapter's vectors of documents already embedded by its base model: normalize(head(v)).

    Args:
        head_or_folder: a trained :class:`ProjectionHead`, or an adapter folder (its saved
            ``Dense`` modules are run on the vectors).
        base_vectors: (n, in_dim) unit vectors from the base model (e.g. an index's embeddings.npy).

    Returns:
        (n, out_dim) float32 unit vectors, as the adapter's ``encode(texts, normalize_embeddings=True)``
        gives for the same texts.
    """
    if isinstance(head_or_folder, ProjectionHead):
        head, in_dim = head_or_folder, head_or_folder.in_dim
        modules = None
    else:
        model, info = load_adapter(head_or_folder)
        modules, in_dim = list(model)[info.base_modules :], info.in_dim
    vectors = np.asarray(base_vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != in_dim:
        raise UserError(f"base vectors of shape {vectors.shape}; the head takes (n, {in_dim})")
    chunks = []
    with torch.no_grad():
        for start in range(0, len(vectors), batch_size):
            x = F.normalize(torch.from_numpy(vectors[start : start + batch_size]), dim=-1)
            if modules is None:
                was_training = head.training
                head.eval()
                out = head(x)
                head.train(was_training)
            else:
                features = {"sentence_embedding": x.to(modules[0].linear.weight.device)}
                for module in modules:
                    features = module(features)
                out = features["sentence_embedding"]
            chunks.append(F.normalize(out, dim=-1).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, in_dim), dtype=np.float32)
