"""The flags of `run` and `estimate`, generated from the config's own metadata, and the config they build.

Every RunConfig knob (engine/config.py, `knob()`) becomes one flag: its name (the field's, or
the knob's `flag`), type, range, choices and help all come from the field, so a new knob needs
no edit here (tests/test_cli_flags.py checks every knob has its flag).
"""

from __future__ import annotations

import argparse
import json

from engine import config as cfgmod
from engine.config import APPROACHES, ConfigError, RunConfig, default_config
from engine.data.reads import FileRefused, read_regular_file
from engine.models.backbones import BACKBONES, image_size_for

TYPES = {"int": int, "float": float, "str": str}
REGISTRY_CHOICES = {("backbone", "name"): lambda: tuple(sorted(BACKBONES))}  # choices that live in a registry, not the config


def flag_name(section: str, name: str, meta: dict) -> str:
    """The knob's CLI flag: `--<knob flag>` or `--<field name with dashes>`."""
    return "--" + (meta.get("flag") or name.replace("_", "-"))


def knob_dest(section: str, name: str) -> str:
    """Where argparse puts a knob's value (None when the flag is not given)."""
    return "data" if (section, name) == ("data", "path") else f"{section}.{name}"


def _help(meta: dict) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is None and hi is None:
        return meta["help"]
    left = "(" if meta.get("min_exclusive") else "["
    return f"{meta['help']} {left}{'' if lo is None else f'{lo:g}'}, {'' if hi is None else f'{hi:g}'}]"


def add_knob_flags(p: argparse.ArgumentParser) -> None:
    """One flag per RunConfig knob."""
    for section, name, type_name, meta in cfgmod.knobs():
        kw: dict = {"dest": knob_dest(section, name), "default": None, "help": _help(meta)}
        if type_name == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = TYPES[type_name]
            choices = REGISTRY_CHOICES[(section, name)]() if (section, name) in REGISTRY_CHOICES else meta.get("choices")
            if choices:
                kw["choices"] = choices
            if not choices:
                kw["metavar"] = meta.get("metavar") or name.upper()
        if (section, name) == ("data", "path"):
            kw["required"] = True
        p.add_argument(flag_name(section, name, meta), **kw)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """What `run` and `estimate` share: the approach, where the config starts from, every knob, the stores."""
    p.add_argument("--approach", required=True, choices=(*APPROACHES, "all"))
    p.add_argument("--config", help="JSON file with a RunConfig (flags override it)")
    p.add_argument("--preset", help="start from a published setup (see `python -m engine presets`); flags override it")
    add_knob_flags(p)
    p.add_argument("--split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                   help="flat layout fractions at once (--train-fraction, --val-fraction, --test-fraction)")
    p.add_argument("--runs-dir", help="run store folder (default: $TLS_RUNS_DIR or ./runs)")
    p.add_argument("--cache-dir", help="feature cache folder (default: $TLS_CACHE_DIR or ~/.cache/...)")


def build_config(approach: str, args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The lecture defaults for `approach`, then --config or else --preset, then explicit flags.

    With --config the file holds every value, so --preset only names the run (the dashboard
    writes the form's config, the preset plus the user's changes, and passes the name)."""
    cfg = default_config(approach)
    if base is not None:
        raw = base.to_dict()
        raw["approach"] = approach
        cfg = RunConfig.from_dict(raw)
    if getattr(args, "preset", None):
        from engine.insight.presets import apply_preset, get_preset

        get_preset(args.preset)  # an unknown name is refused either way
        if base is None:  # a --config file already holds its values (the dashboard's: preset + the user's changes)
            apply_preset(cfg, args.preset)
    if getattr(args, "split", None):
        cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.test_fraction = args.split
    for section, name, _, _ in cfgmod.knobs():
        value = getattr(args, knob_dest(section, name), None)
        if value is not None:
            setattr(getattr(cfg, section), name, value)
    if getattr(args, "fit.learning_rate", None) is not None and getattr(args, "fit.find_learning_rate", None) is None:
        cfg.fit.find_learning_rate = False  # a rate the user gives wins over a preset's "find it"
    cfgmod.validate(cfg)
    image_size_for(cfg.backbone)  # the size limit is per backbone
    return cfg


def read_config_file(path: str) -> RunConfig:
    """--config FILE as a RunConfig; unreadable or malformed files are one-line ConfigErrors.

    Read through the one read gate (engine/data/reads.py): a FIFO, device or folder is refused without
    waiting on it, and a file over the config's size bound before it is read."""
    try:
        raw = read_regular_file(path, cfgmod.MAX_CONFIG_CHARS, f"--config {path}")
    except FileRefused as exc:
        raise ConfigError(str(exc)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {path}: not UTF-8 text (byte {exc.start:,}); a config is a JSON file") from None
    try:
        return RunConfig.from_json(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ConfigError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None
