"""Precision per device: `auto` on CPUs and (faked) GPUs, the policy scope, the float32 head, loss scaling."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine import cli
from engine.config import HeadConfig
from engine.models import modeling
from engine.models.optimizers import FusedAdam, FusedRMSprop
from engine.models.precision import dtype_policy, resolve_precision


@pytest.fixture
def fake_gpus(monkeypatch):
    """Makes TensorFlow list GPUs with the given compute capabilities (None: not reported), no GPU needed."""

    def install(*caps):
        devices = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(len(caps))]
        details = {d.name: ({"compute_capability": c} if c else {"device_name": "unknown"}) for d, c in zip(devices, caps)}
        real = tf.config.list_physical_devices
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: devices if kind == "GPU" else real(kind))
        monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details[device.name])

    return install


def test_auto_is_float32_on_cpus(fake_gpus):
    fake_gpus()  # no GPU at all, whatever this machine has
    assert resolve_precision("auto") == "float32"


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        ([(7, 0)], "mixed_float16"),  # Volta: first tensor cores
        ([(7, 5), (7, 5)], "mixed_float16"),
        ([(8, 0)], "mixed_float16"),  # Ampere: float16 too (bfloat16 lacks GPU kernels MobileNet needs)
        ([(9, 0)], "mixed_float16"),
        ([(6, 1)], "float32"),  # Pascal: no tensor cores
        ([(8, 6), (6, 1)], "float32"),  # a mirrored run computes on both: the slowest decides
        ([None], "float32"),  # capability not reported (e.g. ROCm)
    ],
)
def test_auto_on_gpus_follows_compute_capability(fake_gpus, caps, expected):
    fake_gpus(*caps)
    assert resolve_precision("auto") == expected


@pytest.mark.parametrize("name", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_explicit_choice_is_kept(fake_gpus, name):
    fake_gpus((9, 0))
    assert resolve_precision(name) == name


def test_policy_is_restored_after_the_block_even_on_error():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with dtype_policy("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before == "float32"


def _features(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, 2, 8)).astype("float32")
    return x, (x[:, 0, 0, 0] > 0).astype("float32")


def test_head_under_gpu_auto_policy_computes_in_float16_with_a_float32_output(fake_gpus):
    fake_gpus((7, 5))
    resolved = resolve_precision("auto")
    assert resolved == "mixed_float16"
    with dtype_policy(resolved):
        head = modeling.build_head((2, 2, 8), 2, HeadConfig(pooling="flatten", dense_units=16, dropout=0.0))
        modeling.compile_model(head, 2, "rmsprop", 1e-3)
    dense, out = head.get_layer("dense"), head.get_layer("predictions")
    assert dense.compute_dtype == "float16" and dense.kernel.dtype == "float32"  # weights stay float32
    assert out.compute_dtype == "float32" and out.kernel.dtype == "float32"
    x, y = _features()
    assert head(x).dtype == "float32"
    # Keras' compile wraps the optimizer for loss scaling under mixed_float16: ours is inside
    assert isinstance(head.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(head.optimizer.inner_optimizer, FusedRMSprop)
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize(("fused", "reference"), [(FusedRMSprop, keras.optimizers.RMSprop), (FusedAdam, keras.optimizers.Adam)])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_fused_optimizers_train_like_keras_under_mixed_precision(policy, fused, reference):
    """Same updates as Keras' own optimizer under the policy (and its loss scaling): the fused kernels see unscaled float32 gradients."""
    x, y = _features()
    weights, losses = [], []
    for opt in (fused, reference):
        with dtype_policy(policy):
            keras.utils.set_random_seed(0)
            head = modeling.build_head((2, 2, 8), 2, HeadConfig(pooling="flatten", dense_units=16, dropout=0.0))
            head.compile(opt(learning_rate=1e-2), "binary_crossentropy")
        hist = head.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)
        weights.append(head.get_weights())
        losses.append(hist.history["loss"])
    assert np.all(np.isfinite(losses)) and losses[0][-1] < losses[0][0]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-4)  # float16 rounding of activations amplifies last-bit differences


@pytest.mark.slow
def test_run_with_auto_records_float32_on_this_cpu(tiny_dataset, tmp_path):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: auto resolves by its compute capability (tested above with faked GPUs)")
    report = tmp_path / "report.json"
    rc = cli.main(
        [
            "run",
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
            "--epochs",
            "1",
            "--precision",
            "auto",
            "--runs-dir",
            str(tmp_path / "r"),
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert rc == 0
    run = json.loads(report.read_text())["runs"][0]
    assert run["precision"] == "float32"
    stored = json.loads((tmp_path / "r" / run["id"] / "config.json").read_text())
    assert stored["compute"]["precision"] == "auto" and stored["resolved"]["precision"] == "float32"


@pytest.mark.slow
def test_mixed_float16_run_trains_end_to_end_and_leaves_float32_behind(tiny_dataset, tmp_path):
    """The GPU code path on a CPU: every model built under the policy, loss scaled, the saved head's output float32."""
    from engine.store.runs import RunStore
    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    cfg = tiny_config("frozen", tiny_dataset)
    cfg.compute.precision = "mixed_float16"
    result = RUNNERS["frozen"](cfg, prepare_data(str(tiny_dataset)))
    assert result.state == "finished" and result.config["resolved"]["precision"] == "mixed_float16"
    assert np.isfinite(result.history["loss"]).all()
    assert keras.config.dtype_policy().name == "float32"  # nothing leaks into the next run
    model = RunStore().load_model(result.id)
    head = model.get_layer("head")
    assert head.get_layer("dense").compute_dtype == "float16"
    assert head.get_layer("predictions").compute_dtype == "float32"
