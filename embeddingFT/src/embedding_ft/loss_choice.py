"""Which loss a run trains with: ``loss`` from the config, or for ``auto`` the one the data calls for,
in its cached (GradCache) form when plain MNRL's estimated peak memory exceeds ``max_memory_gb``."""

from __future__ import annotations

from dataclasses import dataclass

from embedding_ft.config import TrainConfig
from embedding_ft.estimate import plan_ranking_memory
from embedding_ft.losses import AUTO, LossSpec, auto_loss, loss_spec


@dataclass(frozen=True)
class LossChoice:
    """The loss a run trains with, and why (printed in the summary)."""

    spec: LossSpec
    mini_batch_size: int
    reason: str
    memory: dict | None = None


def choose_loss(cfg: TrainConfig, data_format: str, model, sample_rows: list[dict]) -> LossChoice:
    """``cfg.loss``, or for ``auto`` the loss the data calls for (and its cached form when the
    plain ranking loss would need more than ``max_memory_gb``)."""
    if cfg.loss != AUTO:
        return LossChoice(loss_spec(cfg.loss), cfg.mini_batch_size, "set in the config")
    if data_format == "similarity":
        return LossChoice(loss_spec(auto_loss("similarity", False)), cfg.mini_batch_size, "auto: similarity data")
    texts_per_row = 2 + (cfg.mining.num_negatives + cfg.mining.bm25_negatives if cfg.mining.enabled else 0)
    shaped = [
        {
            "anchor": r.get("query", ""),
            **{f"t{i}": r.get("document", r.get("positive", "")) for i in range(1, texts_per_row)},
        }
        for r in sample_rows
    ]
    plan = plan_ranking_memory(model, shaped, cfg.batch_size, cfg.max_memory_gb, cfg.mini_batch_size)
    name = auto_loss(data_format, plan.cached)
    if plan.cached:
        reason = (
            f"auto: {data_format} data; plain MNRL would need ~{plan.plain_gb:.1f} GB > max_memory_gb="
            f"{cfg.max_memory_gb:g}, the cached form with mini-batches of {plan.mini_batch_size} ~{plan.chosen_gb:.1f} GB"
        )
    else:
        reason = f"auto: {data_format} data; estimated peak ~{plan.plain_gb:.1f} GB within max_memory_gb"
    return LossChoice(loss_spec(name), plan.mini_batch_size or cfg.mini_batch_size, reason, plan.__dict__)
