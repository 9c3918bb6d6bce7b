"""The fused optimizers compute exactly Keras' updates, and fall back to Keras' own when its internals change."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.config import HeadConfig
from engine.models import modeling, optimizers
from engine.models.optimizers import FusedAdam, FusedRMSprop


def _train(optimizer, steps=5):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 12)).astype("float32"), (rng.random(64) > 0.5).astype("float32")
    model = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer, "binary_crossentropy")
    model.fit(x, y, batch_size=16, epochs=steps, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize(
    "fused, reference",
    [
        (lambda: FusedRMSprop(1e-2), lambda: keras.optimizers.RMSprop(1e-2)),
        (lambda: FusedAdam(1e-2), lambda: keras.optimizers.Adam(1e-2)),
    ],
)
def test_fused_update_equals_keras(fused, reference):
    got, want = _train(fused()), _train(reference())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(got, _train(reference(), steps=1)))  # training moved the weights


def _head():
    return modeling.build_head((2, 2, 4), 2, HeadConfig(pooling="flatten", dense_units=8, dropout=0.0))


def _lr(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


@pytest.mark.parametrize("name, cls", [("rmsprop", FusedRMSprop), ("adam", FusedAdam), ("sgd", keras.optimizers.SGD)])
def test_compile_model_gives_the_optimizer_with_its_learning_rate(name, cls):
    """This Keras has every internal the fused steps use: they are used, silently (a failure here flags a Keras upgrade)."""
    head = _head()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        modeling.compile_model(head, 2, name, 3e-4, steps_per_execution=2)
        head.optimizer.build(head.trainable_variables)
    assert type(head.optimizer) is cls and _lr(head) == pytest.approx(3e-4)
    if cls is not keras.optimizers.SGD:
        assert head.optimizer._fused_ok
        assert optimizers.missing_internals({"rmsprop": "RMSprop", "adam": "Adam"}[name], head.optimizer) == []


def _defining_class(cls, attr):
    return next(c for c in cls.__mro__ if attr in vars(c))


def test_a_keras_method_missing_at_import_gives_keras_optimizer_with_one_warning(monkeypatch):
    """Faked: a Keras without Optimizer._get_variable_index (renamed, say)."""
    monkeypatch.delattr(_defining_class(keras.optimizers.RMSprop, "_get_variable_index"), "_get_variable_index")
    monkeypatch.setitem(optimizers.MISSING_AT_IMPORT, "RMSprop", optimizers.missing_internals("RMSprop"))
    with pytest.warns(
        RuntimeWarning, match=r"lacks keras\.optimizers\.RMSprop\._get_variable_index: training with Keras' own RMSprop"
    ) as caught:
        opt = modeling.make_optimizer("rmsprop", 2e-5)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert type(opt) is keras.optimizers.RMSprop
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(2e-5)


def test_a_missing_fused_kernel_trains_with_keras_adam(monkeypatch):
    """Faked: a TensorFlow without ResourceApplyAdam. compile_model falls back to keras.optimizers.Adam, which trains."""
    monkeypatch.delattr(tf.raw_ops, "ResourceApplyAdam")
    monkeypatch.setitem(optimizers.MISSING_AT_IMPORT, "Adam", optimizers.missing_internals("Adam"))
    head = _head()
    with pytest.warns(RuntimeWarning, match=r"lacks tf\.raw_ops\.ResourceApplyAdam"):
        modeling.compile_model(head, 2, "adam", 1e-2)
    assert type(head.optimizer) is keras.optimizers.Adam and _lr(head) == pytest.approx(1e-2)
    before = [w.copy() for w in head.get_weights()]
    rng = np.random.default_rng(0)
    head.fit(rng.normal(size=(32, 2, 2, 4)).astype("float32"), (rng.random(32) > 0.5).astype("float32"), batch_size=8, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, head.get_weights()))


@pytest.mark.parametrize(
    "cls, keras_cls, slot",
    [(FusedRMSprop, keras.optimizers.RMSprop, "_velocities"), (FusedAdam, keras.optimizers.Adam, "_momentums")],
)
def test_a_slot_list_missing_after_build_uses_keras_update_step(monkeypatch, cls, keras_cls, slot):
    """Faked: Keras' build no longer leaves the slot list the fused step reads; the instance keeps Keras' own step."""
    build = keras_cls.build

    def build_without_slot(self, var_list):
        build(self, var_list)
        delattr(self, slot)

    calls = []
    monkeypatch.setattr(keras_cls, "build", build_without_slot)
    monkeypatch.setattr(keras_cls, "update_step", lambda self, gradient, variable, learning_rate: calls.append(variable))
    opt, var = cls(learning_rate=1e-2), keras.Variable(np.ones(3, "float32"))
    with pytest.warns(
        RuntimeWarning, match=rf"lacks keras\.optimizers\.{keras_cls.__name__}\(\)\.{slot}: training with Keras' own"
    ):
        opt.build([var])
    assert not opt._fused_ok
    opt.update_step(tf.ones(3), var, 1e-2)
    assert calls == [var]  # Keras' step, not the fused kernel
