"""Config loading: defaults, files, overrides, and the errors that name key and file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from embshared.config import ConfigError, config_to_dict, load_config, save_config


@dataclass
class Mining:
    num_negatives: int = 3
    margin: float | None = None
    sampling_strategy: Literal["top", "random"] = "top"


@dataclass
class TrainConfig:
    batch_size: int = 32
    learning_rate: float = 2e-5
    bf16: bool | Literal["auto"] = "auto"
    model_name: str = "m"
    matryoshka_dims: list[int] = field(default_factory=list)
    mining: Mining = field(default_factory=Mining)

    def validate(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")


def test_defaults_then_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 8\nlearning_rate: 1\nmining:\n  num_negatives: 1\n")
    cfg = load_config(
        TrainConfig, path, ["batch_size=16", "mining.margin=0.1", "matryoshka_dims=[64, 128]", "bf16=false"]
    )
    assert cfg.batch_size == 16
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.mining.num_negatives == 1
    assert cfg.mining.margin == 0.1
    assert cfg.matryoshka_dims == [64, 128]
    assert cfg.bf16 is False
    assert cfg.model_name == "m"


def test_json_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"batch_size": 4, "mining": {"sampling_strategy": "random"}}')
    cfg = load_config(TrainConfig, path)
    assert (cfg.batch_size, cfg.mining.sampling_strategy) == (4, "random")


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("mining:\n  num_negative: 5\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'mining\.num_negative'"):
        load_config(TrainConfig, path)


def test_wrong_type_in_file_names_key_and_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: sixteen\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'batch_size' expects int, got 'sixteen'"):
        load_config(TrainConfig, path)


def test_unknown_override_key():
    with pytest.raises(ConfigError, match=r"command line: unknown key 'batchsize'"):
        load_config(TrainConfig, None, ["batchsize=16"])
    with pytest.raises(ConfigError, match=r"unknown key 'mining\.nope' \(mining has:"):
        load_config(TrainConfig, None, ["mining.nope=1"])


def test_override_types_are_checked():
    with pytest.raises(ConfigError, match=r"command line: key 'mining\.sampling_strategy' expects 'top' \| 'random'"):
        load_config(TrainConfig, None, ["mining.sampling_strategy=best"])
    with pytest.raises(ConfigError, match=r"key 'batch_size' expects int, got 1\.5"):
        load_config(TrainConfig, None, ["batch_size=1.5"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(TrainConfig, None, ["batch_size"])


def test_validate_hook_reports_source(tmp_path):
    with pytest.raises(ConfigError, match="batch_size must be positive, got 0"):
        load_config(TrainConfig, None, ["batch_size=0"])


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("batch_size: 8\nmining: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(TrainConfig, path)


def test_save_round_trip(tmp_path):
    cfg = load_config(TrainConfig, None, ["mining.num_negatives=7", "matryoshka_dims=[32]"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    loaded = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert loaded == config_to_dict(cfg)
    assert load_config(TrainConfig, tmp_path / "out" / "config.yaml") == cfg


def test_typed_values_come_before_overrides_and_errors_name_their_source(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 8\n")
    cfg = load_config(TrainConfig, path, ["mining.num_negatives=2"], values=[("batch_size", 4, "--batch-size")])
    assert (cfg.batch_size, cfg.mining.num_negatives) == (4, 2)
    cfg = load_config(TrainConfig, path, ["batch_size=16"], values=[("batch_size", 4, "--batch-size")])
    assert cfg.batch_size == 16  # key=value overrides win over flags
    with pytest.raises(ConfigError, match=r"--batch-size"):
        load_config(TrainConfig, path, values=[("batch_size", "many", "--batch-size")])
    with pytest.raises(ConfigError, match=r"c\.yaml: batch_size must be positive"):
        load_config(TrainConfig, path, values=[("batch_size", 0, "--batch-size")])
