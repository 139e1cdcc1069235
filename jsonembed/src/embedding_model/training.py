"""Training from scratch: a pair of views per record (query-shaped or augmented), NT-Xent, AdamW with warm-up.

``train`` is a plain function of (config, records): it builds the vocabulary from the
training slice, trains, checks self-retrieval on a held-out slice after every epoch and
returns the embedder plus a history. The CLI does the I/O around it.

With ``teacher:`` set it also distils (:mod:`embedding_model.teacher`): before the first
step the teacher's vectors of the records and of their clean query-shaped views are built
(or read from the cache); each query-shaped pair is then a noisy copy of one of those views
and a noisy copy of the record, and both of its vectors are pulled towards the teacher's
(through :class:`~embedding_model.losses.DistillationHead`). The loss of a step is
``nt_xent_weight * NT-Xent(all pairs) + distill_weight * distillation(the views with a
teacher vector)``. The head is trained with the model and dropped afterwards.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from embedding_model.augment import Augmenter
from embedding_model.config import JsonEmbedConfig
from embedding_model.embedder import JsonEmbedder
from embedding_model.losses import DistillationHead, distill_loss, nt_xent_loss, ranking_distill_loss
from embedding_model.model import build_encoder
from embedding_model.records import Segment, segments_to_text
from embedding_model.teacher import Teacher, TeacherTargetCache, TeacherTargets, build_targets
from embedding_model.vocab import CharVocab
from embshared.evaluate import dense_score_fn, evaluate_retrieval

logger = logging.getLogger(__name__)

VAL_METRICS = ("accuracy@1", "mrr@10")


@dataclass
class TrainResult:
    """What training produced besides the model."""

    history: list[dict] = field(default_factory=list)  # one entry per logged step / epoch
    validation: list[dict] = field(default_factory=list)  # self-retrieval per epoch
    train_records: int = 0
    val_records: int = 0
    steps: int = 0
    records_seen: int = 0
    seconds: float = 0.0  # wall time, validation and the teacher's encoding included
    train_seconds: float = 0.0  # the optimisation steps only
    teacher: dict = field(default_factory=dict)  # with a teacher: its name and its targets' summary

    @property
    def records_per_second(self) -> float:
        """Training records per second of optimisation (each record gives two views)."""
        return self.records_seen / self.train_seconds if self.train_seconds else 0.0

    def summary(self) -> dict:
        """The figures a bench keeps beside a trained model (counts, time, rate, validation)."""
        return {
            "train_records": self.train_records,
            "val_records": self.val_records,
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "train_records_per_second": round(self.records_per_second, 1),
            "final_validation": self.validation[-1],
            "validation": self.validation,
            **({"teacher": self.teacher} if self.teacher else {}),
        }


def split_validation(n: int, fraction: float, max_n: int, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): a seeded random slice of ``fraction`` (at most ``max_n``).

    No validation slice when it would leave fewer than two records per side.
    """
    n_val = min(round(n * fraction), max_n)
    if n_val < 2 or n - n_val < 2:
        return list(range(n)), []
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def warmup_linear_decay(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0."""
    warmup = max(1, math.ceil(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def encode_views(encoder, vocab: CharVocab, texts: Sequence[str], max_chars: int, chunks: int = 2) -> torch.Tensor:
    """(len(texts), dim) embeddings with gradients, the batch cut into ``chunks`` by length.

    Views differ a lot in length (a cropped span vs. a whole record); padding every view
    to the longest would waste most of the convolution work on padding.
    """
    device = next(encoder.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: min(len(texts[i]), max_chars))
    size = math.ceil(len(order) / chunks)
    parts = []
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        ids = vocab.batch([texts[i] for i in rows], max_chars, encoder.min_length).to(device)
        parts.append(encoder(ids))  # (chunk, dim)
    vectors = torch.cat(parts)  # (n, dim) in length order
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return vectors[inverse.to(device)]


def self_retrieval(
    embedder: JsonEmbedder, segments: Sequence[Sequence[Segment]], augmenter: Augmenter, seed: int
) -> dict[str, float]:
    """Does an augmented view of a held-out record find that record among all held-out records?

    The corpus is the full text of every held-out record; each record's query is one
    query-shaped view of it with character noise (a record view when ``query_view_prob``
    is 0), seeded, so epochs are compared on the same queries.

    Returns:
        {"accuracy@1": ..., "mrr@10": ...}.
    """
    rng = random.Random(seed)
    ids = [str(i) for i in range(len(segments))]
    corpus = {i: segments_to_text(s) for i, s in zip(ids, segments)}
    make_query = augmenter.query_view if augmenter.query_view_prob > 0 else augmenter.view
    queries = {i: make_query(s, rng) or corpus[i] for i, s in zip(ids, segments)}
    qrels = {i: {i: 1} for i in ids}
    doc_vectors = embedder.embed_texts([corpus[i] for i in ids])
    score_fn = dense_score_fn(embedder.embed_texts, doc_vectors, metric="dot")
    return evaluate_retrieval(queries, corpus, qrels, score_fn, names=VAL_METRICS)


@torch.no_grad()
def teacher_cosine(
    embedder: JsonEmbedder, head: DistillationHead, segments: Sequence[Sequence[Segment]], targets: np.ndarray
) -> float:
    """Mean cosine between the teacher's vectors of records and the student's (through the head) of their text."""
    head.eval()
    vectors = torch.from_numpy(embedder.embed_segments(segments)).to(embedder.device)
    student = head(vectors)
    head.train()
    teacher = torch.from_numpy(targets).to(student.device)
    return float(torch.nn.functional.cosine_similarity(student, teacher, dim=-1).mean())


def nearest_records(vectors: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """(n, k) each row's k nearest other rows by dot product (unit rows: cosine), nearest first.

    In chunks of ``chunk`` rows, so memory is chunk x n, not n x n; with ``k`` >= n - 1 every other row.
    """
    n = len(vectors)
    k = min(k, n - 1)
    matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        scores = matrix[start : start + chunk] @ matrix.T
        rows = torch.arange(start, min(start + chunk, n))
        scores[rows - start, rows] = float("-inf")  # not itself
        out[start : start + chunk] = torch.topk(scores, k, dim=1).indices.numpy()
    return out


def neighbour_groups(neighbours: np.ndarray, group: int, rng: np.random.Generator) -> list[list[int]]:
    """The records in groups: a random record, then up to ``group`` - 1 of its nearest not yet placed
    (``neighbours``: nearest first). Laid end to end they are an epoch's order, so each batch slice
    holds close rivals. Every record is in exactly one group; a group is shorter when its first
    record's neighbours are all placed.
    """
    placed = np.zeros(len(neighbours), dtype=bool)
    groups: list[list[int]] = []
    for seed in rng.permutation(len(neighbours)):
        if placed[seed]:
            continue
        members = [int(seed)]
        for other in neighbours[seed]:
            if len(members) == group:
                break
            if not placed[other] and other != seed:
                members.append(int(other))
        placed[members] = True
        groups.append(members)
    return groups


def distill_batch(
    augmenter: Augmenter,
    segments: Sequence[Sequence[Segment]],
    rows: Sequence[int],
    targets: TeacherTargets,
    rng: random.Random,
) -> tuple[list[str], list[str], list[int], list[int]]:
    """One batch of pairs with a teacher: (views a, views b, positions among the 2n views that have a
    teacher vector, those vectors' rows in ``targets.vectors``)."""
    views_a, views_b, positions, target_rows = [], [], [], []
    n = len(rows)
    for k, i in enumerate(rows):
        a, b, view = augmenter.distill_pair(segments[i], targets.view_texts[i], rng)
        views_a.append(a)
        views_b.append(b)
        if view is not None:
            positions += [k, n + k]
            target_rows += [targets.view_rows[i][view], targets.record_rows[i]]
    return views_a, views_b, positions, target_rows


def train(
    cfg: JsonEmbedConfig,
    segments: Sequence[Sequence[Segment]],
    device: str = "cpu",
    show_progress: bool = True,
    teacher_cache: TeacherTargetCache | None = None,
    teacher: Teacher | None = None,
) -> tuple[JsonEmbedder, TrainResult]:
    """Train a character CNN from scratch on flattened records (distilling from ``cfg.teacher`` when set).

    Args:
        cfg: the resolved config (seed, model sizes, optimiser, augmentation, teacher).
        segments: the flattened records (see :func:`embedding_model.records.flatten_record`).
        device: torch device.
        show_progress: show a tqdm bar per epoch.
        teacher_cache: where the teacher's vectors are kept between runs (None: embed every time).
        teacher: the teacher to use instead of loading ``cfg.teacher`` (e.g. one already loaded).

    Returns:
        (the trained embedder in eval mode, the training history).
    """
    if len(segments) < 2:
        raise ValueError("training needs at least two records")
    train_idx, val_idx = split_validation(len(segments), cfg.val_fraction, cfg.val_max, cfg.seed)
    train_segments = [segments[i] for i in train_idx]
    val_segments = [segments[i] for i in val_idx]
    vocab = CharVocab.build(
        (segments_to_text(s)[: cfg.max_chars] for s in train_segments), cfg.min_char_freq, cfg.lowercase
    )
    logger.info(
        "%d training records, %d held out for validation, %d characters in the vocabulary",
        len(train_segments),
        len(val_segments),
        len(vocab),
    )

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg, len(vocab)).to(device)
    embedder = JsonEmbedder(encoder, vocab, cfg, device)
    augmenter = Augmenter.from_config(cfg)
    targets: TeacherTargets | None = None
    head: DistillationHead | None = None
    parameters = list(encoder.parameters())
    if cfg.teacher is not None:
        # loading a model draws from torch's generator; forking it keeps the student's dropout the
        # same whether the teacher ran or its vectors came from the cache
        with torch.random.fork_rng(devices=[]):
            targets = build_targets(
                teacher or Teacher(cfg.teacher, device),
                augmenter,
                train_segments,
                val_segments,
                cfg.max_chars,
                cfg.teacher_views,
                cfg.seed,
                teacher_cache,
                show_progress,
            )
        target_vectors = torch.from_numpy(targets.vectors).to(device)  # (n_texts, teacher_dim)
        head = DistillationHead(encoder.projection.out_features, targets.dim).to(device)
        parameters += list(head.parameters())  # none when the sizes agree
        logger.info(
            "distilling from %s (%d-dim vectors of %d texts, %s); loss %g * NT-Xent + %g * %s",
            cfg.teacher,
            targets.dim,
            len(targets.vectors),
            "from the cache" if not targets.encoded else f"embedded in {targets.seconds:.0f} s",
            cfg.nt_xent_weight,
            cfg.distill_weight,
            cfg.distill_loss,
        )
    batch_size = min(cfg.batch_size, len(train_segments))
    steps_per_epoch = len(train_segments) // batch_size  # the last partial batch is dropped
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(total_steps, cfg.warmup_ratio))
    logger.info("%d epochs x %d steps of %d records on %s", cfg.epochs, steps_per_epoch, batch_size, device)

    result = TrainResult(train_records=len(train_segments), val_records=len(val_segments))
    if targets is not None:
        result.teacher = {"name": cfg.teacher, **targets.summary(), "projection": head.projection is not None}
    order_rng = np.random.default_rng(cfg.seed)
    neighbours = None
    if targets is not None and cfg.teacher_neighbours > 0:  # by the teacher's vectors of the clean records
        neighbours = nearest_records(targets.vectors[targets.record_rows], 4 * cfg.teacher_neighbours)
        logger.info("batches of groups of a record and its %d nearest (teacher)", cfg.teacher_neighbours)
    view_rng = random.Random(cfg.seed)
    step = 0
    with logging_redirect_tqdm():
        for epoch in range(1, cfg.epochs + 1):
            encoder.train()
            if neighbours is None:
                order = order_rng.permutation(len(train_segments))
            else:
                order = np.concatenate(neighbour_groups(neighbours, cfg.teacher_neighbours + 1, order_rng))
            bar = tqdm(
                range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", unit="step", disable=not show_progress
            )
            epoch_loss = epoch_distill = 0.0
            epoch_started = time.perf_counter()
            for b in bar:
                rows = order[b * batch_size : (b + 1) * batch_size]
                if targets is None:
                    views_a, views_b = zip(*(augmenter.pair(train_segments[i], view_rng) for i in rows))
                    positions = []
                else:
                    views_a, views_b, positions, target_rows = distill_batch(
                        augmenter, train_segments, rows, targets, view_rng
                    )
                vectors = encode_views(encoder, vocab, [*views_a, *views_b], cfg.max_chars)  # (2 * batch, dim)
                loss = nt_xent_loss(vectors[: len(rows)], vectors[len(rows) :], cfg.temperature)
                distill = None
                if targets is not None:
                    loss = cfg.nt_xent_weight * loss
                    if positions and cfg.distill_loss == "ranking":  # positions: (view, its record) pairs
                        picked = vectors[torch.tensor(positions, device=vectors.device)]
                        wanted = target_vectors[target_rows]
                        distill = ranking_distill_loss(
                            picked[0::2], picked[1::2], wanted[0::2], wanted[1::2], cfg.temperature
                        )
                        loss = loss + cfg.distill_weight * distill
                    elif positions:
                        student = head(vectors[torch.tensor(positions, device=vectors.device)])
                        distill = distill_loss(student, target_vectors[target_rows], cfg.distill_loss)
                        loss = loss + cfg.distill_weight * distill
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(parameters, cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                result.records_seen += len(rows)
                value = float(loss.detach())
                epoch_loss += value
                if distill is not None:
                    epoch_distill += float(distill.detach())
                bar.set_postfix(loss=f"{value:.4f}")
                if step % cfg.log_every == 0 or step == total_steps:
                    lr = scheduler.get_last_lr()[0]
                    logger.info("step %d/%d  epoch %d  loss %.4f  lr %.2e", step, total_steps, epoch, value, lr)
                    point = {"step": step, "epoch": epoch, "loss": value, "lr": lr}
                    if distill is not None:
                        point["distill_loss"] = float(distill.detach())
                    result.history.append(point)
            result.train_seconds += time.perf_counter() - epoch_started
            entry = {"epoch": epoch, "step": step, "mean_loss": epoch_loss / max(1, steps_per_epoch)}
            if targets is not None:
                entry["mean_distill_loss"] = epoch_distill / max(1, steps_per_epoch)
                if val_segments:
                    entry["teacher_cosine"] = teacher_cosine(
                        embedder, head, val_segments, targets.vectors[targets.val_rows]
                    )
                logger.info(
                    "epoch %d: mean distillation loss %.4f, held-out records' cosine to the teacher %s",
                    epoch,
                    entry["mean_distill_loss"],
                    f"{entry['teacher_cosine']:.3f}" if "teacher_cosine" in entry else "(no validation slice)",
                )
            if val_segments:
                entry.update(self_retrieval(embedder, val_segments, augmenter, cfg.seed))
                logger.info(
                    "epoch %d: mean loss %.4f, held-out self-retrieval accuracy@1 %.3f, mrr@10 %.3f",
                    epoch,
                    entry["mean_loss"],
                    entry["accuracy@1"],
                    entry["mrr@10"],
                )
            else:
                logger.info("epoch %d: mean loss %.4f (no validation slice)", epoch, entry["mean_loss"])
            result.validation.append(entry)
    result.steps = step
    result.seconds = time.perf_counter() - started
    encoder.eval()
    return embedder, result
