"""import_zip: every entry is checked before anything is written; a refused zip leaves nothing behind."""

import io
import stat
import zipfile

import pytest

from engine import cli
from engine.data import zip_import
from engine.data.layout import DatasetError
from engine.data.scan import scan_dataset
from engine.data.zip_import import ZipLimits, import_zip
from tests.conftest import make_split_dataset


def make_zip(entries, compression=zipfile.ZIP_STORED) -> bytes:
    """entries: (name or ZipInfo, bytes); names are written raw, tricks included."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def symlink_entry(name: str, target: str):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def dataset_zip(tmp_path, top="mydata") -> bytes:
    src = make_split_dataset(tmp_path / "src" / top, counts={"train": 2, "validation": 1})
    return make_zip([(str(p.relative_to(src.parent)), p.read_bytes()) for p in sorted(src.rglob("*.png"))])


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "box" / "dest"
    d.mkdir(parents=True)
    return d


def test_a_good_zip_unpacks_to_its_single_top_folder(tmp_path, dest):
    root = import_zip(dataset_zip(tmp_path), dest)
    assert root == dest / "mydata"
    assert scan_dataset(root).counts == {"train": {"cats": 2, "dogs": 2}, "validation": {"cats": 1, "dogs": 1}}


def test_a_flat_zip_unpacks_to_dest_and_macos_junk_is_ignored(tmp_path):
    data = make_zip([("cats/a.png", b"x"), ("dogs/b.png", b"y"), ("__MACOSX/._cats", b"junk"), (".DS_Store", b"junk")])
    assert import_zip(data, tmp_path / "new") == tmp_path / "new"
    data = make_zip([("top/cats/a.png", b"x"), ("__MACOSX/top/._a.png", b"junk")])
    assert import_zip(io.BytesIO(data), tmp_path / "new2") == tmp_path / "new2" / "top"


TRICKS = [
    ("../evil", "climbs out of the folder with '..'"),
    ("mydata/../../evil", "climbs out of the folder with '..'"),
    ("/tmp/evil", "is an absolute path"),
    ("C:/evil", "is an absolute path"),
    ("..\\evil", "uses backslashes"),
]


@pytest.mark.parametrize("name,reason", TRICKS)
def test_path_tricks_are_refused_before_anything_is_written(tmp_path, dest, name, reason):
    data = make_zip([("mydata/cats/ok.png", b"fine"), (name, b"payload")])  # the good entry comes first
    with pytest.raises(DatasetError, match=f"zip entry {name!r}".replace("\\", "\\\\").replace(".", r"\.") + " " + reason):
        import_zip(data, dest)
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["dest"]  # nothing next to dest either
    assert not (tmp_path / "evil").exists()


def test_a_symlink_entry_is_refused(dest):
    data = make_zip([("mydata/cats/ok.png", b"fine"), symlink_entry("mydata/cats/passwd", "/etc/passwd")])
    with pytest.raises(DatasetError, match="zip entry 'mydata/cats/passwd' is a symbolic link; refusing"):
        import_zip(data, dest)
    assert list(dest.iterdir()) == []


def test_a_zip_bomb_is_refused_by_its_compression_ratio(dest):
    bomb = make_zip([("mydata/cats/zeros.bmp", bytes(50 << 20))], zipfile.ZIP_DEFLATED)  # 50 MB -> ~50 KB
    assert len(bomb) < 1 << 20
    with pytest.raises(
        DatasetError, match=r"zip entry 'mydata/cats/zeros.bmp' expands [\d,]+x, over the limit of 100x .*TLS_ZIP_MAX_RATIO"
    ):
        import_zip(bomb, dest)
    assert list(dest.iterdir()) == []


def test_the_overall_ratio_is_bounded_too(dest):
    many = make_zip([(f"d/c/{i}.txt", bytes(600 << 10)) for i in range(4)], zipfile.ZIP_DEFLATED)  # each under 1 MiB
    with pytest.raises(DatasetError, match=r"the zip as a whole expands .*TLS_ZIP_MAX_RATIO"):
        import_zip(many, dest)
    assert import_zip(many, dest, ZipLimits(max_ratio=10_000)) == dest / "d"


def test_too_many_files_and_too_many_bytes_are_refused(dest, monkeypatch):
    data = make_zip([(f"d/c/{i}.png", b"x" * 300) for i in range(10)])
    with pytest.raises(DatasetError, match="holds 10 entries, over the limit of 5; set TLS_ZIP_MAX_FILES"):
        import_zip(data, dest, ZipLimits(max_files=5))
    with pytest.raises(DatasetError, match="unpacks to 3,000 bytes, over the limit of 1,000 bytes; set TLS_ZIP_MAX_BYTES"):
        import_zip(data, dest, ZipLimits(max_bytes=1000))
    monkeypatch.setenv("TLS_ZIP_MAX_FILES", "5")  # the environment sets the defaults
    with pytest.raises(DatasetError, match="TLS_ZIP_MAX_FILES"):
        import_zip(data, dest)
    monkeypatch.setenv("TLS_ZIP_MAX_FILES", "lots")
    with pytest.raises(DatasetError, match="TLS_ZIP_MAX_FILES='lots' is not a positive number"):
        import_zip(data, dest)
    assert list(dest.iterdir()) == []


def test_bytes_written_are_counted_even_when_headers_lie(dest, monkeypatch):
    monkeypatch.setattr(zip_import, "_check_entries", lambda infos, limits: None)  # as if the headers had passed
    data = make_zip([(f"d/c/{i}.png", b"x" * 600) for i in range(3)])
    with pytest.raises(DatasetError, match="more than 1,000 bytes although its headers say less"):
        import_zip(data, dest, ZipLimits(max_bytes=1000))
    assert list(dest.iterdir()) == []


def test_not_a_zip_and_a_busy_dest_are_refused(tmp_path, dest):
    with pytest.raises(DatasetError, match="not a zip file"):
        import_zip(b"PK but not really", dest)
    (dest / "old").write_text("keep me")
    with pytest.raises(DatasetError, match="not an empty folder"):
        import_zip(make_zip([("a/b.png", b"x")]), dest)
    assert (dest / "old").read_text() == "keep me"
    created = tmp_path / "fresh"
    with pytest.raises(DatasetError):
        import_zip(make_zip([("../evil", b"x")]), created)
    assert not created.exists()  # a folder this call created is removed again


def test_cli_import_zip(tmp_path, capsys):
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(dataset_zip(tmp_path))
    bad.write_bytes(make_zip([("../evil", b"x")]))
    assert cli.main(["import-zip", str(good), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "mydata")
    assert cli.main(["import-zip", str(bad), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {bad}: zip entry '../evil' climbs out of the folder with '..'; refusing to unpack the zip"
    assert cli.main(["import-zip", str(tmp_path / "missing.zip"), str(tmp_path / "out3")]) == 2
    assert "missing.zip: cannot read (No such file or directory)" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


@pytest.mark.parametrize(
    "where,reason",
    [
        ("{file}/sub", "cannot be used (Not a directory); choose another name"),
        ("/proc/tls-x", "cannot write there (No such file or directory); choose a folder you can write to"),
    ],
)
def test_a_destination_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, where, reason):
    good = tmp_path / "good.zip"
    good.write_bytes(dataset_zip(tmp_path))
    (tmp_path / "file").write_text("a file, not a folder")
    target = where.format(file=tmp_path / "file")
    assert cli.main(["import-zip", str(good), target]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: DEST {target}: {reason}"
    ]  # the output gate, before the zip is read


def test_entries_that_clash_or_repeat_are_refused_and_nothing_is_left(dest):
    with pytest.raises(
        DatasetError, match=r"zip entry 'd/cats/a.png' clashes with another entry \(a file and a folder of the same name\)"
    ):
        import_zip(make_zip([("d/cats", b"x"), ("d/cats/a.png", b"y")]), dest)
    assert not any(dest.iterdir())
    with pytest.raises(DatasetError, match="zip entry 'd/cats/a.png' is in the zip twice; re-create the zip with one copy"):
        import_zip(make_zip([("d/cats/a.png", b"first"), ("d/dogs/b.png", b"z"), ("d/cats/a.png", b"second")]), dest)
    assert not any(dest.iterdir())


@pytest.mark.parametrize("source", ["fifo", "/dev/zero", "folder"])
def test_a_zip_path_that_is_no_regular_file_is_refused_before_it_is_read(tmp_path, capsys, source):
    """A FIFO used to hang import-zip forever and /dev/zero to read until memory ran out: the read gate refuses both."""
    import os

    from engine import cli

    if source == "fifo":
        os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    path = source if source.startswith("/") else str(tmp_path / source)
    assert cli.main(["import-zip", path, str(tmp_path / "dest")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: is a ") and "not a regular file" in err
    assert not (tmp_path / "dest").exists()
