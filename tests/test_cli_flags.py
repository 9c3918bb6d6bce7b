"""The CLI's run flags come from the config's metadata (engine/cli/flags.py): every knob has one, none is written by hand."""

from __future__ import annotations

import dataclasses

import pytest

from engine import config as cfgmod
from engine.cli import build_parser
from engine.cli.flags import build_config, flag_name

BASE = ["run", "--data", "DATA", "--approach", "fine_tuning"]


def _value_for(type_name: str, meta: dict, default):
    """A valid value other than the default, from the knob's own choices or range."""
    if meta.get("choices"):
        return next(c for c in meta["choices"] if c != default)
    if type_name == "bool":
        return not default
    if type_name == "str":
        return "x-value"
    lo = meta.get("min") or 0
    hi = meta.get("max") if meta.get("max") is not None else lo + 10
    value = (lo + hi) / 2 if type_name == "float" else int(lo) + 1
    return value if value != default else (value + hi) / 2


def _argv(flag: str, type_name: str, value) -> list[str]:
    if type_name == "bool":
        return [flag if value else "--no-" + flag[2:]]
    return [flag, str(value)]


def test_every_knob_has_its_flag_and_sets_its_field():
    parser, defaults = build_parser(), cfgmod.default_config("fine_tuning")
    flags = [flag_name(s, n, m) for s, n, _, m in cfgmod.knobs()]
    assert len(flags) == len(set(flags)) == len(cfgmod.knobs())  # no two knobs share a flag
    assert {"--epochs", "--fine-tune-epochs", "--backbone", "--early-stopping", "--views", "--in-memory-mb"} <= set(flags)
    for section, name, type_name, meta in cfgmod.knobs():
        if (section, name) in (("data", "path"), ("backbone", "name")):
            continue  # given below with a real dataset path / registry name
        value = _value_for(type_name, meta, getattr(getattr(defaults, section), name))
        argv = BASE + _argv(flag_name(section, name, meta), type_name, value)
        args = parser.parse_args(argv)
        assert getattr(args, f"{section}.{name}") == value, (section, name)


def test_a_new_knob_gets_a_flag_with_its_range_and_help_without_a_cli_edit(monkeypatch, capsys, tiny_dataset):
    @dataclasses.dataclass
    class HeadWithMore(cfgmod.HeadConfig):
        temperature: float = cfgmod.knob(1.0, "divides the logits", min=0.1, max=10.0)

    monkeypatch.setitem(cfgmod._SECTIONS, "head", HeadWithMore)
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--help"])
    assert "--temperature" in capsys.readouterr().out.replace("\n", " ")
    args = parser.parse_args(["run", "--data", str(tiny_dataset), "--approach", "frozen", "--temperature", "0.1"])
    assert getattr(args, "head.temperature") == 0.1
    base = cfgmod.default_config("frozen")
    base.head = HeadWithMore(**dataclasses.asdict(base.head))
    assert build_config("frozen", args, base).head.temperature == 0.1


def test_the_old_flags_still_mean_what_they_meant(tiny_dataset):
    args = build_parser().parse_args(
        [
            "run",
            "--data",
            str(tiny_dataset),
            "--approach",
            "fine_tuning",
            "--backbone",
            "vgg16",
            "--epochs",
            "3",
            "--fine-tune-epochs",
            "2",
            "--fine-tune-learning-rate",
            "0.001",
            "--no-augmentation",
            "--views",
            "4",
            "--early-stopping",
            "5",
            "--split",
            "0.6",
            "0.2",
            "0.2",
            "--learning-rate",
            "0.01",
            "--weights",
            "none",
        ]
    )
    cfg = build_config("fine_tuning", args)
    assert (cfg.backbone.name, cfg.fit.epochs, cfg.fine_tune.epochs, cfg.fine_tune.learning_rate) == ("vgg16", 3, 2, 0.001)
    assert (cfg.augmentation.enabled, cfg.augmentation.views, cfg.fit.early_stopping_patience) == (False, 4, 5)
    assert (cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.test_fraction) == (0.6, 0.2, 0.2)
    assert (cfg.fit.learning_rate, cfg.data.path) == (0.01, str(tiny_dataset))


def test_a_flag_out_of_its_knobs_range_is_refused_naming_the_field(tiny_dataset, capsys):
    from engine.cli import main

    assert main(["run", "--data", str(tiny_dataset), "--approach", "frozen", "--rotation", "400", "--weights", "none"]) == 2
    assert "argument --rotation: degrees must be in [0, 180], got 400.0" in capsys.readouterr().err
