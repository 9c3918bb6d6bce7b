"""Classify images with a stored run, using the run's own image size, classes and preprocessing."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .datasets import image_bytes_to_array
from .evaluation import class_probabilities
from .runs import RunStore


@dataclass
class LoadedRun:
    id: str
    model: object
    classes: list[str]
    image_size: int
    approach: str
    backbone: str


def load_run(store: RunStore, run_id: str) -> LoadedRun:
    """Loads a run's model and the settings needed to feed it (raises FileNotFoundError/ValueError)."""
    record = store.load(run_id)
    resolved = record.config["resolved"]
    return LoadedRun(run_id, store.load_model(run_id), list(resolved["classes"]), int(resolved["image_size"]),
                     record.config.get("approach", "?"), record.config["backbone"]["name"])


def classify_bytes(run: LoadedRun, data: bytes) -> dict:
    """Class probabilities for one encoded image: {predicted, probabilities, seconds}.

    Raises DatasetError with a user-facing message when the bytes are not an image.
    """
    pixels = image_bytes_to_array(data, run.image_size)
    t0 = time.perf_counter()
    raw = np.asarray(run.model(pixels, training=False))  # a direct call: predict() adds ~0.3 s of set-up per image
    seconds = time.perf_counter() - t0
    probs = class_probabilities(raw, len(run.classes))[0]
    return {
        "run": run.id,
        "predicted": run.classes[int(np.argmax(probs))],
        "probabilities": {c: float(p) for c, p in zip(run.classes, probs)},
        "seconds": seconds,
    }
