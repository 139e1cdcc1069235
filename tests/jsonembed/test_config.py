"""The shipped config/default.yaml and how the CLI finds it."""

from __future__ import annotations

import dataclasses

import pytest

from embedding_model.config import PROJECT_DIR, JsonEmbedConfig, build_config, resolve_config_path
from embshared.config import ConfigError, read_config_file


def test_default_yaml_documents_every_default():
    raw = read_config_file(PROJECT_DIR / "config" / "default.yaml")
    assert set(raw) == {f.name for f in dataclasses.fields(JsonEmbedConfig)}  # every key, nothing else
    assert build_config(PROJECT_DIR / "config" / "default.yaml") == JsonEmbedConfig()


def test_config_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("config/default.yaml") == PROJECT_DIR / "config" / "default.yaml"
    assert resolve_config_path(None) == PROJECT_DIR / "config" / "default.yaml"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text("epochs: 3\n")
    assert build_config("config/default.yaml").epochs == 3  # the cwd wins over the package copy
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config_path("config/missing.yaml")


def test_overrides_are_typed():
    cfg = build_config(None, ["kernel_sizes=[2, 4]", "lr=1e-3", "lowercase=false"])
    assert cfg.kernel_sizes == [2, 4] and cfg.lr == 0.001 and cfg.lowercase is False
    with pytest.raises(ConfigError, match="'epochs' expects int"):
        build_config(None, ["epochs=many"])
    with pytest.raises(ConfigError, match="'batch_size' must be at least 2"):
        build_config(None, ["batch_size=1"])
