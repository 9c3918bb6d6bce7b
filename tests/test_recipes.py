"""Training recipes (issue 30): AdamW, learning-rate schedules, label smoothing, discriminative rates — each as applied."""

import math

import keras
import numpy as np
import pytest

from engine import config as cfgmod
from engine.config import HeadConfig, default_config
from engine.models import modeling, optimizers
from engine.training.stages import SmoothedSparseCrossentropy, StageBuilder, phase_loss


def _builder(num_classes=2, train_size=100, **fit) -> StageBuilder:
    """A StageBuilder over no base (compile needs none): 100 images of batch 20 = 5 steps an epoch."""
    cfg = default_config("frozen")
    cfg.fit.batch_size = 20
    for k, v in fit.items():
        setattr(cfg.fit, k, v)
    return StageBuilder(cfg, None, 32, num_classes, train_size)


def _head(num_classes=2):
    return modeling.build_head((2, 2, 4), num_classes, HeadConfig(pooling="flatten", dense_units=8, dropout=0.0))


def _rate_at(opt, step: int) -> float:
    opt.iterations.assign(step)
    return float(keras.ops.convert_to_numpy(opt.learning_rate))


# --- 1. AdamW ---------------------------------------------------------------------------------------------------


def test_adamw_is_built_with_its_weight_decay_and_decays_the_weights():
    top = _head()
    _builder(optimizer="adamw", weight_decay=0.05).compile(top, 1e-2)
    opt = top.optimizer
    assert type(opt) is keras.optimizers.AdamW and opt.weight_decay == pytest.approx(0.05)
    kernel = top.get_layer("predictions").kernel
    before = keras.ops.convert_to_numpy(kernel).copy()
    opt.apply([keras.ops.zeros_like(v) for v in top.trainable_variables], top.trainable_variables)
    # A zero gradient leaves Adam's step at 0: what moved is the decoupled decay, w <- w (1 - lr x wd).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), before * (1 - 1e-2 * 0.05), rtol=1e-6)


def test_other_optimizers_ignore_weight_decay():
    top = _head()
    _builder(optimizer="rmsprop", weight_decay=0.5).compile(top, 1e-3)
    assert type(top.optimizer) is optimizers.FusedRMSprop and not top.optimizer.weight_decay


# --- 2. schedules -------------------------------------------------------------------------------------------------


def test_constant_is_todays_plain_rate():
    top = _head()
    _builder().compile(top, 3e-4)
    assert not isinstance(top.optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    assert _rate_at(top.optimizer, 0) == pytest.approx(3e-4) == _rate_at(top.optimizer, 999)


def test_cosine_warms_up_then_decays_over_the_phases_steps():
    """4 epochs x 5 steps = 20 steps; 1 warmup epoch = 5 steps from 0 to the rate, then cosine to 0 at step 20."""
    top, rate = _head(), 1e-3
    _builder(schedule="cosine", warmup_epochs=1, epochs=4).compile(top, rate)
    opt = top.optimizer
    assert _rate_at(opt, 0) == pytest.approx(0.0, abs=1e-12)
    assert _rate_at(opt, 2) == pytest.approx(rate * 2 / 5, rel=1e-5)
    assert _rate_at(opt, 5) == pytest.approx(rate, rel=1e-5)
    for step in (10, 15):
        assert _rate_at(opt, step) == pytest.approx(rate * 0.5 * (1 + math.cos(math.pi * (step - 5) / 15)), rel=1e-5)
    assert _rate_at(opt, 20) == pytest.approx(0.0, abs=1e-9)


def test_cosine_spans_the_epochs_the_phase_is_compiled_for():
    """Fine-tuning compiles phase 2 for fine_tune.epochs: 2 epochs = 10 steps, no warmup, half the rate at step 5."""
    top = _head()
    _builder(schedule="cosine", epochs=30).compile(top, 1e-5, epochs=2)
    assert _rate_at(top.optimizer, 0) == pytest.approx(1e-5)
    assert _rate_at(top.optimizer, 5) == pytest.approx(0.5e-5, rel=1e-5)
    assert _rate_at(top.optimizer, 10) == pytest.approx(0.0, abs=1e-12)


def test_one_cycle_rises_to_the_rate_at_a_quarter_then_falls():
    top, rate = _head(), 1e-2
    _builder(schedule="one_cycle", epochs=4).compile(top, rate)  # 20 steps, peak at 5
    opt = top.optimizer
    assert _rate_at(opt, 0) == pytest.approx(rate / 25, rel=1e-5)
    assert _rate_at(opt, 5) == pytest.approx(rate, rel=1e-5)
    lo = rate / 25
    assert _rate_at(opt, 2) == pytest.approx(rate + (lo - rate) / 2 * (1 + math.cos(math.pi * 2 / 5)), rel=1e-5)
    assert _rate_at(opt, 20) == pytest.approx(rate / 1e5, rel=1e-4)


def test_a_fit_steps_the_schedule_it_was_compiled_with():
    """The rate the optimizer applies after one epoch of a real fit is the schedule's at 5 steps."""
    top, rate = _head(), 1e-3
    _builder(schedule="cosine", warmup_epochs=2, epochs=4).compile(top, rate)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 2, 2, 4)).astype("float32"), (rng.random(100) > 0.5).astype("float32")
    top.fit(x, y, batch_size=20, epochs=1, verbose=0, shuffle=False)
    assert int(top.optimizer.iterations.numpy()) == 5
    assert float(keras.ops.convert_to_numpy(top.optimizer.learning_rate)) == pytest.approx(rate * 5 / 10)


def test_the_finders_compile_keeps_a_rate_it_can_set():
    """The learning-rate finder compiles its own optimizer (modeling.compile_model) and sets each step's rate:
    a schedule chosen for training never reaches it."""
    top = _head()
    _builder(schedule="cosine", epochs=4).compile(top, 1e-3)
    modeling.compile_model(top, 2, "rmsprop", 1e-7)
    top.optimizer.learning_rate = 0.5
    assert float(keras.ops.convert_to_numpy(top.optimizer.learning_rate)) == pytest.approx(0.5)


# --- 3. label smoothing -------------------------------------------------------------------------------------------


def test_binary_loss_carries_the_smoothing():
    top = _head()
    _builder(label_smoothing=0.1).compile(top, 1e-3)
    assert isinstance(top.loss, keras.losses.BinaryCrossentropy) and top.loss.get_config()["label_smoothing"] == pytest.approx(
        0.1
    )
    assert phase_loss(2, 0.0) == "binary_crossentropy" and phase_loss(5, 0.0) == "sparse_categorical_crossentropy"


def test_multiclass_smoothing_on_sparse_labels_matches_the_formula():
    top = _head(3)
    _builder(num_classes=3, label_smoothing=0.2).compile(top, 1e-3)
    assert isinstance(top.loss, SmoothedSparseCrossentropy) and top.loss.label_smoothing == pytest.approx(0.2)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    labels = np.array([0, 1])
    target = np.full((2, 3), 0.2 / 3) + 0.8 * np.eye(3)[labels]
    want = float(np.mean(-(target * np.log(probs)).sum(axis=1)))
    assert float(top.loss(labels, probs)) == pytest.approx(want, rel=1e-5)


def test_label_smoothing_of_a_half_is_refused():
    cfg = default_config("frozen")
    cfg.fit.label_smoothing = 0.5
    with pytest.raises(cfgmod.ConfigError, match="label_smoothing"):
        cfgmod.validate(cfg)


# --- 4. discriminative rates --------------------------------------------------------------------------------------


def _two_layers():
    block, head = keras.layers.Dense(3, name="block"), keras.layers.Dense(1, name="head")
    model = keras.Sequential([keras.Input((4,)), block, head])
    return model, block, head


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adamw"])
def test_the_block_moves_by_the_fraction_of_the_heads_step(name):
    """One step with a gradient of ones: SGD moves each weight by the rate, Adam by the rate (its first step is
    lr x g / |g|), RMSprop by rate / sqrt(1 - rho); the block's weights move `fraction` of that."""
    model, block, head = _two_layers()
    rate, fraction = 1e-2, 0.1
    builder = _builder(optimizer=name, weight_decay=0.0)
    builder.compile(model, rate, block_variables=block.trainable_variables, block_rate=fraction)
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables]
    model.optimizer.apply([keras.ops.ones_like(v) for v in model.trainable_variables], model.trainable_variables)
    moved = [before[i] - keras.ops.convert_to_numpy(v) for i, v in enumerate(model.trainable_variables)]
    n_block = len(block.trainable_variables)
    head_step = float(moved[n_block].flat[0])
    assert head_step > 0
    for m in moved[n_block:]:
        np.testing.assert_allclose(m, head_step, rtol=1e-4)
    for m in moved[:n_block]:
        np.testing.assert_allclose(m, head_step * fraction, rtol=1e-3)
    if name == "sgd":
        assert head_step == pytest.approx(rate, rel=1e-5)


def test_a_rate_of_one_builds_the_plain_optimizer():
    model, block, _ = _two_layers()
    _builder(optimizer="adam").compile(model, 1e-3, block_variables=block.trainable_variables, block_rate=1.0)
    assert type(model.optimizer) is optimizers.FusedAdam


def test_recipe_knobs_are_flags_and_round_trip():
    names = {(s, n) for s, n, _, _ in cfgmod.knobs()}
    assert {
        ("fit", "weight_decay"),
        ("fit", "schedule"),
        ("fit", "warmup_epochs"),
        ("fit", "label_smoothing"),
        ("fine_tune", "discriminative_rate"),
    } <= names
    cfg = default_config("fine_tuning")
    cfg.fit.optimizer, cfg.fit.schedule, cfg.fine_tune.discriminative_rate = "adamw", "one_cycle", 0.3
    back = cfgmod.RunConfig.from_json(cfg.to_json())
    assert (back.fit.optimizer, back.fit.schedule, back.fine_tune.discriminative_rate) == ("adamw", "one_cycle", 0.3)


def test_the_finder_compiles_adamw_too():
    """The learning-rate finder's compile (modeling.compile_model) knows every fit.optimizer choice."""
    for name in cfgmod.OPTIMIZERS:
        top = _head()
        modeling.compile_model(top, 2, name, 1e-3)
        assert top.optimizer is not None
    assert type(top.optimizer) is keras.optimizers.AdamW


def test_compare_shows_the_recipe_in_one_cell():
    from ui.compare_extras import recipe_label

    cfg = default_config("fine_tuning")
    assert recipe_label(cfg.to_dict()) == "constant" == recipe_label({})
    cfg.fit.optimizer, cfg.fit.schedule, cfg.fit.warmup_epochs, cfg.fit.label_smoothing = "adamw", "cosine", 1, 0.1
    cfg.fine_tune.discriminative_rate = 0.25
    assert recipe_label(cfg.to_dict()) == "adamw wd 0.0001 · cosine (warmup 1) · smoothing 0.1 · block ×0.25"


def test_a_fine_tuning_run_trains_with_the_whole_recipe(tiny_multiclass, isolated_store, monkeypatch):
    """End to end (3 classes, VGG16 at 32 px, random weights): each phase is compiled with its own epochs, phase 2
    with the unfrozen block's variables at the fraction; the run finishes and its config.json holds the recipe."""
    import json
    from pathlib import Path

    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    compiled = []
    original = StageBuilder.compile

    def spy(self, top, learning_rate, **kw):
        original(self, top, learning_rate, **kw)
        compiled.append((learning_rate, kw, top.optimizer, top.loss))

    monkeypatch.setattr(StageBuilder, "compile", spy)
    cfg = tiny_config("fine_tuning", tiny_multiclass, epochs=2, fine_tune_epochs=1)
    cfg.fit.optimizer, cfg.fit.schedule, cfg.fit.warmup_epochs, cfg.fit.label_smoothing = "adamw", "cosine", 1, 0.1
    cfg.fine_tune.discriminative_rate = 0.2
    res = RUNNERS["fine_tuning"](cfg, prepare_data(str(tiny_multiclass)))
    assert res.state == "finished", res
    (lr1, kw1, opt1, loss1), (lr2, kw2, opt2, loss2) = compiled
    assert kw1 == {} and isinstance(opt1._learning_rate, keras.optimizers.schedules.CosineDecay)
    assert kw2["epochs"] == 1 and kw2["block_rate"] == 0.2 and len(kw2["block_variables"]) > 0
    assert isinstance(opt2, keras.optimizers.AdamW) and set(opt2._factors) == {0.2, 1.0}
    assert isinstance(loss2, SmoothedSparseCrossentropy) and loss2.label_smoothing == pytest.approx(0.1)
    stored = json.loads((Path(res.run_dir) / "config.json").read_text())
    assert stored["fit"]["schedule"] == "cosine" and stored["fine_tune"]["discriminative_rate"] == 0.2
