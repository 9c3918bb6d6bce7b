"""What an export folder says about itself: `labels.json`, the runnable `classify.py` and `README.md`."""

from __future__ import annotations

FORMAT_TITLES = {
    "keras": "Keras (.keras)",
    "saved_model": "TensorFlow SavedModel",
    "tflite": "TFLite float32",
    "tflite_int8": "TFLite int8",
}


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
            "shape": [1, size, size, 3],
            "dtype": "float32",
            "color": "RGB",
            "range": [0, 255],
            "resize": f"the whole image to {size} x {size} px (bilinear), no crop",
            "preprocessing": f"{how}, inside the model: feed raw pixel values 0-255 (uint8 cast to float32)",
        },
        "output": (
            {"shape": [1, 1], "activation": "sigmoid", "meaning": f"probability of {classes[1]!r}; {classes[0]!r} is 1 - p"}
            if binary
            else {
                "shape": [1, len(classes)],
                "activation": "softmax",
                "meaning": "probability of each class, in the order of 'classes'",
            }
        ),
        "format": fmt,
        "model_file": model_file,
        "run": record.id,
        "approach": cfg.get("approach"),
        "backbone": backbone,
    }
    if calibration_count is not None:
        doc["quantization"] = {
            "type": "int8 post-training (weights and activations)",
            "calibration_images": calibration_count,
            "io": "float32 (quantised inside the model)",
        }
    return doc


_LOADERS = {
    "keras": (
        "import keras  # pip install keras tensorflow (Keras 3)",
        'model = keras.saving.load_model(HERE / "model.keras")',
        "raw = np.asarray(model(x))[0]",
    ),
    "saved_model": (
        "import tensorflow as tf",
        'model = tf.saved_model.load(str(HERE / "saved_model"))',
        "raw = model.serve(tf.constant(x)).numpy()[0]",
    ),
    "tflite": (
        "import tensorflow as tf  # or: from ai_edge_litert.interpreter import Interpreter",
        'interpreter = tf.lite.Interpreter(model_path=str(HERE / "{file}"))\ninterpreter.allocate_tensors()\n'
        "inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]",
        'interpreter.set_tensor(inp["index"], x)\n    interpreter.invoke()\n    raw = interpreter.get_tensor(out["index"])[0]',
    ),
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
        quant = (
            f"Weights and activations are int8, calibrated on {q['calibration_images']} of the run's training images; "
            "input and output stay float32. Expect probabilities within a few percent of the float model.\n\n"
        )
    return f"""# {FORMAT_TITLES[fmt]} export of run {doc["run"]}

{doc["approach"]} on {doc["backbone"]}; classes: {", ".join(doc["classes"])}.

Input: one RGB image resized to {size} x {size} px, pixel values 0-255 as float32, shape
(1, {size}, {size}, 3). Preprocessing: {doc["input"]["preprocessing"]}; do not scale or
normalise them yourself. Output: {doc["output"]["activation"]}, {doc["output"]["meaning"]}.
`labels.json` holds the class names and these details.

{quant}Save this as `classify.py` in this folder and run `python classify.py photo.jpg` (it is also
written there as `classify.py`):

```python
{snippet}```
"""
