"""engine/data/builder.py and `python -m engine dataset`: made datasets are checked, safe, atomic, and ordinary folders."""

import contextlib
import errno
import io
import json
import os
import re
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


def test_readable_images_are_saved_under_their_names_and_unreadable_ones_are_refused_with_their_reason(tmp_path):
    path = builder.create_dataset(" my photos! ", ["cats", "dogs"], tmp_path)
    assert path == tmp_path / "my photos!" and builder.class_names(path) == ["cats", "dogs"]  # as typed, spaces trimmed
    good = png(tmp_path, "a.png", (200, 30, 30))
    added = builder.add_images(
        path, "cats", [("../../etc/a b.png", good), ("IMG 1.jpg", good), ("broken.jpg", b"\xff\xd8 no jpeg")]
    )
    assert len(added.saved) == 1 and added.saved[0].startswith("a b-") and added.saved[0].endswith(".png")
    assert added.duplicates == ["IMG 1.jpg"]  # same content: stored once
    assert [n for n, _ in added.refused] == ["broken.jpg"] and "broken.jpg" not in " ".join(
        p.name for p in (path / "cats").iterdir()
    )
    assert added.refused[0][1]  # the decoder's one-line reason
    assert [p.name for p in (path / "cats").iterdir()] == added.saved  # no temp file left, nothing outside the class
    assert builder.counts(path) == {"cats": 1, "dogs": 0}


KEPT = ["café", "caf", "dogs!", "Ölçü ışık", "猫", "a.b", "con-artist", "COM10", "x" * builder.MAX_NAME]
REFUSED = {  # name: the reason's words
    "": "is empty",
    "  ": "is empty",
    "a/b": "path separator",
    "a\\b": "path separator",
    "../..": "path separator",
    ".": "is not a name",
    "..": "is not a name",
    ".hidden": "starts with a dot",
    "CON": "device name Windows reserves (CON)",
    "nul.txt": "device name Windows reserves (NUL)",
    "Com1": "reserves (COM1)",
    "lpt9.tar.gz": "reserves (LPT9)",
    "aux .png": "reserves (AUX)",
    "x\x00y": "control character '\\x00'",
    "tab\tname": "control character '\\t'",
    "a\u202eb": "control character",
    "line\u2028break": "control character",
    "ends.": "ends with a dot or space",
    "x" * (builder.MAX_NAME + 1): "characters",
}


@pytest.mark.parametrize("name", KEPT)
def test_names_are_kept_as_typed(name):
    assert builder.check_name(f"  {name}\t", "class name") == name


@pytest.mark.parametrize("name,words", [(n, w) for n, w in REFUSED.items() if w])
def test_names_that_cannot_be_folders_are_refused_with_the_reason(name, words):
    with pytest.raises(DatasetError, match=rf"^class name {re.escape(repr(name))}: .*{re.escape(words)}") as err:
        builder.check_name(name, "class name")
    assert "\n" not in str(err.value)


def test_a_name_is_never_merged_into_another(tmp_path, capsys):
    """`café` once became `caf` and landed in the existing class `caf`; now they are two classes."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    make_image(a, (200, 30, 30))
    make_image(b, (30, 30, 200))
    root = str(tmp_path / "d")
    assert cli.main(["dataset", "--datasets-dir", root, "add", "pets", "caf", str(a)]) == 0
    assert cli.main(["dataset", "--datasets-dir", root, "add", "pets", "café", str(b)]) == 0
    assert builder.counts(tmp_path / "d" / "pets") == {"caf": 1, "café": 1}
    assert cli.main(["dataset", "--datasets-dir", root, "add", "pets", "ca/f", str(b)]) == 2
    assert (
        capsys.readouterr().err
        == "error: class name 'ca/f': holds a path separator (/ or \\); a name is one folder, e.g. 'cats'\n"
    )
    assert builder.rename_class(tmp_path / "d" / "pets", "caf", "caf ") == "caf"  # unchanged, not an error
    with pytest.raises(DatasetError, match="already exists"):
        builder.rename_class(tmp_path / "d" / "pets", "caf", "café")
    with pytest.raises(DatasetError, match="no such class"):
        builder.rename_class(tmp_path / "d" / "pets", "../d", "x")  # the old name must be one of its classes
    assert builder.counts(tmp_path / "d" / "pets") == {"caf": 1, "café": 1}


def test_a_64_character_name_over_255_bytes_is_refused():
    assert builder.check_name("é" * builder.MAX_NAME, "class name") == "é" * builder.MAX_NAME  # 128 bytes
    builder.MAX_NAME, old = 200, builder.MAX_NAME
    try:
        with pytest.raises(DatasetError, match="is 300 bytes in UTF-8; use at most 255"):
            builder.check_name("é" * 150, "class name")
    finally:
        builder.MAX_NAME = old


def within(seconds: float, fn):
    """fn() in a thread; fails (instead of hanging the suite) when it has not returned in `seconds`."""
    from tests.test_reads import within as guard

    return guard(seconds, fn)


def test_cli_add_refuses_a_fifo_and_dev_zero_at_once_and_adds_the_rest(tmp_path, capsys):
    good, fifo = tmp_path / "cat.png", tmp_path / "pipe.png"
    make_image(good, (200, 30, 30))
    os.mkfifo(fifo)  # no writer: reading it would wait forever
    argv = [
        "dataset",
        "--datasets-dir",
        str(tmp_path / "d"),
        "add",
        "pets",
        "cats",
        str(fifo),
        "/dev/zero",
        str(good),
        str(tmp_path),
    ]
    assert within(20, lambda: cli.main(argv)) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"refused {fifo}: is a pipe, not a regular file",
        "refused /dev/zero: is a device, not a regular file",
        f"refused {tmp_path}: is a folder, not a regular file",
    ]
    assert "1 added to 'cats', 3 refused" in captured.out and builder.counts(tmp_path / "d" / "pets") == {"cats": 1}


def test_cli_add_refuses_a_file_over_the_decoders_byte_limit_before_reading_it(tmp_path, capsys, monkeypatch):
    from engine.cli import dataset as dataset_cli

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2000)
    monkeypatch.setattr(dataset_cli, "MAX_IMAGE_BYTES", 1000)
    assert cli.main(["dataset", "--datasets-dir", str(tmp_path / "d"), "add", "pets", "cats", str(big)]) == 2
    assert capsys.readouterr().err == f"refused {big}: is 2,000 bytes, over the limit of 1,000 bytes\n"


@pytest.mark.parametrize("config", ["fifo", "/dev/zero", "folder"])
def test_run_config_that_is_not_a_regular_file_is_one_line_at_once(config, tmp_path, capsys):
    path = {"fifo": tmp_path / "c.json", "/dev/zero": "/dev/zero", "folder": tmp_path}[config]
    if config == "fifo":
        os.mkfifo(path)
    rc = within(20, lambda: cli.main(["run", "--approach", "feature_extraction", "--data", str(tmp_path), "--config", str(path)]))
    kind = {"fifo": "a pipe", "/dev/zero": "a device", "folder": "a folder"}[config]
    assert rc == 2 and capsys.readouterr().err == f"error: --config {path}: is {kind}, not a regular file\n"


def test_a_config_over_its_size_bound_or_not_utf8_is_one_line(tmp_path):
    from engine.cli.flags import read_config_file
    from engine.config import MAX_CONFIG_CHARS, ConfigError

    big, latin = tmp_path / "big.json", tmp_path / "latin.json"
    big.write_bytes(b" " * (MAX_CONFIG_CHARS + 1))
    latin.write_bytes(b'{"approach": "caf\xe9"}')
    with pytest.raises(ConfigError, match=rf"^--config {big}: is 1,000,001 bytes, over the limit of 1,000,000 bytes$"):
        read_config_file(str(big))
    with pytest.raises(ConfigError, match=rf"^--config {latin}: not UTF-8 text"):
        read_config_file(str(latin))


@pytest.mark.parametrize("where", ["--datasets-dir", "dataset", "class"])
def test_an_existing_file_as_datasets_folder_dataset_or_class_is_one_line(where, tmp_path, capsys):
    good = tmp_path / "cat.png"
    make_image(good, (200, 30, 30))
    root = tmp_path / "d"
    clash = {"--datasets-dir": root, "dataset": root / "pets", "class": root / "pets" / "cats"}[where]
    clash.parent.mkdir(parents=True, exist_ok=True)
    clash.write_text("a file of the user's")
    assert cli.main(["dataset", "--datasets-dir", str(root), "add", "pets", "cats", str(good)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and f"{clash} is a file, not a folder" in err, err
    assert clash.read_text() == "a file of the user's"
    if where == "--datasets-dir":
        assert cli.main(["dataset", "--datasets-dir", str(root), "list"]) == 2
        assert "is a file, not a folder" in capsys.readouterr().err


def test_a_full_disk_leaves_no_temp_file_and_is_one_line(tmp_path, monkeypatch):
    path = builder.create_dataset("pets", ["cats"], tmp_path)
    first, second = png(tmp_path, "a.png", (200, 30, 30)), png(tmp_path, "b.png", (30, 30, 200))
    builder.add_images(path, "cats", [("a.png", first)])
    real_write = os.write

    def full(fd, data):
        real_write(fd, bytes(data[:10]))  # a part is written, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(builder.os, "write", full)
    with pytest.raises(DatasetError, match="cannot write it \\(No space left on device: free some space") as err:
        builder.add_images(path, "cats", [("b.png", second)])
    assert "\n" not in str(err.value) and "nothing partial was left" in str(err.value)
    assert sorted(p.name for p in (path / "cats").iterdir()) == [builder.images_of(path, "cats")[0].name]  # no temp file
    monkeypatch.setattr(
        builder.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system"))
    )
    with pytest.raises(DatasetError, match="cannot write there \\(Read-only file system\\)"):
        builder.add_images(path, "cats", [("b.png", second)])


def test_cli_add_on_a_full_disk_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    good = tmp_path / "cat.png"
    make_image(good, (200, 30, 30))
    monkeypatch.setattr(
        builder.os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
    )
    assert cli.main(["dataset", "--datasets-dir", str(tmp_path / "d"), "add", "pets", "cats", str(good)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "No space left on device" in err
    assert [p.name for p in (tmp_path / "d" / "pets" / "cats").iterdir()] == []


def test_links_planted_in_a_dataset_are_not_counted_zipped_or_followed(tmp_path):
    path = builder.create_dataset("pets", ["cats"], tmp_path)
    builder.add_images(path, "cats", [("c.png", png(tmp_path, "c.png", (200, 30, 30)))])
    secret, elsewhere = tmp_path / "secret.txt", tmp_path / "elsewhere"
    secret.write_text("password")
    elsewhere.mkdir()
    (elsewhere / "x.png").write_bytes(png(tmp_path, "x.png", (1, 2, 3)))
    (path / "cats" / "passwd.png").symlink_to(secret)
    (path / "cats" / "photo.png").symlink_to(elsewhere / "x.png")
    (path / "linked").symlink_to(elsewhere)  # a class folder that is a link
    assert builder.counts(path) == {"cats": 1}
    names = zipfile.ZipFile(io.BytesIO(builder.zip_bytes(path))).namelist()
    assert names == [f"pets/cats/{builder.images_of(path, 'cats')[0].name}"]
    with pytest.raises(DatasetError, match="no such class"):
        builder.remove_class(path, "linked")
    with pytest.raises(DatasetError, match="not its images"):  # nothing removed: the links and their targets stay
        builder.remove_class(path, "cats")
    assert secret.read_text() == "password" and (elsewhere / "x.png").exists() and builder.counts(path) == {"cats": 1}


def test_rename_remove_and_zip_round_trip_through_import_zip(tmp_path):
    path = builder.create_dataset("pets", ["cats", "dogs"], tmp_path / "d")
    builder.add_images(path, "cats", [(f"c{i}.png", png(tmp_path, f"c{i}.png", (200, 30, 30), i)) for i in range(3)])
    builder.add_images(path, "dogs", [(f"d{i}.png", png(tmp_path, f"d{i}.png", (30, 30, 200), i)) for i in range(2)])
    builder.remove_image(path, "cats", builder.images_of(path, "cats")[0].name)
    assert builder.rename_class(path, "dogs", "puppies") == "puppies"
    with pytest.raises(DatasetError, match="already exists"):
        builder.rename_class(path, "cats", "puppies")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["dataset", "--datasets-dir", str(tmp_path / "d"), "zip", "pets", str(tmp_path / "p.zip")]) == 0
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
        {"name": "pets", "path": str(tmp_path / "d" / "pets"), "classes": {"cats": 1}}
    ]


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
