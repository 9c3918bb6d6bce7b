"""Data health: the maths on synthetic features (no TensorFlow), the feature pass and CLI on a tiny dataset, and the
acceptance test on real photos (flipped labels found, exact copies grouped, train/validation near-copies as leaks)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.insight import data_health as dh

# ---- the maths, on synthetic feature arrays -------------------------------------------------------------------


def _blobs(n_per_class=60, d=20, k=2, seed=0, gap=4.0):
    """Well-separated Gaussian classes: features and labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, gap, (k, d))
    x = np.concatenate([centres[j] + rng.normal(0, 1, (n_per_class, d)) for j in range(k)])
    y = np.repeat(np.arange(k), n_per_class)
    return x, y


def test_flipped_labels_rank_first_by_self_confidence():
    pytest.importorskip("sklearn")
    x, y = _blobs(k=3)
    flipped = np.array([3, 70, 130, 150])
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + 1) % 3
    probs = dh.out_of_fold_probabilities(x, noisy, 3, folds=5, seed=1)
    assert probs.shape == (180, 3) and np.allclose(probs.sum(axis=1), 1)
    found = dh.find_label_issues(probs, noisy)
    assert sorted(found.indices[:4]) == sorted(flipped)  # exactly the flipped ones, first
    assert list(found.suggested[:4]) == [int(y[i]) for i in found.indices[:4]]  # their true class suggested
    assert np.all(np.diff(found.scores) >= 0)  # lowest self-confidence first
    assert found.scores[0] == pytest.approx(probs[found.indices[0], noisy[found.indices[0]]])
    # the confident joint counts each photo once, under its given label (rows) and confident class (columns)
    joint = found.confident_joint  # given x confident class: its off-diagonal holds flipped photos only
    assert joint.sum() <= 180 and 0 < joint.sum() - np.trace(joint) <= 4 and joint[1, 2] == joint[2, 0] == 0


def test_confident_joint_uses_per_class_thresholds():
    # class 0 is under-confident (its photos get p0 of 0.4-0.5), so its threshold is its own mean p0, 0.45: photo 6,
    # labelled 1 and most probably 1 (0.5), clears class 0's threshold but not class 1's (0.8): an issue an argmax
    # never sees. Photo 0 clears no threshold and is not counted in the joint.
    probs = np.array(
        [
            [0.4, 0.3, 0.3],
            [0.45, 0.3, 0.25],
            [0.5, 0.25, 0.25],
            [0.05, 0.9, 0.05],
            [0.05, 0.9, 0.05],
            [0.05, 0.9, 0.05],
            [0.46, 0.5, 0.04],
            [0.05, 0.05, 0.9],
            [0.05, 0.05, 0.9],
        ]
    )
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert (probs.argmax(axis=1) == labels).all()
    found = dh.find_label_issues(probs, labels)
    assert list(found.indices) == [6] and list(found.suggested) == [0] and list(found.scores) == [0.5]
    assert found.confident_joint.tolist() == [[2, 0, 0], [1, 3, 0], [0, 0, 2]]


def test_a_photo_whose_most_probable_class_is_not_its_label_is_an_issue_too():
    # class 0 is confident (threshold 0.95): photo 3, labelled 1 with p0 = 0.6, clears no threshold (0.6 < 0.95,
    # 0.4 < 0.775), so the joint does not count it; its head still prefers class 0
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.1, 0.9], [0.6, 0.4], [0.1, 0.9], [0.1, 0.9]])
    labels = np.array([0, 0, 1, 1, 1, 1])
    found = dh.find_label_issues(probs, labels)
    assert found.confident_joint.sum() == 5
    assert list(found.indices) == [3] and list(found.suggested) == [0] and list(found.scores) == [0.4]


def test_duplicate_groups_join_exact_and_near_copies_transitively():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (8, 64))
    x[1] = x[0] + rng.normal(0, 0.05, 64)  # near-copy of 0
    x[2] = x[1] + rng.normal(0, 0.05, 64)  # near-copy of 1: one group 0-1-2
    hashes = [f"h{i}" for i in range(8)]
    hashes[5] = hashes[6] = "same"  # byte-identical files (their features may differ: a decoder's jitter)
    groups = dh.duplicate_groups(dh.unit_rows(x), hashes, threshold=0.95)
    by_members = {tuple(g.members): g for g in groups}
    assert set(by_members) == {(0, 1, 2), (5, 6)}
    assert by_members[(5, 6)].exact and by_members[(5, 6)].similarity == 1.0
    assert not by_members[(0, 1, 2)].exact and 0.95 <= by_members[(0, 1, 2)].similarity < 1.0
    assert dh.duplicate_groups(dh.unit_rows(x), [f"h{i}" for i in range(8)], threshold=0.9999) == []


def test_near_pairs_in_blocks_equal_the_whole_matrix(monkeypatch):
    rng = np.random.default_rng(3)
    u = dh.unit_rows(rng.normal(0, 1, (50, 4)))
    whole = {(i, j) for i in range(50) for j in range(i + 1, 50) if u[i] @ u[j] >= 0.8}
    monkeypatch.setattr(dh, "BLOCK", 7)
    assert {(i, j) for i, j, _ in dh.near_pairs(u, 0.8)} == whole and whole


def test_outliers_are_far_from_every_other_photo(monkeypatch):
    x, y = _blobs(n_per_class=50, d=10, k=2, seed=2)
    rng = np.random.default_rng(5)
    x[7] = rng.normal(0, 12, 10)  # a photo of neither class
    scores = dh.outlier_scores(dh.unit_rows(x))
    monkeypatch.setattr(dh, "BLOCK", 9)  # in blocks as at once
    assert dh.outlier_scores(dh.unit_rows(x)) == pytest.approx(scores)
    u = dh.unit_rows(x)
    nearest = np.sort([u[7] @ u[j] for j in range(len(u)) if j != 7])[-3:]  # itself left out
    assert dh.outlier_scores(u, k=3)[7] == pytest.approx(1 - nearest.mean())
    assert int(np.argmax(scores)) == 7 and scores[7] > dh.outlier_cut(scores)
    assert (scores > dh.outlier_cut(scores)).sum() <= 3


def _report(x, y, splits, hashes=None, **kw):
    paths = [f"/d/{s}/{i}.jpg" for i, s in enumerate(splits)]
    return paths, dh.health_report(x, y, splits, paths, hashes or [str(i) for i in range(len(y))], ["cats", "dogs"], **kw)


def test_report_shape_leaks_first_and_kept_photos_not_proposed_again():
    pytest.importorskip("sklearn")
    x, y = _blobs(n_per_class=40, d=64, k=2, seed=4, gap=1.5)
    splits = ["train"] * 30 + ["validation"] * 10 + ["train"] * 30 + ["validation"] * 10
    y[3] = 1  # a flipped training label
    x[75] = x[50] + 1e-3  # a copy of a training photo (a dog) in validation (a dog): a leak
    hashes = [str(i) for i in range(80)]
    hashes[20] = hashes[21] = "same"  # an exact copy inside train
    paths, doc = _report(x, y, splits, hashes, folds=5, similarity=0.97, seed=0)
    assert list(doc) == ["label_issues", "duplicates", "outliers", "summary"]
    top = doc["label_issues"][0]
    assert top == {"path": paths[3], "split": "train", "given": "dogs", "suggested": "cats", "score": top["score"]}
    assert 0 <= top["score"] < 0.5
    dups = doc["duplicates"]
    assert dups[0] == {
        "paths": [paths[50], paths[75]],
        "splits": ["train", "validation"],
        "similarity": dups[0]["similarity"],
        "exact": False,
        "leak": True,
    }
    assert dups[0]["similarity"] > 0.999 and len(dups) == 2
    assert {
        "paths": [paths[20], paths[21]],
        "splits": ["train", "train"],
        "similarity": 1.0,
        "exact": True,
        "leak": False,
    } in dups
    s = doc["summary"]
    assert s["folds"] == 5 and s["similarity_threshold"] == 0.97 and s["leaks"] == 1 and s["exact_groups"] == 1
    assert s["label_issues"] == len(doc["label_issues"]) and s["photos"] == 80
    kept = {paths[3], paths[75]}
    _, again = _report(x, y, splits, hashes, folds=5, similarity=0.97, seed=0, exclude=kept)
    assert paths[3] not in [i["path"] for i in again["label_issues"]]
    assert all(paths[75] not in d["paths"] for d in again["duplicates"]) and again["summary"]["leaks"] == 0
    assert again["summary"]["excluded"] == 2
    assert json.loads(json.dumps(doc)) == doc  # plain JSON: no NumPy scalars


# ---- real photos ----------------------------------------------------------------------------------------------

WEIGHTS = "weights/mobilenet_v2_1.0_imagenet_no_top.weights.h5"


def near_copy(src: Path, dst: Path, kind: str = "resized") -> None:
    """A copy a person would not tell apart: resized to 90 % ("resized"), or 4 % cropped off each side ("cropped"),
    saved again as JPEG at quality 75."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        if kind == "resized":
            im = im.resize((round(w * 0.9), round(h * 0.9)), Image.LANCZOS)
        else:
            dx, dy = round(w * 0.04), round(h * 0.04)
            im = im.crop((dx, dy, w - dx, h - dy))
        dst.parent.mkdir(parents=True, exist_ok=True)
        im.save(dst, "JPEG", quality=75)


def noisy_subset(
    root: Path,
    seed: int = 0,
    n_train: int = 300,
    n_val: int = 100,
    flip: float = 0.05,
    exact: int = 10,
    near: int = 20,
    near_kind: str = "resized",
) -> dict:
    """A seeded subset of cats_vs_dogs_small copied into `root` (n_train + n_train train, n_val + n_val validation),
    then: `flip` of the training photos moved to the other class folder, `exact` training photos copied byte for
    byte under new names into train, `near` training photos put into validation as near copies (same class).
    Returns the names of each planted kind (file names are unique in this dataset)."""
    from tests.conftest import ASSETS

    src = ASSETS / "cats_vs_dogs_small"
    rng = random.Random(seed)
    train = []
    for split, n in (("train", n_train), ("validation", n_val)):
        for cls in ("cats", "dogs"):
            (root / split / cls).mkdir(parents=True)
            for name in rng.sample(sorted(os.listdir(src / split / cls)), n):
                shutil.copyfile(src / split / cls / name, root / split / cls / name)
                if split == "train":
                    train.append((cls, name))
    other = {"cats": "dogs", "dogs": "cats"}
    flipped = rng.sample(train, round(flip * len(train)))
    for cls, name in flipped:
        os.replace(root / "train" / cls / name, root / "train" / other[cls] / name)
    clean = [t for t in train if t not in set(flipped)]
    sources = rng.sample(clean, exact + near)
    exact_pairs, near_pairs = [], []
    for i, (cls, name) in enumerate(sources[:exact]):
        shutil.copyfile(root / "train" / cls / name, root / "train" / cls / f"copy_{i}_{name}")
        exact_pairs.append((name, f"copy_{i}_{name}"))
    for i, (cls, name) in enumerate(sources[exact:]):
        near_copy(root / "train" / cls / name, root / "validation" / cls / f"near_{i}_{name}", near_kind)
        near_pairs.append((name, f"near_{i}_{name}"))
    return {"flipped": [name for _, name in flipped], "exact": exact_pairs, "near": near_pairs}


def real_config(root: Path, size: int = 128):
    from engine.config import default_config
    from tests.conftest import ASSETS

    cfg = default_config("feature_extraction")
    cfg.data.path = str(root)
    cfg.backbone.name, cfg.backbone.weights, cfg.backbone.image_size = "mobilenet_v2", str(ASSETS / WEIGHTS), size
    return cfg


# ---- the feature pass and the command, on a tiny generated dataset ---------------------------------------------


def test_one_feature_pass_per_split_then_none_and_exact_copies_by_their_bytes(tiny_dataset, tmp_path):
    from engine.training.approaches import prepare_data
    from engine.training.data_health import data_health
    from tests.conftest import tiny_config

    copy = tiny_dataset / "test" / "dogs" / "copy_of_train_dog.png"
    shutil.copyfile(tiny_dataset / "train" / "dogs" / "dogs_0.png", copy)  # a training photo in test: a leak
    data = prepare_data(str(tiny_dataset))
    cfg = tiny_config("feature_extraction", tiny_dataset)
    kw = {"runs_dir": tmp_path / "runs", "cache_dir": tmp_path / "cache"}
    first = data_health(cfg, data, **kw)
    s = first["summary"]
    assert s["feature_cache"]["misses"] == 3 and s["splits"] == ["train", "validation", "test"]  # the base once per split
    assert s["photos"] == 33 and s["labelled_photos"] == 24 and s["dataset_root"] == str(tiny_dataset.resolve())
    assert (s["backbone"], s["image_size"], s["folds"], s["similarity_threshold"]) == ("vgg16", 32, 5, dh.DEFAULT_SIMILARITY)
    exact = [d for d in first["duplicates"] if d["exact"]]
    assert exact == [
        {
            "paths": [str(tiny_dataset / "train/dogs/dogs_0.png"), str(copy)],
            "splits": ["train", "test"],
            "similarity": 1.0,
            "exact": True,
            "leak": True,
        }
    ]
    assert first["duplicates"][0]["leak"]  # leaks first
    assert all(i["split"] in ("train", "validation") for i in first["label_issues"])
    again = data_health(cfg, data, exclude={str(copy)}, **kw)
    assert again["summary"]["feature_cache"]["misses"] == 0 and again["summary"]["feature_cache"]["hits"] == 3
    assert not any(d["exact"] for d in again["duplicates"]) and again["summary"]["excluded"] == 1


def test_cli_writes_the_report_and_says_the_top_of_each_list(tiny_dataset, tmp_path, capsys):
    from engine import cli

    out = tmp_path / "health.json"
    argv = [
        "data-health",
        "--data",
        str(tiny_dataset),
        "--backbone",
        "vgg16",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--folds",
        "3",
        "--similarity",
        "0.99",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    text, err = capsys.readouterr()
    doc = json.loads(out.read_text())
    assert list(doc) == ["label_issues", "duplicates", "outliers", "summary"]
    assert doc["summary"]["folds"] == 3 and doc["summary"]["similarity_threshold"] == 0.99
    assert text.startswith("Label issues: ") and "\nDuplicates: " in text and "\nOutliers: " in text
    assert "[data-health] train: 16/16 images through the base" in err and "[data-health] caching test features" in err
    assert cli.main([*argv[:-2], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["feature_cache"]["misses"] == 0


@pytest.mark.parametrize(
    "flag, value, says",
    [
        ("--folds", "1", "--folds"),
        ("--similarity", "1.5", "--similarity"),
        ("--similarity", "nan", "--similarity"),
        ("--approach", "all", "--approach"),
    ],
)
def test_cli_bad_requests_exit_2_with_one_line(tiny_dataset, tmp_path, capsys, flag, value, says):
    from engine import cli

    argv = ["data-health", "--data", str(tiny_dataset), "--cache-dir", str(tmp_path / "c"), flag, value]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0]


def test_photos_kept_in_curation_are_not_proposed(tiny_dataset, monkeypatch):
    from engine.cli import data_health as cmd

    assert cmd.kept_paths(str(tiny_dataset)) == set()  # nothing kept yet (or no curation module yet)
    from engine.data import curation

    photo = tiny_dataset / "train" / "cats" / "cats_0.png"
    curation.keep(str(tiny_dataset), [str(photo)])
    assert cmd.kept_paths(str(tiny_dataset)) == {str(photo)}


@pytest.mark.real_data
@pytest.mark.slow
def test_flipped_labels_copies_and_leaks_are_found_in_real_photos(tmp_path):
    """300 + 300 training and 100 + 100 validation photos of cats_vs_dogs_small (seeded), MobileNetV2 at 160 px:
    5 % of the training labels flipped (30), 10 exact copies in train, 20 validation photos that are training photos
    resized to 90 % and saved again as JPEG at quality 75. About 20 s on two CPU cores."""
    from engine.training.approaches import prepare_data
    from engine.training.data_health import data_health
    from tests.conftest import require_assets

    require_assets()
    root = tmp_path / "noisy"
    planted = noisy_subset(root, seed=0)
    doc = data_health(real_config(root, 160), prepare_data(str(root)), runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    name = os.path.basename
    flipped, n = set(planted["flipped"]), len(planted["flipped"])
    ranked = [name(i["path"]) for i in doc["label_issues"]]
    first_n, first_2n = sum(f in flipped for f in ranked[:n]) / n, sum(f in flipped for f in ranked[: 2 * n]) / n
    groups = [{name(p) for p in d["paths"]} for d in doc["duplicates"]]
    exact = sum(any(set(pair) <= g for g, d in zip(groups, doc["duplicates"]) if d["exact"]) for pair in planted["exact"])
    leaks = sum(any(set(pair) <= g for g, d in zip(groups, doc["duplicates"]) if d["leak"]) for pair in planted["near"])
    print(
        f"flipped among the first {n} issues: {first_n:.0%}; flipped among the first {2 * n}: {first_2n:.0%}; "
        f"exact copies grouped {exact}/10; near-copies as leaks {leaks}/20; {doc['summary']}"
    )
    assert first_n >= 0.75 and first_2n >= 0.85
    assert exact == len(planted["exact"])
    assert leaks >= 0.9 * len(planted["near"])
    assert all(d["leak"] for d in doc["duplicates"][:leaks])  # leaks first
    assert doc["summary"]["feature_cache"]["misses"] == 2


@pytest.mark.real_data
@pytest.mark.slow
def test_the_near_copy_threshold_parts_copies_from_different_photos(tmp_path):
    """The default threshold against real copies: 20 resized (90 %, JPEG 75) copies score above it, the 4 %-cropped
    ones mostly above 0.8, and no two different photos of 600 reach 0.85 (measured on all 3000 of cats_vs_dogs_small
    at 150 px: the closest two different photos, two beagles, 0.822; a real duplicate in it, 0.984)."""
    from engine.insight.projection import pool
    from engine.store.runs import RunStore
    from engine.training.approaches import prepare_data
    from engine.training.feature_map import _context
    from tests.conftest import require_assets

    require_assets()
    root = tmp_path / "copies"
    planted = noisy_subset(root, seed=1, n_train=150, n_val=50, flip=0.0, exact=0, near=20)
    for i, (orig, _) in enumerate(planted["near"]):  # the same photos cropped too
        cls = "cats" if orig.startswith("cat") else "dogs"
        near_copy(root / "train" / cls / orig, root / "validation" / cls / f"crop_{i}_{orig}", "cropped")
    data = prepare_data(str(root))
    ctx = _context(
        real_config(root, 160), data, "float32", RunStore(tmp_path / "runs"), tmp_path / "cache", lambda e: None, lambda: False
    )
    files = [name for s in ("train", "validation") for name in map(os.path.basename, data.splits[s].files)]
    unit = dh.unit_rows(np.concatenate([pool(ctx.features(s, "")) for s in ("train", "validation")]))
    at = {f: i for i, f in enumerate(files)}
    sims = unit @ unit.T
    resized = np.array([sims[at[a], at[b]] for a, b in planted["near"]])
    cropped = np.array([sims[at[a], at[f"crop_{i}_{a}"]] for i, (a, _) in enumerate(planted["near"])])
    planted_names = {n for a, b in planted["near"] for n in (a, b)} | {
        f"crop_{i}_{a}" for i, (a, _) in enumerate(planted["near"])
    }
    others = [at[f] for f in files if f not in planted_names]
    between = sims[np.ix_(others, others)][np.triu_indices(len(others), 1)]
    print(
        f"resized copies {resized.min():.3f}-{resized.max():.3f}, cropped {cropped.min():.3f}-{cropped.max():.3f}, "
        f"different photos at most {between.max():.3f} ({len(others)} photos)"
    )
    assert resized.min() >= dh.DEFAULT_SIMILARITY
    assert np.mean(cropped >= 0.8) >= 0.9
    assert between.max() < 0.85 and between.max() < dh.DEFAULT_SIMILARITY
