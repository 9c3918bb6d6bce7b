"""The learning-rate finder: its rules on curves with known answers, the ramp on cached features, the CLI."""

import json

import numpy as np
import pytest

from engine import cli
from engine.config import ConfigError
from engine.training.lr_finder import find_learning_rate
from engine.training.lr_range import FinderSettings, ramp, smooth, steepest_rate, suggest, valley_rate
from tests.conftest import tiny_config

LRS = np.geomspace(1e-7, 1, 100)


def test_smoothing_is_a_debiased_moving_average():
    assert smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0 at the start
    assert smooth([0.0, 1.0], 0.5) == pytest.approx([0.0, 0.5 / 0.75])


def test_steepest_descent_is_where_the_loss_falls_fastest_per_decade():
    loss = 1 - np.tanh(1.5 * (np.log10(LRS) + 3))  # falls fastest at 1e-3
    assert np.log10(steepest_rate(LRS, loss)) == pytest.approx(-3, abs=0.07)  # within one step of the ramp


def test_steepest_descent_is_never_on_the_blow_up():
    loss = np.concatenate([np.linspace(3, 1, 60), np.linspace(1, 50, 30), np.linspace(50, 2, 10)])  # diverged, then a steep fall
    assert steepest_rate(LRS, loss) <= LRS[59]  # on the descent before the minimum, not the fall from 50 to 2


def test_valley_is_a_little_past_the_first_third_of_the_longest_descent():
    loss = np.concatenate([np.linspace(3, 1, 81), np.linspace(1.1, 5, 19)])  # falls over steps 0-80, then blows up
    assert valley_rate(LRS, loss) == LRS[-1 + 27 + 13]  # fastai: start = 80 - 81, a third of 81 is 27, plus half of that
    noisy = loss + np.where(np.arange(100) % 7 == 3, 0.05, 0.0)  # bumps are stepped over: still well down the slope
    assert LRS[25] <= valley_rate(LRS, noisy) <= LRS[55]


def test_suggest_reads_the_chosen_rule_on_the_smoothed_loss_and_needs_five_steps():
    loss = 1 - np.tanh(1.5 * (np.log10(LRS) + 3))
    s = suggest(LRS, loss, FinderSettings(rule="steepest"))
    assert s["suggested"] == s["steepest"] and s["valley"] is not None and len(s["smoothed"]) == 100
    assert suggest(LRS[:4], loss[:4], FinderSettings())["suggested"] is None
    assert ramp(FinderSettings(start_lr=1e-5, end_lr=1e-1, steps=5)) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])


@pytest.mark.parametrize(
    "settings, says",
    [
        (FinderSettings(start_lr=1.0, end_lr=1e-3), "--start-lr/--end-lr: need start < end"),
        (FinderSettings(steps=3), "--steps: must be between 10 and 1000"),
        (FinderSettings(rule="middle"), "--rule: must be one of valley, steepest"),
    ],
)
def test_bad_settings_are_one_line_naming_the_flag(settings, says):
    with pytest.raises(ConfigError, match=says):
        settings.check()


@pytest.mark.slow
def test_the_ramp_trains_each_approach_on_the_cache_a_run_leaves(tiny_dataset):
    from engine.training.approaches import RUNNERS, prepare_data

    data = prepare_data(str(tiny_dataset))
    frozen = RUNNERS["frozen"](tiny_config("frozen", tiny_dataset, epochs=2), data)
    results = {}
    for approach in ("frozen", "feature_extraction", "fine_tuning"):
        cfg = tiny_config(approach, tiny_dataset)
        cfg.fine_tune.from_run = frozen.id
        result = find_learning_rate(cfg, data, FinderSettings(steps=30, end_lr=10.0))
        assert len(result.losses) == len(result.learning_rates) <= 30 and result.suggested is not None
        assert result.learning_rates == sorted(result.learning_rates) and result.learning_rates[0] == pytest.approx(1e-7)
        assert result.smoothed == pytest.approx(list(smooth(result.losses, 0.9)))
        assert 1e-7 <= result.suggested <= result.learning_rates[-1]
        results[approach] = result
        if approach != "feature_extraction":  # the frozen run cached its views and fine-tuning's cut: the base never ran
            assert result.feature_cache["misses"] == 0, (approach, result.feature_cache)
    again = find_learning_rate(tiny_config("feature_extraction", tiny_dataset), data, FinderSettings(steps=30))
    assert again.feature_cache["misses"] == 0  # the first ramp cached the plain features
    # same seed: same initial head and batches, so the first step (lr 1e-7 in both ramps) gives the same loss
    assert again.losses[0] == pytest.approx(results["feature_extraction"].losses[0], rel=1e-5)


def test_fine_tuning_without_a_frozen_run_is_refused_before_any_work(tiny_dataset):
    from engine.training.approaches import prepare_data

    with pytest.raises(ConfigError, match="fine_tune.from_run: the finder ramps fine-tuning's phase 2"):
        find_learning_rate(tiny_config("fine_tuning", tiny_dataset), prepare_data(str(tiny_dataset)))


@pytest.mark.slow
def test_cli_prints_the_suggestion_or_the_curve_as_json(tiny_dataset, capsys):
    common = [
        "lr-find",
        "--data",
        str(tiny_dataset),
        "--approach",
        "feature_extraction",
        "--backbone",
        "vgg16",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--steps",
        "40",
        "--quiet",
    ]
    assert cli.main([*common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["approach"] == "feature_extraction" and out["rule"] == "valley" and out["suggested"] == out["valley"]
    assert out["applies_to"] == "fit.learning_rate (--learning-rate)" and len(out["losses"]) <= 40
    assert cli.main([*common, "--rule", "steepest"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("suggested learning rate: ") and "(steepest descent of the smoothed loss)" in line
    assert line.endswith("feature cache misses 0")  # the second ramp read the features the first one cached


@pytest.mark.parametrize(
    "args, says",
    [
        (["--approach", "all"], "error: --approach: the finder ramps one approach"),
        (["--approach", "fine_tuning"], "error: fine_tune.from_run: the finder ramps fine-tuning's phase 2"),
        (["--approach", "frozen", "--steps", "5"], "error: argument --steps: must be between 10 and 1000"),
    ],
)
def test_cli_bad_requests_exit_2_with_one_line(tiny_dataset, capsys, args, says):
    assert cli.main(["lr-find", "--data", str(tiny_dataset), "--weights", "none", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(says)


def test_a_run_that_finds_its_rate_trains_at_the_suggestion_from_its_initial_weights(tiny_dataset, tmp_path, monkeypatch):
    from engine.training import lr_range
    from engine.training.approaches import RUNNERS, prepare_data
    from engine.training.stages import StageBuilder

    real_ramp, seen, rates = lr_range.ramp_stage, {}, []

    def spy_ramp(ctx, stage, arrays, *a, **k):
        before = [w.copy() for w in stage.top.get_weights()]
        result = real_ramp(ctx, stage, arrays, *a, **k)
        seen["restored"] = all(np.array_equal(b, w) for b, w in zip(before, stage.top.get_weights()))
        return result

    real_compile = StageBuilder.compile
    monkeypatch.setattr(lr_range, "ramp_stage", spy_ramp)
    monkeypatch.setattr(StageBuilder, "compile", lambda self, top, lr: (rates.append(lr), real_compile(self, top, lr))[1])
    cfg = tiny_config("feature_extraction", tiny_dataset, epochs=2)
    cfg.fit.find_learning_rate = True
    result = RUNNERS["feature_extraction"](
        cfg, prepare_data(str(tiny_dataset)), runs_dir=tmp_path / "runs", cache_dir=tmp_path / "c"
    )
    curve = json.loads((tmp_path / "runs" / result.id / "lr_finder.json").read_text())
    found = result.metrics["learning_rate_finder"]
    assert seen["restored"], "the ramp must leave the head at its initial weights"
    assert found["suggested"] == curve["suggested"] and found["used"] == curve["suggested"] and found["rule"] == "valley"
    assert len(curve["learning_rates"]) == found["steps"] > 10 and rates == [found["used"]]  # phase 1 compiled at the find
    assert result.state == "finished" and result.metrics["timings"]["lr_finder"] > 0
