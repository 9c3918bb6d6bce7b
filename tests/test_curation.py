"""Acting on a dataset's files (engine/data/curation.py): relabel, remove to a trash, keep, undo, history; the CLI."""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest

from engine import cli
from engine.data import curation
from engine.data.builder import create_dataset
from engine.data.layout import DatasetError
from engine.data.paths import PathNotAllowed
from engine.data.sample import default_sample_dir
from engine.data.scan import scan_dataset
from tests.conftest import COLOURS, make_image, make_split_dataset


@pytest.fixture
def ds(tmp_path) -> Path:
    """Split layout, cats and dogs, 4/2/2 images per class."""
    return make_split_dataset(tmp_path / "ds", counts={"train": 4, "validation": 2, "test": 2})


def snapshot(root: Path) -> dict:
    """Every file's sha256 and every folder, outside the curation folder: what "byte for byte" compares."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != curation.FOLDER]
        rel = os.path.relpath(d, root)
        out[rel + "/"] = "dir"
        for f in files:
            out[os.path.join(rel, f)] = hashlib.sha256(Path(d, f).read_bytes()).hexdigest()
    return out


def test_relabel_moves_to_the_class_of_the_same_split(ds):
    f = ds / "train" / "cats" / "cats_0.png"
    done = curation.relabel(ds, [str(f)], "dogs")
    assert not f.exists() and (ds / "train" / "dogs" / "cats_0.png").is_file()
    assert done["files"] == [{"from": str(f), "to": str(ds / "train" / "dogs" / "cats_0.png")}]
    report = scan_dataset(ds)
    assert len(report.files["train"]["cats"]) == 3 and len(report.files["train"]["dogs"]) == 5
    assert len(report.files["validation"]["dogs"]) == 2  # other splits untouched


def test_relabel_to_a_new_class_makes_it_and_undo_removes_it(ds):
    v = ds / "validation" / "cats" / "cats_0.png"
    curation.relabel(ds, [str(v)], "lynx")
    assert (ds / "validation" / "lynx" / "cats_0.png").is_file() and not (ds / "train" / "lynx").exists()
    curation.undo(ds)
    assert v.is_file() and not (ds / "validation" / "lynx").exists()


def test_relabel_in_a_flat_layout(tmp_path):
    root = tmp_path / "flat"
    for cls in ("cats", "dogs"):
        for k in range(3):
            make_image(root / cls / f"{cls}_{k}.png", COLOURS[cls], seed=k)
    curation.relabel(root, [str(root / "cats" / "cats_1.png")], "dogs")
    assert (root / "dogs" / "cats_1.png").is_file() and not (root / "cats" / "cats_1.png").exists()


def test_a_file_of_the_same_name_at_the_target_is_never_overwritten(ds):
    """Decided: the moved file gets a suffix (x-2.png); undo gives it its own name back."""
    (ds / "train" / "dogs" / "cats_0.png").write_bytes(b"already here")
    a, b = ds / "train" / "cats" / "cats_0.png", ds / "validation" / "cats" / "cats_0.png"
    before = snapshot(ds)
    done = curation.relabel(ds, [str(a)], "dogs")
    assert (ds / "train" / "dogs" / "cats_0.png").read_bytes() == b"already here"
    assert done["files"][0]["to"] == str(ds / "train" / "dogs" / "cats_0-2.png")
    curation.undo(ds)
    assert snapshot(ds) == before and a.is_file() and b.is_file()


def test_two_files_of_one_name_going_to_one_folder_both_keep_their_bytes(tmp_path):
    root = tmp_path / "flat"
    make_image(root / "cats" / "x.png", COLOURS["cats"], seed=1)
    make_image(root / "birds" / "x.png", COLOURS["cats"], seed=2)
    make_image(root / "dogs" / "y.png", COLOURS["dogs"], seed=3)
    before = {p.read_bytes() for p in root.rglob("*.png")}
    curation.relabel(root, [str(root / "cats" / "x.png"), str(root / "birds" / "x.png")], "dogs")
    assert sorted(p.name for p in (root / "dogs").iterdir()) == ["x-2.png", "x.png", "y.png"]
    assert {p.read_bytes() for p in root.rglob("*.png")} == before


def test_remove_moves_to_the_trash_and_a_scan_does_not_see_it(ds):
    f = ds / "train" / "dogs" / "dogs_0.png"
    data = f.read_bytes()
    done = curation.remove(ds, [str(f)])
    trashed = Path(done["files"][0]["to"])
    assert not f.exists() and trashed.read_bytes() == data  # moved, never deleted
    assert trashed.is_relative_to(ds / curation.FOLDER / curation.TRASH)
    report = scan_dataset(ds)
    assert report.classes == ["cats", "dogs"] and len(report.files["train"]["dogs"]) == 3
    seen = [p for split in report.files.values() for files in split.values() for p in files]
    assert not any(curation.FOLDER in p for p in seen) and not report.bad_files


def test_undo_restores_the_folder_byte_for_byte(ds):
    before = snapshot(ds)
    mtimes = {p: p.stat().st_mtime_ns for p in ds.rglob("*.png")}
    curation.relabel(ds, [str(ds / "train" / "cats" / "cats_0.png"), str(ds / "test" / "dogs" / "dogs_1.png")], "birds")
    assert snapshot(ds) != before
    curation.undo(ds)
    assert snapshot(ds) == before
    curation.remove(ds, [str(ds / "train" / "cats" / "cats_1.png"), str(ds / "validation" / "dogs" / "dogs_1.png")])
    assert snapshot(ds) != before
    curation.undo(ds)
    assert snapshot(ds) == before
    assert {p: p.stat().st_mtime_ns for p in ds.rglob("*.png") if curation.FOLDER not in str(p)} == mtimes  # cache keys hit again


def test_undo_goes_back_one_action_at_a_time_then_refuses(ds):
    before = snapshot(ds)
    curation.relabel(ds, [str(ds / "train" / "cats" / "cats_0.png")], "dogs")
    after_relabel = snapshot(ds)
    curation.remove(ds, [str(ds / "train" / "dogs" / "cats_0.png")])
    assert curation.undo(ds)["undid"] == "remove" and snapshot(ds) == after_relabel
    assert curation.undo(ds)["undid"] == "relabel" and snapshot(ds) == before
    with pytest.raises(DatasetError, match="nothing to undo"):
        curation.undo(ds)


def test_undo_refuses_when_the_place_is_taken_and_moves_nothing(ds):
    f = ds / "train" / "cats" / "cats_0.png"
    curation.remove(ds, [str(f)])
    f.write_bytes(b"a new file of that name")
    with pytest.raises(DatasetError, match="a file of that name is there now") as err:
        curation.undo(ds)
    assert "\n" not in str(err.value) and f.read_bytes() == b"a new file of that name"


@pytest.mark.parametrize("case", ["outside", "link", "folder", "missing", "hidden", "at_root", "curation_folder"])
def test_refused_files_are_named_and_nothing_moves(ds, tmp_path, case):
    good = ds / "train" / "cats" / "cats_0.png"
    outside = tmp_path / "elsewhere.png"
    make_image(outside, COLOURS["cats"])
    bad = {
        "outside": outside,
        "link": ds / "train" / "cats" / "link.png",
        "folder": ds / "train" / "cats",
        "missing": ds / "train" / "cats" / "nope.png",
        "hidden": ds / "train" / "cats" / ".hidden.png",
        "at_root": ds / "loose.png",
        "curation_folder": ds / curation.FOLDER / "x.png",
    }[case]
    if case == "link":  # to a file of the dataset: the link itself is refused, not just where it leads
        bad.symlink_to(ds / "train" / "dogs" / "dogs_0.png")
    elif case in ("hidden", "at_root", "curation_folder"):
        make_image(bad, COLOURS["cats"])
    before = snapshot(ds)
    for act in (
        lambda: curation.relabel(ds, [str(good), str(bad)], "dogs"),
        lambda: curation.remove(ds, [str(good), str(bad)]),
        lambda: curation.keep(ds, [str(good), str(bad)]),
    ):
        with pytest.raises(DatasetError) as err:
            act()
        assert str(bad) in str(err.value) and "\n" not in str(err.value)
        assert snapshot(ds) == before  # all or nothing: the good file did not move either
    assert curation.history(ds) == [] and curation.kept(ds) == set()


@pytest.mark.parametrize("name", ["a/b", ".hidden", "", "con"])
def test_a_bad_class_name_is_refused_before_anything_moves(ds, name):
    before = snapshot(ds)
    with pytest.raises(DatasetError, match="class name"):
        curation.relabel(ds, [str(ds / "train" / "cats" / "cats_0.png")], name)
    assert snapshot(ds) == before


def test_a_failed_move_puts_back_the_moves_before_it(ds, monkeypatch):
    before = snapshot(ds)
    real_rename, calls = os.rename, []

    def flaky(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise OSError(18, "Invalid cross-device link")
        real_rename(a, b)

    monkeypatch.setattr(curation.os, "rename", flaky)
    files = [str(ds / "train" / "cats" / f"cats_{k}.png") for k in range(3)]
    with pytest.raises(DatasetError, match="nothing was moved"):
        curation.relabel(ds, files, "dogs")
    monkeypatch.setattr(curation.os, "rename", real_rename)
    assert snapshot(ds) == before and curation.history(ds) == []


def test_keep_is_listed_until_undone_or_the_file_moves(ds):
    a, b = ds / "train" / "cats" / "cats_0.png", ds / "train" / "cats" / "cats_1.png"
    curation.keep(ds, [str(a), str(b)])
    assert curation.kept(ds) == {str(a), str(b)}
    curation.relabel(ds, [str(b)], "dogs")  # its label changed: judged again
    assert curation.kept(ds) == {str(a)}
    curation.undo(ds)
    assert curation.kept(ds) == {str(a), str(b)}
    curation.undo(ds)
    assert curation.kept(ds) == set()


def test_kept_paths_are_absolute_whatever_the_root_was_given_as(ds, monkeypatch):
    monkeypatch.chdir(ds.parent)
    curation.keep("ds", ["ds/train/cats/cats_0.png"])
    assert curation.kept("ds") == {str(ds / "train" / "cats" / "cats_0.png")}


def test_history_lists_time_kind_and_moves(ds):
    f = ds / "train" / "cats" / "cats_0.png"
    curation.relabel(ds, [str(f)], "dogs")
    curation.remove(ds, [str(ds / "test" / "dogs" / "dogs_0.png")])
    curation.undo(ds)
    h = curation.history(ds)
    assert [(e["kind"], e["undone"]) for e in h] == [("relabel", False), ("remove", True), ("undo", False)]
    assert h[0]["files"] == [{"from": str(f), "to": str(ds / "train" / "dogs" / "cats_0.png")}] and h[0]["class"] == "dogs"
    assert all(e["time"].endswith("+00:00") for e in h) and h[2]["of"] == h[1]["id"]


def test_a_damaged_log_is_one_line(ds):
    (ds / curation.FOLDER).mkdir()
    (ds / curation.FOLDER / curation.LOG).write_text('{"kind": "keep", "files": []}\nnot json\n')
    with pytest.raises(DatasetError, match="line 2 is damaged"):
        curation.history(ds)


# --- which datasets may be edited ------------------------------------------------------------------------


def test_the_built_in_sample_is_not_editable():
    with pytest.raises(DatasetError, match="the built-in sample is rebuilt on demand; copy it to make your own"):
        curation.check_editable(default_sample_dir())
    with pytest.raises(DatasetError, match="built-in sample"):
        curation.remove(default_sample_dir(), ["x.png"])


def test_an_unpacked_upload_is_not_editable():
    from ui.uploads import PREFIX, UploadFolder

    assert curation.UPLOAD_PREFIX == PREFIX  # the engine may not import ui: the two are held equal here
    folder = UploadFolder()
    try:
        make_split_dataset(folder.path / "ds", counts={"train": 1, "validation": 1})
        with pytest.raises(DatasetError, match="unpacked from an upload: it is deleted when the session ends; download, unzip"):
            curation.check_editable(folder.path / "ds")
        assert Path(tempfile.gettempdir()).resolve() in folder.path.resolve().parents
    finally:
        folder.remove()


def test_outside_the_allowed_roots_is_not_editable_when_confined(ds, tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("TLS_DATA_ROOTS", str(allowed))
    with pytest.raises(PathNotAllowed, match="outside the allowed folders"):
        curation.relabel(ds, [str(ds / "train" / "cats" / "cats_0.png")], "dogs")
    assert (ds / "train" / "cats" / "cats_0.png").is_file()
    monkeypatch.setenv("TLS_DATA_ROOTS", str(ds.parent))
    curation.check_editable(ds)


def test_a_made_dataset_and_a_local_folder_are_editable(ds, tmp_path, monkeypatch):
    monkeypatch.delenv("TLS_DATA_ROOTS", raising=False)
    monkeypatch.delenv("TLS_ACCESS_TOKEN", raising=False)
    made = create_dataset("pets", ["cats", "dogs"], tmp_path / "datasets")
    make_image(made / "cats" / "a.png", COLOURS["cats"])
    curation.check_editable(made)
    curation.check_editable(ds)
    curation.relabel(made, [str(made / "cats" / "a.png")], "dogs")
    assert (made / "dogs" / "a.png").is_file()


# --- the CLI ------------------------------------------------------------------------------------------------


def test_cli_relabel_remove_keep_undo_history(ds, capsys):
    def run(*argv):
        rc = cli.main(["dataset", *argv])
        out, err = capsys.readouterr()
        return rc, out, err

    f = str(ds / "train" / "cats" / "cats_0.png")
    rc, out, _ = run("relabel", "--data", str(ds), f, str(ds / "train" / "cats" / "cats_1.png"), "dogs")
    assert (
        rc == 0
        and out.count("\n") == 1
        and "relabeled 2 file(s) to 'dogs'" in out
        and "train/cats/cats_0.png -> train/dogs/cats_0.png" in out
    )
    rc, out, _ = run("remove", "--data", str(ds), str(ds / "test" / "dogs" / "dogs_0.png"))
    assert rc == 0 and out.count("\n") == 1 and out.startswith("removed 1 file(s) to the trash")
    rc, out, _ = run("keep", "--data", str(ds), str(ds / "test" / "cats" / "cats_0.png"))
    assert rc == 0 and out == "kept 1 file(s) as not an issue: test/cats/cats_0.png\n"
    rc, out, _ = run("undo", "--data", str(ds))
    assert rc == 0 and out.startswith("undid keep")
    rc, out, _ = run("history", "--data", str(ds))
    assert rc == 0 and out.count("\n") == 4 and "relabel to 'dogs'" in out and "keep (undone)" in out
    rc, out, _ = run("history", "--data", str(ds), "--json")
    assert [e["kind"] for e in json.loads(out)["history"]] == ["relabel", "remove", "keep", "undo"]


def test_cli_refusals_are_one_line_exit_2(ds, capsys):
    cases = [
        ["relabel", "--data", str(ds), "/etc/passwd", "dogs"],
        ["relabel", "--data", str(ds), str(ds / "train" / "cats" / "cats_0.png"), "a/b"],
        ["remove", "--data", "sample", "x.png"],
        ["undo", "--data", str(ds)],
    ]
    for argv in cases:
        assert cli.main(["dataset", *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1, (argv, err)


# --- the feature cache after an edit ------------------------------------------------------------------------


def _hits_misses(result) -> tuple[int, int]:
    fc = result.metrics["feature_cache"]
    return fc["hits"], fc["misses"]


@pytest.mark.slow
def test_an_edit_misses_only_its_splits_cache_entries(ds):
    from engine.training.approaches import RUNNERS, prepare_data
    from tests.conftest import tiny_config

    def train():
        return RUNNERS["feature_extraction"](tiny_config("feature_extraction", ds), prepare_data(str(ds)))

    assert _hits_misses(train()) == (0, 3)
    curation.relabel(ds, [str(ds / "train" / "cats" / "cats_0.png")], "dogs")
    again = train()
    assert _hits_misses(again) == (2, 1) and again.metrics["feature_cache"]["reused_splits"] == ["test", "validation"]
    curation.undo(ds)
    assert _hits_misses(train()) == (3, 0)  # back byte for byte, mtimes kept: the old keys hit
    curation.remove(ds, [str(ds / "validation" / "dogs" / "dogs_1.png")])
    again = train()
    assert _hits_misses(again) == (2, 1) and again.metrics["feature_cache"]["reused_splits"] == ["test", "train"]


@pytest.mark.parametrize("swapped", ["train/cats", "train"])
def test_undo_never_follows_a_folder_swapped_for_a_link(ds, tmp_path, swapped):
    curation.remove(ds, [str(ds / "train" / "cats" / "cats_0.png")])
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "cats").mkdir(parents=True)
    (ds / swapped).rename(tmp_path / "old")
    (ds / swapped).symlink_to(elsewhere / "cats" if swapped == "train/cats" else elsewhere)
    with pytest.raises(DatasetError, match="is a link or not a folder|leads outside the dataset"):
        curation.undo(ds)
    assert list((elsewhere / "cats").iterdir()) == []
