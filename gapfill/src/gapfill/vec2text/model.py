"""The vec2text model: a causal LM conditioned on an embedding through prefix vectors.

A projector MLP maps ``[e_target, e_hyp, e_target - e_hyp]`` to ``num_prefix`` vectors in the
LM's input space; one model serves two forms:

- zero-step:   ``[prefix(e_target, 0)] text``
- correction:  ``[prefix(e_target, e_hyp)] hypothesis [SEP] text``

Also here: :data:`EmbedFn`, the embedding function a model inverts, and :func:`sentence_embedder`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from gapfill.config import Vec2TextConfig
from gapfill.guided_search import LMProposer, int8_copy

#: texts -> (n, dim) L2-normalised embeddings
EmbedFn = Callable[[list[str]], np.ndarray]


def sentence_embedder(model, batch_size: int = 64) -> EmbedFn:
    """An :data:`EmbedFn` from a SentenceTransformer (normalised float32 embeddings)."""

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)

    return embed


class Vec2Text(nn.Module):
    """A causal LM conditioned on an embedding (and optionally a hypothesis) through prefix vectors.

    Args:
        lm: a Hugging Face causal LM (``inputs_embeds`` capable).
        tokenizer: its tokenizer.
        projector: maps (batch, 3 * embed_dim) to (batch, num_prefix * lm_dim).
        separator: (1, lm_dim) learned vector between hypothesis and text.
        config: the Vec2Text config (num_prefix, lengths, generation settings).
        embed_dim: dimension of the inverted embeddings.
    """

    def __init__(
        self, lm, tokenizer, projector: nn.Module, separator: nn.Parameter, config: Vec2TextConfig, embed_dim: int
    ):
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.projector = projector
        self.separator = separator
        self.config = config
        self.embed_dim = embed_dim
        object.__setattr__(self, "_int8_lm", None)  # not a submodule: never saved, never trained

    def train(self, mode: bool = True) -> Vec2Text:
        if mode:
            object.__setattr__(self, "_int8_lm", None)  # the weights may change: a stale copy is dropped
        return super().train(mode)

    def decoding_lm(self, int8: bool = False):
        """The LM that proposes tokens at inversion: with ``int8``, an int8 copy of ``lm``
        (:func:`~gapfill.guided_search.int8_copy`), made on first use after training."""
        if not int8:
            return self.lm
        if self._int8_lm is None:
            object.__setattr__(self, "_int8_lm", int8_copy(self.lm))
        return self._int8_lm

    @classmethod
    def build(cls, lm, tokenizer, embed_dim: int, config: Vec2TextConfig) -> Vec2Text:
        """A fresh model around ``lm``: the projector's output starts at the scale of token embeddings."""
        lm_dim = lm.get_input_embeddings().weight.shape[1]
        token_std = lm.get_input_embeddings().weight.detach().float().std().item()
        projector = nn.Sequential(
            nn.Linear(3 * embed_dim, config.projector_hidden),
            nn.GELU(),
            nn.Linear(config.projector_hidden, config.num_prefix * lm_dim),
        )
        with torch.no_grad():
            projector[2].weight.mul_(token_std / max(projector[2].weight.std().item(), 1e-8) * 0.5)
            projector[2].bias.zero_()
        separator = nn.Parameter(torch.randn(1, lm_dim) * token_std)
        return cls(lm, tokenizer, projector, separator, config, embed_dim)

    @property
    def device(self) -> torch.device:
        return self.separator.device

    @property
    def eos_id(self) -> int:
        tok = self.tokenizer
        return tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.config.max_length]

    def prefix(self, target: torch.Tensor, hypothesis: torch.Tensor | None = None) -> torch.Tensor:
        """Prefix vectors for (batch, embed_dim) targets and hypothesis embeddings (None: zero-step)."""
        if hypothesis is None:
            hypothesis = torch.zeros_like(target)
        cond = torch.cat([target, hypothesis, target - hypothesis], dim=-1)  # (batch, 3 * embed_dim)
        out = self.projector(cond)  # (batch, num_prefix * lm_dim)
        return out.view(len(target), self.config.num_prefix, -1)  # (batch, num_prefix, lm_dim)

    def _context(self, target: torch.Tensor, hyp_emb: torch.Tensor | None, hyp_ids: list[int] | None) -> torch.Tensor:
        """(1, len, lm_dim) conditioning context of one example: prefix [+ hypothesis + separator]."""
        parts = [self.prefix(target[None], None if hyp_emb is None else hyp_emb[None])[0]]
        if hyp_ids is not None:
            ids = torch.tensor(hyp_ids, dtype=torch.long, device=self.device)
            parts += [self.lm.get_input_embeddings()(ids), self.separator]
        return torch.cat(parts)[None]

    @torch.no_grad()
    def proposer(
        self, target: np.ndarray, hypothesis: str | None = None, hyp_emb: np.ndarray | None = None, int8: bool = False
    ) -> LMProposer:
        """The model as a token proposer for :func:`gapfill.guided_search.guided_search`: the LM after
        the prefix of ``target`` (zero-step form) or after ``[prefix(target, hyp)] hypothesis [SEP]``
        (with ``int8``, its int8 copy: :meth:`decoding_lm`)."""
        self.eval()
        t = torch.as_tensor(np.asarray(target, dtype=np.float32), device=self.device)
        h = None if hyp_emb is None else torch.as_tensor(np.asarray(hyp_emb, dtype=np.float32), device=self.device)
        hyp_ids = self.encode_text(hypothesis) if hypothesis is not None else None
        context = self._context(t, h, hyp_ids)[0]  # (ctx, lm_dim)
        return LMProposer(self.decoding_lm(int8), self.tokenizer, context, eos_id=self.eos_id)

    def loss(self, batch: list[dict]) -> torch.Tensor:
        """Mean next-token loss of the texts of a batch of examples.

        Each example has ``ids`` (target token ids), ``target`` (embed_dim,) and, for the
        correction form, ``hyp_ids`` and ``hyp_emb``.
        """
        emb_layer = self.lm.get_input_embeddings()
        rows, labels = [], []
        for ex in batch:
            target = torch.as_tensor(ex["target"], device=self.device)
            has_hyp = ex.get("hyp_ids") is not None
            hyp_emb = torch.as_tensor(ex["hyp_emb"], device=self.device) if has_hyp else None
            context = self._context(target, hyp_emb, ex.get("hyp_ids"))[0]  # (ctx, lm_dim)
            ids = torch.tensor([*ex["ids"], self.eos_id], dtype=torch.long, device=self.device)
            rows.append(torch.cat([context, emb_layer(ids)]))  # (ctx + len, lm_dim)
            labels.append(torch.cat([torch.full((len(context),), -100, device=self.device), ids]))
        width = max(len(r) for r in rows)
        lm_dim = rows[0].shape[1]
        inputs = torch.zeros(len(rows), width, lm_dim, device=self.device)  # (batch, width, lm_dim)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        target_ids = torch.full((len(rows), width), -100, dtype=torch.long, device=self.device)
        for i, (r, lab) in enumerate(zip(rows, labels)):
            inputs[i, : len(r)] = r
            mask[i, : len(r)] = 1
            target_ids[i, : len(lab)] = lab
        hidden = self.lm.get_decoder()(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        labels = target_ids[:, 1:]  # (batch, width - 1): position t predicts token t + 1
        scored = labels != -100
        # The vocabulary projection only where a token is predicted (not over prefix and hypothesis).
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][scored])  # (n_scored, vocab)
        return nn.functional.cross_entropy(logits.float(), labels[scored])

    @torch.no_grad()
    def generate(
        self,
        target: np.ndarray,
        hypothesis: str | None = None,
        hyp_emb: np.ndarray | None = None,
        beam_width: int = 4,
        int8: bool = False,
    ) -> list[str]:
        """``beam_width`` texts for one target embedding (optionally correcting a hypothesis; with
        ``int8`` from the LM's int8 copy, :meth:`decoding_lm`)."""
        self.eval()
        t = torch.as_tensor(np.asarray(target, dtype=np.float32), device=self.device)
        h = None if hyp_emb is None else torch.as_tensor(np.asarray(hyp_emb, dtype=np.float32), device=self.device)
        hyp_ids = self.encode_text(hypothesis) if hypothesis is not None else None
        context = self._context(t, h, hyp_ids)  # (1, ctx, lm_dim)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        with warnings.catch_warnings():
            # n-gram blocking applies to the new tokens only (the prompt is embeddings): intended.
            warnings.filterwarnings("ignore", message=".*without `input_ids`.*")
            out = self.decoding_lm(int8).generate(
                inputs_embeds=context,
                attention_mask=torch.ones(context.shape[:2], dtype=torch.long, device=self.device),
                max_new_tokens=self.config.max_new_tokens,
                num_beams=beam_width,
                num_return_sequences=beam_width,
                do_sample=False,
                eos_token_id=self.eos_id,
                pad_token_id=pad,
                no_repeat_ngram_size=3,
            )
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]
