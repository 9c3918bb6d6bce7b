"""Classify images with a stored run, using the run's own image size, classes and preprocessing.

Two ways to use several views or models of one image: flip averaging (`tta`: the image and its
horizontal flip through the model in one batch of 2, probabilities averaged; the models were
trained with flips as augmentation or on photos where left and right mean the same) and an
ensemble (several runs of the same classes, their answers averaged: engine/insight/ensemble.py's
weighting rule).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.data.pixels import image_bytes_to_array, load_images, read_image_file
from engine.insight.ensemble import EnsembleError, weights_for
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
    val_accuracy: float | None = None  # what an ensemble weighs the run by (`weighted`)


def load_run(store: RunStore, run_id: str) -> LoadedRun:
    """Loads a run's model and the settings needed to feed it (raises RunStoreError: unknown, damaged, no model)."""
    record = store.load(run_id)
    return LoadedRun(run_id, store.load_model(run_id), record.classes, int(record.image_size), record.approach or "?", record.backbone,
                     record.accuracy("validation"))


def classify_bytes(run: LoadedRun, data: bytes, name: str | None = None, tta: bool = False) -> dict:
    """Class probabilities for one encoded image: {predicted, probabilities, seconds}.

    Decoded by `engine.data.images`, as training decoded the dataset.

    Raises:
        images.ImageDecodeError: the bytes are not a readable image; the one-line message
            starts with `name` (e.g. the uploaded file's name) when given.
    """
    return _classify(run, image_bytes_to_array(data, run.image_size, name=name), tta)


def classify_file(run: LoadedRun, path: str, tta: bool = False) -> dict:
    """`classify_bytes` for an image file; a FIFO or device is refused, never read.

    Raises:
        images.ImageDecodeError: not a regular file or not a readable image (names the path).
    """
    return _classify(run, read_image_file(path, run.image_size), tta)


def check_files(paths: list[str]) -> None:
    """Raises ImageDecodeError for the first file the decoder cannot read, naming it.

    Cheap next to loading a model (no TensorFlow involved), so `predict` calls it first: a
    broken file is answered at once, with one line and nothing else on the terminal.
    """
    for path in paths:
        result = check_image(path)
        if isinstance(result, str):
            raise ImageDecodeError(result, str(path))


def predict_probabilities(run: LoadedRun, pixels: np.ndarray, tta: bool = False) -> np.ndarray:
    """(N, C) class probabilities of a float32 (N, S, S, 3) batch in [0, 255].

    With `tta`, each image's probabilities are the mean of the image's and its horizontal
    flip's: both go through the model in one call (a batch of 2N), so flip averaging costs one
    call, not two.
    """
    batch = np.concatenate([pixels, pixels[:, :, ::-1, :]]) if tta else pixels
    raw = np.asarray(run.model(batch, training=False))  # a direct call: predict() adds ~0.3 s of set-up per call
    probs = class_probabilities(raw, len(run.classes))
    if tta:
        n = len(pixels)
        probs = (probs[:n] + probs[n:]) / 2.0
    return probs


def probabilities_for_files(run: LoadedRun, files: list[str], tta: bool = False, batch_size: int = 32) -> np.ndarray:
    """(N, C) probabilities of image files, decoded as training decodes them, `batch_size` at a time (bounded memory)."""
    out = [np.zeros((0, len(run.classes)))]
    for i in range(0, len(files), batch_size):
        pixels = load_images(files[i:i + batch_size], run.image_size).astype(np.float32)
        out.append(predict_probabilities(run, pixels, tta))
    return np.concatenate(out)


def _classify(run: LoadedRun, pixels: np.ndarray, tta: bool = False) -> dict:
    t0 = time.perf_counter()
    probs = predict_probabilities(run, pixels, tta)[0]
    seconds = time.perf_counter() - t0
    return _answer(run.id, run.classes, probs, seconds, tta)


def _answer(run_id: str, classes: list[str], probs: np.ndarray, seconds: float, tta: bool) -> dict:
    return {
        "run": run_id,
        "predicted": classes[int(np.argmax(probs))],
        "probabilities": {c: float(p) for c, p in zip(classes, probs)},
        "seconds": seconds,
        "caution": confidence_caution(probs, classes),
        "tta": tta,
    }


def check_same_classes(runs: list[LoadedRun]) -> None:
    """EnsembleError naming the first run whose classes (or their order) differ from the first run's."""
    first = runs[0]
    for run in runs[1:]:
        if run.classes != first.classes:
            raise EnsembleError(f"run {run.id}: classes {', '.join(run.classes)} differ from run {first.id}'s "
                                f"({', '.join(first.classes)}); an ensemble needs the same classes in the same order")


def ensemble_answer(runs: list[LoadedRun], answers: list[dict], weighted: bool = False) -> dict:
    """One answer from each run's answer to the same image: probabilities averaged (ensemble.py's weighting rule).

    `answers[i]` is `runs[i]`'s answer (classify_bytes / classify_file). The result has the
    keys of one answer, with run "ensemble", plus `members` and `weights`.
    """
    check_same_classes(runs)
    ids = [r.id for r in runs]
    weights = weights_for(ids, [r.val_accuracy for r in runs], weighted)
    classes = runs[0].classes
    probs = sum(w * np.asarray([a["probabilities"][c] for c in classes]) for w, a in zip(weights, answers))
    out = _answer("ensemble", classes, probs, sum(a["seconds"] for a in answers), all(a["tta"] for a in answers))
    return {**out, "members": ids, "weights": dict(zip(ids, weights))}


def predict_files(runs: list[LoadedRun], paths: list[str], weighted: bool = False, tta: bool = False) -> list[dict]:
    """`predict`'s rows: one run's answer per image, or (several runs) the ensemble's with each run's under `runs`."""
    if len(runs) > 1:
        check_same_classes(runs)  # before any image goes through a model
    rows = []
    for path in paths:
        answers = [classify_file(run, path, tta) for run in runs]
        if len(runs) == 1:
            rows.append({"image": path, **answers[0]})
        else:
            rows.append({"image": path, **ensemble_answer(runs, answers, weighted), "runs": answers})
    return rows


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
