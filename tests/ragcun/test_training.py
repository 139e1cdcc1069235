"""The training loop: the loss falls, outputs are written, accumulation, resume, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ragcun.checkpoint import read_checkpoint
from ragcun.cli.train import main
from ragcun.data import load_training_examples
from ragcun.model import ModelConfig
from ragcun.training import TrainConfig, build_loss, train, validation_loss


def _config(tiny_base, out, **kwargs) -> TrainConfig:
    base = dict(
        model=ModelConfig(base_model=str(tiny_base)),
        output_dir=str(out),
        epochs=3,
        batch_size=8,
        learning_rate=1e-3,
        head_learning_rate=1e-2,
        warmup_steps=0,
        num_slices=32,
        log_every=1,
        tensorboard=False,
        seed=0,
    )
    base.update(kwargs)
    return TrainConfig(**base)


def test_a_few_steps_lower_the_loss_and_write_every_output(tmp_path, tiny_base, toy_data):
    train_path, val_path = toy_data
    examples = load_training_examples(train_path)
    config = _config(tiny_base, tmp_path / "run")
    from ragcun.model import GaussianEmbeddingGemma

    torch.manual_seed(0)
    model = GaussianEmbeddingGemma.from_config(config.model, device="cpu")
    model.calibrate_head([e.query for e in examples] + [e.positive for e in examples])
    loss_fn = build_loss(config)
    before = validation_loss(model, loss_fn, examples, batch_size=8, seed=0)
    result = train(config, examples, load_training_examples(val_path), model=model, show_progress=False)
    after = validation_loss(model, loss_fn, examples, batch_size=8, seed=0)
    assert after["loss"] < 0.8 * before["loss"]
    assert after["contrastive"] < before["contrastive"]
    out = tmp_path / "run"
    for name in ("checkpoint_epoch_1.pt", "checkpoint_epoch_3.pt", "best_model.pt", "final_model.pt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "train_config.json").read_text())["batch_size"] == 8
    log = (out / "training.log").read_text()
    assert "contrastive" in log and "sigreg" in log and "pos dist" in log and "std" in log
    assert (out / "training_curves.png").stat().st_size > 1000
    steps = [h for h in result.history if h["kind"] == "step"]
    assert len(steps) == 3 * 4  # 32 examples / batch 8, one log per step
    assert {"contrastive", "sigreg", "variance", "pos_distance", "embedding_std"} <= set(steps[0])
    assert read_checkpoint(result.best_model)["epoch"] == result.best_epoch


def test_gradient_accumulation_counts_optimizer_steps(tmp_path, tiny_base, toy_data):
    examples = load_training_examples(toy_data[0])  # 32 examples -> 4 micro-batches of 8
    config = _config(tiny_base, tmp_path / "acc", epochs=1, gradient_accumulation_steps=3, save_epoch_checkpoints=True)
    result = train(config, examples, show_progress=False)
    assert [h["step"] for h in result.history if h["kind"] == "step"] == [1, 2]  # ceil(4 / 3)
    state = read_checkpoint(tmp_path / "acc" / "checkpoint_epoch_1.pt")["training"]
    assert state["global_step"] == 2


def test_resume_continues_exactly(tmp_path, tiny_base, toy_data):
    examples = load_training_examples(toy_data[0])
    torch.manual_seed(0)
    train(_config(tiny_base, tmp_path / "straight", epochs=2), examples, show_progress=False)
    # as if the run had stopped after epoch 1: continue from its epoch-1 checkpoint elsewhere
    torch.manual_seed(123)  # resume must restore the RNG state itself (dropout, SIGReg directions)
    resumed = _config(
        tiny_base, tmp_path / "resumed", epochs=2, resume=str(tmp_path / "straight" / "checkpoint_epoch_1.pt")
    )
    result = train(resumed, examples, show_progress=False)
    assert [h["epoch"] for h in result.history if h["kind"] == "epoch"] == [1, 2]  # history carried over
    a = read_checkpoint(tmp_path / "straight" / "final_model.pt")["model_state_dict"]
    b = read_checkpoint(tmp_path / "resumed" / "final_model.pt")["model_state_dict"]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


def test_cli_rejects_a_checkpoint_of_another_shape_and_writes_nothing(tmp_path, tiny_base, toy_data, capsys):
    first = tmp_path / "first"
    argv = ["--train_data", str(toy_data[0]), "--base_model", tiny_base, "--output_dim", "16", "--epochs", "1"]
    code = main([*argv, "--output_dir", str(first), "--quiet", "tensorboard=false", "batch_size=16"])
    assert code == 0
    second = tmp_path / "second"
    argv = ["--train_data", str(toy_data[0]), "--model_path", str(first / "final_model.pt"), "--output_dim", "24"]
    code = main([*argv, "--output_dir", str(second), "--quiet"])
    assert code == 2
    assert "checkpoint of another model shape: output_dim is 16" in capsys.readouterr().err
    assert not second.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--output_dim", "0"], "output_dim must be positive"),
        (["--batch_size", "1"], "batch_size must be at least 2"),
        (["not_a_key=3"], "unknown key 'not_a_key'"),
    ],
)
def test_cli_bad_config_exits_2_and_writes_nothing(tmp_path, toy_data, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["--train_data", str(toy_data[0]), "--output_dir", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_wrong_json_shape_exits_2_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "train.json"
    bad.write_text('{"query": "q", "positive": "p"}', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--train_data", str(bad), "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.json" in err and "expected a JSON array" in err
    assert not out.exists()


def test_mixed_precision_trains_with_finite_losses(tmp_path, tiny_base, toy_data):
    examples = load_training_examples(toy_data[0])
    config = _config(tiny_base, tmp_path / "amp", epochs=1, mixed_precision=True, save_epoch_checkpoints=False)
    result = train(config, examples, show_progress=False)
    losses = [h["loss"] for h in result.history if h["kind"] == "step"]
    assert len(losses) == 4
    assert all(math.isfinite(x) for x in losses)
