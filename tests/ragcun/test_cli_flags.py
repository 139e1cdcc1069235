"""Flags generated from config dataclasses: typing, booleans, precedence, errors."""

from __future__ import annotations

import argparse

import pytest

from embshared.config import ConfigError
from ragcun.cli.flags import add_config_arguments, build_config
from ragcun.training import TrainConfig


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig)
    return build_config(TrainConfig, parser.parse_args(argv))


def test_guide_flags_are_typed():
    cfg = _parse(
        [
            "--learning_rate",
            "1e-5",
            "--epochs",
            "5",
            "--mixed_precision",
            "--freeze_early_layers",
            "--output_dim",
            "256",
        ]
    )
    assert cfg.learning_rate == pytest.approx(1e-5)
    assert cfg.epochs == 5
    assert cfg.mixed_precision is True and cfg.freeze_early_layers is True
    assert cfg.output_dim == 256
    assert _parse(["--mixed_precision", "false", "--output_dim", "none"]).output_dim is None


def test_precedence_file_then_flags_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nbatch_size: 4\nmargin: 2.0\n", encoding="utf-8")
    cfg = _parse(["--config", str(path), "--batch_size", "6", "margin=0.5", "lambda_isotropy=1e-2"])
    assert (cfg.epochs, cfg.batch_size, cfg.margin, cfg.lambda_isotropy) == (7, 6, 0.5, 0.01)


def test_errors():
    with pytest.raises(SystemExit):
        _parse(["--epochs", "two"])
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        _parse(["epoch=3"])
    with pytest.raises(ConfigError, match="weight_decay must be >= 0"):
        _parse(["--weight_decay", "-1"])
