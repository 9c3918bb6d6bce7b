"""The fused optimizers compute exactly Keras' updates."""

import keras
import numpy as np
import pytest

from engine.models.optimizers import FusedAdam, FusedRMSprop


def _train(optimizer, steps=5):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 12)).astype("float32"), (rng.random(64) > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer, "binary_crossentropy")
    model.fit(x, y, batch_size=16, epochs=steps, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("fused, reference", [
    (lambda: FusedRMSprop(1e-2), lambda: keras.optimizers.RMSprop(1e-2)),
    (lambda: FusedAdam(1e-2), lambda: keras.optimizers.Adam(1e-2)),
])
def test_fused_update_equals_keras(fused, reference):
    got, want = _train(fused()), _train(reference())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(got, _train(reference(), steps=1)))  # training moved the weights
