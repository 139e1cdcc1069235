"""embshared.cli: flags from config dataclasses (typed, checked, sections, precedence) and the run start."""

from __future__ import annotations

import argparse
import logging
import random
from dataclasses import dataclass, field
from typing import Literal

import pytest

from embshared.cli import (
    FLAT,
    NOISY_LOGGERS,
    add_config_arguments,
    config_from_args,
    config_keys,
    resolve_config,
    set_threads,
    start_run,
    torch_threads,
)
from embshared.config import ConfigError, config_to_dict
from embshared.errors import UserError


@dataclass
class Arch:
    base_model: str | None = field(default=None, metadata={"help": "base encoder"})
    output_dim: int | None = None
    freeze: bool = False


@dataclass
class Mining:
    num_negatives: int = 3
    strategy: Literal["top", "random"] = "top"


@dataclass
class Train:
    epochs: int = field(default=3, metadata={"help": "passes over the data"})
    learning_rate: float = 2e-5
    mixed_precision: bool = False
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    name: str = "run"
    resume: str | None = None
    metric: Literal["auto", "l2", "cosine"] = "auto"
    model: Arch = field(default_factory=Arch, metadata={"help": "architecture", FLAT: True})
    mining: Mining = field(default_factory=Mining)

    def validate(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")


def parse(argv: list[str]) -> Train:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Train)
    return config_from_args(Train, parser.parse_args(argv))


def test_flags_parse_to_typed_values():
    cfg = parse(
        [
            *("--epochs", "5", "--learning_rate", "1e-5", "--mixed_precision", "--split", "0.5", "0.25", "0.25"),
            *("--name", "yes", "--metric", "l2", "--output_dim", "256", "--mining.num_negatives", "7"),
        ]
    )
    assert cfg.epochs == 5 and isinstance(cfg.epochs, int)
    assert cfg.learning_rate == pytest.approx(1e-5) and isinstance(cfg.learning_rate, float)
    assert cfg.mixed_precision is True
    assert cfg.split == [0.5, 0.25, 0.25]
    assert cfg.name == "yes"  # a str field keeps the text (YAML would read a bool)
    assert cfg.metric == "l2"
    assert cfg.model.output_dim == 256  # a flat section's key, written without its prefix
    assert cfg.mining.num_negatives == 7  # a plain section's key is dotted


def test_booleans_none_and_lists():
    assert parse(["--mixed_precision", "false"]).mixed_precision is False
    assert parse(["--mixed_precision", "true"]).mixed_precision is True
    assert parse(["mixed_precision=no"]).mixed_precision is False  # YAML 1.1, as in config files
    assert parse(["--output_dim", "none"]).model.output_dim is None
    assert parse(["--output_dim", "3", "output_dim=null"]).model.output_dim is None
    assert parse(["--resume", "None"]).resume is None
    assert parse(["--split", "[0.6, 0.2, 0.2]"]).split == [0.6, 0.2, 0.2]
    assert parse(["split=[0.7, 0.2, 0.1]"]).split == [0.7, 0.2, 0.1]
    assert parse(["split=1"]).split == [1.0]


def test_a_bad_value_names_the_key_and_where_it_came_from(tmp_path):
    with pytest.raises(ConfigError, match=r"--epochs: key 'epochs' expects int, got 'two'"):
        parse(["--epochs", "two"])
    with pytest.raises(ConfigError, match=r"command line: key 'output_dim' expects int \| null, got 'big'"):
        parse(["output_dim=big"])
    with pytest.raises(ConfigError, match=r"--mixed_precision: key 'mixed_precision' expects bool, got 'maybe'"):
        parse(["--mixed_precision", "maybe"])
    with pytest.raises(ConfigError, match=r"key 'metric' expects 'auto' \| 'l2' \| 'cosine', got 'dot'"):
        parse(["--metric", "dot"])
    path = tmp_path / "c.yaml"
    path.write_text("mining:\n  num_negatives: many\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'mining\.num_negatives' expects int, got 'many'"):
        parse(["--config", str(path)])
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'"):
        parse(["epoch=3"])
    path.write_text("epoch: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'epoch'"):
        parse(["--config", str(path)])
    with pytest.raises(ConfigError, match="epochs must be positive, got 0"):
        parse(["--epochs", "0"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse(["epochs"])


def test_precedence_defaults_file_flags_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "epochs: 7\nlearning_rate: 1e-3\nbase_model: from-file\nmining: {num_negatives: 1}\nmodel: {freeze: true}\n",
        encoding="utf-8",
    )
    cfg = parse(["--config", str(path), "--epochs", "6", "--learning_rate", "0.5", "learning_rate=0.25"])
    assert cfg.epochs == 6  # the flag beats the file
    assert cfg.learning_rate == 0.25  # key=value beats the flag
    assert cfg.model.base_model == "from-file" and cfg.model.freeze is True  # flat and nested forms
    assert cfg.mining.num_negatives == 1 and cfg.mining.strategy == "top"  # the rest of a section stays default
    assert cfg.name == "run"
    # the resolved config keeps the section, so a saved config reads back the same way
    assert config_to_dict(cfg)["model"] == {"base_model": "from-file", "output_dim": None, "freeze": True}
    assert resolve_config(Train, overrides=["model.output_dim=4", "base_model=b"]).model == Arch("b", 4, False)


def test_help_lists_every_key_with_its_default():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Train)
    text = " ".join(parser.format_help().split())
    assert "--epochs INT passes over the data (default: 3)" in text
    assert "--base_model STR base encoder (default: None)" in text
    assert "--metric {auto,l2,cosine}" in text
    assert "--mining.num_negatives INT" in text
    assert [k.name for k in config_keys(Train)][-5:] == [
        "base_model",
        "output_dim",
        "freeze",
        "mining.num_negatives",
        "mining.strategy",
    ]


def test_a_flat_key_that_clashes_is_refused():
    @dataclass
    class Clash:
        freeze: bool = True
        model: Arch = field(default_factory=Arch, metadata={"flat": True})

    with pytest.raises(ValueError, match="key 'freeze'"):
        config_keys(Clash)


@pytest.fixture
def restore_run_state(monkeypatch):
    """Undo what start_run changes: torch threads, logging levels and handlers, the progress-bar switch."""
    import torch

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # set, so start_run leaves it alone
    root = logging.getLogger()
    saved = (torch.get_num_threads(), root.level, list(root.handlers))
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    torch.set_num_threads(saved[0])
    root.handlers[:] = saved[2]
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_start_run_sets_threads_seed_and_log_levels(restore_run_state, tmp_path):
    import torch

    torch.set_num_threads(2)
    start_run(threads=1, seed=11, log_file=tmp_path / "run.log")
    assert torch.get_num_threads() == 1
    first = (random.random(), torch.rand(1).item())
    start_run(seed=11)
    assert (random.random(), torch.rand(1).item()) == first
    assert torch.get_num_threads() == 1  # threads=None leaves the count alone
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("sentence_transformers").level == logging.WARNING
    start_run(quiet=True)
    assert logging.getLogger().level == logging.WARNING
    with pytest.raises(UserError, match="threads must be a positive integer"):
        start_run(threads=-1)


def test_torch_threads_restores_the_count(restore_run_state):
    import torch

    torch.set_num_threads(2)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    set_threads(0)  # 0: torch's default, untouched
    assert torch.get_num_threads() == 2
