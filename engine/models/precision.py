"""Numeric precision per run: which Keras dtype policy `compute.precision` means on this machine.

Mixed precision computes in 16 bits and keeps the weights in float32. It pays off only
where the hardware has fast 16-bit units; on the 2-core CPU this project runs on, it is
a loss: MobileNetV2's forward pass ran at 91 images/s in mixed_bfloat16 against 238 in
float32, VGG16's at 4.9 against 25.8. So `auto` is decided per device, never assumed.

The policy is Keras' global (per-thread) default, read when a layer is *built*: it must
be set before the base, the head and the trainable top exist, and put back afterwards —
jobs run in their own process, but tests and `--approach all` run several in one, and a
policy left behind would silently change the next run's models.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

FLOAT32 = "float32"
MIXED_FLOAT16 = "mixed_float16"

# Tensor cores (fast float16 matrix units) arrived with Volta, compute capability 7.0; older
# GPUs run float16 at best at float32's rate, so mixed precision would only add casts.
TENSOR_CORES = (7, 0)


def gpu_compute_capabilities() -> list[tuple[int, int] | None]:
    """(major, minor) of every visible GPU; None for one that does not report it (e.g. ROCm)."""
    import tensorflow as tf

    caps: list[tuple[int, int] | None] = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            cap = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        except (ValueError, RuntimeError):
            cap = None
        caps.append(tuple(cap) if cap else None)
    return caps


def resolve_precision(name: str) -> str:
    """The concrete policy for `compute.precision`: `auto` decided for this machine, others as given.

    `auto` is float32 without a GPU (measured slower in 16 bits on CPUs, see the module
    docstring), and mixed_float16 when every visible GPU has tensor cores (compute
    capability >= 7.0). Not mixed_bfloat16, even on Ampere/Hopper (>= 8.0) where bfloat16
    runs the tensor cores at the same rate: TensorFlow's own GPU kernels do not cover
    bfloat16 evenly — DepthwiseConv2dNative, the main op of MobileNetV2 (our default) and
    EfficientNet, is registered for GPUs in half/float/double only (depthwise_conv_op.cc) — while float16's one
    drawback, gradients underflowing, is handled by the loss scaling Keras' compile adds
    by itself. mixed_bfloat16 stays one flag away for whoever measures it faster on their GPU.
    A GPU of unknown capability, or one without tensor cores in the set, keeps float32:
    a mirrored run computes on all of them, so the slowest decides.
    """
    if name != "auto":
        return name
    caps = gpu_compute_capabilities()
    if not caps or any(c is None or c < TENSOR_CORES for c in caps):
        return FLOAT32
    return MIXED_FLOAT16


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[str]:
    """Keras' global dtype policy set to `name` (a resolved precision) inside the block, restored after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)
