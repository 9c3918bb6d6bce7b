"""Grad-CAM: where in a photo a stored run looks when it picks a class.

Grad-CAM (Selvaraju et al., 2017, as in the Keras example "Grad-CAM class activation
visualization"): the gradient of the class score with respect to the base's last
convolutional feature maps, averaged over space, weighs those maps; their weighted sum,
through a ReLU and scaled to [0, 1], is the heatmap. It is computed through the run's
saved pipeline model (the same preprocessing as training and Classify), so fine-tuned
runs are explained with their fine-tuned base.

The class score is the logit (before sigmoid/softmax): a confident prediction saturates
the probability, and its gradient vanishes in float32 while the logit's does not.

The class to explain is always given (`class_index`): the caller's answer decides it
(`inference.answer`: the label shown, which with flip averaging or an ensemble need not be
this model's own argmax on the plain image).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.insight.evaluation import class_probabilities
from engine.models.pipeline import PipelineError, backbone_of, gradcam_layer, split_pipeline

OVERLAY_ALPHA = 0.45  # weight of the colour map over the photo; the Keras example uses 0.4


@dataclass
class GradCam:
    """A heatmap at the model's input size and what it explains."""

    heatmap: np.ndarray  # float32 (S, S) in [0, 1]; 1 = where the class score gains most
    class_index: int  # the class explained, as asked
    probabilities: np.ndarray  # (num_classes,) as the model outputs them (sigmoid p -> [1 - p, p])
    layer: str  # the convolutional layer whose maps were weighed


@dataclass
class Explanation:
    """A Grad-CAM ready to show: the heatmap at the photo's size and the overlay on it."""

    run: str  # the run whose model was explained
    explained: str  # the class the heatmap is for
    class_index: int  # its index in the run's classes
    layer: str  # the convolutional layer whose maps were weighed
    heatmap: np.ndarray  # float32 (H, W) in [0, 1], the photo's size
    overlay: np.ndarray  # uint8 (H, W, 3) RGB: the colour-mapped heatmap over the photo


class _GradCamModel:
    """The pieces of one saved model that Grad-CAM runs, built once per model.

    `features` maps the base's input to (last conv maps, base output) on the base's own
    graph (a nested base has its own Input); `before` are the pipeline's layers before the
    base (preprocessing; augmentation is a no-op at inference); `logits` is the head up to
    its output layer's pre-activation.
    """

    def __init__(self, model):
        import keras

        parts = split_pipeline(model)
        owner = parts.base if parts.base is not None else model
        conv = gradcam_layer(owner, backbone_of(parts))  # the backbone's row names it
        self.layer = conv.name
        self.before = parts.before_base
        self.flat = parts.base is None
        top_model = model if self.flat else parts.head
        top = top_model.layers[-1]
        activation = getattr(getattr(top, "activation", None), "__name__", "")
        self.output_dense = top if isinstance(top, keras.layers.Dense) and activation in ("sigmoid", "softmax") else None
        self.activation = activation
        body_out = top.input if self.output_dense is not None else top_model.output
        if self.flat:  # the model's own layers after the conv layer act as the head
            self.features = keras.Model(model.inputs, [conv.output, body_out], name="gradcam_features")
            self.head_body = None
        else:
            self.features = keras.Model(parts.base.inputs, [conv.output, parts.base.output], name="gradcam_features")
            self.head_body = keras.Model(top_model.inputs, body_out, name="gradcam_head")

    def scores(self, pixels, class_index: int):
        """(conv maps, class score, probabilities) under a tape the caller opened."""
        import tensorflow as tf

        x = tf.convert_to_tensor(pixels, tf.float32)
        for layer in self.before:
            x = layer(x, training=False)
        conv, out = self.features(x, training=False)
        h = out if self.flat else self.head_body(out, training=False)
        h = tf.cast(h, tf.float32)
        if self.output_dense is not None:
            d = self.output_dense
            logits = tf.matmul(h, tf.cast(d.kernel, tf.float32)) + tf.cast(d.bias, tf.float32)
            probs = tf.sigmoid(logits) if self.activation == "sigmoid" else tf.nn.softmax(logits)
        else:  # an unknown head: explain the outputs themselves
            logits = probs = h
        units = int(probs.shape[-1])
        full = class_probabilities(probs.numpy(), 2 if units == 1 else units)[0]
        index = int(class_index)
        if not 0 <= index < len(full):
            raise IndexError(f"class index {index} out of range for {len(full)} classes")
        if logits.shape[-1] == 1:  # one sigmoid unit: its logit speaks for class 1, its negative for class 0
            score = logits[:, 0] if index == 1 else -logits[:, 0]
        else:
            score = logits[:, index]
        return conv, score, full


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _gradcam_model(model) -> _GradCamModel:
    try:
        return _CACHE[model]
    except KeyError:
        _CACHE[model] = built = _GradCamModel(model)
        return built


def gradcam(model, pixels: np.ndarray, class_index: int) -> GradCam:
    """The Grad-CAM heatmap of one image through a saved pipeline model, for the class asked for.

    Args:
        model: a run's full model (pixels in [0, 255] -> probabilities), nested base or flat.
        pixels: float or uint8 (1, S, S, 3) or (S, S, 3) RGB in [0, 255], as `images.decode_image` gives.
        class_index: the class to explain (the caller's answer; never this function's own argmax).

    Raises:
        pipeline.PipelineError: the model is not a pixels -> base -> head chain.
    """
    import tensorflow as tf

    arr = np.asarray(pixels, np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    gm = _gradcam_model(model)
    with tf.GradientTape() as tape:
        conv, score, probs = gm.scores(arr, class_index)
    grads = tape.gradient(score, conv)
    conv = tf.cast(conv, tf.float32)
    if grads is None:  # the score does not depend on the maps (should not happen with a chain)
        raise PipelineError(f"the class score of model {model.name!r} does not depend on layer {gm.layer!r}")
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2))  # one weight per feature map
    cam = tf.nn.relu(tf.reduce_sum(conv * weights[:, None, None, :], axis=-1))[0].numpy()
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else np.zeros_like(cam)
    return GradCam(resize_heatmap(cam, (arr.shape[2], arr.shape[1])), int(class_index), probs, gm.layer)


def resize_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a [0, 1] heatmap to size = (width, height), still in [0, 1]."""
    h = np.asarray(heatmap, np.float32)
    if (h.shape[1], h.shape[0]) != tuple(size):
        h = np.asarray(Image.fromarray(h, mode="F").resize(tuple(size), Image.Resampling.BILINEAR), np.float32)
    return np.clip(h, 0.0, 1.0)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB of a [0, 1] heatmap in the 'jet' colour map (blue = 0, red = 1).

    Matplotlib's map when it is installed; else the same piecewise-linear ramps by hand
    (matplotlib is no dependency of the studio).
    """
    h = np.clip(np.asarray(heatmap, np.float32), 0.0, 1.0)
    try:
        from matplotlib import colormaps

        return (colormaps["jet"](h)[..., :3] * 255).astype(np.uint8)
    except ImportError:
        pass
    rgb = [np.clip(1.5 - np.abs(4.0 * h - centre), 0.0, 1.0) for centre in (3.0, 2.0, 1.0)]
    return (np.stack(rgb, axis=-1) * 255).astype(np.uint8)


def overlay(photo: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The colour-mapped heatmap blended over an RGB uint8 photo, at the photo's size."""
    photo = np.asarray(photo, np.uint8)
    heat = resize_heatmap(heatmap, (photo.shape[1], photo.shape[0]))
    blended = (1.0 - alpha) * photo.astype(np.float32) + alpha * colorize(heat).astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def explain(run, pixels: np.ndarray, photo: np.ndarray, class_index: int) -> Explanation:
    """Grad-CAM of a loaded run (`inference.LoadedRun`) for `class_index`, laid over the photo.

    Args:
        pixels: the image as the model sees it: (S, S, 3) at the run's size, from the one decoder.
        photo: uint8 (H, W, 3) RGB of the same image to draw on (aspect kept): the heatmap is
            stretched back onto it, which the square resize had squeezed.
        class_index: the class to explain: the one the caller shows.

    Raises:
        pipeline.PipelineError: the model is not a pixels -> base -> head chain.
    """
    cam = gradcam(run.model, pixels, class_index)
    heat = resize_heatmap(cam.heatmap, (photo.shape[1], photo.shape[0]))
    return Explanation(
        run=run.id,
        explained=run.classes[cam.class_index],
        class_index=cam.class_index,
        layer=cam.layer,
        heatmap=heat,
        overlay=overlay(photo, heat),
    )


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Writes an RGB uint8 array as a PNG (the parent folder must exist)."""
    path = Path(path)
    Image.fromarray(np.asarray(rgb, np.uint8), mode="RGB").save(path, format="PNG")
    return path


def gradcam_paths(out: str | Path, images_in: list[str]) -> list[Path]:
    """Where `predict --gradcam OUT.png` writes each image's overlay.

    One image: OUT.png itself. Several: OUT-<image stem>.png next to it (OUT-cat.png,
    OUT-dog.png), with -2, -3, ... added when two images share a stem.
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        out = out.with_name(out.name + ".png")
    if len(images_in) == 1:
        return [out]
    paths, seen = [], {}
    for src in images_in:
        stem = Path(src).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        suffix = "" if seen[stem] == 1 else f"-{seen[stem]}"
        paths.append(out.with_name(f"{out.stem}-{stem}{suffix}.png"))
    return paths
