"""The training config: every key of ``configs/default.yaml``, with its default and help.

Loaded by :func:`embshared.config.load_config` from YAML, then ``key=value`` overrides
(``make train-embed batch_size=16 mining.num_negatives=5``). Unknown keys and wrong types
fail before any work is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from embedding_ft.losses import LossOptions, check_loss_name
from embshared.metrics import parse_metric
from embshared.models import DEFAULT_MODEL

DEFAULT_METRICS = ["accuracy@1", "accuracy@5", "accuracy@10", "mrr@10", "ndcg@10", "map@100", "recall@100"]


@dataclass
class MiningConfig:
    """Hard-negative mining with sentence-transformers' ``mine_hard_negatives``."""

    enabled: bool = field(default=True, metadata={"help": "mine negatives for (query, document) pairs"})
    num_negatives: int = field(default=1, metadata={"help": "negatives per (query, positive) pair"})
    batch_size: int = field(default=64, metadata={"help": "encoding batch size while mining"})
    margin: float | None = field(
        default=0.05, metadata={"help": "skip candidates scoring within this margin of the positive (None: no margin)"}
    )
    margin_type: Literal["relative", "absolute"] = field(
        default="relative", metadata={"help": "relative: fraction of the positive's score; absolute: score difference"}
    )
    max_score: float | None = field(default=None, metadata={"help": "skip candidates scoring above this"})
    range_min: int = field(default=0, metadata={"help": "skip the first range_min candidates of each query"})
    range_max: int | None = field(default=50, metadata={"help": "consider candidates up to this rank"})
    sampling_strategy: Literal["top", "random"] = field(
        default="top", metadata={"help": "top: the hardest candidates; random: a random sample of the window"}
    )
    use_faiss: bool | Literal["auto"] = field(
        default="auto", metadata={"help": "FAISS search (auto: for corpora of faiss_min_corpus documents or more)"}
    )
    faiss_min_corpus: int = field(default=50_000, metadata={"help": "corpus size from which auto uses FAISS"})
    bm25_negatives: int = field(
        default=0,
        metadata={"help": "per pair, also this many negatives from BM25's top range_max (lexical look-alikes)"},
    )
    keep_unmined: bool = field(
        default=False,
        metadata={
            "help": "pairs for which no candidate passes the margin keep their row, with BM25 negatives in "
            "every slot (false: mine_hard_negatives drops them)"
        },
    )
    audit: bool = field(
        default=True, metadata={"help": "false-negative audit of the mined negatives (summary + examples file)"}
    )

    def validate(self) -> None:
        if self.bm25_negatives < 0:
            raise ValueError(f"mining.bm25_negatives must be >= 0, got {self.bm25_negatives}")
        if self.num_negatives < 1:
            raise ValueError(f"mining.num_negatives must be at least 1, got {self.num_negatives}")
        if self.batch_size < 1:
            raise ValueError(f"mining.batch_size must be positive, got {self.batch_size}")
        if self.range_min < 0:
            raise ValueError(f"mining.range_min must be >= 0, got {self.range_min}")
        if self.range_max is not None and self.range_max - self.range_min < self.num_negatives:
            raise ValueError(
                f"mining.range_max ({self.range_max}) - range_min ({self.range_min}) must leave at least "
                f"num_negatives ({self.num_negatives}) candidates"
            )


@dataclass
class EvaluationConfig:
    """Evaluation on the held-out split, before, during and after training."""

    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS), metadata={"help": "retrieval metrics"})
    primary_metric: str = field(default="ndcg@10", metadata={"help": "metric for model selection and early stopping"})
    eval_steps: int | None = field(
        default=None, metadata={"help": "evaluate every N steps (None: at each epoch end when num_epochs > 1)"}
    )
    save_best_model: bool = field(default=True, metadata={"help": "keep the checkpoint with the best primary metric"})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "stop after N evaluations without improvement"}
    )
    batch_size: int = field(default=64, metadata={"help": "encoding batch size for evaluation"})
    hybrid: bool = field(default=True, metadata={"help": "add the hybrid (BM25 + dense) rows to the report"})
    hybrid_weight: float = field(
        default=0.5, metadata={"help": "dense weight of the fixed-fusion hybrid rows (convex fusion, never tuned)"}
    )
    dev_fraction: float = field(
        default=0.5,
        metadata={
            "help": "share of the held-out queries that form dev (fusion choice, checkpoint choice); the rest is "
            "reported, never chosen on. 0: no dev split (default fusion, selection on all held-out)"
        },
    )
    dev_seed: int = field(default=0, metadata={"help": "seed of the dev / rest shuffle of the held-out queries"})
    choose_fusion: bool = field(
        default=True,
        metadata={
            "help": "choose the hybrid's fusion (convex / RRF, dense weight, BM25 variant) on dev and save it beside "
            "the model (fusion.json), where index-embed and search-embed read it"
        },
    )

    def validate(self) -> None:
        if not 0 <= self.hybrid_weight <= 1:
            raise ValueError(f"evaluation.hybrid_weight must be in [0, 1], got {self.hybrid_weight}")
        if not 0 <= self.dev_fraction < 1:
            raise ValueError(f"evaluation.dev_fraction must be in [0, 1), got {self.dev_fraction}")
        for name in [*self.metrics, self.primary_metric]:
            parse_metric(name)
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"evaluation.eval_steps must be positive, got {self.eval_steps}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"evaluation.early_stopping_patience must be positive, got {self.early_stopping_patience}")


@dataclass
class PseudoQueryConfig:
    """Extra (pseudo-query, document) pairs made from the corpus itself, for documents no query points at."""

    kind: Literal["none", "titles", "inverse_cloze"] = field(
        default="none",
        metadata={"help": "titles: a document's title -> its body; inverse_cloze: one sentence -> the rest"},
    )
    max_pairs: int = field(default=1000, metadata={"help": "at most this many pseudo pairs (a seeded sample)"})
    min_words: int = field(default=4, metadata={"help": "skip titles / sentences shorter than this"})

    def validate(self) -> None:
        if self.max_pairs < 0:
            raise ValueError(f"pseudo_queries.max_pairs must be >= 0, got {self.max_pairs}")


@dataclass
class AdapterHeadConfig:
    """The adapter recipe's head (``adapter: head``): trained on cached base vectors, the base frozen."""

    hidden_dim: int = field(default=768, metadata={"help": "width of the head's residual MLP (0: a linear head)"})
    epochs: int = field(default=40, metadata={"help": "passes over the rows; the epoch is chosen on validation loss"})
    batch_size: int = 64
    learning_rate: float = 3.0e-3
    weight_decay: float = 0.01
    scale: float = field(default=20.0, metadata={"help": "cosine logit scale of the in-batch ranking loss"})
    isotropy_weight: float = field(
        default=0.0, metadata={"help": "weight of ragcun's SIGReg isotropy term on the head's outputs (0: off)"}
    )
    validation_fraction: float = field(
        default=0.1, metadata={"help": "share of the training queries held out to choose the epoch"}
    )

    def validate(self) -> None:
        if self.hidden_dim < 0 or self.epochs < 1 or self.batch_size < 2:
            raise ValueError("adapter_head: hidden_dim >= 0, epochs >= 1 and batch_size >= 2 are needed")
        if self.learning_rate <= 0 or self.scale <= 0 or self.isotropy_weight < 0 or self.weight_decay < 0:
            raise ValueError("adapter_head: learning_rate and scale must be > 0, isotropy_weight and weight_decay >= 0")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"adapter_head.validation_fraction must be in [0, 1), got {self.validation_fraction}")


@dataclass
class TrainConfig:
    """Fine-tuning a sentence-transformers model on pairs, triplets, similarity pairs or a BEIR folder."""

    dataset_name: str = field(
        default="data/samples/scifact",
        metadata={"help": "a .jsonl/.json/.csv/.tsv file, a BEIR folder, or a `datasets` hub name (online only)"},
    )
    dataset_split: str = field(default="train", metadata={"help": "BEIR qrels split / hub dataset split"})
    sample_size: int | None = field(default=None, metadata={"help": "use at most this many examples (whole queries)"})
    test_size: float = field(default=0.2, metadata={"help": "held-out fraction (< 1) or number (>= 1) of queries"})
    test_dataset_name: str | None = field(
        default=None, metadata={"help": "evaluate on this file / BEIR folder instead of a split (all data trains)"}
    )
    test_dataset_split: str = field(default="test", metadata={"help": "BEIR qrels split of test_dataset_name"})
    seed: int = field(default=42, metadata={"help": "seed of the held-out split (and of training, see training_seed)"})
    training_seed: int | None = field(
        default=None, metadata={"help": "seed of the trainer (batch order); None: seed. The split stays on seed"}
    )
    model_name: str = field(default=DEFAULT_MODEL, metadata={"help": "base model: local path or name"})
    mining_model_name: str | None = field(default=None, metadata={"help": "model for mining (default: model_name)"})
    num_epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps for linear warm-up"})
    gradient_checkpointing: bool = False
    max_seq_length: int = 256
    bf16: bool | Literal["auto"] = field(default="auto", metadata={"help": "bfloat16 training (auto: if supported)"})
    loss: str = field(
        default="auto",
        metadata={"help": "auto (ranking loss for pairs/triplets/BEIR, CoSENT for similarity) or a name in LOSSES"},
    )
    mini_batch_size: int = field(default=16, metadata={"help": "mini-batch of the Cached* losses (bounds memory)"})
    max_memory_gb: float | None = field(
        default=4.0,
        metadata={"help": "loss auto: use the cached (GradCache) ranking loss when plain MNRL would need more"},
    )
    symmetric_loss: bool = field(default=False, metadata={"help": "ranking losses also rank queries per document"})
    guide_model: str | None = field(default=None, metadata={"help": "GIST losses' guide (default: the base model)"})
    gist_margin: float = field(default=0.05, metadata={"help": "GIST relative margin for in-batch false negatives"})
    matryoshka_dims: list[int] = field(default_factory=list, metadata={"help": "wrap the loss in MatryoshkaLoss"})
    merge_with_base: float = field(
        default=0.0, metadata={"help": "final weights = (1 - w) * fine-tuned + w * base (WiSE-FT); 0: no merge"}
    )
    oversample_bm25_misses: int = field(
        default=0,
        metadata={
            "help": "extra copies of each training row whose positive BM25 ranks below its top 10 (the claims "
            "the lexical side of the hybrid fails on); 0: none"
        },
    )
    adapter: Literal["none", "head"] = field(
        default="none",
        metadata={
            "help": "none: fine-tune the whole model; head: train a projection head over the frozen model on its "
            "cached vectors (adapter_head.*), saved as Dense modules after it"
        },
    )
    adapter_head: AdapterHeadConfig = field(default_factory=AdapterHeadConfig)
    bm25_weight: float = field(
        default=1.0,
        metadata={
            "help": "lambda of the hybrid-aware ranking: logits = scale * cosine + lambda * z(BM25), fixed BM25 "
            "(loss=hybrid, and the adapter head when bm25_aware)"
        },
    )
    bm25_aware: bool = field(
        default=False, metadata={"help": "adapter: head: train the head on the fused (cosine + lambda * BM25) logits"}
    )
    encode_backend: Literal["auto", "torch", "onnx", "openvino"] = field(
        default="torch",
        metadata={
            "help": "back end of every corpus pass (mining, the base and final evaluations): auto exports the "
            "model to ONNX and OpenVINO once (into cache_dir; the final model's fp32 files beside it) and uses the "
            "fastest back end whose vectors match PyTorch's on a sample (exact gate where figures are reported, "
            "approximate for a separate mining model); onnx / openvino: that fp32 export; torch: PyTorch"
        },
    )
    cache_dir: str = field(
        default="embeddingFT/data/cache", metadata={"help": "mined negatives, corpus vectors, exports"}
    )
    output_dir: str = field(default="embeddingFT/outputs", metadata={"help": "runs are written to output_dir/run_name"})
    run_name: str = field(default="", metadata={"help": "run folder name (default: <dataset>-<time>)"})
    logging_steps: int = 10
    save_steps: int | None = field(default=None, metadata={"help": "checkpoint every N steps (default: eval_steps)"})
    save_total_limit: int = 2
    resume: bool = field(default=False, metadata={"help": "continue the run from its last checkpoint"})
    tensorboard: bool = field(default=False, metadata={"help": "log loss, learning rate and metrics for TensorBoard"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda if available)"})
    mining: MiningConfig = field(default_factory=MiningConfig)
    pseudo_queries: PseudoQueryConfig = field(default_factory=PseudoQueryConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def loss_options(self, guide=None, mini_batch_size: int | None = None) -> LossOptions:
        """The options the loss builders read, from this config (``guide``: the loaded guide model;
        ``mini_batch_size``: the one ``loss: auto`` chose, else the config's)."""
        return LossOptions(
            mini_batch_size=mini_batch_size or self.mini_batch_size,
            symmetric=self.symmetric_loss,
            guide=guide,
            gist_margin=self.gist_margin,
            matryoshka_dims=tuple(self.matryoshka_dims),
            bm25_weight=self.bm25_weight,
        )

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.num_epochs <= 0:
            raise ValueError(f"num_epochs must be positive, got {self.num_epochs}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.test_size < 0:
            raise ValueError(f"test_size must be >= 0, got {self.test_size}")
        if self.sample_size is not None and self.sample_size < 2:
            raise ValueError(f"sample_size must be at least 2, got {self.sample_size}")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length must be at least 8, got {self.max_seq_length}")
        if self.mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be positive, got {self.mini_batch_size}")
        if any(d < 1 for d in self.matryoshka_dims):
            raise ValueError(f"matryoshka_dims must be positive, got {self.matryoshka_dims}")
        if "/" in self.run_name or self.run_name.startswith("."):
            raise ValueError(f"run_name must be a plain folder name, got {self.run_name!r}")
        if not 0 <= self.merge_with_base <= 1:
            raise ValueError(f"merge_with_base must be in [0, 1], got {self.merge_with_base}")
        if self.max_memory_gb is not None and self.max_memory_gb <= 0:
            raise ValueError(f"max_memory_gb must be positive, got {self.max_memory_gb}")
        check_loss_name(self.loss)
        self.mining.validate()
        self.pseudo_queries.validate()
        self.evaluation.validate()
        self.adapter_head.validate()
        if self.oversample_bm25_misses < 0:
            raise ValueError(f"oversample_bm25_misses must be >= 0, got {self.oversample_bm25_misses}")
        if self.bm25_weight < 0:
            raise ValueError(f"bm25_weight must be >= 0, got {self.bm25_weight}")
