"""Every command's flags from `knob()` metadata, the parser that says a refusal in one line, and the run config.

Every RunConfig knob (engine/config.py, `knob()`) becomes one flag of `run`/`estimate`/`lr-find`/`feature-map`:
its name (the field's, or the knob's `flag`), type, range, choices and help all come from the field, so a
new knob needs no edit here (tests/test_cli_flags.py checks every knob has its flag). The other commands'
numbers (the finder's ramp, the map's limit, export's calibration, repeats, the benchmark's) are knobs of
small settings dataclasses, made flags by `add_settings_flags`. Either way a number is parsed by
`number_type`: finite, in range, checked by the knob's own `field_problem` when argparse reads it, before
any work. `Parser` turns every argparse refusal into one line and exit 2.
"""

from __future__ import annotations

import argparse
import json

from engine import config as cfgmod
from engine.config import APPROACHES, ConfigError, RunConfig, default_config
from engine.data.reads import FileRefused, read_regular_file
from engine.models.backbones import BACKBONES, image_size_for

TYPES = {"int": int, "float": float, "str": str}


class FlagRefused(ConfigError):
    """argparse refused a flag or its value; the message is argparse's, in one line, with where to read --help."""


class Parser(argparse.ArgumentParser):
    """argparse whose refusals are a `FlagRefused` (cli.main: one line, exit 2), like every other bad input.

    Its subcommands' parsers are of this class too (add_subparsers passes the parser's own class on)."""

    def error(self, message: str):
        raise FlagRefused(f"{' '.join(message.split())} (see {self.prog} --help)")


def number_type(type_name: str, meta: dict):
    """argparse's `type` for a numeric knob: a finite number of the knob's type within its range."""
    cast = TYPES[type_name]

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if cast is int else 'a number'}, got {text!r}"
            ) from None
        problem = cfgmod.field_problem(value, meta)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = type_name  # argparse names the type in some messages
    return parse


def add_settings_flags(p: argparse.ArgumentParser, settings_class, prefix: str = "") -> None:
    """One flag per knob of a small settings dataclass (default, type, range, choices and help from its metadata)."""
    import dataclasses

    for f in dataclasses.fields(settings_class):
        meta = dict(f.metadata)
        if not meta.get("help"):
            continue  # not a flag (an internal setting without a knob)
        flag = "--" + prefix + (meta.get("flag") or f.name.replace("_", "-"))
        type_name = str(f.type).replace(" | None", "")  # an optional knob: None = unset
        kw: dict = {
            "dest": f.name,
            "default": f.default,
            "help": _help(meta)
            + (
                ""
                if f.default is None
                else f" (default {f.default:g})"
                if isinstance(f.default, float)
                else f" (default {f.default})"
            ),
        }
        if type_name == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif meta.get("choices"):
            kw["choices"] = meta["choices"]
        else:
            kw["type"] = number_type(type_name, meta) if type_name in ("int", "float") else TYPES[type_name]
            kw["metavar"] = meta.get("metavar") or f.name.upper()
        p.add_argument(flag, **kw)


def settings_from(args: argparse.Namespace, settings_class):
    """The settings dataclass from parsed flags (its fields' defaults where a flag is absent)."""
    import dataclasses

    return settings_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class) if hasattr(args, f.name)})


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
            kw["type"] = number_type(type_name, meta) if type_name in ("int", "float") else TYPES[type_name]
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
    p.add_argument(
        "--split",
        type=number_type("float", cfgmod.field_meta("data", "train_fraction")),
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        help="flat layout fractions at once (--train-fraction, --val-fraction, --test-fraction)",
    )
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
