"""Presets (engine/insight/presets.py): published setups applied to configs, listed and used by the CLI."""

from __future__ import annotations

import json

import pytest

from engine.config import APPROACHES, ConfigError, default_config, validate
from engine.insight.presets import PRESETS, apply_preset, get_preset, published_for


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("approach", APPROACHES)
def test_every_preset_gives_a_valid_config(name, approach):
    cfg = validate(apply_preset(default_config(approach), name))
    for dotted, value in PRESETS[name].overrides(approach).items():
        section, attr = dotted.split(".")
        assert getattr(getattr(cfg, section), attr) == value


def test_lecture_preset_is_the_lecture_with_its_published_numbers():
    fe, fr, ft = (apply_preset(default_config(a), "lecture") for a in APPROACHES)
    assert (fe.backbone.name, fe.backbone.image_size, fe.backbone.preprocessing) == ("vgg16", 150, "rescale")
    assert (fe.head.dropout, fr.head.dropout, fr.fit.epochs, ft.fine_tune.learning_rate) == (0.5, 0.6, 20, 1e-5)
    assert not fe.augmentation.enabled and fr.augmentation.vertical_flip
    assert [published_for("lecture", a)["val_accuracy"] for a in APPROACHES] == [0.904, 0.866, 0.919]
    assert published_for("tf_tutorial", "feature_extraction") == {}  # the tutorial has no such run
    assert published_for("best_cpu", "feature_extraction")["test_accuracy"] >= 0.985


def test_unknown_preset_is_a_one_line_error():
    with pytest.raises(ConfigError, match="--preset: unknown preset 'keras'; choose one of lecture, "):
        get_preset("keras")


@pytest.mark.slow
def test_cli_lists_presets_and_runs_one_with_flags_on_top(tiny_dataset, tmp_path, capsys):
    from engine.cli import main

    assert main(["presets", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["presets"]}
    assert set(listed) == set(PRESETS) and listed["dlwp_5_3"]["published"]["fine_tuning"] == {"val_accuracy": 0.97}
    assert main(["presets"]) == 0 and "tf_tutorial" in capsys.readouterr().out

    assert (
        main(
            [
                "run",
                "--data",
                str(tiny_dataset),
                "--approach",
                "frozen",
                "--preset",
                "tf_tutorial",
                "--weights",
                "none",
                "--image-size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--views",
                "1",
                "--runs-dir",
                str(tmp_path / "r"),
                "--cache-dir",
                str(tmp_path / "c"),
                "--quiet",
            ]
        )
        == 0
    )
    run = json.loads(capsys.readouterr().out)["runs"][0]
    config = json.loads((tmp_path / "r" / run["id"] / "config.json").read_text())
    assert (config["head"]["pooling"], config["fit"]["optimizer"], config["augmentation"]["rotation"]) == ("avg", "adam", 72.0)
    assert (config["backbone"]["image_size"], config["fit"]["epochs"]) == (32, 1)  # flags win over the preset
    assert config["resolved"]["preset"] == "tf_tutorial" and run["preset"] == "tf_tutorial"
    assert main(["run", "--data", str(tiny_dataset), "--approach", "frozen", "--preset", "nope"]) == 2
    assert "--preset: unknown preset 'nope'" in capsys.readouterr().err
