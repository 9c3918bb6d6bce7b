"""The Keras-fit training phase and its callback: progress, persistence, stop, NaN, early stopping."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.training.fit import History, fit_phase


def _problem(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    return x, y


def _model(lr=0.05, steps_per_execution=1):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    m.compile(keras.optimizers.Adam(lr), "binary_crossentropy", metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return m


def _stream(x, y, bs=16):
    """Endless batches, as the approaches feed fit (one epoch = len(x) / bs steps)."""
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(bs).repeat()


def _val(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def test_learns_records_history_and_events():
    x, y = _problem()
    events, saved = [], []
    h = History()
    out = fit_phase(
        _model(),
        _stream(x, y),
        _val(x, y),
        steps_per_epoch=4,
        epochs=5,
        history=h,
        progress=events.append,
        on_epoch_end=lambda hh: saved.append(len(hh)),
    )
    assert out.epochs_run == 5 and not out.stopped and not out.failed
    assert len(h.loss) == len(h.val_accuracy) == len(h.epoch_seconds) == 5 and h.phase == [1] * 5
    assert h.val_accuracy[-1] > 0.85 and h.loss[-1] < h.loss[0]
    assert saved == [1, 2, 3, 4, 5]
    epochs = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5] and epochs[0]["epochs_total"] == 5
    assert sum(e["type"] == "batch" for e in events) == 20
    assert set(epochs[0]["logs"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_second_phase_continues_epoch_numbering():
    x, y = _problem()
    h = History()
    model = _model()
    fit_phase(model, _stream(x, y), _val(x, y), steps_per_epoch=4, epochs=2, history=h, phase=1, total_epochs=5)
    events = []
    out = fit_phase(
        model, _stream(x, y), _val(x, y), steps_per_epoch=4, epochs=3, history=h, phase=2, total_epochs=5, progress=events.append
    )
    assert out.epochs_run == 3 and h.phase == [1, 1, 2, 2, 2] and h.to_dict()["fine_tune_start_epoch"] == 3
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [3, 4, 5]


def test_stop_keeps_finished_epochs_and_their_weights():
    x, y = _problem()
    model = _model()
    h = History()
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 6  # 4 batches/epoch: stop during epoch 2

    after_epoch1 = {}
    out = fit_phase(
        model,
        _stream(x, y),
        _val(x, y),
        steps_per_epoch=4,
        epochs=5,
        history=h,
        should_stop=should_stop,
        on_epoch_end=lambda hh: after_epoch1.setdefault("w", model.get_weights()),
    )
    assert out.stopped and out.epochs_run == 1 and len(h) == 1
    for a, b in zip(model.get_weights(), after_epoch1["w"]):
        np.testing.assert_array_equal(a, b)


def test_stop_is_checked_with_several_steps_per_execution():
    x, y = _problem()
    h = History()
    out = fit_phase(
        _model(steps_per_execution=2),
        _stream(x, y),
        _val(x, y),
        steps_per_epoch=4,
        epochs=5,
        history=h,
        should_stop=lambda: len(h) >= 2,
    )
    assert out.stopped and len(h) == 2


def test_nan_guard_stops_with_message_and_keeps_last_good_weights():
    x, y = _problem()
    model = _model()
    h = History()
    bad = x.copy()
    bad[0, 0] = np.nan
    stream = tf.data.Dataset.from_tensor_slices((np.concatenate([x, bad, bad]), np.concatenate([y, y, y]))).batch(16)
    out = fit_phase(model, stream, _val(x, y), steps_per_epoch=4, epochs=3, history=h)
    assert out.failed.startswith("training diverged: loss became nan at epoch 2, batch 1")
    assert len(h) == 1
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_early_stopping_restores_best_weights():
    x, y = _problem()
    model = _model(lr=0.5)
    h = History()
    noisy_val = _val(x, 1 - y)  # validation gets worse as training improves
    out = fit_phase(model, _stream(x, y), noisy_val, steps_per_epoch=4, epochs=20, history=h, patience=2)
    assert out.early_stopped and out.epochs_run < 20
    best = int(np.argmin(h.val_loss))
    assert out.best_epoch == best + 1
    assert model.evaluate(noisy_val, verbose=0)[0] == pytest.approx(h.val_loss[best], rel=1e-4)


def test_history_round_trip_and_phase_marker():
    h = History()
    for phase in (1, 1, 2):
        h.append({"loss": 1, "accuracy": 0.5, "val_loss": 1, "val_accuracy": 0.5}, 0.1, phase)
    d = h.to_dict()
    assert d["fine_tune_start_epoch"] == 3
    assert History.from_dict(d).to_dict() == d


def test_finite_but_exploding_loss_counts_as_divergence():
    x, y = _problem()
    h = History()
    out = fit_phase(_model(lr=1e6), _stream(x * 1e4, y), _val(x, y), steps_per_epoch=4, epochs=3, history=h, num_classes=2)
    assert out.failed.startswith("training diverged: loss became") and "100x the loss of guessing" in out.failed
    assert len(h) < 3
