"""Know the cost before paying it: training memory from the batch shape, time from timed steps.

- Memory (before anything is trained): the activations a step keeps for the backward pass
  grow with texts per batch x tokens x layers; :func:`activation_gb` estimates them from the
  model's config (attention scores, probabilities and dropout masks per head, and the
  hidden / feed-forward tensors per layer), which is what ``loss: auto`` uses to choose
  the cached (GradCache) loss under ``max_memory_gb``.
- Time: a calibration kept in the cache (seconds per step for the same model, batch shape,
  loss and threads) gives an estimate before the first step; :class:`CostEstimator` then
  times the first real steps, prints the estimate of the whole run and, at the end, how far
  off both were. The summary records both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from embshared.bench import peak_rss_gb
from embshared.files import write_json

logger = logging.getLogger(__name__)

BYTES = 4  # fp32 activations
PROCESS_BASE_GB = 1.0  # python, torch, tokenizer, weights, optimizer state: ~1.0 GB measured for MiniLM
# Measured on this machine (MiniLM-L6, MNRL, batch 32 of a short claim + 2 abstracts of 256 tokens):
# one training step peaked at 9.3 GB resident, ~1.25x what the per-tensor count below gives.
OVERHEAD = 1.25


@dataclass(frozen=True)
class MemoryPlan:
    """What ``loss: auto`` chose for a ranking loss, and the peak memory it expects."""

    cached: bool
    mini_batch_size: int | None
    plain_gb: float
    chosen_gb: float


def activation_gb(model_config, groups: list[tuple[int, int]]) -> float:
    """Activation memory (GB) one forward pass keeps for backward, for a BERT-like encoder.

    Args:
        model_config: the transformer's config (heads, hidden size, layers).
        groups: (number of texts, tokens per text) of each column of a batch.

    Per layer and token: attention scores, probabilities and dropout mask per head
    (3 x heads x tokens), about 12 hidden-size tensors (projections, residuals, norms) and
    3 intermediate-size ones (feed-forward in, GELU, dropout), times OVERHEAD.
    """
    heads = getattr(model_config, "num_attention_heads", 12)
    hidden = getattr(model_config, "hidden_size", 384)
    inter = getattr(model_config, "intermediate_size", 4 * hidden)
    layers = getattr(model_config, "num_hidden_layers", 6)
    total = 0.0
    for n_texts, tokens in groups:
        per_token = 3 * heads * tokens + 12 * hidden + 3 * inter
        total += n_texts * tokens * layers * per_token * BYTES
    return OVERHEAD * total / 1024**3


def column_tokens(model, rows: list[dict], sample: int = 256) -> list[int]:
    """Tokens per text of each column: the longest of a sample of rows, capped at max_seq_length."""
    if not rows:
        return []
    columns = list(rows[0])
    picked = rows[:: max(1, len(rows) // sample)][:sample]
    cap = model.max_seq_length
    out = []
    for column in columns:
        texts = [str(r[column]) for r in picked if isinstance(r.get(column), str)]
        if not texts:
            continue
        lengths = [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=cap)["input_ids"]]
        out.append(min(cap, max(lengths)))
    return out


def plan_ranking_memory(model, rows: list[dict], batch_size: int, max_gb: float | None, mini_batch: int) -> MemoryPlan:
    """Plain MNRL if its estimated peak fits ``max_gb``, else the cached loss with the largest
    power-of-two mini-batch (at most ``mini_batch``) whose estimate fits."""
    config = model[0].auto_model.config
    tokens = column_tokens(model, rows)
    plain = PROCESS_BASE_GB + activation_gb(config, [(batch_size, t) for t in tokens])
    if max_gb is None or plain <= max_gb:
        return MemoryPlan(False, None, round(plain, 2), round(plain, 2))
    size = max(1, min(mini_batch, batch_size))
    size = 1 << (size.bit_length() - 1)
    while size > 1 and PROCESS_BASE_GB + activation_gb(config, [(size, max(tokens))]) > max_gb:
        size //= 2
    chosen = PROCESS_BASE_GB + activation_gb(config, [(size, max(tokens))])
    return MemoryPlan(True, size, round(plain, 2), round(chosen, 2))


def calibration_key(model_id: str, loss: str, batch_size: int, texts_per_row: int, tokens: int, threads: int) -> str:
    raw = json.dumps([model_id, loss, batch_size, texts_per_row, tokens, threads])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def load_calibration(cache_dir: str | Path, key: str) -> float | None:
    """Seconds per step measured by an earlier run of the same shape, or None."""
    path = Path(cache_dir) / "calibration.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get(key)
    except (OSError, ValueError):
        return None


def save_calibration(cache_dir: str | Path, key: str, seconds_per_step: float) -> None:
    path = Path(cache_dir) / "calibration.json"
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
    data[key] = round(seconds_per_step, 4)
    write_json(path, data)


def format_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


class CostEstimator:
    """A TrainerCallback that times the first steps and estimates the rest of the run.

    Args:
        total_steps: optimizer steps of the whole training.
        n_evals: evaluations during training (each costs ``eval_seconds``).
        eval_seconds: the measured time of one evaluation (the base model's).
        prior_seconds_per_step: a cached calibration (printed as the estimate before step 1).
        warmup_steps: steps timed before the estimate (the first step is excluded: it is slow).
    """

    def __init__(
        self,
        total_steps: int,
        n_evals: int,
        eval_seconds: float,
        prior_seconds_per_step: float | None = None,
        warmup_steps: int = 3,
    ):
        self.total_steps = total_steps
        self.n_evals = n_evals
        self.eval_seconds = eval_seconds
        self.prior = prior_seconds_per_step
        self.warmup_steps = max(2, min(warmup_steps, total_steps))
        self.start = None
        self.step_times: list[float] = []
        self._last = None
        self.estimate_seconds: float | None = None
        self.prior_estimate_seconds: float | None = None
        self.seconds_per_step: float | None = None

    def before_training(self) -> str:
        """The line printed before the first step."""
        evals = self.n_evals * self.eval_seconds
        if self.prior is not None:
            self.prior_estimate_seconds = self.prior * self.total_steps + evals
            return (
                f"estimate (from an earlier run of this shape): training {format_minutes(self.prior_estimate_seconds)} "
                f"({self.total_steps} steps x {self.prior:.1f} s + {self.n_evals} evaluations)"
            )
        return f"{self.total_steps} steps; the time estimate follows after {self.warmup_steps} timed steps"

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.step_times.append(now - self._last)
        self._last = now
        if len(self.step_times) == self.warmup_steps and self.estimate_seconds is None:
            timed = self.step_times[1:] or self.step_times
            self.seconds_per_step = sum(timed) / len(timed)
            elapsed = now - self.start
            rest = self.seconds_per_step * (self.total_steps - len(self.step_times))
            self.estimate_seconds = elapsed + rest + self.n_evals * self.eval_seconds
            logger.info(
                "estimate after %d steps: training %s in all (%.1f s per step x %d steps + %d evaluations x %.0f s), "
                "peak memory so far %.2f GB",
                len(self.step_times),
                format_minutes(self.estimate_seconds),
                self.seconds_per_step,
                self.total_steps,
                self.n_evals,
                self.eval_seconds,
                peak_rss_gb(),
            )

    def __getattr__(self, name):  # every other TrainerCallback event is a no-op
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def report(self, actual_seconds: float) -> dict:
        """Estimates against the actual training time (for the run summary)."""
        out = {"actual_seconds": round(actual_seconds, 1)}
        for key, value in (
            ("estimate_seconds", self.estimate_seconds),
            ("prior_estimate_seconds", self.prior_estimate_seconds),
        ):
            if value is not None:
                out[key] = round(value, 1)
                out[key.replace("seconds", "error")] = round(value / actual_seconds - 1, 3) if actual_seconds else None
        if self.seconds_per_step is not None:
            out["seconds_per_step"] = round(self.seconds_per_step, 3)
        return out
