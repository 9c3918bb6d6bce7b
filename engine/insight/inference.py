"""Classify images with a stored run, using the run's own image size, classes and preprocessing."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.data.pixels import image_bytes_to_array, read_image_file
from engine.insight.evaluation import class_probabilities
from engine.data.images import ImageDecodeError, check_image
from engine.store.runs import RunStore


@dataclass
class LoadedRun:
    id: str
    model: object
    classes: list[str]
    image_size: int
    approach: str
    backbone: str


def load_run(store: RunStore, run_id: str) -> LoadedRun:
    """Loads a run's model and the settings needed to feed it (raises RunStoreError: unknown, damaged, no model)."""
    record = store.load(run_id)
    return LoadedRun(run_id, store.load_model(run_id), record.classes, int(record.image_size), record.approach or "?", record.backbone)


def classify_bytes(run: LoadedRun, data: bytes, name: str | None = None) -> dict:
    """Class probabilities for one encoded image: {predicted, probabilities, seconds}.

    Decoded by `engine.data.images`, as training decoded the dataset.

    Raises:
        images.ImageDecodeError: the bytes are not a readable image; the one-line message
            starts with `name` (e.g. the uploaded file's name) when given.
    """
    return _classify(run, image_bytes_to_array(data, run.image_size, name=name))


def classify_file(run: LoadedRun, path: str) -> dict:
    """`classify_bytes` for an image file; a FIFO or device is refused, never read.

    Raises:
        images.ImageDecodeError: not a regular file or not a readable image (names the path).
    """
    return _classify(run, read_image_file(path, run.image_size))


def check_files(paths: list[str]) -> None:
    """Raises ImageDecodeError for the first file the decoder cannot read, naming it.

    Cheap next to loading a model (no TensorFlow involved), so `predict` calls it first: a
    broken file is answered at once, with one line and nothing else on the terminal.
    """
    for path in paths:
        result = check_image(path)
        if isinstance(result, str):
            raise ImageDecodeError(result, str(path))


def _classify(run: LoadedRun, pixels: np.ndarray) -> dict:
    t0 = time.perf_counter()
    raw = np.asarray(run.model(pixels, training=False))  # a direct call: predict() adds ~0.3 s of set-up per image
    seconds = time.perf_counter() - t0
    probs = class_probabilities(raw, len(run.classes))[0]
    return {
        "run": run.id,
        "predicted": run.classes[int(np.argmax(probs))],
        "probabilities": {c: float(p) for c, p in zip(run.classes, probs)},
        "seconds": seconds,
        "caution": confidence_caution(probs, run.classes),
    }


LOW_CONFIDENCE = 0.75  # top-class probability under which an answer is flagged (a guess between classes, or none fits)


def confidence_caution(probs: np.ndarray, classes: list[str]) -> str:
    """'' for a confident answer; else one sentence saying why the answer may be wrong.

    A classifier only knows its classes: shown a photo of something else it still picks one,
    often without much conviction. A top probability under LOW_CONFIDENCE is that cue (a cheap
    one: it cannot catch a confident mistake on an unlike photo).
    """
    top = float(np.max(probs))
    if top >= LOW_CONFIDENCE:
        return ""
    return (f"low confidence ({top:.0%} for the top class, under {LOW_CONFIDENCE:.0%}): the photo may show none of "
            f"{', '.join(classes)}, or look unlike the training images")
