"""Export a stored run's model for use outside the studio: .keras, SavedModel, TFLite float32 / int8.

Every export is a folder holding the model, `labels.json` (classes, input size and
format, what the output means) and `README.md` (how to load and call it). The exported
model takes RGB pixels 0-255 of size S x S as float32 and does its own preprocessing, as
the run's saved model does; it is rebuilt from plain Keras layers first, so it loads
without this project installed:

- the backbone's `preprocess_input` (a custom layer in the run's model) is, for every
  backbone in the registry, a per-pixel affine map of the RGB values (scale, offset,
  channel order); it is measured on probe pixels and becomes a fixed 1x1 convolution;
- the augmentation layers are dropped (they do nothing at inference).

The rebuilt model is checked against the run's model on random images before anything
is written. TFLite int8 uses post-training full-integer quantisation, calibrated on a
sample of the run's training images (validation images if it had no training split);
input and output stay float32, so every format is called the same way.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.config import dumps, knob
from engine.errors import StudioError
from engine.insight.export_docs import FORMAT_TITLES, labels_document, readme_snippet, readme_text
from engine.models.pipeline import split_pipeline

FORMATS = ("keras", "saved_model", "tflite", "tflite_int8")
MODEL_FILES = {"keras": "model.keras", "saved_model": "saved_model", "tflite": "model.tflite", "tflite_int8": "model_int8.tflite"}
REPRESENTATIVE_IMAGES = 100  # calibration sample for int8; TensorFlow's guide suggests ~100-500


@dataclass
class ExportSettings:
    """`export`'s numbers; its flags are made from these knobs (engine/cli/flags.add_settings_flags)."""

    calibration_images: int = knob(
        REPRESENTATIVE_IMAGES,
        "tflite_int8: training images used to calibrate the quantisation",
        min=1,
        max=10_000,
        integer=True,
        metavar="N",
    )  # 1-10,000


AGREEMENT_ATOL = 1e-4  # rebuilt vs original model outputs (probabilities) on random images
TFLITE_ATOL = 1e-3  # float TFLite vs the run's model: the converter fuses ops (measured <= 2e-5 on the registry's backbones)


class ExportError(StudioError):
    """An export cannot be made as asked (format, output folder, dataset for int8 calibration)."""


@dataclass
class ExportResult:
    folder: Path  # the export folder: model + labels.json + README.md
    model_path: Path  # the model file (or SavedModel folder) inside it
    format: str
    files: list[str] = field(default_factory=list)  # names in the folder
    zip_path: Path | None = None  # folder.zip when asked for

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "folder": str(self.folder),
            "model": str(self.model_path),
            "files": self.files,
            "zip": str(self.zip_path) if self.zip_path else None,
        }


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def check_out_folder(out: str | os.PathLike) -> Path:
    """The export folder: new, or an existing empty folder. Checked before any model work."""
    folder = Path(out).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(f"--out {folder}: already exists and is not an empty folder; choose a new folder")
    if not folder.parent.is_dir():
        raise ExportError(f"--out {folder}: its parent folder {folder.parent} does not exist")
    return folder


# --- The portable model -------------------------------------------------------------------


def preprocessing_affine(layer, probe_size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with layer(x) = x @ A + b per pixel, measured on probe pixels; raises if not affine.

    A is 3x3 (input channel -> output channel: scale and channel order), b the offset.
    """

    def apply(rgb) -> np.ndarray:
        x = np.broadcast_to(np.asarray(rgb, np.float32), (1, probe_size, probe_size, 3)).copy()
        return np.asarray(layer(x), np.float64)[0, 0, 0]

    b = apply([0.0, 0.0, 0.0])
    a = np.stack([(apply(255.0 * np.eye(3)[i]) - b) / 255.0 for i in range(3)])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (1, probe_size, probe_size, 3)).astype(np.float32)
    expected = np.asarray(layer(x), np.float64)
    if expected.shape != x.shape or not np.allclose(x.astype(np.float64) @ a + b, expected, rtol=1e-4, atol=1e-3):
        raise ExportError(
            f"preprocessing layer {layer.name!r} is not a per-pixel affine map; this run cannot be exported portably"
        )
    return a.astype(np.float32), b.astype(np.float32)


def _is_augmentation(layer) -> bool:
    inner = getattr(layer, "layers", None)
    if inner is not None:
        return layer.name == "augmentation" or (bool(inner) and all(_is_augmentation(l) for l in inner))
    return type(layer).__name__.startswith("Random")


def portable_model(model, image_size: int):
    """The run's model rebuilt from plain Keras layers (shares the base and head weights).

    Raises:
        ExportError: a layer before the base is neither augmentation, the backbone
            preprocessing, nor a plain Keras layer.
    """
    import keras

    parts = split_pipeline(model)
    if parts.base is None:
        raise ExportError(f"model {model.name!r} has no nested base; only models trained by the studio can be exported")
    inp = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = inp
    for layer in parts.before_base:
        if _is_augmentation(layer):
            continue  # random augmentation is the identity at inference
        if not type(layer).__module__.startswith("keras"):
            a, b = preprocessing_affine(layer)
            if np.allclose(a, np.eye(3)) and np.allclose(b, 0):
                continue  # e.g. EfficientNet: its preprocess_input is the identity (it normalises inside)
            conv = keras.layers.Conv2D(
                3,
                1,
                name="preprocess",
                dtype="float32",
                trainable=False,
                kernel_initializer=keras.initializers.Constant(a[None, None]),
                bias_initializer=keras.initializers.Constant(b),
            )
            x = conv(x)
            continue
        x = layer(x, training=False)
    out = parts.head(parts.base(x, training=False), training=False)
    portable = keras.Model(inp, out, name=model.name)
    _check_agreement(model, portable, image_size)
    return portable


def _check_agreement(original, portable, image_size: int) -> None:
    """The rebuilt model must compute what the run's model computes (a bug otherwise)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2, image_size, image_size, 3)).astype(np.float32)
    want = np.asarray(original(x, training=False), np.float64)
    got = np.asarray(portable(x, training=False), np.float64)
    if want.shape != got.shape or not np.allclose(want, got, atol=AGREEMENT_ATOL):
        raise RuntimeError(f"rebuilt model disagrees with the run's model (max difference {np.max(np.abs(want - got)):.2e})")


# --- Calibration images -------------------------------------------------------------------


def _dataset_root(config: dict) -> str:
    return (config.get("data") or {}).get("path") or (config.get("resolved") or {}).get("dataset_root") or ""


def calibration_problem(config: dict) -> str:
    """'' when the run's dataset folder is there for int8 calibration, else why not (one line)."""
    root = _dataset_root(config)
    if root and Path(root).is_dir():
        return ""
    return (
        f"the run's dataset folder {root or '(none recorded)'} is gone; int8 quantisation calibrates on a sample "
        "of the run's training images. Put the dataset back there, or export keras, saved_model or tflite instead"
    )


def representative_images(config: dict, image_size: int, count: int = REPRESENTATIVE_IMAGES) -> np.ndarray:
    """uint8 (n, S, S, 3): up to `count` of the run's training images (else validation), a seeded sample.

    The split is the run's own (same folder, fractions and seed), so a flat dataset gives
    back the images it trained on.

    Raises:
        ExportError: the run's dataset folder is gone or has no usable images.
    """
    from engine.data.layout import DatasetError
    from engine.data.pixels import load_images
    from engine.data.scan import scan_dataset
    from engine.data.splits import split_arrays

    problem = calibration_problem(config)
    if problem:
        raise ExportError(problem)
    data = config.get("data") or {}
    root = _dataset_root(config)
    why = "int8 quantisation calibrates on a sample of the run's training images"
    fractions = (data.get("train_fraction", 0.7), data.get("val_fraction", 0.15), data.get("test_fraction", 0.15))
    seed = int((config.get("fit") or {}).get("seed", 42))
    try:
        report = scan_dataset(root, fractions=fractions, seed=seed)
    except DatasetError as exc:
        raise ExportError(f"the run's dataset cannot be read ({exc}); {why}") from None
    for split in ("train", "validation"):
        found = split_arrays(report, split)
        if found is not None and len(found):
            files = list(found.files)
            break
    else:
        raise ExportError(f"the run's dataset {root} has no usable training or validation images; {why}")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(files), size=min(count, len(files)), replace=False))
    return load_images([files[i] for i in chosen], image_size)


# --- Writers ------------------------------------------------------------------------------


def _write_saved_model(model, path: Path) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


class _SavedModelMemo:
    """The SavedModel this process last wrote for a run's model.keras, reused by the next export of it.

    SavedModel, TFLite and TFLite int8 all start from one (the converters read a SavedModel), and
    writing it traces the whole network: 5-8 s of an export of MobileNetV2 here. A user building
    the three formats of one run (the Export panel, one after another) pays it once. Keyed by the
    model file's path, size and modification time, so a re-saved model is exported afresh; one run
    at a time, in a temporary folder removed when the process ends.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._key: tuple = ()
        self._dir: Path | None = None
        atexit.register(self.clear)

    def path(self, model_file: Path, build) -> Path:
        """The SavedModel of `model_file`, written by `build(path)` unless this process has it already."""
        try:
            st = model_file.stat()
            key = (str(model_file.resolve()), st.st_size, st.st_mtime_ns)
        except OSError:  # no model file: `build` raises the run store's own error
            key = ()
        with self._lock:
            if not key or key != self._key or self._dir is None or not (self._dir / "saved_model").is_dir():
                self.clear()
                folder = Path(tempfile.mkdtemp(prefix="tls-export-"))
                try:
                    build(folder / "saved_model")
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                self._key, self._dir = key, folder
            return self._dir / "saved_model"

    def clear(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._key, self._dir = (), None


_SAVED_MODELS = _SavedModelMemo()


def _tflite_bytes(saved_model: Path, calibration: np.ndarray | None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def sample():
            for img in calibration:
                yield [img[None].astype(np.float32)]

        converter.representative_dataset = sample
        # Integer kernels only (refuses to fall back to float ops); float32 in and out, so
        # the file is called like the float one and quantises its input itself.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def tflite_answers(content: bytes, pixels: np.ndarray) -> np.ndarray:
    """The TFLite model's outputs for float32 pixels (N, S, S, 3), one image per call as apps call it."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=content)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if list(inp["shape"][:1]) != [1]:
        interpreter.resize_tensor_input(inp["index"], [1, *pixels.shape[1:]])
    interpreter.allocate_tensors()
    rows = []
    for image in pixels.astype(np.float32):
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        rows.append(np.array(interpreter.get_tensor(out["index"])[0]))
    return np.stack(rows)


def check_tflite_agreement(content: bytes, model, image_size: int) -> float:
    """The float TFLite file must answer as the run's model does on random images; returns the max difference.

    Raises:
        ExportError: it does not (a converter problem the user should not ship).
    """
    pixels = np.random.default_rng(2).integers(0, 256, (2, image_size, image_size, 3)).astype(np.float32)
    want = np.asarray(model(pixels, training=False), np.float64)
    got = tflite_answers(content, pixels).astype(np.float64)
    diff = float(np.max(np.abs(want - got))) if want.shape == got.shape else float("inf")
    if diff > TFLITE_ATOL:
        raise ExportError(
            f"the TFLite file disagrees with the run's model (max difference {diff:.2e} > {TFLITE_ATOL:g}); "
            "export keras or saved_model instead, and report this backbone"
        )
    return diff


def export_run(
    store,
    run_id: str,
    fmt: str,
    out: str | os.PathLike,
    *,
    make_zip: bool = False,
    calibration_count: int = REPRESENTATIVE_IMAGES,
    progress=lambda message: None,
) -> ExportResult:
    """Writes one export of a stored run into the folder `out` (created; must be new or empty).

    Raises:
        ExportError: unknown format, `out` not usable, or (int8) the run's dataset is gone.
        runs.RunStoreError: no such run, or its folder or model is damaged.
    """
    check_format(fmt)
    if fmt == "tflite_int8" and calibration_count < 1:
        raise ExportError(f"--calibration-images {calibration_count}: give at least 1 (100 or more calibrate better)")
    folder = check_out_folder(out)
    record = store.load(run_id)
    size = int(record.image_size)
    calibration = None
    if fmt == "tflite_int8":  # before the model loads: a missing dataset is answered at once, in one line
        if calibration_problem(record.config):
            raise ExportError(calibration_problem(record.config))
        progress(f"reading {calibration_count} calibration images from the run's dataset")
        calibration = representative_images(record.config, size, calibration_count)

    def rebuilt():
        progress("rebuilding the model from plain Keras layers")
        return portable_model(store.load_model(run_id), size)

    model_file = MODEL_FILES[fmt]
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        target = staging / model_file
        if fmt == "keras":
            model = rebuilt()
            progress(f"writing {FORMAT_TITLES[fmt]}")
            model.save(target)
        else:
            saved = _SAVED_MODELS.path(record.model_path, lambda path: _write_saved_model(rebuilt(), path))
            progress(f"writing {FORMAT_TITLES[fmt]}")
            if fmt == "saved_model":
                shutil.copytree(saved, target)
            else:
                content = _tflite_bytes(saved, calibration)
                if calibration is None:  # float: the same answers as the run's model (int8 is approximate by design)
                    progress("checking the TFLite file against the run's model")
                    check_tflite_agreement(content, store.load_model(run_id), size)
                target.write_bytes(content)
        doc = labels_document(record, fmt, model_file, None if calibration is None else len(calibration))
        snippet = readme_snippet(fmt, model_file)
        (staging / "labels.json").write_text(dumps(doc, indent=2) + "\n")
        (staging / "classify.py").write_text(snippet)
        (staging / "README.md").write_text(readme_text(doc, snippet))
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        os.replace(staging, folder)  # a reader never sees a half-written export
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result = ExportResult(folder, folder / model_file, fmt, sorted(p.name for p in folder.iterdir()))
    if make_zip:
        result.zip_path = zip_folder(folder)
    return result


def zip_folder(folder: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
    """folder -> folder.zip (or dest), entries under the folder's name."""
    folder = Path(folder)
    dest = Path(dest) if dest else folder.with_name(folder.name + ".zip")
    tmp = dest.with_name(f".{dest.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, Path(folder.name) / path.relative_to(folder))
    os.replace(tmp, dest)
    return dest
