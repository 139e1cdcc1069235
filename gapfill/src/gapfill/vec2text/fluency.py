"""Fluency: the perplexity of texts under a plain LM (reported beside cosine and BLEU, since a
search that only chases cosine drifts into word salad)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gapfill.guided_search import document_start_id


@torch.no_grad()
def perplexity(lm, tokenizer, texts: Sequence[str], batch_size: int = 16) -> float:
    """Token-level perplexity of ``texts`` under a plain LM (a fluency figure; lower is more fluent).

    Each text is scored after the document-start token (``<|endoftext|>`` for SmolLM2); the perplexity is exp of the mean
    negative log-likelihood over all scored tokens.
    """
    lm.eval()
    start_id = document_start_id(tokenizer)
    device = next(lm.parameters()).device
    total_nll, total_tokens = 0.0, 0
    for i in range(0, len(texts), batch_size):
        ids = [[start_id, *tokenizer(t, add_special_tokens=False)["input_ids"]] for t in texts[i : i + batch_size]]
        ids = [x for x in ids if len(x) > 1]
        if not ids:
            continue
        width = max(map(len, ids))
        inp = torch.zeros(len(ids), width, dtype=torch.long, device=device)
        lab = torch.full((len(ids), width), -100, dtype=torch.long, device=device)
        mask = torch.zeros(len(ids), width, dtype=torch.long, device=device)
        for r, x in enumerate(ids):
            inp[r, : len(x)] = torch.tensor(x)
            lab[r, 1 : len(x)] = torch.tensor(x[1:])
            mask[r, : len(x)] = 1
        logits = lm(input_ids=inp, attention_mask=mask).logits[:, :-1]  # (batch, width - 1, vocab)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), lab[:, 1:], ignore_index=-100, reduction="sum")
        total_nll += nll.item()
        total_tokens += int((lab[:, 1:] != -100).sum())
    return float(math.exp(total_nll / max(total_tokens, 1)))
