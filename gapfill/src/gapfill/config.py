"""Config dataclasses of the gap-filling system: one per component, defaults at the top.

Load them with :func:`embshared.config.load_config` (file, then ``key=value`` overrides, or a
JSON request body through ``data=``); the resolved config is saved beside the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from embshared.models import DEFAULT_MODEL


@dataclass
class UMAPConfig:
    """Parametric UMAP: an MLP encoder trained with UMAP's loss, and a decoder trained jointly."""

    n_components: int = field(default=2, metadata={"help": "dimension of the map"})
    n_neighbors: int = field(default=15, metadata={"help": "neighbours of the fuzzy graph"})
    min_dist: float = field(default=0.1, metadata={"help": "UMAP min_dist (sets a, b with spread)"})
    spread: float = field(default=1.0, metadata={"help": "UMAP spread"})
    metric: Literal["cosine", "euclidean"] = field(default="cosine", metadata={"help": "input-space metric"})
    n_epochs: int = field(
        default=0,
        metadata={
            "help": "passes of UMAP's loss over the graph's edges (a fine-tune after umap-learn's layout; 0: none — "
            "measured, 2 epochs lowered fitted trustworthiness 0.920 -> 0.906 for +0.005 held-out)"
        },
    )
    batch_size: int = field(default=1024, metadata={"help": "edges per step"})
    learning_rate: float = field(
        default=3e-4, metadata={"help": "Adam learning rate of UMAP's loss (3e-3 for the spectral route's 40 epochs)"}
    )
    hidden_layers: list[int] = field(default_factory=lambda: [256, 256], metadata={"help": "MLP widths"})
    negative_sample_rate: int = field(default=5, metadata={"help": "negative samples per edge"})
    negative_sampling: Literal["uniform", "batch"] = field(
        default="uniform",
        metadata={"help": "negatives drawn uniformly from all points (as umap-learn) or from the batch's edge ends"},
    )
    init: Literal["umap_learn", "spectral", "pca", "random"] = field(
        default="umap_learn",
        metadata={
            "help": "layout the encoder is first regressed onto: umap-learn's optimised layout (on its own graph), "
            "or the spectral / PCA start that umap-learn's optimisation begins from"
        },
    )
    init_epochs: int = field(
        default=125,
        metadata={
            "help": "passes over the points regressing the encoder on `init` (125 chosen by bench/tune_init.py "
            "on sentences the bench does not fit)"
        },
    )
    regression_learning_rate: float = field(
        default=3e-3, metadata={"help": "learning rate of the regressions (encoder on the layout, decoder on the map)"}
    )
    regression_weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay of the regression"})
    regression_mix: float = field(
        default=0.0,
        metadata={"help": "synthetic regression points: largest weight of a neighbour mixed into a point (0: none)"},
    )
    regression_noise: float = field(
        default=0.0, metadata={"help": "synthetic regression points: std of Gaussian noise per dimension (0: none)"}
    )
    regression_temperature: float = field(
        default=0.05, metadata={"help": "softmax temperature (over cosines) of the k-NN teacher placing them"}
    )
    final_lr_fraction: float = field(default=0.02, metadata={"help": "learning rate at the end of the linear decay"})
    repulsion_strength: float = field(default=1.0, metadata={"help": "weight of the repulsive term"})
    reconstruction_weight: float = field(
        default=10.0, metadata={"help": "weight of the decoder's loss when it shapes the map (decoder_shapes_map)"}
    )
    reconstruction_loss: Literal["cosine", "mse"] = field(default="cosine", metadata={"help": "decoder loss"})
    decoder_shapes_map: bool = field(
        default=False,
        metadata={
            "help": "the decoder's loss also trains the encoder (an autoencoder beside UMAP's loss; "
            "False: the map is pure UMAP and the decoder only follows it)"
        },
    )
    decoder_epochs: int = field(
        default=30, metadata={"help": "extra passes over the points training only the decoder on the final map"}
    )
    mlp_threads: int = field(
        default=1,
        metadata={"help": "torch threads of the fit's network stages on a CPU (one beats two for these small MLPs)"},
    )
    transform_refine_epochs: int = field(
        default=100,
        metadata={
            "help": "transform: epochs of umap-learn's optimisation of new points against the fitted ones, "
            "started from the encoder's positions (0: the encoder alone; 100 chosen by bench/tune_refine.py "
            "on sentences neither fitted nor held out)"
        },
    )
    validation_split: float = field(default=0.1, metadata={"help": "fraction of points held out"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def validate(self) -> None:
        if self.n_components < 1:
            raise ValueError("n_components must be >= 1")
        if self.n_neighbors < 2:
            raise ValueError("n_neighbors must be >= 2")
        if not 0 <= self.validation_split < 1:
            raise ValueError("validation_split must be in [0, 1)")
        if self.min_dist < 0 or self.spread <= 0 or self.min_dist > self.spread:
            raise ValueError("need 0 <= min_dist <= spread and spread > 0")
        if self.n_epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0 or self.regression_learning_rate <= 0:
            raise ValueError("n_epochs must be >= 0, batch_size and the learning rates positive")
        if self.regression_noise < 0 or self.regression_weight_decay < 0 or not 0 <= self.regression_mix <= 1:
            raise ValueError("regression_noise and regression_weight_decay must be >= 0, regression_mix in [0, 1]")
        if self.regression_temperature <= 0:
            raise ValueError("regression_temperature must be > 0")
        if self.transform_refine_epochs < 0:
            raise ValueError("transform_refine_epochs must be >= 0")
        if self.init_epochs < 0 or self.decoder_epochs < 0 or not 0 < self.final_lr_fraction <= 1:
            raise ValueError("init_epochs and decoder_epochs must be >= 0 and final_lr_fraction in (0, 1]")
        if not self.hidden_layers or any(h < 1 for h in self.hidden_layers):
            raise ValueError("hidden_layers must be a non-empty list of positive widths")


@dataclass
class GuidedSearchConfig:
    """Settings of the embedding-guided beam search."""

    beam_width: int = field(default=6, metadata={"help": "partial texts kept per step"})
    top_k: int = field(default=12, metadata={"help": "next tokens the LM proposes per partial text"})
    max_new_tokens: int = field(default=24, metadata={"help": "longest text, in LM tokens"})
    fluency_weight: float = field(
        default=0.05, metadata={"help": "weight of the mean token log-prob beside the cosine (0: cosine only)"}
    )
    no_repeat_ngram_size: int = field(default=3, metadata={"help": "never repeat an n-gram of tokens (0: allow)"})
    refine_rounds: int = field(
        default=2, metadata={"help": "rounds of LM-proposed edits (delete/replace/insert a token) of a found text"}
    )
    refine_top_k: int = field(default=4, metadata={"help": "tokens the LM proposes per position when editing"})
    refine_rescored: int = field(
        default=8, metadata={"help": "edits (closest by cosine) whose fluency the LM scores per round"}
    )
    word_rounds: int = field(
        default=6,
        metadata={"help": "rounds of word edits with words from the collection's vocabulary (0: off; needs one)"},
    )
    word_top_k: int = field(default=48, metadata={"help": "vocabulary words tried per round of word edits"})
    word_screen: int = field(
        default=4,
        metadata={
            "help": "word edits try every word once (added at the end) and only the closest this many at every "
            "position (0: all word_top_k words at every position)"
        },
    )
    rewrite: bool = field(
        default=True,
        metadata={"help": "with a rewriter, the instruction LM rewrites each step's best text as one fluent sentence"},
    )
    fluent_margin: float = field(
        default=0.01,
        metadata={
            "help": "with a rewriter, a step keeps the most fluent proposal within this cosine of the closest one "
            "(0: the closest)"
        },
    )
    polish: bool = field(
        default=True,
        metadata={
            "help": "with word edits, more word edits of the last step's text after the correction steps "
            "(with a time budget: in the time the last step that fits leaves)"
        },
    )
    lm_int8: bool = field(
        default=True,
        metadata={
            "help": "on a CPU, tokens are proposed (beams, search, edits, rewrites) by int8 copies of the LMs, "
            "about 2x faster; the fluency a step's choice uses stays the plain fp32 LM's"
        },
    )

    def validate(self) -> None:
        if self.refine_rounds < 0 or self.refine_top_k < 1 or self.refine_rescored < 1:
            raise ValueError("refine_rounds must be >= 0, refine_top_k and refine_rescored >= 1")
        if self.word_rounds < 0 or self.word_top_k < 1 or self.word_screen < 0:
            raise ValueError("word_rounds and word_screen must be >= 0 and word_top_k >= 1")
        if self.beam_width < 1 or self.top_k < 1 or self.max_new_tokens < 1:
            raise ValueError("beam_width, top_k and max_new_tokens must be >= 1")
        if self.fluency_weight < 0 or self.fluent_margin < 0:
            raise ValueError("fluency_weight and fluent_margin must be >= 0")


@dataclass
class Vec2TextConfig:
    """Embedding -> text: prefix vectors for a small causal LM, trained on (text, embedding) pairs."""

    embedder: str = field(default=DEFAULT_MODEL, metadata={"help": "sentence model whose embeddings are inverted"})
    num_prefix: int = field(default=8, metadata={"help": "prefix vectors the embedding is mapped to"})
    projector_hidden: int = field(default=1536, metadata={"help": "hidden width of the projector MLP"})
    trainable: Literal["projector", "projector+norms", "all"] = field(
        default="all", metadata={"help": "what is trained besides the projector"}
    )
    max_length: int = field(default=40, metadata={"help": "max tokens of a text"})
    epochs: int = field(default=1, metadata={"help": "passes over the training pairs"})
    batch_size: int = field(default=16, metadata={"help": "pairs per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "projector learning rate"})
    lm_learning_rate: float = field(default=3e-5, metadata={"help": "learning rate of the LM weights"})
    warmup_steps: int = field(default=20, metadata={"help": "linear warm-up steps"})
    correction_fraction: float = field(
        default=0.5, metadata={"help": "share of training examples in correction form (with a hypothesis)"}
    )
    max_train_seconds: float = field(default=0.0, metadata={"help": "stop training after this long (0: no limit)"})
    max_examples: int = field(default=0, metadata={"help": "use at most this many training texts (0: all)"})
    num_steps: int = field(default=3, metadata={"help": "correction steps at inversion"})
    beam_width: int = field(default=4, metadata={"help": "hypotheses per step"})
    max_new_tokens: int = field(default=40, metadata={"help": "generation length limit"})
    use_search: bool = field(
        default=True, metadata={"help": "also run the embedding-guided search at each inversion step"}
    )
    search: GuidedSearchConfig = field(default_factory=GuidedSearchConfig)
    seed: int = field(default=0, metadata={"help": "random seed"})

    def validate(self) -> None:
        if self.num_prefix < 1 or self.max_length < 4 or self.max_new_tokens < 1:
            raise ValueError("num_prefix, max_length and max_new_tokens must be positive")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.num_steps < 0 or self.beam_width < 1:
            raise ValueError("num_steps must be >= 0 and beam_width >= 1")
        if not 0 <= self.correction_fraction <= 1:
            raise ValueError("correction_fraction must be in [0, 1]")
        self.search.validate()


@dataclass
class GapTextConfig:
    """Text for a map point by landing score: LM candidates from the neighbouring documents, moved
    by sampled rewrites and word edits towards the point (see ``gapfill.gap_text``)."""

    n_neighbours: int = field(default=6, metadata={"help": "nearest documents shown to the LM"})
    samples: int = field(default=6, metadata={"help": "sampled candidates per prompt"})
    max_doc_words: int = field(default=30, metadata={"help": "documents shown to the LM are cut to this many words"})
    max_new_tokens: int = field(default=36, metadata={"help": "longest candidate, in LM tokens"})
    temperature: float = field(default=0.9, metadata={"help": "sampling temperature"})
    top_k: int = field(default=40, metadata={"help": "sample among this many most likely tokens"})
    rewrite_rounds: int = field(default=1, metadata={"help": "rounds of sampled rewrites of the best candidates"})
    rewrite_best: int = field(default=2, metadata={"help": "best candidates rewritten per round"})
    word_rounds: int = field(default=3, metadata={"help": "rounds of landing-guided word edits (needs a vocabulary)"})
    word_top_k: int = field(default=8, metadata={"help": "vocabulary words tried per round"})
    edit_until: float = field(
        default=1.0,
        metadata={"help": "word edits run only while the best text lands this many radii or more away (1: outside)"},
    )
    rescored: int = field(default=8, metadata={"help": "edits closest to the point whose fluency the LM scores"})
    fluency_weight: float = field(default=0.15, metadata={"help": "weight of the mean token log-prob in the score"})
    inner: float = field(
        default=0.5, metadata={"help": "landing distances below this many radii count alike (fluency decides)"}
    )
    outside_penalty: float = field(
        default=1.0, metadata={"help": "score cost of landing outside the circle (inside comes before fluency)"}
    )
    refine_landing: bool = field(
        default=False,
        metadata={
            "help": "land texts with the map's refined transform instead of the encoder alone (embed -> encoder); "
            "refinement pulls a text towards its nearest documents, which lie on the gap's edge"
        },
    )
    max_seconds: float = field(
        default=13.0,
        metadata={"help": "time budget: a stage or round starts only if its estimated time fits in what is left"},
    )
    lm_int8: bool = field(
        default=True,
        metadata={"help": "sample candidates and rewrites from an int8 copy of the LM on a CPU (about 2x faster)"},
    )
    seed: int = field(default=0, metadata={"help": "sampling seed"})

    def validate(self) -> None:
        if self.n_neighbours < 1 or self.samples < 1 or self.max_new_tokens < 1 or self.max_doc_words < 1:
            raise ValueError("n_neighbours, samples, max_new_tokens and max_doc_words must be >= 1")
        if self.rewrite_rounds < 0 or self.word_rounds < 0 or self.rewrite_best < 1 or self.word_top_k < 1:
            raise ValueError("rounds must be >= 0, rewrite_best and word_top_k >= 1")
        if self.temperature <= 0 or self.top_k < 1 or self.max_seconds <= 0:
            raise ValueError("temperature and max_seconds must be > 0, top_k >= 1")
        if self.outside_penalty < 0 or self.edit_until < 0:
            raise ValueError("outside_penalty and edit_until must be >= 0")


@dataclass
class GapConfig:
    """Gap finding on the 2-D map: a density grid inside the hull of the documents."""

    grid_size: int = field(default=64, metadata={"help": "grid cells per axis"})
    max_gaps: int = field(default=10, metadata={"help": "gaps returned at most"})
    min_separation: float = field(default=0.1, metadata={"help": "min distance between gaps (fraction of span)"})
    hull_margin: float = field(default=0.0, metadata={"help": "shrink the hull by this fraction of the span"})

    def validate(self) -> None:
        if self.grid_size < 4 or self.max_gaps < 1:
            raise ValueError("grid_size must be >= 4 and max_gaps >= 1")


@dataclass
class ServiceConfig:
    """The HTTP service: where it reads data and writes models, and where it listens."""

    host: str = field(default="127.0.0.1", metadata={"help": "bind address"})
    port: int = field(default=8000, metadata={"help": "port"})
    data_dir: str = field(default="gapfill/data", metadata={"help": "documents are read only from here"})
    models_dir: str = field(default="gapfill/models", metadata={"help": "models are saved and loaded only here"})
    embedder: str = field(default=DEFAULT_MODEL, metadata={"help": "sentence model"})
    max_documents: int = field(default=50000, metadata={"help": "largest collection accepted"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    umap: UMAPConfig = field(default_factory=UMAPConfig)
    vec2text: Vec2TextConfig = field(default_factory=Vec2TextConfig)
    gaps: GapConfig = field(default_factory=GapConfig)
    gap_text: GapTextConfig = field(default_factory=GapTextConfig)
