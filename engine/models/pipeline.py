"""The saved pipeline model taken apart: the layers before the base, the base, the head.

Every run saves pixels -> [augmentation] -> preprocess -> base -> head as one Keras model
(`modeling.assemble_full_model`), with the base and the head as nested models. Grad-CAM
needs the base's last convolutional activations and the head on top of them; export
rebuilds the model from plain Keras layers. Both read the model through `split_pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import StudioError


class PipelineError(StudioError, ValueError):
    """A model that is not the pipeline this studio saves (pixels -> preprocessing -> base -> head)."""


@dataclass
class Pipeline:
    """A saved model's parts, sharing layers (and weights) with it."""

    model: object  # the whole saved model
    before_base: list  # layers between the pixel input and the base, in order (augmentation, preprocessing)
    base: object | None  # the nested conv base (a keras.Model); None for a flat model
    head: object | None  # the nested head (features -> probabilities); None for a flat model

    def layer(self, cls_name: str):
        """The first layer before the base whose class is named `cls_name`, else None."""
        return next((l for l in self.before_base if type(l).__name__ == cls_name), None)


def _is_4d(layer) -> bool:
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError):  # a layer used more than once has no single output
        return False


def split_pipeline(model) -> Pipeline:
    """Finds the nested base and head of a saved model.

    The model is a chain (each layer called on the previous layer's output); the base
    is the last nested model with a 4D (feature map) output and the head is what follows
    it. A flat model (no nested base) comes back with base = head = None: callers then
    work on the model's own layers.

    Raises:
        PipelineError: the model is not such a chain.
    """
    import keras

    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    nested = [i for i, l in enumerate(layers) if isinstance(l, keras.Model) and _is_4d(l) and l.name != "augmentation"]
    if not nested:
        return Pipeline(model, [], None, None)
    i = nested[-1]
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise PipelineError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; expected one of each"
        )
    after = layers[i + 1 :]
    if len(after) != 1:
        raise PipelineError(
            f"model {model.name!r} has {len(after)} layers after its base {layers[i].name!r}; expected one head model"
        )
    return Pipeline(model, layers[:i], layers[i], after[0])


def backbone_of(parts: Pipeline) -> str:
    """The registry name of the saved model's backbone (its preprocessing layer says it), or ""."""
    layer = parts.layer("BackbonePreprocess")
    return getattr(layer, "backbone", "") if layer is not None else ""


def gradcam_layer(base, backbone: str = ""):
    """The layer of `base` whose maps Grad-CAM weighs: the backbone's row names it (`gradcam_layer`);
    a row that leaves it "" (Keras numbers that layer), an unknown backbone or a flat model: `last_conv_layer`."""
    from engine.models import backbones

    spec = backbones.BACKBONES.get(backbone)
    if spec is not None and spec.gradcam_layer:
        try:
            return base.get_layer(spec.gradcam_layer)
        except ValueError:
            pass  # a model saved by another studio version: the rule below still finds its maps
    return last_conv_layer(base)


def last_conv_layer(model):
    """The last layer of `model` with a 4D output that is not pooling: the feature maps Grad-CAM weighs.

    VGG16: block5_conv3; MobileNetV2: out_relu; MobileNet: conv_pw_13_relu; ResNet50:
    conv5_block3_out; EfficientNetB0: top_activation. Pooling is skipped because it only
    lowers the resolution of the same evidence (VGG16's block5_pool halves it).
    """
    import keras

    pooling = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer) or isinstance(layer, pooling):
            continue
        if _is_4d(layer):
            return layer
    raise PipelineError(f"model {model.name!r} has no layer with a 4D (convolutional) output")
