"""The one config of jsonembed: flat keys, as in ``config/default.yaml``.

The keys are flat (``epochs``, ``char_dim``, ``field_drop_prob``) because that is how the
user guide writes them; they are grouped below by the component that reads them. The whole
resolved config is stored inside every model file, so a model always knows how its text was
built and how it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from embshared.config import ConfigError, load_config

PACKAGE_DIR = Path(__file__).resolve().parent
#: ``jsonembed/`` (``jsonembed/src/embedding_model/../..``): the folder holding ``config/default.yaml``
#: (the CLI also finds it from any cwd).
PROJECT_DIR = PACKAGE_DIR.parents[1]
DEFAULT_CONFIG = "config/default.yaml"
#: the workspace's packaged all-MiniLM-L6-v2 (``embshared.models``), the default teacher
DEFAULT_TEACHER = "sentence-transformers/all-MiniLM-L6-v2"


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class JsonEmbedConfig:
    """Every setting of the record embedder, its training and its augmentations."""

    # --- reproducibility and hardware
    seed: int = field(default=42, metadata=_help("seed for weights, batching and augmentation"))
    device: str = field(default="", metadata=_help("torch device; empty = CUDA when available, else CPU"))

    # --- record -> text
    max_chars: int = field(default=512, metadata=_help("characters of flattened record text the model reads"))
    lowercase: bool = field(default=True, metadata=_help("lower-case text before looking up characters"))
    ignore_fields: list[str] = field(
        default_factory=lambda: ["_id"], metadata=_help("top-level fields left out of the text (identifiers)")
    )
    min_char_freq: int = field(default=2, metadata=_help("characters seen fewer times in the training data map to UNK"))

    # --- model
    char_dim: int = field(default=32, metadata=_help("size of the character embeddings"))
    conv_channels: int = field(default=128, metadata=_help("output channels of each convolution"))
    kernel_sizes: list[int] = field(
        default_factory=lambda: [3, 5], metadata=_help("widths of the parallel 1-D convolutions")
    )
    pooling: Literal["max", "mean", "max_mean"] = field(
        default="max", metadata=_help("pooling over positions: max, mean or both concatenated")
    )
    dropout: float = field(default=0.1, metadata=_help("dropout before the projection (training only)"))
    projection_dim: int = field(default=256, metadata=_help("size of the output embedding"))

    # --- training
    epochs: int = field(default=15, metadata=_help("passes over the training records"))
    batch_size: int = field(default=64, metadata=_help("records per step (each gives two views)"))
    lr: float = field(default=2e-3, metadata=_help("peak AdamW learning rate"))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay"))
    warmup_ratio: float = field(default=0.05, metadata=_help("fraction of steps with linear warm-up"))
    temperature: float = field(default=0.05, metadata=_help("NT-Xent (InfoNCE) softmax temperature"))
    grad_clip: float = field(default=1.0, metadata=_help("gradient norm clip; 0 disables"))
    log_every: int = field(default=50, metadata=_help("print the loss every this many steps"))
    val_fraction: float = field(default=0.05, metadata=_help("records held out for the self-retrieval check"))
    val_max: int = field(default=1000, metadata=_help("cap on held-out records"))

    # --- augmentation (each view of a record is drawn independently)
    field_drop_prob: float = field(default=0.2, metadata=_help("drop each field with this probability"))
    field_shuffle_prob: float = field(default=0.5, metadata=_help("shuffle the field order with this probability"))
    digit_mask_prob: float = field(default=0.1, metadata=_help("replace each digit by '#' with this probability"))
    key_drop_prob: float = field(
        default=0.3, metadata=_help("write values without their 'key=' with this probability (query-like views)")
    )
    span_crop_prob: float = field(
        default=0.5, metadata=_help("replace the view by a span of words of one field (query-like views)")
    )
    span_min_words: int = field(default=3, metadata=_help("shortest cropped span, in words"))
    span_max_words: int = field(default=16, metadata=_help("longest cropped span, in words"))
    # query-shaped views: (a query-like view with character noise, the full record) pairs
    query_view_prob: float = field(
        default=0.5, metadata=_help("share of training pairs that are (query-shaped view, full record)")
    )
    query_field_weight: float = field(default=1.0, metadata=_help("query view kind weight: one field's whole value"))
    query_span_weight: float = field(default=1.0, metadata=_help("query view kind weight: a run of words of a field"))
    query_code_weight: float = field(default=1.0, metadata=_help("query view kind weight: a token with a digit"))
    query_words_weight: float = field(
        default=1.0, metadata=_help("query view kind weight: a few words of a field, in order, not adjacent")
    )
    query_min_words: int = field(default=2, metadata=_help("fewest words of a span / word-sample query view"))
    query_max_words: int = field(default=8, metadata=_help("most words of a span / word-sample query view"))
    noise_insert_prob: float = field(default=0.05, metadata=_help("query views: per word, insert a letter"))
    noise_delete_prob: float = field(default=0.05, metadata=_help("query views: per word, delete a letter"))
    noise_transpose_prob: float = field(
        default=0.05, metadata=_help("query views: per word, swap two adjacent letters")
    )
    noise_substitute_prob: float = field(default=0.05, metadata=_help("query views: per word, replace a letter"))
    noise_min_letters: int = field(default=4, metadata=_help("words shorter than this get no character noise"))

    # --- distillation from a teacher (a local sentence-transformers model; null: self-supervised only)
    teacher: str | None = field(
        default=None,  # measured on SciFact dev (bench/results/distill_scifact): distilled did not beat self-supervised
        metadata=_help(
            "local sentence-transformers model whose vectors of your records (and of query-shaped views of them) "
            "the char model learns to reproduce; a path or a packaged name, never downloaded; null: no teacher"
        ),
    )
    teacher_views: int = field(
        default=4, metadata=_help("query-shaped views per record the teacher embeds once (cached)")
    )
    distill_loss: Literal["cosine", "mse", "ranking"] = field(
        default="cosine",
        metadata=_help(
            "distillation loss: to the teacher's unit vector, cosine (1 - cos) or mse (squared distance); ranking: "
            "KL to the teacher's softmax over the batch's records for each query view (at `temperature`)"
        ),
    )
    distill_weight: float = field(default=1.0, metadata=_help("weight of the distillation loss"))
    teacher_neighbours: int = field(
        default=0,
        metadata=_help(
            "with a teacher: batches made of groups of a record and this many of its nearest records by the "
            "teacher's vectors (hard negatives for NT-Xent, close rivals for the ranking loss); 0: random batches"
        ),
    )
    nt_xent_weight: float = field(default=1.0, metadata=_help("weight of the NT-Xent loss (with a teacher)"))
    noise_case_prob: float = field(
        default=0.05, metadata=_help("distillation views: per word, change its case (upper or capitalised)")
    )
    noise_space_prob: float = field(
        default=0.02,
        metadata=_help("distillation views: per space, drop it; per word of 4+ letters, split it in two"),
    )

    # --- embedding and search
    embed_batch_size: int = field(default=256, metadata=_help("records per forward pass when embedding"))
    fusion: Literal["rrf", "convex"] = field(
        default="convex",
        metadata=_help("--hybrid fusion: rrf (reciprocal ranks) or convex (weighted sum of z-scored scores)"),
    )
    rrf_k: int = field(default=60, metadata=_help("reciprocal-rank-fusion constant of --hybrid"))
    rrf_depth: int = field(default=100, metadata=_help("how many hits of each ranking --hybrid fuses"))
    rrf_dense_weight: float = field(
        default=0.1, metadata=_help("rrf: weight of the model's ranking (BM25's is 1); see bench/results")
    )
    convex_dense_weight: float = field(
        default=0.3, metadata=_help("convex: share of the model's z-scored similarity (BM25 gets the rest)")
    )
    convex_ngram_weight: float = field(
        default=0.5,
        metadata=_help(
            "convex: share of a character 3-5-gram TF-IDF over the whole record (typo-robust; 0 leaves it out); "
            "BM25 gets 1 - convex_dense_weight - this"
        ),
    )
    convex_known_dense_weight: float | None = field(
        default=0.1,
        metadata=_help(
            "convex: the model's share for a query whose every word (BM25 term) occurs in the records; "
            "null: convex_dense_weight. convex_dense_weight and convex_ngram_weight then weigh the other queries "
            "(a misspelled or partial word, a code the records lack)"
        ),
    )
    convex_known_ngram_weight: float | None = field(
        default=0.2,
        metadata=_help("convex: the character n-grams' share for a query whose every word occurs in the records"),
    )
    ngram_max_df: float = field(
        default=0.3,
        metadata=_help(
            "the character n-gram ranker leaves out n-grams in more than this share of the records "
            "(the commonest n-grams weigh little but are most of its scoring time; 1: keep all)"
        ),
    )

    def validate(self) -> None:
        """Raise ValueError naming the first key whose value is out of range."""
        positive = ("max_chars", "char_dim", "conv_channels", "projection_dim", "epochs", "log_every")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(f"key '{key}' must be positive, got {getattr(self, key)}")
        if self.batch_size < 2:
            raise ValueError(f"key 'batch_size' must be at least 2 (contrastive batches), got {self.batch_size}")
        for key in ("lr", "temperature", "embed_batch_size", "rrf_k", "rrf_depth", "min_char_freq", "rrf_dense_weight"):
            if getattr(self, key) <= 0:
                raise ValueError(f"key '{key}' must be positive, got {getattr(self, key)}")
        if not self.kernel_sizes or any(k <= 0 for k in self.kernel_sizes):
            raise ValueError(f"key 'kernel_sizes' must be a non-empty list of positive widths, got {self.kernel_sizes}")
        probabilities = (
            "dropout",
            "field_drop_prob",
            "field_shuffle_prob",
            "digit_mask_prob",
            "key_drop_prob",
            "span_crop_prob",
            "query_view_prob",
            "noise_insert_prob",
            "noise_delete_prob",
            "noise_transpose_prob",
            "noise_substitute_prob",
            "noise_case_prob",
            "noise_space_prob",
            "warmup_ratio",
            "convex_dense_weight",
            "convex_ngram_weight",
        )
        for key in probabilities:
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"key '{key}' must be between 0 and 1, got {getattr(self, key)}")
        if self.convex_dense_weight + self.convex_ngram_weight > 1.0:
            raise ValueError(
                "keys 'convex_dense_weight' + 'convex_ngram_weight' must be at most 1 (BM25 gets the rest), got "
                f"{self.convex_dense_weight} + {self.convex_ngram_weight}"
            )
        for key in ("convex_known_dense_weight", "convex_known_ngram_weight"):
            if getattr(self, key) is not None and not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"key '{key}' must be null or between 0 and 1, got {getattr(self, key)}")
        known = [
            self.convex_dense_weight if self.convex_known_dense_weight is None else self.convex_known_dense_weight,
            self.convex_ngram_weight if self.convex_known_ngram_weight is None else self.convex_known_ngram_weight,
        ]
        if sum(known) > 1.0:
            raise ValueError(
                "keys 'convex_known_dense_weight' + 'convex_known_ngram_weight' must be at most 1 (BM25 gets the "
                f"rest), got {known[0]} + {known[1]}"
            )
        if not 0.0 < self.ngram_max_df <= 1.0:
            raise ValueError(f"key 'ngram_max_df' must be in (0, 1], got {self.ngram_max_df}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"key 'val_fraction' must be in [0, 1), got {self.val_fraction}")
        if not 1 <= self.span_min_words <= self.span_max_words:
            raise ValueError(
                f"keys 'span_min_words' / 'span_max_words' need 1 <= min <= max, got "
                f"{self.span_min_words} / {self.span_max_words}"
            )
        if not 1 <= self.query_min_words <= self.query_max_words:
            raise ValueError(
                f"keys 'query_min_words' / 'query_max_words' need 1 <= min <= max, got "
                f"{self.query_min_words} / {self.query_max_words}"
            )
        weights = ("query_field_weight", "query_span_weight", "query_code_weight", "query_words_weight")
        if any(getattr(self, key) < 0 for key in weights) or not any(getattr(self, key) > 0 for key in weights):
            raise ValueError(f"keys {', '.join(weights)} must not be negative and not all 0")
        noise = ("noise_insert_prob", "noise_delete_prob", "noise_transpose_prob", "noise_substitute_prob")
        if sum(getattr(self, key) for key in noise) > 1.0:
            raise ValueError(f"keys {', '.join(noise)} must sum to at most 1 (at most one edit per word)")
        if self.noise_min_letters < 2:
            raise ValueError(f"key 'noise_min_letters' must be at least 2, got {self.noise_min_letters}")
        if self.teacher is not None and not self.teacher.strip():
            raise ValueError("key 'teacher' must name a model or be null (no teacher), got an empty string")
        if self.teacher_views <= 0:
            raise ValueError(f"key 'teacher_views' must be positive, got {self.teacher_views}")
        if self.distill_weight < 0 or self.nt_xent_weight < 0:
            raise ValueError(
                f"keys 'distill_weight' / 'nt_xent_weight' must not be negative, got "
                f"{self.distill_weight} / {self.nt_xent_weight}"
            )
        if self.teacher_neighbours < 0 or (self.teacher_neighbours > 0 and self.teacher is None):
            raise ValueError(
                f"key 'teacher_neighbours' must be 0, or positive with a teacher, got {self.teacher_neighbours}"
            )
        if self.teacher is not None and self.distill_weight + self.nt_xent_weight == 0:
            raise ValueError("keys 'distill_weight' and 'nt_xent_weight' are both 0: there is nothing to train")
        if self.teacher is not None and self.distill_weight > 0 and self.query_view_prob == 0:
            raise ValueError(
                "key 'query_view_prob' must be positive with a teacher: the teacher's targets are learnt on the "
                "query-shaped pairs (or set teacher: null)"
            )
        if self.weight_decay < 0 or self.grad_clip < 0 or self.val_max < 0:
            raise ValueError("keys 'weight_decay', 'grad_clip' and 'val_max' must not be negative")


def resolve_config_path(path: str | Path | None) -> Path | None:
    """Find a config file: as given (relative to the cwd), else relative to ``jsonembed/``.

    ``None`` means the default ``config/default.yaml``, which is optional: without it the
    dataclass defaults apply. A path the user names must exist.
    """
    if path is None:
        for candidate in (Path(DEFAULT_CONFIG), PROJECT_DIR / DEFAULT_CONFIG):
            if candidate.is_file():
                return candidate
        return None
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and (PROJECT_DIR / path).is_file():
        return PROJECT_DIR / path
    raise ConfigError(f"{path}: config file not found (looked in the current folder and in {PROJECT_DIR})")


def build_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> JsonEmbedConfig:
    """Defaults, then the config file, then ``key=value`` overrides (type-checked)."""
    return load_config(JsonEmbedConfig, resolve_config_path(path), list(overrides))
