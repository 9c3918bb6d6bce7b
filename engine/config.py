"""Typed configuration for every knob the engine exposes.

One dataclass per concern, each field with a default and a one-line comment (unit, range).
`RunConfig` bundles them for one run; `default_config(approach)` fills in the lecture's
hyper-parameters for that approach. Configs round-trip through JSON so a run's settings are
stored beside its model and the dashboard, CLI and job runner share one format.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from engine.errors import StudioError

APPROACHES = ("feature_extraction", "frozen", "fine_tuning")
OPTIMIZERS = ("rmsprop", "adam", "sgd", "adamw")
SCHEDULES = ("constant", "cosine", "one_cycle")
POOLINGS = ("flatten", "avg")
PREPROCESSINGS = ("backbone", "rescale")
DISTRIBUTES = ("none", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
CLASS_WEIGHTS = ("none", "balanced")


class ConfigError(StudioError, ValueError):
    """A configuration value is out of range; the message names the field and what to do."""


def knob(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple | None = None,
    min_exclusive: bool = False,
    integer: bool = False,
    message: str = "",
    flag: str = "",
    metavar: str = "",
) -> Any:
    """A config field carrying its own limits: the one source for validate(), the widgets and the CLI's flags.

    metadata: min/max (inclusive; `min_exclusive` for "> min"), choices, help (one line for
    a tooltip or --help), integer (a whole number is required), message (the error text when
    out of range, with {min} {max} {value}; default ">= min" / "<= max" / "one of"), flag
    (the CLI flag without dashes when not the field's name, e.g. "fine-tune-epochs") and
    metavar (its value's name in --help).
    """
    meta = {
        "min": min,
        "max": max,
        "choices": choices,
        "help": help,
        "min_exclusive": min_exclusive,
        "integer": integer,
        "message": message,
        "flag": flag,
        "metavar": metavar,
    }
    return field(default=default, metadata=meta)


_IN_RANGE = "must be in [{min:g}, {max:g}], got {value}"
_BETWEEN = "must be between {min:g} and {max:g}, got {value}"


@dataclass
class DataConfig:
    path: str = knob(
        "", "dataset folder (DATA/{train,validation[,test]}/<class>/* or DATA/<class>/*), or 'sample'", flag="data"
    )  # dataset folder
    train_fraction: float = knob(
        0.70, "flat layout only: share of each class used for training", min=0.0, max=1.0, message=_BETWEEN
    )  # (0-1)
    val_fraction: float = knob(0.15, "flat layout only: share used for validation", min=0.0, max=1.0, message=_BETWEEN)  # (0-1)
    test_fraction: float = knob(
        0.15, "flat layout only: share held out for the final test", min=0.0, max=1.0, message=_BETWEEN
    )  # (0-1)
    # a first try on a big folder: each class keeps at most N photos over its splits, in the splits' proportions,
    # drawn with fit.seed after the split (so its test photos are some of the full run's test photos); 0 = every photo
    max_per_class: int = knob(
        0,
        "at most N photos per class (over train, validation and test, drawn with the seed); 0 = all",
        min=0,
        max=10**7,
        integer=True,
        metavar="N",
        message="must be a whole number in [{min:g}, {max:g}] (0 = all), got {value}",
    )  # 0 = all


@dataclass
class BackboneConfig:
    name: str = knob(
        "mobilenet_v2", "registry key, see engine.models.backbones.BACKBONES", flag="backbone"
    )  # choices live in the registry
    weights: str = knob("imagenet", "'imagenet' (Keras download/cache), 'none', or a path to a weights file")  # never empty
    alpha: float = knob(
        1.0, "width multiplier, for backbones with widths (MobileNet v1 and v2)", min=0.1, max=1.4, message=_BETWEEN
    )  # (0.1-1.4)
    # square input side in pixels; 0 = the backbone's default, else 32-512 (each backbone's own limit: backbones.py)
    image_size: int = knob(0, "square input side in pixels; 0 = the backbone's default (32 at least)", min=0, integer=True)
    preprocessing: str = knob(
        "backbone", "'backbone' = its own preprocess_input; 'rescale' = the lecture's 1/255 preset", choices=PREPROCESSINGS
    )


@dataclass
class HeadConfig:
    pooling: str = knob("flatten", "'flatten' (the lecture's) or 'avg' (global average pooling)", choices=POOLINGS)
    dense_units: int = knob(
        256, "hidden Dense layer width; 0 = no hidden layer (linear probe)", min=0, max=4096, integer=True
    )  # 0-4096
    dropout: float = knob(0.5, "dropout rate before the output layer", min=0.0, max=0.95, message=_IN_RANGE)  # (0-0.95)


@dataclass
class AugmentationConfig:
    enabled: bool = knob(True, "master switch; off = plain images (feature extraction never augments)", flag="augmentation")
    rotation: float = knob(
        20.0,
        "max rotation in degrees (lecture: rotation_range=20)",
        min=0.0,
        max=180.0,
        message="degrees must be in [{min:g}, {max:g}], got {value}",
    )  # (0-180)
    width_shift: float = knob(0.1, "max horizontal shift as a fraction of width", min=0.0, max=1.0, message=_IN_RANGE)  # (0-1)
    height_shift: float = knob(0.1, "max vertical shift as a fraction of height", min=0.0, max=1.0, message=_IN_RANGE)  # (0-1)
    zoom: float = knob(0.2, "max zoom in/out as a fraction", min=0.0, max=0.9, message=_IN_RANGE)  # (0-0.9)
    horizontal_flip: bool = knob(True, "random left-right flips")
    vertical_flip: bool = knob(True, "random up-down flips (the lecture's choice; odd for photos)")
    # K augmented views of the training set run through the frozen base once; epochs cycle through them (K = epochs: the lecture exactly)
    views: int = knob(
        3,
        "augmented views of the training set cached once; epochs cycle through them",
        min=1,
        max=100,
        integer=True,
        message="must be a whole number in [{min:g}, {max:g}], got {value}",
        metavar="K",
    )  # 1-100


@dataclass
class FitConfig:
    epochs: int = knob(30, "training epochs (phase 1 for fine-tuning)", min=1, max=1000, integer=True)  # 1-1000
    batch_size: int = knob(20, "images per step", min=1, max=4096, integer=True)  # 1-4096
    learning_rate: float = knob(2e-5, "optimizer step size", min=0.0, max=1.0, min_exclusive=True)  # (0, 1]
    optimizer: str = knob(
        "rmsprop", "'rmsprop' (lecture), 'adam', 'sgd' or 'adamw' (Adam with decoupled weight decay)", choices=OPTIMIZERS
    )
    # AdamW's decoupled decay: each step multiplies the weights by (1 - learning rate x weight_decay); other optimizers ignore it
    weight_decay: float = knob(
        1e-4, "adamw only: decoupled weight decay per step, times the learning rate", min=0.0, max=1.0, message=_IN_RANGE
    )  # [0, 1]
    # over each phase's steps (epochs x steps per epoch); the learning-rate finder ramps its own rates
    schedule: str = knob(
        "constant",
        "learning rate over a phase: 'constant' (as set), 'cosine' (linear warmup, then cosine "
        "decay to 0) or 'one_cycle' (fastai's: up from rate/25 over the first quarter, then down to rate/1e5)",
        choices=SCHEDULES,
    )
    warmup_epochs: int = knob(
        0, "cosine only: epochs of linear warmup from 0 to the learning rate (at most the phase's)", min=0, max=1000, integer=True
    )  # 0-1000
    # targets (1 - s) on the true class and s spread evenly over all classes (Szegedy et al. 2016)
    label_smoothing: float = knob(
        0.0,
        "label smoothing of the cross-entropy's targets; 0 = off",
        min=0.0,
        max=0.5,
        message="must be >= 0 and < 0.5, got {value}",
    )  # [0, 0.5)
    early_stopping_patience: int = knob(
        0,
        "epochs without val_loss improvement before stopping; 0 = off",
        min=0,
        max=1000,
        integer=True,
        message="must be >= 0 (0 = off), got {value}",
        flag="early-stopping",
        metavar="PATIENCE",
    )  # 0 = off
    seed: int = knob(
        42, "seeds weights init, shuffling, augmentation and the flat-layout split", min=0, max=2**31 - 1, integer=True
    )
    # a rate that fits the data: fastai's range test on what this run trains, seconds on cached features (training/lr_finder.py)
    find_learning_rate: bool = knob(
        False,
        "find the phase-1 learning rate first (the learning-rate finder's suggestion "
        "replaces learning_rate); off = learning_rate as set",
        flag="find-learning-rate",
    )
    # "balanced": each class's loss weighted n_samples / (n_classes * count_c) of the training split (scikit-learn's rule)
    class_weight: str = knob(
        "none",
        "'none', or 'balanced': weight each class's loss by n / (classes x its training "
        "images), so a rare class counts as much as a common one",
        choices=CLASS_WEIGHTS,
    )


@dataclass
class FineTuneConfig:
    unfreeze_blocks: int = knob(
        1, "how many top blocks of the base to unfreeze (VGG16 1 = block5_conv1..3)", min=1, max=3, integer=True
    )  # 1-3
    learning_rate: float = knob(
        1e-5, "phase-2 learning rate, lower than phase 1", min=0.0, max=1.0, min_exclusive=True, flag="fine-tune-learning-rate"
    )  # (0, 1]
    epochs: int = knob(
        30, "phase-2 epochs; 0 = the frozen phase only", min=0, max=1000, integer=True, flag="fine-tune-epochs"
    )  # 0-1000
    from_run: str = knob("", "optional id of a finished 'frozen' run to use as phase 1 instead of training it")
    # fastai's discriminative learning rates: the unfrozen block at this fraction of the head's phase-2 rate
    discriminative_rate: float = knob(
        1.0,
        "phase 2: the unfrozen block's learning rate as a fraction of the head's; 1 = the same",
        min=0.0,
        max=1.0,
        min_exclusive=True,
    )  # (0, 1]


@dataclass
class ComputeConfig:
    # "none" (one device), "mirrored" (all local GPUs/devices), "multi_worker" (machines in TF_CONFIG)
    distribute: str = knob(
        "none", "none = one device; mirrored = all local GPUs; multi_worker = machines in $TF_CONFIG", choices=DISTRIBUTES
    )
    # "auto" = float32 on CPU, mixed precision on GPUs that support it; or float32/mixed_float16/mixed_bfloat16
    precision: str = knob("auto", "auto = float32 on CPU, mixed precision on capable GPUs", choices=PRECISIONS)
    tensorboard: str = knob("", "folder for TensorBoard logs (one subfolder per run); empty = no logs", metavar="DIR")
    # a split whose decoded pixels + cached features fit in this many MB is held in RAM (faster); larger ones stream from disk
    in_memory_mb: int = knob(
        1024,
        "hold a split in RAM up to this many MB; larger splits stream from disk",
        min=0,
        integer=True,
        message="must be a whole number >= {min:g}, got {value}",
        metavar="MB",
    )


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
        """Parses a config file's text; it must be one JSON object of bounded size and depth."""
        if len(text) > MAX_CONFIG_CHARS:
            raise ConfigError(f"is {len(text):,} characters; a config is a few hundred (at most {MAX_CONFIG_CHARS:,})")
        try:
            raw = json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise ConfigError("is nested too deeply to be a config") from None
        if not isinstance(raw, dict):
            raise ConfigError(
                f'must hold one JSON object of settings ({{"fit": {{"epochs": 10}}, ...}}), not {type(raw).__name__}'
            )
        if _depth(raw) > MAX_CONFIG_DEPTH:
            raise ConfigError(f"is nested deeper than a config ({MAX_CONFIG_DEPTH} levels)")
        return cls.from_dict(raw)


MAX_CONFIG_CHARS = 1_000_000  # a full config is about 1.5 kB; anything near this is not one
MAX_CONFIG_DEPTH = 8  # section -> setting -> value (a list at most) is 3


def finite(value: Any) -> Any:
    """`value` with every NaN or Infinity (also inside lists, dicts and NumPy values) turned into None.

    Why: json writes them as bare `NaN`/`Infinity`, which is not JSON; a diverged loss is "no number"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # NumPy scalars and arrays, without importing NumPy
        return finite(value.tolist())
    return value


def dumps(value: Any, **kw) -> str:
    """The engine's one JSON writer (files and stdout): never NaN or Infinity, NumPy values as plain numbers."""
    return json.dumps(finite(value), allow_nan=False, **kw)


def _no_constant(name: str):
    # json accepts NaN, Infinity and -Infinity; no setting may be one, and the field is not known yet here.
    raise ConfigError(f"holds {name}, which is not a number any setting takes")


def _depth(value, level: int = 1) -> int:
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()] or [level])
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value] or [level])
    return level


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


def knobs() -> list[tuple[str, str, str, dict]]:
    """(section, field, type name, metadata) of every knob of a RunConfig, in declaration order."""
    return [
        (section, f.name, str(f.type), dict(f.metadata)) for section, sub in _SECTIONS.items() for f in dataclasses.fields(sub)
    ]


def field_meta(section: str, name: str) -> dict:
    """A field's limits for widgets and the CLI: {"min", "max", "choices", "help", "min_exclusive", "integer", "message"}.

    Raises ConfigError for an unknown section or field.
    """
    sub = _SECTIONS.get(section)
    fields = {f.name: f for f in dataclasses.fields(sub)} if sub is not None else {}
    if name not in fields:
        raise ConfigError(f"{section}.{name}: no such setting")
    return dict(fields[name].metadata)


def field_problem(value: Any, meta: dict) -> str:
    """'' if `value` is within the field's metadata limits, else the message (without the field name)."""
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    shown = {"min": lo, "max": hi, "value": value}
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every comparison; inf is no setting
        return f"must be a finite number, got {value}"
    if choices is not None and value not in choices:
        return f"must be one of {', '.join(choices)}, got {value!r}"
    if meta.get("integer") and (isinstance(value, bool) or not isinstance(value, int)):
        return (meta.get("message") or "must be a whole number, got {value}").format(**{**shown, "min": lo or 0, "max": hi or 0})
    if lo is None and hi is None:
        return ""
    below = lo is not None and (value <= lo if meta.get("min_exclusive") else value < lo)
    above = hi is not None and value > hi
    if not (below or above):
        return ""
    if meta.get("message"):
        return meta["message"].format(**{k: (v if v is not None else 0) for k, v in shown.items()})
    if below:
        return f"must be {'>' if meta.get('min_exclusive') else '>='} {lo:g}, got {value}"
    return f"must be <= {hi:g}, got {value}"


def validate(cfg: RunConfig) -> RunConfig:
    """Raises ConfigError naming the first bad field and the allowed range; returns cfg.

    Ranges and choices come from each field's metadata (`knob`); what spans fields (the
    split fractions) or has a gap (image size 0 or >= 32) is checked here by hand.
    """
    _check(cfg.approach in APPROACHES, "approach", f"must be one of {', '.join(APPROACHES)}, got {cfg.approach!r}")
    for section, sub in _SECTIONS.items():
        values = getattr(cfg, section)
        for f in dataclasses.fields(sub):
            problem = field_problem(getattr(values, f.name), f.metadata) if f.metadata else ""
            _check(not problem, f"{section}.{f.name}", problem)
    d = cfg.data
    _check(d.train_fraction > 0 and d.val_fraction > 0, "data.train_fraction/val_fraction", "both must be > 0")
    total = d.train_fraction + d.val_fraction + d.test_fraction
    _check(abs(total - 1.0) < 1e-6, "data fractions", f"train + val + test must add up to 1, got {total:g}")
    _check(
        not (cfg.fit.find_learning_rate and cfg.compute.distribute != "none"),
        "fit.find_learning_rate",
        "the finder ramps on one device; with compute.distribute set, give the learning rate (find one with `lr-find`)",
    )
    _check(cfg.fit.label_smoothing < 0.5, "fit.label_smoothing", f"must be >= 0 and < 0.5, got {cfg.fit.label_smoothing}")
    b = cfg.backbone
    _check(b.image_size == 0 or b.image_size >= 32, "backbone.image_size", f"must be 0 (default) or >= 32, got {b.image_size}")
    _check(
        bool(b.weights.strip()),
        "backbone.weights",
        "the local weights file path is empty; give 'imagenet', 'none' or a path to a weights file",
    )
    return cfg
