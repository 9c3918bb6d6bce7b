"""engine/insight/ensemble.py and `python -m engine ensemble`: hand-made predictions with known answers (no model, no TensorFlow)."""

import json
import math

import numpy as np
import pytest

from engine import cli
from engine.insight.ensemble import EnsembleError, ensemble_of_runs, ensemble_problem
from engine.store.runs import RunStore
from tests.conftest import write_run

FILES = [
    "/d/validation/cats/c1.jpg",
    "/d/validation/cats/c2.jpg",
    "/d/validation/dogs/d1.jpg",
    "/d/validation/dogs/d2.jpg",
    "/d/validation/dogs/d3.jpg",
]
LABELS = [0, 0, 1, 1, 1]
# probability of "dogs" per file; A gets c2 and d2 wrong (0.6 accuracy), B gets d1 and d3 wrong (0.6 accuracy)
P_A = [0.2, 0.6, 0.7, 0.4, 0.8]
P_B = [0.4, 0.3, 0.45, 0.9, 0.25]


def make_run(
    runs_dir,
    rid,
    p_dog,
    *,
    val_acc,
    files=FILES,
    labels=LABELS,
    classes=("cats", "dogs"),
    dataset="/d",
    test=None,
    state="finished",
):
    """A run folder with metrics.json's validation accuracy and predictions.json (binary: p_dog is P(class 1))."""
    cfg = {
        "approach": "frozen",
        "backbone": {"name": "mobilenet_v2"},
        "data": {"path": dataset},
        "resolved": {"classes": list(classes), "image_size": 32, "dataset_root": dataset},
    }
    path = write_run(runs_dir, rid, config=cfg, state=state)
    metrics = json.loads((path / "metrics.json").read_text())
    metrics["validation"] = {"accuracy": val_acc}
    (path / "metrics.json").write_text(json.dumps(metrics))
    split = lambda fs, ls, ps: {"files": fs, "labels": ls, "probabilities": [[1 - p, p] for p in ps]}  # noqa: E731
    splits = {"validation": split(files, labels, p_dog)}
    if test is not None:
        splits["test"] = split(*test)
    (path / "predictions.json").write_text(json.dumps({"classes": list(classes), "splits": splits}))
    return path


def records(runs_dir, *ids):
    store = RunStore(runs_dir)
    return [store.load(i) for i in ids]


def log_loss(p_true) -> float:
    return float(-np.mean(np.log(p_true)))


def test_plain_average_scores_the_mean_probabilities(tmp_path):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    make_run(tmp_path, "B", P_B, val_acc=0.6)
    out = ensemble_of_runs(records(tmp_path, "A", "B"))
    # mean P(dog): 0.3, 0.45, 0.575, 0.65, 0.525: every image right, although each run alone gets two wrong
    mean = [(a + b) / 2 for a, b in zip(P_A, P_B)]
    p_true = [1 - mean[0], 1 - mean[1], mean[2], mean[3], mean[4]]
    val = out.splits["validation"]
    assert out.weights == [0.5, 0.5] and out.members == ["A", "B"]
    assert val["ensemble"]["accuracy"] == 1.0 and val["ensemble"]["num_images"] == 5
    assert val["ensemble"]["loss"] == pytest.approx(log_loss(p_true), abs=1e-9)
    assert val["members"]["A"]["accuracy"] == pytest.approx(0.6) and val["members"]["B"]["accuracy"] == pytest.approx(0.6)
    assert val["members"]["A"]["loss"] == pytest.approx(log_loss([0.8, 0.4, 0.7, 0.4, 0.8]), abs=1e-9)


def test_weighted_by_recorded_validation_accuracy(tmp_path):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    make_run(tmp_path, "B", P_B, val_acc=0.9)  # the recorded number weighs, not the one recomputed from predictions
    out = ensemble_of_runs(records(tmp_path, "A", "B"), weighted=True)
    assert out.weights == pytest.approx([0.4, 0.6]) and out.weighted
    # 0.4 * P_A + 0.6 * P_B: 0.32, 0.42, 0.55, 0.70, 0.47 -> d3 (a dog) now wrong
    assert out.splits["validation"]["ensemble"]["accuracy"] == pytest.approx(0.8)
    mixed = [0.4 * a + 0.6 * b for a, b in zip(P_A, P_B)]
    p_true = [1 - mixed[0], 1 - mixed[1], mixed[2], mixed[3], mixed[4]]
    assert out.splits["validation"]["ensemble"]["loss"] == pytest.approx(log_loss(p_true), abs=1e-9)


def test_the_same_files_in_another_order_are_matched_by_name(tmp_path):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    order = [4, 2, 0, 3, 1]
    make_run(
        tmp_path, "B", [P_B[i] for i in order], val_acc=0.6, files=[FILES[i] for i in order], labels=[LABELS[i] for i in order]
    )
    assert ensemble_of_runs(records(tmp_path, "A", "B")).splits["validation"]["ensemble"]["accuracy"] == 1.0


@pytest.mark.parametrize(
    "change, says",
    [
        (
            {"files": FILES[:4] + ["/d/validation/dogs/other.jpg"]},
            "run B: its validation split holds other files than run A's (5 vs 5 images, e.g. /d/validation/dogs/d3.jpg in only one of them); "
            "choose runs trained with the same split",
        ),
        (
            {"files": FILES[:4], "p_dog": P_B[:4], "labels": LABELS[:4]},
            "run B: its validation split holds other files than run A's (4 vs 5",
        ),
        ({"labels": [0, 0, 1, 1, 0]}, "run B: its validation labels differ from run A's for the same files"),
        (
            {"classes": ("dogs", "cats")},
            "run B: classes dogs, cats differ from run A's (cats, dogs); an ensemble needs the same classes",
        ),
        ({"dataset": "/other"}, "run B: trained on /other, not on /d (run A); an ensemble needs runs of one dataset"),
        ({"state": "failed"}, "run B is failed; an ensemble takes runs that ended and were scored"),
    ],
)
def test_runs_that_differ_are_refused_in_one_line_naming_the_run(tmp_path, change, says):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    make_run(tmp_path, "B", change.pop("p_dog", P_B), val_acc=0.6, **change)
    with pytest.raises(EnsembleError) as err:
        ensemble_of_runs(records(tmp_path, "A", "B"))
    assert str(err.value).startswith(says) and "\n" not in str(err.value)


def test_test_is_scored_once_only_when_every_run_has_test(tmp_path):
    test = (["/d/test/cats/t1.jpg", "/d/test/dogs/t2.jpg"], [0, 1])
    make_run(tmp_path, "A", P_A, val_acc=0.6, test=(*test, [0.3, 0.4]))
    make_run(tmp_path, "B", P_B, val_acc=0.6, test=(*test, [0.2, 0.8]))
    make_run(tmp_path, "C", P_B, val_acc=0.6)
    both = ensemble_of_runs(records(tmp_path, "A", "B"))
    assert both.splits["test"]["ensemble"]["accuracy"] == 1.0  # mean P(dog) 0.25, 0.6
    assert both.splits["test"]["members"]["A"]["accuracy"] == 0.5
    assert both.to_dict()["test_scored_once"] and both.test_note.startswith("scored once")
    without = ensemble_of_runs(records(tmp_path, "A", "B", "C"))
    assert without.splits["test"] is None and without.test_note == "not scored: run C has no test split"
    assert without.splits["validation"]["ensemble"]["num_images"] == 5
    assert ensemble_of_runs(records(tmp_path, "B", "C")).test_note.startswith("not scored: run C")
    make_run(tmp_path, "D", P_A, val_acc=0.6)
    assert (
        ensemble_of_runs(records(tmp_path, "C", "D")).test_note == "not scored: the dataset has no test split (validation only)"
    )


def test_ensemble_problem_is_the_cheap_check_compare_shows(tmp_path):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    make_run(tmp_path, "B", P_B, val_acc=0.6)
    make_run(tmp_path, "C", P_B, val_acc=0.6, classes=("cats", "birds"))
    assert ensemble_problem(records(tmp_path, "A", "B")) == ""
    assert ensemble_problem(records(tmp_path, "A")) == "choose two or more runs"
    assert ensemble_problem(records(tmp_path, "A", "C")) == "run C is of another dataset or class list than run A"
    (tmp_path / "B" / "predictions.json").unlink()
    assert ensemble_problem(records(tmp_path, "A", "B")).startswith("run B has no stored predictions")


def test_cli_prints_a_line_per_member_and_the_ensemble_or_json(tmp_path, capsys):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    make_run(tmp_path, "B", P_B, val_acc=0.9)
    base = ["ensemble", "--run", "A", "--run", "B", "--runs-dir", str(tmp_path)]
    assert cli.main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("validation          A  accuracy 0.6000  loss ") and lines[0].endswith("weight 0.500")
    assert lines[1].startswith("validation          B  accuracy 0.6000")
    assert lines[2].startswith("validation          ensemble of 2 runs (equal weights)  accuracy 1.0000  loss ")
    assert lines[2].endswith("(5 images)")
    assert lines[3] == "test                not scored: the dataset has no test split (validation only)" and len(lines) == 4
    assert cli.main([*base, "--weighted", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights"] == pytest.approx({"A": 0.4, "B": 0.6}) and out["weighted"] and not out["tta"]
    assert out["splits"]["validation"]["ensemble"]["accuracy"] == pytest.approx(0.8) and out["splits"]["test"] is None
    assert not out["test_scored_once"] and math.isfinite(out["splits"]["validation"]["ensemble"]["loss"])


@pytest.mark.parametrize(
    "args, says",
    [
        (["--run", "A"], "error: --run: give two or more runs for an ensemble (or one run with --tta"),
        (["--run", "A", "--run", "A"], "error: run A: chosen twice"),
        (["--run", "A", "--run", "nope"], "error: no run 'nope' in "),
        (["--run", "A", "--run", "C"], "error: run C: classes cats, birds differ from run A's"),
    ],
)
def test_cli_refusals_exit_2_with_one_line(tmp_path, capsys, args, says):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    make_run(tmp_path, "C", P_B, val_acc=0.6, classes=("cats", "birds"))
    assert cli.main(["ensemble", *args, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1, err


SIZE = 8


def half_image(path, bright_left: bool, level: int = 200):
    """An 8-px image, black but for one half at `level`."""
    from PIL import Image

    arr = np.zeros((SIZE, SIZE, 3), np.uint8)
    half = slice(0, SIZE // 2) if bright_left else slice(SIZE // 2, SIZE)
    arr[:, half] = level
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return str(path)


def left_right_model(k: float, bias: float):
    """A saved-model stand-in telling left from right: P(dogs) = sigmoid(k * (left half's mean - right half's) + bias)."""
    import keras

    kernel = np.zeros((SIZE, SIZE, 3), np.float32)
    kernel[:, : SIZE // 2], kernel[:, SIZE // 2 :] = k / (SIZE * SIZE * 3 / 2), -k / (SIZE * SIZE * 3 / 2)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
    model.layers[-1].set_weights([kernel.reshape(-1, 1), np.array([bias], np.float32)])
    return model


def p_dog(k, bias, left, right, tta=False):
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    z = k * (left - right)
    return (sig(z + bias) + sig(-z + bias)) / 2 if tta else sig(z + bias)


MODELS = {"lr1": (1 / 50, 0.5, 0.8), "lr2": (1 / 25, -1.0, 0.6)}  # run: k, bias, recorded validation accuracy


@pytest.fixture(scope="module")
def left_right_runs(tmp_path_factory):
    return write_left_right_runs(tmp_path_factory.mktemp("left-right"))


def write_left_right_runs(root):
    """(runs_dir, images, labels): two stored runs of Keras models that tell left from right, on 8-px images (no training)."""
    images = {
        s: [half_image(root / "d" / s / c / f"{c}{i}.png", c == "dogs", 120 + 40 * i) for c in ("cats", "dogs") for i in range(n)]
        for s, n in (("validation", 2), ("test", 1))
    }
    labels = {s: [int("/dogs/" in f) for f in fs] for s, fs in images.items()}
    for rid, (k, bias, acc) in MODELS.items():
        make_run(
            root / "runs",
            rid,
            [0.5] * 4,
            val_acc=acc,
            files=images["validation"],
            labels=labels["validation"],
            dataset=str(root / "d"),
            test=(images["test"], labels["test"], [0.5] * 2),
        )
        config = json.loads((root / "runs" / rid / "config.json").read_text())
        config["resolved"]["image_size"] = SIZE
        (root / "runs" / rid / "config.json").write_text(json.dumps(config))
        left_right_model(k, bias).save(root / "runs" / rid / "model.keras")
    return root / "runs", images, labels


def test_predict_with_two_runs_and_flips_answers_the_averaged_flip_probabilities(left_right_runs, capsys):
    runs_dir, images, _ = left_right_runs
    img = images["validation"][3]  # a dog: left half at 160
    args = ["predict", "--run", "lr1", "--run", "lr2", "--runs-dir", str(runs_dir), "--tta", "--weighted"]
    assert cli.main([*args, "--json", img]) == 0
    row = json.loads(capsys.readouterr().out)["predictions"][0]
    each = {rid: p_dog(k, b, 160, 0, tta=True) for rid, (k, b, _) in MODELS.items()}
    assert abs(each["lr1"] - p_dog(1 / 50, 0.5, 160, 0)) > 0.1  # flips change the answer a lot: a wrong average shows
    assert row["run"] == "ensemble" and row["members"] == ["lr1", "lr2"] and row["tta"]
    assert row["weights"] == pytest.approx({"lr1": 0.8 / 1.4, "lr2": 0.6 / 1.4})
    assert row["probabilities"]["dogs"] == pytest.approx((0.8 * each["lr1"] + 0.6 * each["lr2"]) / 1.4, abs=1e-5)
    assert [r["probabilities"]["dogs"] for r in row["runs"]] == pytest.approx([each["lr1"], each["lr2"]], abs=1e-5)
    assert cli.main([*args, img]) == 0
    p = row["probabilities"][row["predicted"]]
    assert capsys.readouterr().out == f"{img}  {row['predicted']}  {p:.1%}  (ensemble of 2 runs, weighted; with flips)\n"
    assert cli.main(["predict", "--run", "lr1", "--runs-dir", str(runs_dir), "--json", img]) == 0  # one run, no flips: as before
    alone = json.loads(capsys.readouterr().out)["predictions"][0]
    assert alone["probabilities"]["dogs"] == pytest.approx(p_dog(1 / 50, 0.5, 160, 0), abs=1e-5) and not alone["tta"]


def test_predict_refuses_a_repeated_run_and_gradcam_of_an_ensemble_before_tensorflow(tmp_path, capsys):
    from tests.conftest import make_image

    img = tmp_path / "a.png"
    make_image(img, (200, 60, 40))
    assert cli.main(["predict", "--run", "x", "--run", "x", str(img)]) == 2
    assert capsys.readouterr().err == "error: --run: a run is given twice; give each run of the ensemble once\n"
    assert cli.main(["predict", "--run", "x", "--run", "y", "--gradcam", str(tmp_path / "o.png"), str(img)]) == 2
    assert capsys.readouterr().err == "error: --gradcam: explains one model; give one --run (or leave out --gradcam)\n"


def test_ensemble_tta_rescores_each_runs_images_with_flips(left_right_runs, capsys):
    runs_dir, images, labels = left_right_runs
    assert cli.main(["ensemble", "--run", "lr1", "--run", "lr2", "--runs-dir", str(runs_dir), "--tta", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    levels = {s: [120 + 40 * i for _ in ("cats", "dogs") for i in range(n)] for s, n in (("validation", 2), ("test", 1))}
    for split in ("validation", "test"):
        lefts = [(v if y else 0, 0 if y else v) for v, y in zip(levels[split], labels[split])]
        probs = {
            rid: np.array([p_dog(k, b, left, right, tta=True) for left, right in lefts]) for rid, (k, b, _) in MODELS.items()
        }
        for rid, p in probs.items():
            p_true = np.where(np.array(labels[split]) == 1, p, 1 - p)
            assert out["splits"][split]["members"][rid]["loss"] == pytest.approx(-np.mean(np.log(p_true)), abs=1e-5)
            assert out["splits"][split]["members"][rid]["accuracy"] == float(np.mean((p > 0.5) == np.array(labels[split])))
        mean = (probs["lr1"] + probs["lr2"]) / 2
        p_true = np.where(np.array(labels[split]) == 1, mean, 1 - mean)
        assert out["splits"][split]["ensemble"]["loss"] == pytest.approx(-np.mean(np.log(p_true)), abs=1e-5)
    assert out["tta"] and out["test_scored_once"] and out["weights"] == {"lr1": 0.5, "lr2": 0.5}
    assert cli.main(["ensemble", "--run", "lr1", "--run", "lr2", "--runs-dir", str(runs_dir)]) == 0  # stored predictions: all 0.5
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["validation"] * 3 + ["test"] * 3
    assert all(line.startswith("test (scored once)  ") for line in lines[3:])


def test_a_run_stopped_before_it_was_scored_says_so(tmp_path):
    make_run(tmp_path, "A", P_A, val_acc=0.6)
    make_run(tmp_path, "S", P_B, val_acc=0.6, state="stopped")
    (tmp_path / "S" / "predictions.json").unlink()
    metrics = json.loads((tmp_path / "S" / "metrics.json").read_text())
    (tmp_path / "S" / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if k != "validation"}))
    assert ensemble_problem(records(tmp_path, "A", "S")) == (
        "run S was stopped before it was scored, so it has no stored predictions; "
        "train it again (a run stopped now is scored on the epochs it kept)"
    )
    with pytest.raises(EnsembleError, match="run S was stopped before it was scored"):
        ensemble_of_runs(records(tmp_path, "A", "S"))


@pytest.mark.slow  # trains one tiny run
def test_a_stopped_run_is_scored_on_the_epochs_it_kept_and_can_be_a_member(tiny_dataset, tmp_path):
    """Stop (SIGTERM's flag) after epoch 1 of 5, the test split's features not yet cached: scored all the same."""
    from engine.insight.ensemble import load_member
    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    data = prepare_data(str(tiny_dataset), (0.7, 0.15, 0.15), 42)
    epochs = []
    res = RUNNERS["feature_extraction"](
        tiny_config("feature_extraction", tiny_dataset, epochs=5),
        data,
        progress=lambda e: epochs.append(e) if e["type"] == "epoch" else None,
        should_stop=lambda: len(epochs) >= 1,
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "c",
    )
    assert res.state == "stopped" and len(res.history["loss"]) == 1
    assert res.metrics["validation"]["accuracy"] is not None and res.metrics["test"]["num_images"] == 8
    record = RunStore(tmp_path / "runs").load(res.id)
    member = load_member(record)
    assert set(member.splits) == {"validation", "test"} and len(member.splits["test"].files) == 8
    assert ensemble_problem([record, record]) == ""


def test_ensemble_of_runs_with_tta_is_the_clis_ensemble_tta(left_right_runs, capsys):
    runs_dir, _, _ = left_right_runs
    assert (
        cli.main(["ensemble", "--run", "lr1", "--run", "lr2", "--runs-dir", str(runs_dir), "--tta", "--json", "--weighted"]) == 0
    )
    want = json.loads(capsys.readouterr().out)
    store = RunStore(runs_dir)
    from engine.insight.inference import flip_averaged

    rescore = lambda m: flip_averaged(store, m)  # noqa: E731  (what Compare's TTA checkbox passes)
    got = ensemble_of_runs(records(runs_dir, "lr1", "lr2"), weighted=True, rescore=rescore).to_dict()
    assert got["tta"] and json.loads(json.dumps(got)) == want  # the same numbers, to the last digit
