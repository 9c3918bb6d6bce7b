"""Typed configuration for every knob the engine exposes.

One dataclass per concern, each field with a default and a one-line comment (unit, range).
`RunConfig` bundles them for one run; `default_config(approach)` fills in the lecture's
hyper-parameters for that approach. Configs round-trip through JSON so a run's settings are
stored beside its model and the dashboard, CLI and job runner share one format.
"""

from __future__ import annotations

from .errors import StudioError

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

APPROACHES = ("feature_extraction", "frozen", "fine_tuning")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
POOLINGS = ("flatten", "avg")
PREPROCESSINGS = ("backbone", "rescale")
DISTRIBUTES = ("none", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


class ConfigError(StudioError, ValueError):
    """A configuration value is out of range; the message names the field and what to do."""


@dataclass
class DataConfig:
    path: str = ""  # dataset folder: DATA/{train,validation[,test]}/<class>/* or DATA/<class>/*
    train_fraction: float = 0.70  # flat layout only: share of each class used for training (0-1)
    val_fraction: float = 0.15  # flat layout only: share used for validation (0-1)
    test_fraction: float = 0.15  # flat layout only: share held out for the final test (0-1)


@dataclass
class BackboneConfig:
    name: str = "mobilenet_v2"  # registry key, see engine.backbones.BACKBONES
    weights: str = "imagenet"  # "imagenet" (Keras download/cache), "none", or a path to a weights file
    alpha: float = 1.0  # width multiplier, MobileNet family only (0.25-1.4)
    image_size: int = 0  # square input side in pixels; 0 = the backbone's default (>= 32)
    preprocessing: str = "backbone"  # "backbone" = its own preprocess_input; "rescale" = lecture's 1/255 preset


@dataclass
class HeadConfig:
    pooling: str = "flatten"  # "flatten" (the lecture's) or "avg" (global average pooling)
    dense_units: int = 256  # hidden Dense layer width; 0 = no hidden layer (linear probe)
    dropout: float = 0.5  # dropout rate before the output layer (0-0.95)


@dataclass
class AugmentationConfig:
    enabled: bool = True  # master switch; off = plain images (feature extraction never augments)
    rotation: float = 20.0  # max rotation in degrees (0-180), lecture: rotation_range=20
    width_shift: float = 0.1  # max horizontal shift as a fraction of width (0-1)
    height_shift: float = 0.1  # max vertical shift as a fraction of height (0-1)
    zoom: float = 0.2  # max zoom in/out as a fraction (0-0.9)
    horizontal_flip: bool = True  # random left-right flips
    vertical_flip: bool = True  # random up-down flips (the lecture's choice; odd for photos)
    views: int = 3  # K augmented views of the training set run through the frozen base once; epochs cycle through them (K = epochs: the lecture exactly), 1-100


@dataclass
class FitConfig:
    epochs: int = 30  # training epochs (phase 1 for fine-tuning), >= 1
    batch_size: int = 20  # images per step, >= 1
    learning_rate: float = 2e-5  # optimizer step size (> 0)
    optimizer: str = "rmsprop"  # "rmsprop" (lecture), "adam" or "sgd"
    early_stopping_patience: int = 0  # epochs without val_loss improvement before stopping; 0 = off
    seed: int = 42  # seeds weights init, shuffling, augmentation and the flat-layout split


@dataclass
class FineTuneConfig:
    unfreeze_blocks: int = 1  # how many top blocks of the base to unfreeze (VGG16 1 = block5_conv1..3)
    learning_rate: float = 1e-5  # phase-2 learning rate, lower than phase 1 (> 0)
    epochs: int = 30  # phase-2 epochs, >= 0
    from_run: str = ""  # optional id of a finished "frozen" run to use as phase 1 instead of training it


@dataclass
class ComputeConfig:
    distribute: str = "none"  # "none" (one device), "mirrored" (all local GPUs/devices), "multi_worker" (machines in TF_CONFIG)
    precision: str = "auto"  # "auto" = float32 on CPU, mixed precision on GPUs that support it; or float32/mixed_float16/mixed_bfloat16
    tensorboard: str = ""  # folder for TensorBoard logs (one subfolder per run); "" = no logs
    in_memory_mb: int = 1024  # a split whose decoded pixels fit in this many MB is held in RAM; larger ones stream from disk


@dataclass
class RunConfig:
    approach: str = "feature_extraction"  # one of APPROACHES
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        """Builds a config from a dict, ignoring unknown keys so old run folders stay loadable."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in raw:
                continue
            value = raw[f.name]
            sub = _SECTIONS.get(f.name)
            if sub is not None:
                if not isinstance(value, dict):
                    raise ConfigError(f"{f.name}: expected a JSON object of settings, got {type(value).__name__}")
                known = {g.name: g for g in dataclasses.fields(sub)}
                value = sub(**{k: _typed(f"{f.name}.{k}", known[k].type, v) for k, v in value.items() if k in known})
            else:
                value = _typed(f.name, f.type, value)
            kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))


_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
_TYPE_WORDS = {"int": "a whole number", "float": "a number", "str": "a text value", "bool": "true or false"}


def _typed(name: str, type_name: str, value: Any) -> Any:
    """Checks a JSON value against the field's annotation; raises ConfigError naming the field.

    Why: a config file with "epochs": "ten" would otherwise fail deep inside training with a
    TypeError traceback instead of one line saying which field is wrong.
    """
    allowed = _JSON_TYPES.get(str(type_name))
    if allowed is None:
        return value
    if isinstance(value, bool) and bool not in allowed:  # JSON true is not the number 1 here
        allowed = ()
    if not isinstance(value, allowed):
        raise ConfigError(f"{name}: expected {_TYPE_WORDS[str(type_name)]}, got {json.dumps(value)}")
    return float(value) if type_name == "float" else value


_SECTIONS = {
    "data": DataConfig,
    "backbone": BackboneConfig,
    "head": HeadConfig,
    "augmentation": AugmentationConfig,
    "fit": FitConfig,
    "fine_tune": FineTuneConfig,
    "compute": ComputeConfig,
}


def default_config(approach: str, **sections: Any) -> RunConfig:
    """The lecture's hyper-parameters for one approach.

    Feature extraction: 30 epochs, dropout 0.5, no augmentation. Frozen base: 20 epochs,
    dropout 0.6, augmentation on. Fine-tuning: phase 1 as frozen but 30 epochs, then
    block5 (the top block) unfrozen at 1e-5 for 30 more. All use RMSprop(2e-5), batch 20.
    """
    if approach not in APPROACHES:
        raise ConfigError(f"approach: unknown value {approach!r}; choose one of {', '.join(APPROACHES)}")
    cfg = RunConfig(approach=approach, **sections)
    if "head" not in sections:
        cfg.head.dropout = 0.5 if approach == "feature_extraction" else 0.6
    if "fit" not in sections:
        cfg.fit.epochs = 20 if approach == "frozen" else 30
    if approach == "feature_extraction" and "augmentation" not in sections:
        cfg.augmentation.enabled = False
    return cfg


def _check(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{field_name}: {message}")


def validate(cfg: RunConfig) -> RunConfig:
    """Raises ConfigError naming the first bad field and the allowed range; returns cfg."""
    _check(cfg.approach in APPROACHES, "approach", f"must be one of {', '.join(APPROACHES)}, got {cfg.approach!r}")
    d = cfg.data
    for name in ("train_fraction", "val_fraction", "test_fraction"):
        v = getattr(d, name)
        _check(0.0 <= v <= 1.0, f"data.{name}", f"must be between 0 and 1, got {v}")
    _check(d.train_fraction > 0 and d.val_fraction > 0, "data.train_fraction/val_fraction", "both must be > 0")
    total = d.train_fraction + d.val_fraction + d.test_fraction
    _check(abs(total - 1.0) < 1e-6, "data fractions", f"train + val + test must add up to 1, got {total:g}")
    b = cfg.backbone
    _check(b.image_size == 0 or b.image_size >= 32, "backbone.image_size", f"must be 0 (default) or >= 32, got {b.image_size}")
    _check(0.1 <= b.alpha <= 1.4, "backbone.alpha", f"must be between 0.1 and 1.4, got {b.alpha}")
    _check(b.preprocessing in PREPROCESSINGS, "backbone.preprocessing", f"must be one of {', '.join(PREPROCESSINGS)}")
    _check(bool(b.weights), "backbone.weights", "give 'imagenet', 'none' or a path to a weights file")
    h = cfg.head
    _check(h.pooling in POOLINGS, "head.pooling", f"must be one of {', '.join(POOLINGS)}, got {h.pooling!r}")
    _check(h.dense_units >= 0, "head.dense_units", f"must be >= 0, got {h.dense_units}")
    _check(0.0 <= h.dropout < 0.96, "head.dropout", f"must be in [0, 0.95], got {h.dropout}")
    a = cfg.augmentation
    _check(0 <= a.rotation <= 180, "augmentation.rotation", f"degrees must be in [0, 180], got {a.rotation}")
    for name in ("width_shift", "height_shift"):
        v = getattr(a, name)
        _check(0 <= v <= 1, f"augmentation.{name}", f"must be in [0, 1], got {v}")
    _check(0 <= a.zoom <= 0.9, "augmentation.zoom", f"must be in [0, 0.9], got {a.zoom}")
    _check(isinstance(a.views, int) and 1 <= a.views <= 100, "augmentation.views", f"must be a whole number in [1, 100], got {a.views}")
    f = cfg.fit
    _check(f.epochs >= 1, "fit.epochs", f"must be >= 1, got {f.epochs}")
    _check(f.batch_size >= 1, "fit.batch_size", f"must be >= 1, got {f.batch_size}")
    _check(f.learning_rate > 0, "fit.learning_rate", f"must be > 0, got {f.learning_rate}")
    _check(f.optimizer in OPTIMIZERS, "fit.optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {f.optimizer!r}")
    _check(f.early_stopping_patience >= 0, "fit.early_stopping_patience", "must be >= 0 (0 = off)")
    t = cfg.fine_tune
    _check(t.unfreeze_blocks >= 1, "fine_tune.unfreeze_blocks", f"must be >= 1, got {t.unfreeze_blocks}")
    _check(t.learning_rate > 0, "fine_tune.learning_rate", f"must be > 0, got {t.learning_rate}")
    _check(t.epochs >= 0, "fine_tune.epochs", f"must be >= 0, got {t.epochs}")
    c = cfg.compute
    _check(c.distribute in DISTRIBUTES, "compute.distribute", f"must be one of {', '.join(DISTRIBUTES)}, got {c.distribute!r}")
    _check(c.precision in PRECISIONS, "compute.precision", f"must be one of {', '.join(PRECISIONS)}, got {c.precision!r}")
    _check(isinstance(c.in_memory_mb, int) and c.in_memory_mb >= 0, "compute.in_memory_mb", f"must be a whole number >= 0, got {c.in_memory_mb}")
    return cfg
