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

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import StudioError
from engine.models.pipeline import split_pipeline

FORMATS = ("keras", "saved_model", "tflite", "tflite_int8")
FORMAT_TITLES = {"keras": "Keras (.keras)", "saved_model": "TensorFlow SavedModel", "tflite": "TFLite float32",
                 "tflite_int8": "TFLite int8"}
MODEL_FILES = {"keras": "model.keras", "saved_model": "saved_model", "tflite": "model.tflite", "tflite_int8": "model_int8.tflite"}
REPRESENTATIVE_IMAGES = 100  # calibration sample for int8; TensorFlow's guide suggests ~100-500
AGREEMENT_ATOL = 1e-4  # rebuilt vs original model outputs (probabilities) on random images


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
        return {"format": self.format, "folder": str(self.folder), "model": str(self.model_path), "files": self.files,
                "zip": str(self.zip_path) if self.zip_path else None}


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
        raise ExportError(f"preprocessing layer {layer.name!r} is not a per-pixel affine map; this run cannot be exported portably")
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
            conv = keras.layers.Conv2D(3, 1, name="preprocess", dtype="float32", trainable=False,
                                       kernel_initializer=keras.initializers.Constant(a[None, None]),
                                       bias_initializer=keras.initializers.Constant(b))
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
    return (f"the run's dataset folder {root or '(none recorded)'} is gone; int8 quantisation calibrates on a sample "
            "of the run's training images. Put the dataset back there, or export keras, saved_model or tflite instead")


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


def _tflite_bytes(model, calibration: np.ndarray | None) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="tls-export-") as tmp:
        _write_saved_model(model, Path(tmp) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved_model"))
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


def labels_document(record, fmt: str, model_file: str, calibration_count: int | None = None) -> dict:
    """What `labels.json` says: classes, input (size, range, preprocessing), output, provenance."""
    cfg = record.config
    classes, size = record.classes, int(record.image_size)
    backbone = record.backbone
    mode = cfg["backbone"].get("preprocessing", "backbone")
    how = "x / 255" if mode == "rescale" else f"keras.applications {backbone} preprocess_input"
    binary = len(classes) == 2
    doc = {
        "classes": classes,
        "image_size": size,
        "input": {
            "shape": [1, size, size, 3], "dtype": "float32", "color": "RGB", "range": [0, 255],
            "resize": f"the whole image to {size} x {size} px (bilinear), no crop",
            "preprocessing": f"{how}, inside the model: feed raw pixel values 0-255 (uint8 cast to float32)",
        },
        "output": ({"shape": [1, 1], "activation": "sigmoid", "meaning": f"probability of {classes[1]!r}; {classes[0]!r} is 1 - p"}
                   if binary else
                   {"shape": [1, len(classes)], "activation": "softmax", "meaning": "probability of each class, in the order of 'classes'"}),
        "format": fmt,
        "model_file": model_file,
        "run": record.id,
        "approach": cfg.get("approach"),
        "backbone": backbone,
    }
    if calibration_count is not None:
        doc["quantization"] = {"type": "int8 post-training (weights and activations)", "calibration_images": calibration_count,
                               "io": "float32 (quantised inside the model)"}
    return doc


_LOADERS = {
    "keras": ('import keras  # pip install keras tensorflow (Keras 3)',
              'model = keras.saving.load_model(HERE / "model.keras")',
              'raw = np.asarray(model(x))[0]'),
    "saved_model": ('import tensorflow as tf',
                    'model = tf.saved_model.load(str(HERE / "saved_model"))',
                    'raw = model.serve(tf.constant(x)).numpy()[0]'),
    "tflite": ('import tensorflow as tf  # or: from ai_edge_litert.interpreter import Interpreter',
               'interpreter = tf.lite.Interpreter(model_path=str(HERE / "{file}"))\ninterpreter.allocate_tensors()\n'
               'inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]',
               'interpreter.set_tensor(inp["index"], x)\n    interpreter.invoke()\n    raw = interpreter.get_tensor(out["index"])[0]'),
}


def readme_snippet(fmt: str, model_file: str) -> str:
    """A runnable Python script: loads the export next to it and classifies the images given as arguments."""
    imp, load, call = _LOADERS["tflite" if fmt.startswith("tflite") else fmt]
    return f'''import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
{imp}

HERE = Path(__file__).resolve().parent  # the export folder
meta = json.loads((HERE / "labels.json").read_text())
classes, size = meta["classes"], meta["image_size"]
{load.format(file=model_file)}


def classify(path):
    """(predicted class, {{class: probability}}) for one image file."""
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(image, np.float32)[None]  # RGB 0-255; the model preprocesses itself
    {call.format(file=model_file)}
    probs = [1.0 - float(raw[0]), float(raw[0])] if len(classes) == 2 else [float(p) for p in raw]
    return classes[int(np.argmax(probs))], dict(zip(classes, probs))


if __name__ == "__main__":
    for path in sys.argv[1:]:
        predicted, probs = classify(path)
        print(json.dumps({{"image": path, "predicted": predicted, "probabilities": probs}}))
'''


def readme_text(doc: dict, snippet: str) -> str:
    size, fmt = doc["image_size"], doc["format"]
    quant = ""
    if "quantization" in doc:
        q = doc["quantization"]
        quant = (f"Weights and activations are int8, calibrated on {q['calibration_images']} of the run's training images; "
                 "input and output stay float32. Expect probabilities within a few percent of the float model.\n\n")
    return f"""# {FORMAT_TITLES[fmt]} export of run {doc['run']}

{doc['approach']} on {doc['backbone']}; classes: {', '.join(doc['classes'])}.

Input: one RGB image resized to {size} x {size} px, pixel values 0-255 as float32, shape
(1, {size}, {size}, 3). Preprocessing: {doc['input']['preprocessing']}; do not scale or
normalise them yourself. Output: {doc['output']['activation']}, {doc['output']['meaning']}.
`labels.json` holds the class names and these details.

{quant}Save this as `classify.py` in this folder and run `python classify.py photo.jpg` (it is also
written there as `classify.py`):

```python
{snippet}```
"""


def export_run(store, run_id: str, fmt: str, out: str | os.PathLike, *, make_zip: bool = False,
               calibration_count: int = REPRESENTATIVE_IMAGES, progress=lambda message: None) -> ExportResult:
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
    progress("rebuilding the model from plain Keras layers")
    model = portable_model(store.load_model(run_id), size)
    model_file = MODEL_FILES[fmt]
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        progress(f"writing {FORMAT_TITLES[fmt]}")
        target = staging / model_file
        if fmt == "keras":
            model.save(target)
        elif fmt == "saved_model":
            _write_saved_model(model, target)
        else:
            target.write_bytes(_tflite_bytes(model, calibration))
        doc = labels_document(record, fmt, model_file, None if calibration is None else len(calibration))
        snippet = readme_snippet(fmt, model_file)
        (staging / "labels.json").write_text(json.dumps(doc, indent=2) + "\n")
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
