"""ragcun's command lines through embshared.cli: the public guide's flags and keys, the composed
model section, precedence, errors, and every entry point (script and make target) resolving."""

from __future__ import annotations

import argparse
import re
import runpy
import subprocess
import sys

import pytest

from embshared.cli import add_config_arguments, config_from_args
from embshared.config import ConfigError
from ragcun.cli import evaluate, prepare_data, train
from ragcun.training import TrainConfig


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig)
    return config_from_args(TrainConfig, parser.parse_args(argv))


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
    assert cfg.mixed_precision is True and cfg.model.freeze_early_layers is True
    assert cfg.model.output_dim == 256
    assert _parse(["--mixed_precision", "false", "--output_dim", "none"]).model.output_dim is None


def test_precedence_file_then_flags_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nbatch_size: 4\nmargin: 2.0\nfreeze_base: true\n", encoding="utf-8")
    cfg = _parse(["--config", str(path), "--batch_size", "6", "margin=0.5", "lambda_isotropy=1e-2"])
    assert (cfg.epochs, cfg.batch_size, cfg.margin, cfg.lambda_isotropy) == (7, 6, 0.5, 0.01)
    assert cfg.model.freeze_base is True


def test_the_shipped_train_config_keeps_its_flat_model_keys(repo):
    cfg = _parse(["--config", str(repo / "ragcun" / "configs" / "train.yaml"), "head_hidden_dim=0"])
    assert cfg.model.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert (cfg.model.freeze_base, cfg.model.max_seq_length, cfg.model.head_hidden_dim) == (True, 256, 0)
    assert (cfg.epochs, cfg.batch_size, cfg.head_learning_rate, cfg.keep_checkpoints) == (40, 64, 3e-3, 2)


def test_errors():
    with pytest.raises(ConfigError, match="--epochs: key 'epochs' expects int, got 'two'"):
        _parse(["--epochs", "two"])
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        _parse(["epoch=3"])
    with pytest.raises(ConfigError, match="weight_decay must be >= 0"):
        _parse(["--weight_decay", "-1"])
    with pytest.raises(ConfigError, match="num_frozen_layers must be >= 0"):
        _parse(["num_frozen_layers=-1"])


@pytest.mark.parametrize("module", [prepare_data, train, evaluate])
def test_every_cli_and_its_script_answer_help(module, repo, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--config" in text and "key=value" in text
    script = repo / "ragcun" / "scripts" / f"{module.__name__.rsplit('.', 1)[1]}.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(script), run_name="__main__")
    assert exited.value.code == 0
    assert capsys.readouterr().out == text  # the script is the same entry point


def test_make_targets_run_the_scripts_with_prefixed_variables(repo):
    """`make -n` prints each ragcun target's command: it names an existing script and the RAGCUN_* values."""
    targets = ["ragcun-prepare", "ragcun-train", "ragcun-eval", "bench-ragcun"]
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", *targets, "RAGCUN_MODEL=my/model.pt", "epochs=5"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    scripts = re.findall(r"(ragcun/(?:scripts|bench)/\w+\.py)", dry)
    assert sorted(set(scripts)) == [
        "ragcun/bench/bench_scifact.py",
        "ragcun/scripts/evaluate.py",
        "ragcun/scripts/prepare_data.py",
        "ragcun/scripts/train.py",
    ]
    assert all((repo / s).is_file() for s in scripts)
    assert "--model_path my/model.pt" in dry  # RAGCUN_MODEL reaches ragcun-eval
    assert "'epochs=5'" in dry  # a lower-case key=value is forwarded as an override
