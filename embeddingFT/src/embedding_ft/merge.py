"""Weight interpolation between the fine-tuned and the base model (WiSE-FT, LM-Cocktail).

``merged = (1 - w) * fine_tuned + w * base`` for every floating-point tensor of the two
state dicts (same architecture). Wortsman et al. (2022, "Robust fine-tuning of zero-shot
models") show that such a merge keeps what the base model knew on other data and often
helps in-domain too; ``merge_with_base`` chooses ``w``. No library merges two
SentenceTransformers in place, and the operation is one line per tensor, so it is written here.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def interpolate_state_dicts(
    fine_tuned: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """``(1 - weight) * fine_tuned + weight * base`` per floating tensor; others (ids, counters) from fine_tuned.

    Raises:
        ValueError: a weight outside [0, 1], or state dicts with different keys or shapes.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"merge weight must be in [0, 1], got {weight}")
    if set(fine_tuned) != set(base):
        missing = sorted(set(fine_tuned) ^ set(base))[:3]
        raise ValueError(f"cannot merge models with different parameters (e.g. {missing})")
    merged = {}
    for name, ft in fine_tuned.items():
        b = base[name]
        if ft.shape != b.shape:
            raise ValueError(f"cannot merge {name}: shapes {tuple(ft.shape)} and {tuple(b.shape)}")
        if not ft.is_floating_point() or weight == 0.0:
            merged[name] = ft.clone()
        elif weight == 1.0:
            merged[name] = b.to(ft.dtype).clone()
        else:
            merged[name] = torch.lerp(ft, b.to(ft.dtype), weight)
    return merged


def merge_with_base(model, base_state: Mapping[str, torch.Tensor], weight: float):
    """Load the interpolation of ``model``'s weights and ``base_state`` into ``model``; returns it."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    model.load_state_dict(interpolate_state_dicts(state, base_state, weight))
    return model
