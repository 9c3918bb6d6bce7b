import pytest

from engine.config import ConfigError, RunConfig, default_config, validate


def test_lecture_defaults_per_approach():
    fe, fr, ft = (default_config(a) for a in ("feature_extraction", "frozen", "fine_tuning"))
    assert (fe.fit.epochs, fr.fit.epochs, ft.fit.epochs, ft.fine_tune.epochs) == (30, 20, 30, 30)
    assert (fe.head.dropout, fr.head.dropout, ft.head.dropout) == (0.5, 0.6, 0.6)
    assert fe.fit.learning_rate == fr.fit.learning_rate == 2e-5 and ft.fine_tune.learning_rate == 1e-5
    assert fe.fit.batch_size == 20 and fe.head.dense_units == 256 and fe.fit.optimizer == "rmsprop"
    assert not fe.augmentation.enabled and fr.augmentation.enabled
    assert fr.augmentation.rotation == 20 and fr.augmentation.zoom == 0.2 and fr.augmentation.vertical_flip


def test_json_round_trip_and_unknown_keys_ignored():
    cfg = default_config("fine_tuning")
    cfg.head.pooling = "avg"
    raw = cfg.to_dict()
    raw["head"]["from_the_future"] = 1
    raw["resolved"] = {"image_size": 150}
    back = RunConfig.from_dict(raw)
    assert back == cfg
    assert (
        RunConfig.from_dict({k: v for k, v in raw.items() if k != "compute"}).compute == default_config("frozen").compute
    )  # old runs
    assert RunConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    "section,name,value,field",
    [
        ("fit", "epochs", 0, "fit.epochs"),
        ("fit", "learning_rate", -1.0, "fit.learning_rate"),
        ("head", "dropout", 1.5, "head.dropout"),
        ("head", "pooling", "max", "head.pooling"),
        ("backbone", "image_size", 16, "backbone.image_size"),
        ("augmentation", "rotation", 400, "augmentation.rotation"),
        ("fine_tune", "unfreeze_blocks", 0, "fine_tune.unfreeze_blocks"),
        ("compute", "distribute", "cluster", "compute.distribute"),
        ("compute", "precision", "float8", "compute.precision"),
        ("compute", "in_memory_mb", -1, "compute.in_memory_mb"),
    ],
)
def test_validate_names_the_bad_field(section, name, value, field):
    cfg = default_config("frozen")
    setattr(getattr(cfg, section), name, value)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(cfg)


def test_fractions_must_sum_to_one():
    cfg = default_config("frozen")
    cfg.data.test_fraction = 0.3
    with pytest.raises(ConfigError, match="add up to 1"):
        validate(cfg)


def test_unknown_approach():
    with pytest.raises(ConfigError, match="approach"):
        default_config("magic")


def test_field_metadata_drives_validate_and_the_cli_choices(monkeypatch, capsys):
    import dataclasses

    from engine import cli, config
    from engine.config import FitConfig, field_meta

    m = field_meta("fit", "epochs")
    assert (m["min"], m["max"], m["integer"]) == (1, 1000, True) and m["help"]
    assert field_meta("fit", "batch_size")["max"] == 4096 and field_meta("head", "dropout")["max"] == 0.95
    assert field_meta("fit", "optimizer")["choices"] == config.OPTIMIZERS
    with pytest.raises(ConfigError, match=r"fit\.nope: no such setting"):
        field_meta("fit", "nope")

    cfg = default_config("frozen")
    cfg.fit.batch_size = 100000  # an upper bound that used to live only in the dashboard's widget
    with pytest.raises(ConfigError, match=r"^fit\.batch_size: must be <= 4096, got 100000$"):
        validate(cfg)
    cfg.fit.batch_size = 20
    cfg.head.dropout = 0.96
    with pytest.raises(ConfigError, match=r"^head\.dropout: must be in \[0, 0\.95\], got 0\.96$"):
        validate(cfg)
    cfg.head.dropout = 0.95
    validate(cfg)

    # Changing the metadata changes what validate() and the CLI accept: there is no second copy.
    epochs = next(f for f in dataclasses.fields(FitConfig) if f.name == "epochs")
    monkeypatch.setattr(epochs, "metadata", {**epochs.metadata, "max": 5})
    cfg.fit.epochs = 6
    with pytest.raises(ConfigError, match=r"^fit\.epochs: must be <= 5, got 6$"):
        validate(cfg)
    optimizer = next(f for f in dataclasses.fields(FitConfig) if f.name == "optimizer")
    monkeypatch.setattr(optimizer, "metadata", {**optimizer.metadata, "choices": ("adam", "lion")})
    from engine.cli.flags import FlagRefused

    with pytest.raises(FlagRefused, match=r"argument --optimizer: invalid choice: 'rmsprop' \(choose from 'adam', 'lion'\)"):
        cli.build_parser().parse_args(["run", "--data", "x", "--approach", "frozen", "--optimizer", "rmsprop"])
    assert (
        getattr(
            cli.build_parser().parse_args(["run", "--data", "x", "--approach", "frozen", "--optimizer", "lion"]), "fit.optimizer"
        )
        == "lion"
    )


def test_whole_numbers_and_empty_weights_are_refused():
    cfg = default_config("frozen")
    cfg.fit.epochs = 2.5
    with pytest.raises(ConfigError, match=r"^fit\.epochs: must be a whole number, got 2\.5$"):
        validate(cfg)
    cfg = default_config("frozen")
    cfg.backbone.weights = ""
    with pytest.raises(ConfigError, match="backbone.weights: the local weights file path is empty"):
        validate(cfg)


@pytest.mark.parametrize(
    "flag,field",
    [
        ("--learning-rate", "fit.learning_rate"),
        ("--dropout", "head.dropout"),
        ("--alpha", "backbone.alpha"),
        ("--fine-tune-learning-rate", "fine_tune.learning_rate"),
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_at_input_naming_the_field(tiny_dataset, tmp_path, capsys, flag, field, value):
    from engine import cli

    args = [
        "run",
        "--data",
        str(tiny_dataset),
        "--approach",
        "fine_tuning",
        "--weights",
        "none",
        "--runs-dir",
        str(tmp_path / "r"),
    ]
    assert cli.main([*args, f"{flag}={value}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: argument {flag}: must be a finite number, got {float(value)} (see python -m engine run --help)"
    ]
    assert not (tmp_path / "r").exists()  # refused before any run folder


@pytest.mark.parametrize(
    "text,says",
    [
        ('{"fit": {"learning_rate": NaN}}', "holds NaN, which is not a number any setting takes"),
        ('{"head": {"dropout": Infinity}}', "holds Infinity, which is not a number any setting takes"),
        ("42", "must hold one JSON object of settings"),
        ('"fit"', "must hold one JSON object of settings"),
        ("[]", "must hold one JSON object of settings"),
        ("[" * 100_000 + "]" * 100_000, "is nested too deeply to be a config"),
        ('{"fit": {"epochs": [[[[[[[[[[1]]]]]]]]]]}}', "is nested deeper than a config (8 levels)"),
        ('{"x": "' + "a" * 1_000_001 + '"}', "is 1,000,010 bytes, over the limit of 1,000,000 bytes"),
    ],
)
def test_a_config_file_must_be_one_bounded_json_object_of_finite_numbers(tiny_dataset, tmp_path, capsys, text, says):
    from engine import cli

    path = tmp_path / "cfg.json"
    path.write_text(text)
    assert (
        cli.main(
            ["run", "--data", str(tiny_dataset), "--approach", "frozen", "--config", str(path), "--runs-dir", str(tmp_path / "r")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --config {path}: ") and says in err[0], err
    assert not (tmp_path / "r").exists()
