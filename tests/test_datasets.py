import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from engine import datasets
from engine.datasets import DatasetError, scan_dataset
from tests.conftest import COLOURS, make_image, make_split_dataset


def test_scan_split_layout_counts_sizes_formats(tiny_dataset):
    r = scan_dataset(tiny_dataset)
    assert r.layout == "split" and r.classes == ["cats", "dogs"]
    assert r.counts == {"train": {"cats": 8, "dogs": 8}, "validation": {"cats": 4, "dogs": 4}, "test": {"cats": 4, "dogs": 4}}
    assert r.size_stats["width"] == {"min": 40, "median": 40, "max": 40}
    assert r.size_stats["height"]["median"] == 32
    assert r.formats == {"PNG": 32}
    assert r.bad_files == [] and r.warnings == []
    json.dumps(r.to_dict())  # serialisable


def test_bad_files_listed_with_reason_and_skipped(tiny_dataset):
    cats = tiny_dataset / "train" / "cats"
    (cats / "notes.jpg").write_text("not an image")
    good = cats / "cats_0.png"
    truncated = cats / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(cats / "scan.tiff")
    r = scan_dataset(tiny_dataset)
    reasons = {b.path.rsplit("/", 1)[-1]: b.reason for b in r.bad_files}
    assert set(reasons) == {"notes.jpg", "truncated.png", "scan.tiff"}
    assert "not a readable image" in reasons["notes.jpg"]
    assert "not a readable image" in reasons["truncated.png"]
    assert "unsupported format TIFF" in reasons["scan.tiff"]
    assert r.counts["train"]["cats"] == 8  # bad ones are not counted
    assert any("3 unreadable" in w for w in r.warnings)


def test_os_junk_is_ignored_not_counted(tiny_dataset):
    (tiny_dataset / "train" / "cats" / ".DS_Store").write_bytes(b"\0\1junk")
    (tiny_dataset / "train" / "dogs" / "Thumbs.db").write_bytes(b"junk")
    mac = tiny_dataset / "__MACOSX" / "train" / "cats"
    mac.mkdir(parents=True)
    (mac / "._cats_0.png").write_bytes(b"junk")
    r = scan_dataset(tiny_dataset)
    assert r.bad_files == []
    assert r.counts["train"] == {"cats": 8, "dogs": 8}


def test_flat_layout_is_split_stratified_and_reproducibly(tmp_path):
    for cls, n in (("cats", 20), ("dogs", 40)):
        for k in range(n):
            make_image(tmp_path / "flat" / cls / f"{k}.png", COLOURS[cls], seed=k)
    a = scan_dataset(tmp_path / "flat", seed=7)
    b = scan_dataset(tmp_path / "flat", seed=7)
    c = scan_dataset(tmp_path / "flat", seed=8)
    assert a.layout == "flat"
    assert a.counts == {"validation": {"cats": 3, "dogs": 6}, "test": {"cats": 3, "dogs": 6}, "train": {"cats": 14, "dogs": 28}}
    assert a.files == b.files and a.files != c.files
    every = [f for s in a.files.values() for fs in s.values() for f in fs]
    assert len(every) == len(set(every)) == 60  # disjoint, complete
    d = scan_dataset(tmp_path / "flat", fractions=(0.8, 0.2, 0.0))
    assert "test" not in d.files and d.counts["validation"] == {"cats": 4, "dogs": 8}


def test_class_mismatch_between_splits_is_a_clear_error(tiny_dataset):
    shutil.rmtree(tiny_dataset / "validation" / "dogs")
    make_image(tiny_dataset / "validation" / "horses" / "h.png", (1, 2, 3))
    with pytest.raises(DatasetError, match=r"validation: class folders differ from train/ \(missing \['dogs'\]; extra \['horses'\]\)"):
        scan_dataset(tiny_dataset)


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "folder not found"),
    (lambda p: make_image(p / "only" / "a.png", (1, 1, 1)), "need at least 2"),
    (lambda p: make_image(p / "train" / "a" / "a.png", (1, 1, 1)), "need both train/ and validation/"),
])
def test_unusable_layouts(tmp_path, setup, message):
    root = tmp_path / "d"
    if setup(root) is None and not root.exists() and message != "folder not found":
        root.mkdir()
    with pytest.raises(DatasetError, match=message):
        scan_dataset(root)


def test_imbalance_warning(tmp_path):
    root = make_split_dataset(tmp_path / "imb", counts={"train": 4, "validation": 2})
    for k in range(4, 12):
        make_image(root / "train" / "dogs" / f"extra{k}.png", COLOURS["dogs"], seed=k)
    r = scan_dataset(root)
    assert any("class imbalance" in w and "12 'dogs'" in w for w in r.warnings)


def test_require_trainable_names_the_empty_split(tiny_dataset):
    for f in (tiny_dataset / "validation" / "dogs").iterdir():
        f.write_text("broken")
    r = scan_dataset(tiny_dataset)
    with pytest.raises(DatasetError, match="validation split has no usable images of class.*dogs"):
        datasets.require_trainable(r)


def test_load_images_matches_single_file_reader(tiny_dataset):
    r = scan_dataset(tiny_dataset)
    sp = datasets.split_arrays(r, "train")
    assert list(sp.labels) == [0] * 8 + [1] * 8
    imgs = datasets.load_images(sp.files, 24)
    assert imgs.shape == (16, 24, 24, 3) and imgs.dtype == np.uint8
    one = datasets.read_image_file(sp.files[3], 24)
    assert one.shape == (1, 24, 24, 3)
    np.testing.assert_array_equal(one[0].astype(np.uint8), imgs[3])
    assert imgs[0, ..., 0].mean() > imgs[0, ..., 2].mean()  # cats are red-dominant, RGB order kept


def test_non_image_bytes_give_a_clear_message():
    with pytest.raises(DatasetError, match="not a readable image"):
        datasets.image_bytes_to_array(b"%PDF-1.4 nope", 32)


def test_fingerprint_changes_when_a_file_changes(tiny_dataset):
    files = sorted(str(p) for p in (tiny_dataset / "train" / "cats").iterdir())
    before = datasets.fingerprint_files(files)
    assert datasets.fingerprint_files(files) == before
    make_image(tiny_dataset / "train" / "cats" / "cats_0.png", (0, 0, 0), size=(41, 32))
    assert datasets.fingerprint_files(files) != before


def test_fingerprint_sees_same_size_edit_with_restored_mtime(tiny_dataset):
    f = tiny_dataset / "train" / "cats" / "cats_0.png"
    files = [str(f)]
    before, st = datasets.fingerprint_files(files), f.stat()
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert datasets.fingerprint_files(files) != before
