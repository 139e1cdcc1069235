"""The trainer's schedule and arguments follow the config: when it evaluates, what it keeps, its seeds."""

from __future__ import annotations

from embedding_ft.arguments import schedule, training_arguments
from embedding_ft.config import TrainConfig


def test_schedule_evaluates_per_epoch_only_when_there_are_several():
    one = schedule(TrainConfig(num_epochs=1), has_evaluator=True)
    assert (one.eval_strategy, one.load_best) == ("no", False)
    two = schedule(TrainConfig(num_epochs=2), has_evaluator=True)
    assert (two.eval_strategy, two.save_strategy, two.load_best) == ("epoch", "epoch", True)
    assert schedule(TrainConfig(num_epochs=2), has_evaluator=False).eval_strategy == "no"
    cfg = TrainConfig(num_epochs=1)
    cfg.evaluation.eval_steps = 5
    steps = schedule(cfg, has_evaluator=True)
    assert (steps.eval_strategy, steps.save_steps) == ("steps", 5)


def test_training_seed_moves_the_trainer_but_not_the_split(tmp_path):
    plan = schedule(TrainConfig(), has_evaluator=False)
    same = training_arguments(TrainConfig(seed=42), tmp_path, plan, True, None, False, "cpu")
    assert (same.seed, same.data_seed) == (42, 42)
    other = training_arguments(TrainConfig(seed=42, training_seed=7), tmp_path, plan, True, None, False, "cpu")
    assert (other.seed, other.data_seed) == (7, 7)
