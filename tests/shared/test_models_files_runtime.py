"""Offline model resolution, atomic writes, seeding."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from embshared.errors import UserError, cli_entry
from embshared.files import atomic_dir, atomic_write, write_json
from embshared.models import ModelNotAvailable, packaged_model_path, resolve_model, smollm2_gguf_path
from embshared.runtime import seed_everything


def test_packaged_minilm_names_resolve_to_the_packaged_folder():
    path = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert path == resolve_model("all-MiniLM-L6-v2") == packaged_model_path()
    config = json.loads(Path(path, "config.json").read_text())
    assert config["hidden_size"] == 384 and config["num_hidden_layers"] == 6


def test_local_path_is_used_as_is(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_unknown_hub_name_offline_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(
        ModelNotAvailable, match=r"^model someone/some-model is not available offline; pass a local path$"
    ):
        resolve_model("someone/some-model")


def test_online_hub_name_is_passed_through(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_model("someone/some-model") == "someone/some-model"


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelNotAvailable, match="model path ./no/such/model does not exist"):
        resolve_model("./no/such/model")


def test_smollm2_gguf_is_packaged():
    path = smollm2_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}


def test_atomic_dir(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "run") as tmp:
        (tmp / "model.bin").write_text("x")
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "model.bin").write_text("x")
    assert os.listdir(tmp_path / "run") == ["model.bin"]
    with pytest.raises(FileExistsError), atomic_dir(tmp_path / "run"):
        pass


def test_seed_everything_is_repeatable():
    import torch

    seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_cli_entry_prints_user_errors_as_one_line(capsys):
    @cli_entry
    def main(argv=None):
        raise UserError("data.jsonl:3: field 'query' is empty")

    assert main() == 2
    assert capsys.readouterr().err == "error: data.jsonl:3: field 'query' is empty\n"


def test_atomic_outputs_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "f.json", {})
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
