"""The training budget a run will get, said in optimizer steps before it starts (engine/training/budget.py)."""

import pytest

from engine.cli import build_parser
from engine.cli.flags import build_config
from engine.config import ConfigError, default_config, validate
from engine.training.budget import budget_sentence, steps_per_epoch


def test_the_budget_is_counted_in_optimizer_steps_of_this_dataset():
    cfg = default_config("feature_extraction")
    cfg.fit.epochs, cfg.fit.batch_size, cfg.fit.early_stopping_patience = 100, 20, 10
    text = budget_sentence(cfg, 245)
    assert steps_per_epoch(245, 20) == 13 and steps_per_epoch(240, 20) == 12
    assert "245 training images (batch 20)" in text and "up to 100 epochs × 13 steps = 1,300 optimizer steps" in text
    assert "stopping after 10 epochs without a lower validation loss (the best epoch kept)" in text
    assert "learning rate 2e-05" in text and "under 300" not in text


def test_too_few_steps_for_a_small_dataset_are_said():
    cfg = default_config("feature_extraction")
    cfg.fit.epochs = 15  # best_cpu's former budget: 195 steps on 245 images
    assert "15 epochs × 13 steps = 195 optimizer steps" in budget_sentence(cfg, 245)
    assert "under 300 optimizer steps: a small dataset needs more epochs" in budget_sentence(cfg, 245)
    assert "under 300" not in budget_sentence(cfg, 2000)  # 1,500 steps on the lecture's 2,000 images


def test_fine_tuning_names_both_phases_and_a_continued_run_only_phase_two():
    cfg = default_config("fine_tuning")
    cfg.fit.find_learning_rate = True
    text = budget_sentence(cfg, 2000)
    assert "up to 30 epochs × 100 steps = 3,000 optimizer steps at the learning-rate finder's rate" in text
    assert "then fine-tuning up to 30 epochs × 100 steps = 3,000 optimizer steps at learning rate 1e-05" in text
    cfg.fine_tune.from_run = "RUN"
    assert "finder" not in budget_sentence(cfg, 2000) and "then fine-tuning" in budget_sentence(cfg, 2000)


def _cfg(*flags):
    args = build_parser().parse_args(["run", "--data", "DATA", "--approach", "feature_extraction", *flags])
    return build_config("feature_extraction", args)


def test_a_preset_finds_the_rate_unless_the_user_gives_one():
    assert _cfg("--preset", "best_cpu").fit.find_learning_rate is True
    given = _cfg("--preset", "best_cpu", "--learning-rate", "0.001")
    assert given.fit.find_learning_rate is False and given.fit.learning_rate == 0.001
    assert _cfg("--preset", "best_cpu", "--learning-rate", "0.001", "--find-learning-rate").fit.find_learning_rate is True
    assert _cfg("--preset", "lecture").fit.find_learning_rate is False  # a published setup keeps its source's rate


def test_the_finder_in_a_run_needs_one_device():
    cfg = default_config("frozen")
    cfg.fit.find_learning_rate, cfg.compute.distribute = True, "mirrored"
    with pytest.raises(ConfigError, match="fit.find_learning_rate: the finder ramps on one device"):
        validate(cfg)
