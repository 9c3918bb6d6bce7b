import json
import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from engine.data import images, pixels, report, splits
from engine.data.images import ImageDecodeError, decode_image
from engine.data.layout import DatasetError
from engine.data.scan import scan_dataset
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
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(cats / "scan.ppm")
    r = scan_dataset(tiny_dataset)
    reasons = {b.path.rsplit("/", 1)[-1]: b.reason for b in r.bad_files}
    assert set(reasons) == {"notes.jpg", "truncated.png", "scan.ppm"}
    assert "not a readable image" in reasons["notes.jpg"]
    assert "not a readable image" in reasons["truncated.png"]
    assert reasons["scan.ppm"] == "unsupported format PPM; convert it to JPEG or PNG"
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
    with pytest.raises(
        DatasetError, match=r"validation: class folders differ from train/ \(missing \['dogs'\]; extra \['horses'\]\)"
    ):
        scan_dataset(tiny_dataset)


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: None, "folder not found"),
        (lambda p: make_image(p / "only" / "a.png", (1, 1, 1)), "need at least 2"),
        (lambda p: make_image(p / "train" / "a" / "a.png", (1, 1, 1)), "need both train/ and validation/"),
    ],
)
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
        report.require_trainable(r)


def test_load_images_matches_single_file_reader(tiny_dataset):
    r = scan_dataset(tiny_dataset)
    sp = splits.split_arrays(r, "train")
    assert list(sp.labels) == [0] * 8 + [1] * 8
    imgs = pixels.load_images(sp.files, 24)
    assert imgs.shape == (16, 24, 24, 3) and imgs.dtype == np.uint8
    one = pixels.read_image_file(sp.files[3], 24)
    assert one.shape == (1, 24, 24, 3)
    np.testing.assert_array_equal(one[0].astype(np.uint8), imgs[3])
    assert imgs[0, ..., 0].mean() > imgs[0, ..., 2].mean()  # cats are red-dominant, RGB order kept


def test_non_image_bytes_give_a_clear_message():
    with pytest.raises(ImageDecodeError, match="^doc.pdf: not a readable image"):
        pixels.image_bytes_to_array(b"%PDF-1.4 nope", 32, name="doc.pdf")


def test_load_images_and_image_dataset_use_the_one_decoder(tmp_path):
    """Modes TensorFlow got wrong or refused: palette BMP, 1-bit BMP, animated WebP, EXIF rotation."""
    pal = Image.new("P", (20, 10), 1)
    pal.putpalette([0, 0, 0, 230, 30, 20])
    pal.save(tmp_path / "palette.bmp")
    Image.new("1", (20, 10), 1).save(tmp_path / "onebit.bmp")
    frames = [Image.new("RGB", (20, 10), c) for c in ((0, 0, 255), (255, 0, 0))]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 8
    half = Image.new("RGB", (20, 10), (0, 200, 0))
    half.paste((200, 0, 200), (0, 0, 10, 10))
    half.save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95)
    files = [str(tmp_path / n) for n in ("palette.bmp", "onebit.bmp", "anim.webp", "turned.jpg")]
    loaded = pixels.load_images(files, 16)
    streamed = np.concatenate([b.numpy() for b in pixels.image_dataset(files, 16, batch_size=3)])
    assert loaded.dtype == streamed.dtype == np.uint8 and loaded.shape == streamed.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(loaded, streamed)
    for i, f in enumerate(files):
        np.testing.assert_array_equal(loaded[i], decode_image(f, 16))
    assert tuple(loaded[0, 8, 8]) == (230, 30, 20) and tuple(loaded[1, 8, 8]) == (255, 255, 255)
    assert tuple(loaded[2, 8, 8]) == (0, 0, 255)  # first frame
    assert loaded[3, 14, 8, 0] > 150 and loaded[3, 1, 8, 1] > 150  # orientation 8: left half ends at the bottom


def test_image_dataset_of_no_files_is_empty():
    assert list(pixels.image_dataset([], 16)) == [] and pixels.load_images([], 16).shape == (0, 16, 16, 3)


def test_awkward_files_scan_as_the_decoder_reads_them(tiny_dataset):
    cats = tiny_dataset / "train" / "cats"
    frames = [Image.new("RGB", (20, 10), c) for c in ((0, 0, 255), (255, 0, 0))]
    frames[0].save(cats / "anim.webp", save_all=True, append_images=frames[1:])
    Image.new("1", (20, 10), 1).save(cats / "onebit.bmp")
    Image.new("RGB", (16, 12)).save(cats / "camera.mpo", "MPO", save_all=True, append_images=[Image.new("RGB", (16, 12))])
    Image.new("CMYK", (12, 12)).save(cats / "print.tif")
    r = scan_dataset(tiny_dataset)
    assert r.bad_files == []
    assert r.counts["train"]["cats"] == 12
    assert r.formats == {"PNG": 32, "WEBP": 1, "BMP": 1, "MPO": 1, "TIFF": 1}


def test_fifo_in_a_class_folder_is_reported_not_opened(tiny_dataset):
    fifo = tiny_dataset / "train" / "cats" / "pipe.jpg"
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=scan_dataset(tiny_dataset)), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "scan blocked on a FIFO"
    r = result["r"]
    assert [(b.path, b.reason) for b in r.bad_files] == [(str(fifo), "not a regular file")]
    assert r.counts["train"]["cats"] == 8


def test_symlinks_to_the_root_or_an_ancestor_never_become_classes(tmp_path):
    root = tmp_path / "flat"
    for cls in ("cats", "dogs"):
        for k in range(3):
            make_image(root / cls / f"{k}.png", COLOURS[cls], seed=k)
    (root / "everything").symlink_to(".")
    (root / "up").symlink_to(tmp_path)
    (root / "cats" / "loop").symlink_to("..")  # inside a class: a loop back to the root
    r = scan_dataset(root)
    assert r.layout == "flat" and r.classes == ["cats", "dogs"] and r.num_images == 6
    ignored = " ".join(w for w in r.warnings if w.startswith("ignored"))
    assert f"{root / 'everything'}" in ignored and f"{root / 'up'}" in ignored and f"{root / 'cats' / 'loop'}" in ignored


def test_symlinked_files_and_folders_are_followed_once(tmp_path):
    store = tmp_path / "store"
    for k in range(3):
        make_image(store / "c" / f"{k}.png", COLOURS["cats"], seed=k)
        make_image(store / "d" / f"{k}.png", COLOURS["dogs"], seed=k)
    root = tmp_path / "links"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "a.png").symlink_to(store / "c" / "0.png")  # a linked file
    (root / "cats" / "more").symlink_to(store / "c")  # a linked folder inside a class
    (root / "cats" / "again").symlink_to(store / "c")  # the same folder twice: read once
    (root / "dogs").symlink_to(store / "d")  # a linked class folder
    (store / "c" / "back").symlink_to(root / "cats")  # a cycle through two folders
    (root / "dogs" / "broken.png").symlink_to(tmp_path / "missing.png")
    r = scan_dataset(root)
    counts = {c: len([f for s in r.files.values() for f in s[c]]) for c in r.classes}
    assert counts == {"cats": 4, "dogs": 3}
    assert [b.reason for b in r.bad_files] == ["cannot read (No such file or directory)"]


@pytest.mark.parametrize("names", [("val", "test"), ("train", "valid"), ("train", "val", "test")])
def test_flat_classes_named_like_splits_stay_flat(tmp_path, names):
    root = tmp_path / "flat"
    for i, cls in enumerate(names):
        for k in range(4):
            make_image(root / cls / f"{k}.png", list(COLOURS.values())[i], seed=k)
    r = scan_dataset(root)
    assert r.layout == "flat" and r.classes == sorted(names)
    assert sum(r.counts["train"].values()) + sum(r.counts["validation"].values()) + sum(
        r.counts.get("test", {}).values()
    ) == 4 * len(names)


def test_split_layout_needs_class_folders_and_ignores_a_loose_test_folder(tmp_path):
    root = make_split_dataset(tmp_path / "s", counts={"train": 4, "val": 2})
    make_image(root / "test" / "unlabelled.png", (1, 2, 3))  # Kaggle-style: images straight in test/
    r = scan_dataset(root)
    assert r.layout == "split" and set(r.counts) == {"train", "validation"}
    assert any(w.startswith("ignored") and "test" in w and "holds no class folders" in w for w in r.warnings)
    shutil.rmtree(root / "val")
    with pytest.raises(DatasetError, match="need both train/ and validation/"):
        scan_dataset(root)  # train/ with class folders, no validation: not silently flat


def test_fingerprint_changes_when_a_file_changes(tiny_dataset):
    files = sorted(str(p) for p in (tiny_dataset / "train" / "cats").iterdir())
    before = pixels.fingerprint_files(files)
    assert pixels.fingerprint_files(files) == before
    make_image(tiny_dataset / "train" / "cats" / "cats_0.png", (0, 0, 0), size=(41, 32))
    assert pixels.fingerprint_files(files) != before


def test_fingerprint_sees_same_size_edit_with_restored_mtime(tiny_dataset):
    f = tiny_dataset / "train" / "cats" / "cats_0.png"
    files = [str(f)]
    before, st = pixels.fingerprint_files(files), f.stat()
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert pixels.fingerprint_files(files) != before


def test_a_rescan_of_unchanged_files_decodes_nothing_and_a_changed_file_is_checked_again(tiny_dataset, tmp_path, monkeypatch):
    checks_dir = tmp_path / "cache"
    cats = tiny_dataset / "train" / "cats"
    (cats / "notes.jpg").write_text("not an image")
    first = scan_dataset(tiny_dataset, checks_dir=checks_dir)
    assert (checks_dir / "image-checks.json").exists()
    decoded = []
    real = images.check_image
    monkeypatch.setattr(images, "check_image", lambda p, *a: decoded.append(p) or real(p, *a))
    again = scan_dataset(tiny_dataset, checks_dir=checks_dir)
    assert decoded == []  # every file's verdict came from the remembered checks
    assert again.to_dict() == first.to_dict()  # the same report: files, bad files with their reasons, sizes, formats
    assert [b.path for b in again.bad_files] == [str(cats / "notes.jpg")]
    (cats / "notes.jpg").unlink()
    make_image(cats / "notes.jpg", COLOURS["cats"], seed=99)  # now a real image (another size and inode)
    Image.new("RGB", (64, 48), "red").save(cats / "cats_0.png")  # a changed image: new size reported
    third = scan_dataset(tiny_dataset, checks_dir=checks_dir)
    assert sorted(decoded) == sorted([cats / "notes.jpg", cats / "cats_0.png"])  # only the changed files
    assert third.bad_files == [] and (64, 48) in third.sizes


def test_damaged_remembered_checks_are_ignored(tiny_dataset, tmp_path):
    checks_dir = tmp_path / "cache"
    checks_dir.mkdir()
    (checks_dir / "image-checks.json").write_text("{not json")
    assert scan_dataset(tiny_dataset, checks_dir=checks_dir).to_dict() == scan_dataset(tiny_dataset).to_dict()
    assert json.loads((checks_dir / "image-checks.json").read_text())  # rewritten whole
