"""ui/ensemble_view.py through the pages (AppTest): Compare's ensemble row, Classify's flip and ensemble switches."""

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, make_image
from tests.test_ensemble import FILES, P_A, P_B, make_run, write_left_right_runs


@pytest.fixture(autouse=True)
def data_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path))
    monkeypatch.chdir(ROOT)


def page(path: str) -> AppTest:
    return AppTest.from_string(
        f"""
import runpy
from ui.sidebar import render_sidebar
render_sidebar()
runpy.run_path({str(ROOT / path)!r}, run_name="__main__")
""",
        default_timeout=120,
    )


def ensemble_table(at) -> list[dict]:
    return next(d.value for d in at.dataframe if "weight" in d.value.columns).to_dict("records")


def test_compare_adds_the_ensemble_row_of_the_selected_runs(isolated_store):
    from engine.data.sample import ensure_sample_dataset

    here = str(ensure_sample_dataset())
    files = [str(isolated_store / f.lstrip("/")) for f in FILES]  # real files: Compare's disagreement gallery shows them
    for i, f in enumerate(files):
        make_image(Path(f), (200, 60, 40), seed=i)
    make_run(isolated_store / "runs", "20260101-000001-frozen-aaaaaa", P_A, val_acc=0.6, dataset=here, files=files)
    make_run(isolated_store / "runs", "20260101-000002-frozen-bbbbbb", P_B, val_acc=0.9, dataset=here, files=files)
    at = page("pages/compare.py").run()
    assert not at.exception, at.exception
    at.multiselect(key="cmp_runs").set_value(["20260101-000001-frozen-aaaaaa", "20260101-000002-frozen-bbbbbb"]).run()
    assert not at.exception, at.exception
    at.toggle(key="cmp_ens").set_value(True).run()
    rows = ensemble_table(at)
    assert [r[""] for r in rows] == ["Frozen + augmentation"] * 2 + ["Ensemble (2 runs)"]
    assert rows[-1]["validation acc"] == "1.000 (5/5, 95 % 0.57–1.00)" and rows[-1]["test acc (scored once)"] == "—"
    assert [r["weight"] for r in rows] == ["0.500", "0.500", "1.000"]
    assert [r["validation acc"] for r in rows[:2]] == ["0.600 (3/5, 95 % 0.23–0.88)"] * 2
    assert any("no test split (validation only)" in c.value for c in at.caption)
    at.checkbox(key="cmp_ens_weighted").check().run()
    rows = ensemble_table(at)
    assert rows[-1]["validation acc"].startswith("0.800 (4/5, 95 % ")
    assert {r["run"]: r["weight"] for r in rows[:2]} == {
        "20260101-000001-frozen-aaaaaa": "0.400",
        "20260101-000002-frozen-bbbbbb": "0.600",
    }


def test_compare_ensemble_row_with_tta_classifies_each_image_with_its_flip(isolated_store, monkeypatch):
    from tests.test_ensemble import MODELS, p_dog

    runs_dir, _, labels = write_left_right_runs(isolated_store / "lr")
    monkeypatch.setenv("TLS_RUNS_DIR", str(runs_dir))
    at = page("pages/compare.py").run()
    at.toggle(key="cmp_all").set_value(True).run()  # the runs' own dataset, not the sidebar's
    at.multiselect(key="cmp_runs").set_value(["lr1", "lr2"]).run()
    at.toggle(key="cmp_ens").set_value(True).run()
    before = ensemble_table(at)
    assert before[-1][""] == "Ensemble (2 runs)"
    at.checkbox(key="cmp_ens_tta").check().run()
    assert not at.exception, at.exception
    rows = ensemble_table(at)
    assert [r[""] for r in rows] == ["Frozen + augmentation with TTA"] * 2 + ["Ensemble (2 runs, with TTA)"]
    # the CLI's numbers (test_ensemble_tta_rescores_each_runs_images_with_flips): lr1 with flips on validation
    levels = [120, 160, 120, 160]
    p1 = [p_dog(*MODELS["lr1"][:2], v if y else 0, 0 if y else v, tta=True) for v, y in zip(levels, labels["validation"])]
    correct = sum((p > 0.5) == y for p, y in zip(p1, labels["validation"]))
    assert rows[0]["validation acc"].startswith(f"{correct / 4:.3f} ({correct}/4, 95 % ")
    assert "/2, 95 % " in rows[-1]["test acc (scored once)"]  # one cat, one dog: scored once
    assert any("With TTA: every image averaged with its horizontal flip" in c.value for c in at.caption)


@pytest.mark.slow
def test_classify_switches_flip_each_model_and_add_the_ensembles_answer(isolated_store, monkeypatch):
    runs_dir, _, _ = write_left_right_runs(isolated_store / "lr")
    monkeypatch.setenv("TLS_RUNS_DIR", str(runs_dir))
    buf = io.BytesIO()
    img = Image.new("RGB", (40, 40))
    img.paste((200, 200, 200), (0, 0, 20, 40))  # left half bright: "dogs" for both models, without flips
    img.save(buf, "PNG")
    at = page("pages/classify.py").run()
    assert not at.exception, at.exception
    at.multiselect(key="cls_runs").set_value(["lr1", "lr2"]).run()
    at.file_uploader(key="cls_upload").set_value([("half.png", buf.getvalue(), "image/png")]).run()
    assert [m.value for m in at.metric] == ["dogs", "dogs"]
    at.toggle(key="cls_tta").set_value(True).run()
    # with flips lr1 averages sigmoid(4.5), sigmoid(-3.5) -> 0.51 dogs; lr2 sigmoid(7), sigmoid(-9) -> 0.4996: cats
    assert [m.value for m in at.metric] == ["dogs", "cats"]
    at.toggle(key="cls_ens").set_value(True).run()
    assert not at.exception, at.exception
    assert [m.value for m in at.metric] == ["dogs", "cats", "dogs"] and at.metric[
        2
    ].label == "Ensemble of 2 models"  # its own last column
    at.checkbox(key="cls_ens_weighted").check().run()
    assert at.metric[2].label == "Ensemble of 2 models, weighted by validation accuracy"  # the numbers: test_inference.py


def test_compare_names_a_disagreeing_image_that_is_no_longer_on_disk(isolated_store):
    from engine.data.sample import ensure_sample_dataset

    here = str(ensure_sample_dataset())
    gone = [str(isolated_store / "moved" / f.lstrip("/")) for f in FILES]  # never written: the dataset moved away
    make_run(isolated_store / "runs", "20260101-000001-frozen-aaaaaa", P_A, val_acc=0.6, dataset=here, files=gone)
    make_run(isolated_store / "runs", "20260101-000002-frozen-bbbbbb", P_B, val_acc=0.9, dataset=here, files=gone)
    at = page("pages/compare.py").run()
    at.multiselect(key="cmp_runs").set_value(["20260101-000001-frozen-aaaaaa", "20260101-000002-frozen-bbbbbb"]).run()
    assert not at.exception, at.exception
    missing = [c.value for c in at.caption if "no longer on disk" in c.value]
    assert missing and all(c.split(":")[0] in gone for c in missing), [c.value for c in at.caption]
