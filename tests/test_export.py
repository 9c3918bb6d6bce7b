"""Export: the files written (model, labels.json, README, classify.py), the rebuilt model for every
backbone, the one-line errors, the dashboard's download buttons, and (real assets) that every
format, loaded in a fresh process without this project, agrees with the run's model on photos."""

import io
import json
import os
import subprocess
import sys
import zipfile
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from engine import cli
from engine.config import BackboneConfig, HeadConfig
from engine.insight import export
from engine.insight.export import FORMATS, calibration_problem, export_run, portable_model, readme_snippet
from engine.insight.inference import classify_file, load_run
from engine.models import backbones, modeling
from engine.store.runs import RunStore
from tests import shared_runs
from tests.shared_runs import PHOTOS, copy_run, trained_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A fine-tuning run (augmentation, unfrozen top block) on tiny data: (runs_dir, run id, dataset)."""
    return shared_runs.tiny_run(tmp_path_factory)


@pytest.mark.slow
def test_keras_export_writes_model_labels_readme_and_script(tiny_run, tmp_path, capsys):
    import keras

    runs_dir, run_id, data_dir = tiny_run
    out = tmp_path / "exp"
    assert cli.main(["export", run_id, "--runs-dir", str(runs_dir), "--format", "keras", "--out", str(out), "--zip"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == str(out / "model.keras") and report["zip"] == str(tmp_path / "exp.zip")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "classify.py", "labels.json", "model.keras"]
    with zipfile.ZipFile(tmp_path / "exp.zip") as zf:
        assert sorted(zf.namelist()) == ["exp/README.md", "exp/classify.py", "exp/labels.json", "exp/model.keras"]

    labels = json.loads((out / "labels.json").read_text())
    assert labels["classes"] == ["cats", "dogs"] and labels["image_size"] == 32
    assert (
        labels["input"]["shape"] == [1, 32, 32, 3]
        and labels["input"]["range"] == [0, 255]
        and labels["input"]["dtype"] == "float32"
    )
    assert "mobilenet_v2 preprocess_input, inside the model" in labels["input"]["preprocessing"]
    assert labels["output"] == {"shape": [1, 1], "activation": "sigmoid", "meaning": "probability of 'dogs'; 'cats' is 1 - p"}
    assert labels["run"] == run_id and labels["format"] == "keras" and "quantization" not in labels
    script = (out / "classify.py").read_text()
    assert script == readme_snippet("keras", "model.keras")
    readme = (out / "README.md").read_text()
    assert script in readme and "32 x 32 px, pixel values 0-255 as float32" in readme and "python classify.py photo.jpg" in readme

    # plain Keras layers only (no augmentation, no custom preprocessing layer), same answers as the run
    exported = keras.saving.load_model(out / "model.keras")
    classes = {type(l).__module__.split(".")[0] for m in (exported, exported.layers[-2], exported.layers[-1]) for l in m.layers}
    assert classes == {"keras"}
    assert "augmentation" not in [l.name for l in exported.layers]
    run = load_run(RunStore(runs_dir), run_id)
    x = np.stack(
        [
            np.asarray(Image.open(f).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), np.float32)
            for f in sorted((data_dir / "test").rglob("*.png"))
        ]
    )
    np.testing.assert_allclose(np.asarray(exported(x)), np.asarray(run.model(x)), atol=1e-5)


@pytest.mark.parametrize("backbone,mode", [(b, "backbone") for b in sorted(backbones.BACKBONES)] + [("vgg16", "rescale")])
def test_rebuilt_model_has_plain_layers_and_the_same_outputs(backbone, mode):
    size = max(32, backbones.get_spec(backbone).min_size)
    base = backbones.build_base(BackboneConfig(name=backbone, weights="none"), size)
    head = modeling.build_head(tuple(base.output.shape[1:]), 3, HeadConfig(dense_units=8))
    model = modeling.assemble_full_model(base, head, backbone, mode, size)
    portable = portable_model(model, size)  # raises if its outputs differ from the model's
    names = [l.name for l in portable.layers]
    assert all(type(l).__module__.startswith("keras") for l in portable.layers)
    # a base that normalises inside (EfficientNet, ConvNeXt, MobileNetV3): the studio's layer is the identity, no layer for it
    assert ("preprocess" in names) == (not backbones.get_spec(backbone).includes_preprocessing)
    x = np.random.default_rng(0).integers(0, 256, (2, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(portable(x)), np.asarray(model(x)), atol=1e-4)


def test_int8_without_the_dataset_is_one_line_and_writes_nothing(tiny_run, tmp_path, capsys):
    runs_dir, run_id, data_dir = tiny_run
    own = tmp_path / "runs"
    copy_run(runs_dir, run_id, own)  # the shared run stays as it is
    record = RunStore(own).load(run_id)
    gone = {
        **record.config,
        "data": {**record.config["data"], "path": str(tmp_path / "moved")},
        "resolved": {**record.config["resolved"], "dataset_root": str(tmp_path / "moved")},
    }
    assert calibration_problem(record.config) == ""
    assert calibration_problem(gone).startswith(f"the run's dataset folder {tmp_path / 'moved'} is gone; int8 quantisation")
    (record.path / "config.json").write_text(json.dumps(gone))
    assert cli.main(["export", run_id, "--runs-dir", str(own), "--format", "tflite_int8", "--out", str(tmp_path / "q")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {calibration_problem(gone)}"]
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_a_three_class_model_exports_with_softmax_labels_and_the_same_answers(tiny_multiclass, tmp_path, capsys):
    import keras

    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    runs_dir = tmp_path / "runs"
    result = RUNNERS["feature_extraction"](
        tiny_config("feature_extraction", tiny_multiclass, backbone="vgg16"),
        prepare_data(str(tiny_multiclass)),
        runs_dir=runs_dir,
    )
    out = tmp_path / "exp"
    assert cli.main(["export", result.id, "--runs-dir", str(runs_dir), "--format", "keras", "--out", str(out)]) == 0
    labels = json.loads((out / "labels.json").read_text())
    assert labels["classes"] == ["birds", "cats", "dogs"]
    assert labels["output"] == {
        "shape": [1, 3],
        "activation": "softmax",
        "meaning": "probability of each class, in the order of 'classes'",
    }
    assert "Output: softmax, probability of each class" in (out / "README.md").read_text()
    exported = keras.saving.load_model(out / "model.keras")
    x = np.stack(
        [
            np.asarray(Image.open(f).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), np.float32)
            for f in sorted((tiny_multiclass / "test").rglob("*.png"))
        ]
    )
    mine = np.asarray(exported(x))
    assert mine.shape == (9, 3)
    np.testing.assert_allclose(mine, np.asarray(load_run(RunStore(runs_dir), result.id).model(x)), atol=1e-5)


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--format", "keras", "--out", "{full}"],
            "error: --out {full}: is a folder that is not empty; give a new (or empty) folder",
        ),
        (["--format", "keras", "--out", "{tmp}/a/b"], "error: --out {tmp}/a/b: folder {tmp}/a does not exist"),
        (
            ["--format", "tflite_int8", "--calibration-images", "0", "--out", "{tmp}/q"],
            "error: argument --calibration-images: must be >= 1, got 0",
        ),
    ],
)
def test_bad_export_requests_exit_2_with_one_line(tiny_run, tmp_path, capsys, args, message):
    runs_dir, run_id, _ = tiny_run
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    fill = lambda s: s.format(tmp=tmp_path, full=tmp_path / "full")  # noqa: E731
    assert cli.main(["export", run_id, "--runs-dir", str(runs_dir), *map(fill, args)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(fill(message)), err


def test_export_never_replaces_a_zip_or_writes_into_the_run_store_unless_told(tiny_run, tmp_path, capsys):
    runs_dir, run_id, _ = tiny_run
    (tmp_path / "exp.zip").write_bytes(b"an earlier export")
    base = ["export", run_id, "--runs-dir", str(runs_dir), "--format", "keras"]
    assert cli.main([*base, "--out", str(tmp_path / "exp"), "--zip"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --zip {tmp_path / 'exp.zip'}: already exists; choose a new name, or add --force to replace it"
    ]
    assert (tmp_path / "exp.zip").read_bytes() == b"an earlier export" and not (tmp_path / "exp").exists()
    inside = runs_dir / run_id / "exp"
    assert cli.main([*base, "--out", str(inside)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out {inside}: is inside the run store {runs_dir}, whose folders readers trust; write it somewhere else"
    ]
    assert not inside.exists()
    assert cli.main([*base, "--out", str(tmp_path / "exp"), "--zip", "--force"]) == 0
    with zipfile.ZipFile(tmp_path / "exp.zip") as zf:
        assert "exp/model.keras" in zf.namelist()


def test_export_of_an_unknown_run_exits_2(tiny_run, tmp_path, capsys):
    runs_dir = tiny_run[0]
    assert (
        cli.main(["export", "no-such-run", "--runs-dir", str(runs_dir), "--format", "keras", "--out", str(tmp_path / "n")]) == 2
    )
    assert capsys.readouterr().err.strip() == f"error: no run 'no-such-run' in {runs_dir}"
    assert not (tmp_path / "n").exists()


def test_the_saved_model_is_written_once_per_model_file_until_it_changes(tmp_path):
    """The memo behind SavedModel/TFLite/int8 exports (real_exports checks the four formats write one)."""
    memo, builds = export._SavedModelMemo(), []

    def build(path):
        builds.append(path)
        path.mkdir()
        (path / "saved_model.pb").write_text(str(len(builds)))

    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"v1")
    first = memo.path(model_file, build)
    assert memo.path(model_file, build) == first and len(builds) == 1
    os.utime(model_file, ns=(model_file.stat().st_atime_ns, model_file.stat().st_mtime_ns + 10**9))  # as a re-save leaves it
    second = memo.path(model_file, build)
    assert len(builds) == 2 and (second / "saved_model.pb").read_text() == "2" and not first.exists()  # one kept at a time
    memo.clear()
    assert not second.exists()  # the temporary folder goes (also when the process ends)
    with pytest.raises(ValueError, match="no model"):  # no model file: the builder's own error (the run store's)
        memo.path(tmp_path / "gone.keras", lambda path: (_ for _ in ()).throw(ValueError("no model")))


@pytest.mark.slow
def test_dashboard_builds_each_format_through_the_job_runner_before_offering_its_download(tiny_run, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from ui import resources

    runs_dir, run_id, _ = tiny_run
    monkeypatch.setenv("TLS_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("TLS_WARM_START", "0")
    record = RunStore(runs_dir).load(run_id)
    gone = {**record.config, "data": {"path": str(tmp_path / "moved")}, "resolved": {}}
    at = AppTest.from_string(
        f"""
from ui.export_panel import export_downloads
export_downloads({run_id!r}, {record.config!r}, key="a")
export_downloads({run_id!r}, {gone!r}, key="b")
""",
        default_timeout=120,
    ).run()
    assert not at.exception, at.exception
    builds = [b for b in at.button if b.key.startswith(("a_build_", "b_build_"))]
    assert [b.label for b in builds] == [
        "Build " + t for t in ("Keras (.keras)", "TensorFlow SavedModel", "TFLite float32", "TFLite int8")
    ] * 2
    assert [b.disabled for b in builds] == [False] * 4 + [False, False, False, True]  # int8 needs the dataset
    assert "is gone" in builds[-1].help
    assert not at.get("download_button")  # nothing offered before it exists
    at.button(key="a_build_keras").click().run()
    assert not at.exception, at.exception
    (job,) = [j for j in resources.job_runner().jobs() if j.kind == "export"]  # one job, queued like training
    assert job.options == {"run": run_id, "format": "keras", "zip": True}
    resources.job_runner().wait(job.id, timeout=300)
    for _ in range(3):  # the fragment's tick takes the zip, then the page reruns once
        at.run()
    assert not at.exception, at.exception
    downloads = at.get("download_button")  # built: the button holds the zip, so the first click downloads
    assert [d.proto.label for d in downloads] == ["Download Keras (.keras)"] * 2  # the run's panels share what was built
    data = at.session_state[f"_export_{run_id}_keras"]
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(zf.namelist()) == [f"{run_id}-keras/{n}" for n in ("README.md", "classify.py", "labels.json", "model.keras")]
    at.run()
    assert not any(b.key == "a_build_keras" for b in at.button)  # built once, kept for the session
    assert len(at.get("download_button")) == 2


# --- Real assets: every format in a fresh process ------------------------------------------


@pytest.fixture(scope="module")
def real_exports(tmp_path_factory):
    """All four exports of the shared cats-vs-dogs run, and the run's own answers on the photos."""
    runs_dir, run_id = trained_run(tmp_path_factory)
    store = RunStore(runs_dir)
    out = tmp_path_factory.mktemp("real-exports")
    with mock.patch.object(export, "_write_saved_model", wraps=export._write_saved_model) as writes:
        folders = {fmt: export_run(store, run_id, fmt, out / fmt).folder for fmt in FORMATS}
    assert writes.call_count == 1  # SavedModel, TFLite and TFLite int8 start from one SavedModel
    run = load_run(store, run_id)
    photos = sorted(str(p) for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".bmp", ".png"))
    original = {p: classify_file(run, p) for p in photos}
    return folders, original


# Runs each export's own classify.py (the README's snippet) as __main__, one after another, in a process
# started elsewhere without PYTHONPATH: `engine` is not importable there. One process for the four
# formats: each would otherwise pay its own TensorFlow import (about 4 s here).
RUN_SCRIPTS = """
import contextlib, io, json, runpy, sys
folders, photos = json.loads(sys.argv[1]), sys.argv[2:]
for fmt, folder in folders.items():
    sys.argv = [folder + "/classify.py", *photos]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(sys.argv[0], run_name="__main__")
    print(json.dumps({"format": fmt, "rows": [json.loads(l) for l in out.getvalue().splitlines() if l.startswith("{")]}))
"""


@pytest.fixture(scope="module")
def fresh_answers(real_exports, tmp_path_factory) -> dict:
    """{format: [{"image", "predicted", "probabilities"}, ...]} from the exports' own scripts in one fresh process."""
    folders, original = real_exports
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPTS, json.dumps({f: str(d) for f, d in folders.items()}), *original],
        cwd=tmp_path_factory.mktemp("elsewhere"),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {
        d["format"]: d["rows"] for d in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"format"'))
    }


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_export_agrees_with_the_run_in_a_fresh_process(real_exports, fresh_answers, fmt):
    folders, original = real_exports
    rows = fresh_answers[fmt]
    assert [r["image"] for r in rows] == list(original)
    agree = [r["predicted"] == original[r["image"]]["predicted"] for r in rows]
    if fmt == "tflite_int8":
        assert sum(agree) / len(agree) >= 0.9, rows
        assert json.loads((folders[fmt] / "labels.json").read_text())["quantization"]["calibration_images"] == 100
    else:
        assert all(agree), rows
        for r in rows:
            for cls, p in r["probabilities"].items():
                assert p == pytest.approx(original[r["image"]]["probabilities"][cls], abs=1e-4)


def test_the_tflite_check_passes_the_same_model_and_refuses_another():
    import keras

    def tiny(seed):
        keras.utils.set_random_seed(seed)
        inp = keras.Input((8, 8, 3))
        return keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp / 255.0)))

    import tensorflow as tf

    model = tiny(0)
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    assert export.check_tflite_agreement(content, model, 8) <= 1e-5
    with pytest.raises(export.ExportError, match="the TFLite file disagrees with the run's model"):
        export.check_tflite_agreement(content, tiny(1), 8)
