"""engine/data/builder.py and `python -m engine dataset`: made datasets are checked, safe, atomic, and ordinary folders."""

import contextlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from engine import cli
from engine.data import builder
from engine.data.layout import DatasetError
from tests.conftest import make_image


def png(tmp_path, name, color, seed=0) -> bytes:
    path = tmp_path / "src" / name
    make_image(path, color, seed=seed)
    return path.read_bytes()


def test_readable_images_are_saved_under_safe_names_and_unreadable_ones_are_refused_with_their_reason(tmp_path):
    path = builder.create_dataset("my photos!", ["cats", "dogs"], tmp_path)
    assert path == tmp_path / "my photos" and builder.class_names(path) == ["cats", "dogs"]
    good = png(tmp_path, "a.png", (200, 30, 30))
    added = builder.add_images(path, "cats", [("../../etc/a b.png", good), ("IMG 1.jpg", good), ("broken.jpg", b"\xff\xd8 no jpeg")])
    assert len(added.saved) == 1 and added.saved[0].startswith("a b-") and added.saved[0].endswith(".png")
    assert added.duplicates == ["IMG 1.jpg"]  # same content: stored once
    assert [n for n, _ in added.refused] == ["broken.jpg"] and "broken.jpg" not in " ".join(p.name for p in (path / "cats").iterdir())
    assert added.refused[0][1]  # the decoder's one-line reason
    assert [p.name for p in (path / "cats").iterdir()] == added.saved  # no temp file left, nothing outside the class
    assert builder.counts(path) == {"cats": 1, "dogs": 0}


def test_names_that_cannot_be_folders_are_refused():
    for bad in ("", "  ", "../..", "///"):
        with pytest.raises(DatasetError, match="use letters or digits"):
            builder.safe_name(bad, "class name")
    assert builder.safe_name("dogs!", "class name") == "dogs"


def test_rename_remove_and_zip_round_trip_through_import_zip(tmp_path):
    path = builder.create_dataset("pets", ["cats", "dogs"], tmp_path)
    builder.add_images(path, "cats", [(f"c{i}.png", png(tmp_path, f"c{i}.png", (200, 30, 30), i)) for i in range(3)])
    builder.add_images(path, "dogs", [(f"d{i}.png", png(tmp_path, f"d{i}.png", (30, 30, 200), i)) for i in range(2)])
    builder.remove_image(path, "cats", builder.images_of(path, "cats")[0].name)
    assert builder.rename_class(path, "dogs", "puppies") == "puppies"
    with pytest.raises(DatasetError, match="already exists"):
        builder.rename_class(path, "cats", "puppies")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["dataset", "--datasets-dir", str(tmp_path), "zip", "pets", str(tmp_path / "p.zip")]) == 0
        assert cli.main(["import-zip", str(tmp_path / "p.zip"), str(tmp_path / "imported")]) == 0
    root = Path(out.getvalue().splitlines()[-1])
    assert builder.counts(root) == builder.counts(path) == {"cats": 2, "puppies": 2}
    assert sorted(zipfile.ZipFile(tmp_path / "p.zip").namelist())[0].startswith("pets/cats/")
    builder.remove_class(path, "puppies")
    assert builder.class_names(path) == ["cats"]


def test_cli_add_and_list_name_refused_files_and_exit_2(tmp_path, capsys):
    good = tmp_path / "cat.png"
    make_image(good, (200, 30, 30))
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    rc = cli.main(["dataset", "--datasets-dir", str(tmp_path / "d"), "add", "pets", "cats", str(good), str(bad)])
    captured = capsys.readouterr()
    assert rc == 2 and "refused notes.jpg: " in captured.err
    assert "1 added to 'cats'" in captured.out and "1 refused" in captured.out
    assert cli.main(["dataset", "--datasets-dir", str(tmp_path / "d"), "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"] == [
        {"name": "pets", "path": str(tmp_path / "d" / "pets"), "classes": {"cats": 1}}]


def test_adding_an_image_changes_only_that_splits_fingerprint(tmp_path):
    """The feature cache's content key (engine/data/pixels.fingerprint_files) follows the files: an added image
    invalidates the entries of the split it lands in, and no other."""
    from engine.data.pixels import fingerprint_files

    path = builder.create_dataset("pets", ["cats"], tmp_path)
    builder.add_images(path, "cats", [(f"c{i}.png", png(tmp_path, f"c{i}.png", (200, 30, 30), i)) for i in range(4)])
    files = [str(p) for p in builder.images_of(path, "cats")]
    train, val = files[:3], files[3:]
    before = fingerprint_files(train), fingerprint_files(val)
    builder.add_images(path, "cats", [("new.png", png(tmp_path, "new.png", (10, 200, 10), 9))])
    new = [str(p) for p in builder.images_of(path, "cats") if str(p) not in files]
    assert fingerprint_files(train + new) != before[0] and fingerprint_files(val) == before[1]
