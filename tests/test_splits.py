"""engine/data/splits.py's sample of at most N photos per class (`--max-per-class`): seeded, bounded, recorded."""

import json

import pytest

from engine import cli
from engine.config import ConfigError, RunConfig, validate
from engine.data.scan import scan_dataset
from engine.data.splits import limit_per_class, sample_per_class
from tests.conftest import make_split_dataset


def listing(n_train=70, n_val=15, n_test=15, classes=("cats", "dogs")):
    """split -> class -> file names, as a scan lists them (no files needed: sampling reads names only)."""
    sizes = {"train": n_train, "validation": n_val, "test": n_test}
    return {s: {c: [f"/d/{s}/{c}/{k}.png" for k in range(n)] for c in classes} for s, n in sizes.items()}


def per_class(files):
    return {c: sum(len(by_class[c]) for by_class in files.values()) for c in next(iter(files.values()))}


def test_the_same_seed_draws_the_same_photos_and_another_seed_others():
    a, b, c = (sample_per_class(listing(), 20, seed) for seed in (7, 7, 8))
    assert a == b and a != c
    assert per_class(a) == {"cats": 20, "dogs": 20}
    assert {s: len(a[s]["cats"]) for s in a} == {"train": 14, "validation": 3, "test": 3}  # the splits' proportions
    for split, by_class in a.items():  # each kept photo comes from its own split: test photos stay test photos
        for cls, files in by_class.items():
            assert set(files) <= set(listing()[split][cls]) and files == sorted(files)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 99])
def test_no_class_ever_keeps_more_than_n_and_small_n_keeps_validation_first(limit):
    kept = sample_per_class(listing(n_train=40, n_val=2, n_test=1), limit, seed=1)
    assert all(n == min(limit, 43) for n in per_class(kept).values())
    if limit >= 3:  # every split that had photos keeps one before train gets more
        assert all(kept[s]["dogs"] for s in kept)


def test_zero_means_every_photo_and_a_small_class_is_kept_whole():
    files = listing(n_train=4, n_val=1, n_test=1)
    assert sample_per_class(files, 0, seed=1) is files
    assert sample_per_class(files, 10, seed=1) == files


def test_the_report_says_it_is_a_sample(tmp_path):
    root = make_split_dataset(tmp_path / "d", counts={"train": 8, "validation": 4, "test": 4})
    report = limit_per_class(scan_dataset(root), 6, seed=42)
    assert report.counts == {
        "train": {"cats": 3, "dogs": 3},
        "validation": {"cats": 2, "dogs": 2},
        "test": {"cats": 1, "dogs": 1},
    }
    assert report.warnings[-1] == "a sample: at most 6 photos per class (seed 42), 12 of 32 usable images"


def test_the_knob_is_validated_and_refused_below_zero_in_one_line(capsys):
    cfg = RunConfig()
    cfg.data.max_per_class = -1
    with pytest.raises(ConfigError, match=r"data.max_per_class: must be a whole number in \[0, 1e\+07\] \(0 = all\), got -1"):
        validate(cfg)
    assert cli.main(["run", "--data", "x", "--approach", "frozen", "--max-per-class", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "argument --max-per-class: must be a whole number in [0, 1e+07] (0 = all), got -1" in err


def test_a_run_trains_on_the_sample_and_records_it(tmp_path, capsys):
    root = make_split_dataset(tmp_path / "d", counts={"train": 8, "validation": 4, "test": 4})
    runs = tmp_path / "runs"
    rc = cli.main(
        [
            "run",
            "--data",
            str(root),
            "--approach",
            "feature_extraction",
            "--backbone",
            "vgg16",
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--max-per-class",
            "6",
            "--runs-dir",
            str(runs),
            "--quiet",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "a sample: at most 6 photos per class (seed 42), 12 of 32 usable images" in err
    run_id = json.loads(out)["runs"][0]["id"]
    config = json.loads((runs / run_id / "config.json").read_text())
    assert config["data"]["max_per_class"] == 6
    scored = json.loads((runs / run_id / "metrics.json").read_text())
    assert [sum(scored[s]["confusion_matrix"], []) for s in ("validation", "test")]  # scored on the sample's photos only
    assert [sum(sum(scored[s]["confusion_matrix"], [])) for s in ("validation", "test")] == [4, 2]


def test_every_tool_that_prepares_the_data_sees_the_same_sample(tmp_path):
    from engine.training.prepared import prepare_data

    root = make_split_dataset(tmp_path / "d", counts={"train": 8, "validation": 4, "test": 4})
    data = prepare_data(str(root), seed=42, max_per_class=6)  # runs, estimate, finder, feature map, data health
    assert data.report.counts == limit_per_class(scan_dataset(root), 6, seed=42).counts
    assert {s: len(sp.files) for s, sp in data.splits.items()} == {"train": 6, "validation": 4, "test": 2}
    assert sum(len(sp.files) for sp in prepare_data(str(root), seed=42).splits.values()) == 32  # 0 = every photo
