"""Classify images with a stored run, using the run's own image size, classes and preprocessing.

One answer per photo: `answer(runs, source, ...)` is what Classify, `predict` (and a web API)
call. It decodes the photo once (`Photo`: the one decoder, resized per run), runs each model,
averages flips and runs as asked, picks the label and explains that label with Grad-CAM, so
the heatmap is always of the class on screen.

Two ways to use several views or models of one image: flip averaging (`tta`: the image and its
horizontal flip through the model in one batch of 2, probabilities averaged; the models were
trained with flips as augmentation or on photos where left and right mean the same) and an
ensemble (several runs of the same classes, their answers averaged: engine/insight/ensemble.py's
weighting rule).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from engine.data import images
from engine.data.images import ImageDecodeError, check_image
from engine.data.pixels import load_images
from engine.errors import StudioError
from engine.insight.ensemble import EnsembleError, Member, weights_for
from engine.insight.evaluation import class_probabilities
from engine.insight.explain import Explanation, explain
from engine.models.pipeline import PipelineError
from engine.store.runs import RunStore


class InferenceError(StudioError):
    """A run answered something that is no probability (NaN, infinity): the message names the run."""


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
    return LoadedRun(
        run_id,
        store.load_model(run_id),
        record.classes,
        int(record.image_size),
        record.approach or "?",
        record.backbone,
        record.accuracy("validation"),
    )


def classify_bytes(run: LoadedRun, data: bytes, name: str | None = None, tta: bool = False) -> dict:
    """One run's answer to one encoded image as `predict`'s row: {run, predicted, probabilities, seconds, caution, tta}.

    `answer([run], data, ...)` in the older dict form.

    Raises:
        images.ImageDecodeError: the bytes are not a readable image; the one-line message
            starts with `name` (e.g. the uploaded file's name) when given.
    """
    return answer([run], bytes(data), tta=tta, name=name).row()


def classify_file(run: LoadedRun, path: str, tta: bool = False) -> dict:
    """`classify_bytes` for an image file; a FIFO or device is refused, never read.

    Raises:
        images.ImageDecodeError: not a regular file or not a readable image (names the path).
    """
    return answer([run], str(path), tta=tta).row()


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
        pixels = load_images(files[i : i + batch_size], run.image_size).astype(np.float32)
        out.append(predict_probabilities(run, pixels, tta))
    return np.concatenate(out)


class Photo:
    """One photo decoded once by the one decoder, then resized for each model and for showing.

    `pixels(size)` equals `images.decode_image(source, size)` and `preview(side)` equals
    `images.preview_image(source, side)` (the same RGB image, the same bilinear resizes), but
    the file is read and decoded only here: runs of other image sizes, the Grad-CAM overlay and
    the page's preview share it.

    Raises:
        images.ImageDecodeError: not a regular file or not a readable image (the message names it).
    """

    def __init__(self, source: str | os.PathLike | bytes, name: str | None = None):
        if isinstance(source, (bytearray, memoryview)):
            source = bytes(source)
        self.name = name if name is not None or isinstance(source, bytes) else os.fspath(source)
        self.image = images.open_rgb(source, name)  # full size, RGB, EXIF-oriented, first frame
        self._pixels: dict[int, np.ndarray] = {}
        self._previews: dict[int, np.ndarray] = {}

    def pixels(self, size: int) -> np.ndarray:
        """uint8 (size, size, 3): the square a model of this size sees (as `images.decode_image`)."""
        if size not in self._pixels:
            im = self.image
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            self._pixels[size] = np.array(im, dtype=np.uint8)
        return self._pixels[size]

    def preview(self, max_side: int) -> np.ndarray:
        """uint8 RGB for showing, aspect kept, longest side at most `max_side` (as `images.preview_image`)."""
        if max_side not in self._previews:
            im = self.image.copy()
            im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            self._previews[max_side] = np.array(im, dtype=np.uint8)
        return self._previews[max_side]


@dataclass(frozen=True)
class Answer:
    """One answer to one photo: what Classify shows, `predict` prints and a web API returns."""

    label: str  # the class shown: the highest of `probabilities`
    probabilities: dict[str, float]  # class -> probability, plain finite floats, flips and runs averaged as asked
    runs: list[str]  # the runs that answered, in order
    ms: float  # milliseconds this answer took (decoding when it decoded, the models, Grad-CAM when asked)
    tta: bool = False  # each model also saw the horizontal flip
    weighted: bool = False  # runs weighed by their recorded validation accuracy
    weights: dict[str, float] = field(default_factory=dict)  # each run's weight in the average (1.0 alone)
    caution: str = ""  # why the answer may be wrong ('' when confident): `confidence_caution`
    gradcam: Explanation | None = None  # Grad-CAM of `label` through the first run's model, when asked
    gradcam_problem: str = ""  # why there is no Grad-CAM although one was asked for (a model this studio did not save)
    members: tuple[Answer, ...] = ()  # several runs: each run's own answer (its own label and Grad-CAM)

    @property
    def class_index(self) -> int:
        """The label's index in the runs' classes."""
        return list(self.probabilities).index(self.label)

    def to_dict(self) -> dict:
        """JSON-safe: the overlay and heatmap arrays are left out (the caller saves or shows them)."""
        cam = self.gradcam
        return {
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "runs": list(self.runs),
            "ms": self.ms,
            "tta": self.tta,
            "weighted": self.weighted,
            "weights": dict(self.weights),
            "caution": self.caution,
            "gradcam": None if cam is None else {"class": cam.explained, "layer": cam.layer, "run": cam.run},
            "gradcam_problem": self.gradcam_problem,
            "members": [m.to_dict() for m in self.members],
        }

    def row(self) -> dict:
        """`predict --json`'s row (without "image"): {run, predicted, probabilities, seconds, caution, tta},
        and for several runs run "ensemble" with members, weights and each run's row under runs."""
        out = {
            "run": self.runs[0] if not self.members else "ensemble",
            "predicted": self.label,
            "probabilities": dict(self.probabilities),
            "seconds": self.ms / 1000.0,
            "caution": self.caution,
            "tta": self.tta,
        }
        if self.members:
            out.update(members=list(self.runs), weights=dict(self.weights), runs=[m.row() for m in self.members])
        return out


def answer(
    runs: LoadedRun | Iterable[LoadedRun],
    source: str | os.PathLike | bytes | Photo,
    *,
    weighted: bool = False,
    tta: bool = False,
    gradcam: bool = False,
    name: str | None = None,
    max_side: int = 1024,
) -> Answer:
    """The one answer to one photo from one run or an ensemble of runs.

    The photo is decoded once (a `Photo` given is not decoded again) and resized to each run's
    size; each run's probabilities are its model's (with `tta`, the mean over the image and its
    horizontal flip, one batch); several runs are averaged (`weighted`: by recorded validation
    accuracy, ensemble.py's rule); the label is the highest. With `gradcam`, the label's class is
    explained through the first run's model on the plain image, drawn on the photo (longest side
    at most `max_side`); each member is explained for its own label too (Classify shows them side
    by side; the first member's Grad-CAM is reused when its label is the same).

    Raises:
        images.ImageDecodeError: not a readable image (named by `name` or the path).
        EnsembleError: runs with other classes, or `weighted` with a run without a validation
            accuracy (before the photo is decoded).
        InferenceError: a model answered NaN or infinity.
    """
    t0 = time.perf_counter()
    runs = [runs] if isinstance(runs, LoadedRun) else list(runs)
    if not runs:
        raise ValueError("answer() needs at least one run")
    ids = [r.id for r in runs]
    weights = [1.0]
    if len(runs) > 1:
        check_same_classes(runs)
        weights = weights_for(ids, [r.val_accuracy for r in runs], weighted)
    photo = source if isinstance(source, Photo) else Photo(source, name)
    each = [_run_answer(run, photo, tta, gradcam, max_side) for run in runs]
    if len(runs) == 1:
        return replace(each[0][0], ms=_ms_since(t0))
    classes = runs[0].classes
    probs = sum(w * p for w, (_, p) in zip(weights, each))
    index = int(np.argmax(probs))
    cam, problem = None, ""
    if gradcam:
        first = each[0][0]
        if first.gradcam is not None and first.gradcam.class_index == index:
            cam = first.gradcam  # the same model, pixels and class: the same heatmap
        else:
            cam, problem = _explain(runs[0], photo, index, max_side)
    return Answer(
        label=classes[index],
        probabilities=_as_dict(classes, probs),
        runs=ids,
        ms=_ms_since(t0),
        tta=tta,
        weighted=weighted,
        weights=dict(zip(ids, weights)),
        caution=confidence_caution(probs, classes),
        gradcam=cam,
        gradcam_problem=problem,
        members=tuple(a for a, _ in each),
    )


def predict_files(
    runs: list[LoadedRun], paths: Iterable[str], *, weighted: bool = False, tta: bool = False, gradcam: bool = False
) -> Iterator[Answer]:
    """`predict`'s answers, one per image in order: `answer` for each file.

    A generator: the caller can write each Grad-CAM overlay before the next image is read, so
    memory does not grow with the number of images. An ensemble's classes are checked before
    the first image is read.
    """
    if len(runs) > 1:
        check_same_classes(runs)
    for path in paths:
        yield answer(runs, path, weighted=weighted, tta=tta, gradcam=gradcam)


def _run_answer(run: LoadedRun, photo: Photo, tta: bool, gradcam: bool, max_side: int) -> tuple[Answer, np.ndarray]:
    """One run's answer (its own label, explained when asked) and its probabilities as an array."""
    t0 = time.perf_counter()
    probs = predict_probabilities(run, photo.pixels(run.image_size)[None].astype(np.float32), tta)[0]
    if not np.all(np.isfinite(probs)):
        raise InferenceError(
            f"run {run.id}: its model answered {probs.tolist()} for this photo, not probabilities "
            "(its weights hold NaN or infinity, e.g. training diverged); train it again"
        )
    index = int(np.argmax(probs))
    cam, problem = _explain(run, photo, index, max_side) if gradcam else (None, "")
    return Answer(
        label=run.classes[index],
        probabilities=_as_dict(run.classes, probs),
        runs=[run.id],
        ms=_ms_since(t0),
        tta=tta,
        weights={run.id: 1.0},
        caution=confidence_caution(probs, run.classes),
        gradcam=cam,
        gradcam_problem=problem,
    ), probs


def _explain(run: LoadedRun, photo: Photo, class_index: int, max_side: int) -> tuple[Explanation | None, str]:
    """(Grad-CAM of `class_index` through the run's model, '') or (None, why not) for a model this studio did not save."""
    try:
        return explain(run, photo.pixels(run.image_size), photo.preview(max_side), class_index), ""
    except PipelineError as exc:
        return None, str(exc)


def _as_dict(classes: list[str], probs: np.ndarray) -> dict[str, float]:
    return {c: float(p) for c, p in zip(classes, probs)}


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def check_same_classes(runs: list[LoadedRun]) -> None:
    """EnsembleError naming the first run whose classes (or their order) differ from the first run's."""
    first = runs[0]
    for run in runs[1:]:
        if run.classes != first.classes:
            raise EnsembleError(
                f"run {run.id}: classes {', '.join(run.classes)} differ from run {first.id}'s "
                f"({', '.join(first.classes)}); an ensemble needs the same classes in the same order"
            )


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
    return (
        f"low confidence ({top:.0%} for the top class, under {LOW_CONFIDENCE:.0%}): the photo may show none of "
        f"{', '.join(classes)}, or look unlike the training images"
    )


def flip_averaged(store, member: Member, progress=None) -> Member:
    """`member` with each split's probabilities recomputed by its saved model, each image averaged with its horizontal
    flip (the files its predictions list, decoded as training decodes them). Loads Keras: minutes, not instant."""
    run = load_run(store, member.id)
    splits = {}
    for name, preds in member.splits.items():
        if progress:
            progress(f"run {member.id}: {name}, {len(preds.files)} images with their flips")
        splits[name] = replace(preds, probabilities=probabilities_for_files(run, preds.files, tta=True))
    return replace(member, splits=splits)
