"""Training: (text, embedding) pairs as zero-step and correction examples, and the training loop.

Correction examples need no generation: the hypothesis is a neighbouring training text or a
noised copy of the text. :func:`train_on_texts` is the whole run of ``train-vec2text``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from embshared.errors import UserError
from gapfill.config import Vec2TextConfig
from gapfill.vec2text.model import EmbedFn, Vec2Text, sentence_embedder

logger = logging.getLogger("gapfill.vec2text")

#: (step, total steps, {"loss", "seconds", "lr"}) after every training step
ProgressFn = Callable[[int, int, dict[str, float]], None]


def noised(text: str, rng: random.Random) -> str:
    """A corrupted copy of ``text``: words dropped, swapped or repeated (a cheap hypothesis)."""
    words = text.split()
    if len(words) < 3:
        return " ".join(words[::-1]) or text
    out = [w for w in words if rng.random() > 0.2]
    for _ in range(max(1, len(out) // 6)):
        if len(out) > 1:
            i = rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out) if out else words[0]


def make_examples(
    model: Vec2Text,
    texts: Sequence[str],
    embeddings: np.ndarray,
    embed: EmbedFn,
    correction_fraction: float,
    seed: int = 0,
    neighbours: int = 5,
) -> list[dict]:
    """Training examples: every text in zero-step form, and a share also in correction form.

    Correction hypotheses alternate between a near neighbour among the training texts (a
    related but different sentence, like a zero-step output) and a noised copy of the text.
    """
    rng = random.Random(seed)
    emb = np.asarray(embeddings, dtype=np.float32)
    examples = [{"ids": model.encode_text(t), "target": emb[i]} for i, t in enumerate(texts)]
    chosen = [i for i in range(len(texts)) if rng.random() < correction_fraction]
    if not chosen:
        return examples
    noisy, noisy_src, hyps = [], [], {}
    for n, i in enumerate(chosen):
        if n % 2 == 0 and len(texts) > neighbours + 1:
            sims = emb @ emb[i]  # (n_texts,)
            sims[i] = -1
            sims[sims > 0.98] = -1  # not the text itself under another spelling
            top = np.argpartition(-sims, neighbours)[:neighbours]
            j = int(rng.choice(list(top)))
            hyps[i] = (texts[j], emb[j])
        else:
            noisy.append(noised(texts[i], rng))
            noisy_src.append(i)
    if noisy:
        noisy_emb = embed(noisy)
        for k, i in enumerate(noisy_src):
            hyps[i] = (noisy[k], noisy_emb[k])
    for i, (hyp, hyp_emb) in hyps.items():
        examples.append(
            {
                "ids": model.encode_text(texts[i]),
                "target": emb[i],
                "hyp_ids": model.encode_text(hyp),
                "hyp_emb": hyp_emb,
            }
        )
    rng.shuffle(examples)
    return examples


TRAINABLE = {
    "projector": lambda name: False,
    "projector+norms": lambda name: "norm" in name,
    "all": lambda name: True,
}


def trainable_lm_parameters(model: Vec2Text) -> list[tuple[str, nn.Parameter]]:
    """The LM parameters trained under ``config.trainable`` (the rest are frozen)."""
    keep = TRAINABLE[model.config.trainable]
    out = []
    for name, param in model.lm.named_parameters():
        param.requires_grad_(keep(name))
        if param.requires_grad:
            out.append((name, param))
    return out


def train(
    model: Vec2Text,
    examples: list[dict],
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    val_examples: list[dict] | None = None,
) -> list[dict[str, float]]:
    """Train the projector (and the chosen LM parameters) on prepared examples.

    Returns:
        The log: one dict per logged step (step, loss, elapsed seconds, learning rate).
    """
    cfg = model.config
    if not examples:
        raise UserError("no training examples")
    lm_params = [p for _, p in trainable_lm_parameters(model)]
    groups = [{"params": [*model.projector.parameters(), model.separator], "lr": cfg.learning_rate}]
    if lm_params:
        groups.append({"params": lm_params, "lr": cfg.lm_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_steps, max(1, total // 10))
    start = time.perf_counter()

    def schedule(s: int) -> float:
        """Linear warm-up, then linear decay over the steps or the time budget, whichever ends first."""
        done = s / total
        if cfg.max_train_seconds:
            done = max(done, (time.perf_counter() - start) / cfg.max_train_seconds)
        return min(1.0, (s + 1) / warmup) * max(0.05, 1 - done)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(cfg.seed)
    log: list[dict[str, float]] = []
    step, running = 0, []
    bar = tqdm(total=total, desc="vec2text", unit="step", mininterval=5)
    model.train()
    stop = False
    for _epoch in range(cfg.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            batch = [examples[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            loss = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            running.append(loss.item())
            bar.update(1)
            elapsed = time.perf_counter() - start
            stopping = bool(cfg.max_train_seconds and elapsed > cfg.max_train_seconds) or (
                should_stop is not None and should_stop()
            )
            if step % 10 == 0 or step == total or stopping:
                entry = {
                    "step": step,
                    "loss": float(np.mean(running)),
                    "seconds": elapsed,
                    "lr": scheduler.get_last_lr()[0],
                }
                running = []
                log.append(entry)
                bar.set_postfix(loss=f"{entry['loss']:.3f}")
            if progress is not None:
                progress(step, total, {"loss": loss.item(), "seconds": elapsed, "lr": scheduler.get_last_lr()[0]})
            if stopping:
                stop = True
                break
        if stop:
            break
    bar.close()
    if val_examples:
        log.append(
            {
                "step": step,
                "val_loss": evaluate_loss(model, val_examples, cfg.batch_size),
                "seconds": time.perf_counter() - start,
            }
        )
    model.eval()
    logger.info("trained %d steps in %.0f s", step, time.perf_counter() - start)
    return log


def train_on_texts(
    texts: list[str], config: Vec2TextConfig, device: str | None = None, cache_dir: str | Path | None = None
) -> tuple[Vec2Text, list[dict[str, float]]]:
    """A model trained on ``texts`` from scratch: the sentence model of ``config.embedder``
    embeds them (cached on disk under ``cache_dir``), SmolLM2 is wrapped by :meth:`Vec2Text.build`,
    and :func:`train` runs on :func:`make_examples`, up to 64 examples (a tenth) held out.

    Returns:
        The model and the training log (its last entry the held-out loss).
    """
    from embshared.bench import cached_embeddings
    from embshared.models import load_sentence_transformer, load_smollm2
    from embshared.runtime import pick_device

    device = pick_device(device)
    embed = sentence_embedder(load_sentence_transformer(config.embedder, device=device))
    start = time.perf_counter()
    emb = cached_embeddings(texts, embed, cache_dir, config.embedder)
    logger.info("embedded in %.0f s", time.perf_counter() - start)
    lm, tokenizer = load_smollm2(device=device)
    model = Vec2Text.build(lm, tokenizer, emb.shape[1], config).to(device)
    examples = make_examples(model, texts, emb, embed, config.correction_fraction, config.seed)
    n_val = min(64, len(examples) // 10)
    log = train(model, examples[n_val:], val_examples=examples[:n_val])
    return model, log


@torch.no_grad()
def evaluate_loss(model: Vec2Text, examples: list[dict], batch_size: int = 16) -> float:
    """Mean loss over examples (per batch, averaged)."""
    model.eval()
    losses = [model.loss(examples[i : i + batch_size]).item() for i in range(0, len(examples), batch_size)]
    return float(np.mean(losses))
