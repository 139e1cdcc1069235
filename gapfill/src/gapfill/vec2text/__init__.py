"""Vec2Text: invert sentence embeddings into text with a small causal LM and iterative correction.

The public face; one concept per module:

- :mod:`~gapfill.vec2text.model`: :class:`Vec2Text`, the LM conditioned by prefix vectors
  (zero-step and correction forms), and the :data:`EmbedFn` it inverts;
- :mod:`~gapfill.vec2text.inversion`: :func:`invert` / :func:`invert_embeddings` (the API of
  jxmorris12/vec2text), :func:`correction_step` (never returns a worse cosine) and
  :class:`Correctors`, what each step runs beside the beams (guided search, word edits, rewrites);
- :mod:`~gapfill.vec2text.training`: examples without generation, the training loop;
- :mod:`~gapfill.vec2text.fluency`: perplexity under a plain LM;
- :mod:`~gapfill.vec2text.store`: :func:`save` / :func:`load` (safetensors + JSON).
"""

from gapfill.vec2text.fluency import perplexity
from gapfill.vec2text.inversion import Correctors, Step, correction_step, invert, invert_embeddings
from gapfill.vec2text.model import EmbedFn, Vec2Text, sentence_embedder
from gapfill.vec2text.store import CONFIG_FILE, LM_FILE, META_FILE, PROJECTOR_FILE, load, save
from gapfill.vec2text.training import (
    TRAINABLE,
    ProgressFn,
    evaluate_loss,
    make_examples,
    noised,
    train,
    train_on_texts,
    trainable_lm_parameters,
)

__all__ = [
    "CONFIG_FILE",
    "LM_FILE",
    "META_FILE",
    "PROJECTOR_FILE",
    "TRAINABLE",
    "Correctors",
    "EmbedFn",
    "ProgressFn",
    "Step",
    "Vec2Text",
    "correction_step",
    "evaluate_loss",
    "invert",
    "invert_embeddings",
    "load",
    "make_examples",
    "noised",
    "perplexity",
    "save",
    "sentence_embedder",
    "train",
    "train_on_texts",
    "trainable_lm_parameters",
]
