"""`python -m engine bench --backbones`: every registry row's forward speed and size, the table in docs/results.md.

Each backbone is built with random weights (speed does not depend on their values) at its
default size, and its compiled preprocess + base forward pass is timed on one preloaded batch
of 32 (raw_forward_rate, the timer the pipeline benchmark uses too), in one process,
one backbone after the other, so the figures compare fairly on one machine. The rows'
`cpu_images_per_s` (shown in the sidebar and used by the first-guess estimate) are copied
from this command's output; the load average is printed beside them (above the core count,
something else was running).
"""

from __future__ import annotations

import os
import time

import numpy as np


def raw_forward_rate(base, backbone: str, images, seconds: float) -> float:
    """Images/s of the compiled preprocess + base forward pass on one preloaded batch of 32."""
    import tensorflow as tf

    from engine.models.backbones import preprocess

    x = tf.constant(images[:32].astype("float32"))
    fn = tf.function(lambda x: base(preprocess(backbone, x), training=False))
    fn(x).numpy()  # trace
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds or n < 64:
        fn(x).numpy()
        n += int(x.shape[0])
    return n / (time.perf_counter() - t0)


def backbone_speeds(names: list[str], seconds: float, log=print) -> list[dict]:
    """[{backbone, image_size, params, images_per_s}] for each name, measured one after the other."""
    import keras

    from engine.config import BackboneConfig
    from engine.models.backbones import build_base, get_spec

    rows = []
    for name in names:
        spec = get_spec(name)
        keras.utils.set_random_seed(0)
        base = build_base(BackboneConfig(name=name, weights="none"), spec.default_size)
        pixels = np.random.default_rng(0).integers(0, 256, (32, spec.default_size, spec.default_size, 3)).astype("float32")
        ips = raw_forward_rate(base, name, pixels, seconds)
        rows.append(
            {
                "backbone": name,
                "image_size": spec.default_size,
                "params": int(base.count_params()),
                "images_per_s": round(ips, 2),
                "row_says": spec.cpu_images_per_s,
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
        log(f"{name}: {ips:.2f} images/s at {spec.default_size} px, {base.count_params() / 1e6:.1f} M parameters")
        del base
        keras.backend.clear_session()
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The columns of docs/results.md's backbone table this command measures (the rest of the table is Keras' published facts)."""
    lines = ["| `--backbone` | size | base parameters | images/s (CPU) |", "| --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['backbone']}` | {r['image_size']} px | {r['params'] / 1e6:.1f} M | {r['images_per_s']:.3g} |")
    return "\n".join(lines)


def run_backbone_bench(choice: str, seconds: float) -> dict:
    """The JSON `bench --backbones` prints: rows, a markdown table, when and under which load."""
    from engine.models.backbones import BACKBONES, get_spec

    names = list(BACKBONES) if choice == "all" else [get_spec(n.strip()).name for n in choice.split(",") if n.strip()]
    started, load = time.perf_counter(), os.getloadavg()[0]
    rows = backbone_speeds(names, seconds, log=lambda msg: print(msg, file=__import__("sys").stderr, flush=True))
    return {
        "measured": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "batch": 32,
        "weights": "none",
        "load_average": {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)},
        "rows": rows,
        "table": markdown_table(rows),
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
