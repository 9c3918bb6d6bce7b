"""ui/dataset_builder.py on Data overview (AppTest): classes added, renamed and removed, counts and warnings, one image
removed; uploads and the camera are in the browser test (tests/test_browser_dataset.py)."""

import pytest

from engine.data import builder
from tests.conftest import make_image
from tests.test_app_pages import page, sample_dir  # noqa: F401 (sample_dir: autouse fixture)


@pytest.fixture
def datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_DATASETS_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def photos(tmp_path, colour, n):
    out = []
    for i in range(n):
        path = tmp_path / "src" / f"{colour[0]}-{i}.png"
        make_image(path, colour, seed=i)
        out.append((path.name, path.read_bytes()))
    return out


def overview(name: str):
    at = page("pages/data_overview.py")
    at.session_state["sb_source"], at.session_state["sb_made"] = "made", name
    return at.run()


def test_classes_are_added_renamed_and_removed_and_counts_warn(datasets, tmp_path):
    at = overview("pets")
    assert not at.exception, at.exception
    assert any("two or more classes" in c.value for c in at.caption)
    for cls in ("cats", "dogs"):
        at.text_input(key="mk_new_class").set_value(cls)
        at.button[[b.label for b in at.button].index("Add class")].click().run()
    assert builder.class_names(datasets / "pets") == ["cats", "dogs"]
    builder.add_images(datasets / "pets", "cats", photos(tmp_path, (200, 30, 30), 12))
    builder.add_images(datasets / "pets", "dogs", photos(tmp_path, (30, 30, 200), 3))
    at.run()
    text = [m.value for m in at.markdown]
    assert "**cats** · 12 images" in text and f"**dogs** · 3 images — add at least {10}" in text
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Classes are imbalanced: cats 12, dogs 3") for w in warnings)
    assert any(w.startswith("Too few images in dogs") for w in warnings)
    first = builder.images_of(datasets / "pets", "dogs")[0].name
    at.button(key=f"mk_del_dogs_{first}").click().run()
    assert builder.counts(datasets / "pets") == {"cats": 12, "dogs": 2}
    assert [s.value for s in at.success] == [f"Removed {first} from dogs (to the dataset's trash folder)."]
    assert len(list((datasets / "pets" / ".tls-curation" / "trash").rglob(first))) == 1  # kept, not deleted
    at.button(key="mk_undo_remove").click().run()
    assert builder.counts(datasets / "pets") == {"cats": 12, "dogs": 3} and not at.success  # back, and Undo is gone
    at.button(key=f"mk_del_dogs_{first}").click().run()
    at.text_input(key="mk_rename_dogs").set_value("puppies").run()
    assert builder.class_names(datasets / "pets") == ["cats", "puppies"]
    at.button(key="mk_remove_puppies").click().run()
    assert builder.counts(datasets / "pets") == {"cats": 12, "puppies": 2}  # asked once more first
    assert any(w.value == "Remove class puppies and its 2 images from disk?" for w in at.warning)
    at.button(key="mk_remove_no_puppies").click().run()  # Cancel: nothing removed, the question gone
    assert builder.counts(datasets / "pets") == {"cats": 12, "puppies": 2}
    assert not any(w.value.startswith("Remove class") for w in at.warning)
    at.button(key="mk_remove_puppies").click().run()
    at.button(key="mk_remove_yes_puppies").click().run()
    assert builder.counts(datasets / "pets") == {"cats": 12}
    assert not at.exception, at.exception


def test_a_name_that_cannot_be_a_folder_is_refused_with_the_reason(datasets):
    at = overview("///")
    assert any("dataset name '///': holds a path separator" in e.value for e in at.error), [e.value for e in at.error]
    assert not datasets.exists() or not any(datasets.iterdir())  # the datasets folder may be made; nothing in it


def test_add_class_keeps_names_as_typed_and_refuses_with_the_reason(datasets):
    """`café` once became `caf` and merged with an existing class `caf`."""
    at = overview("pets")
    for cls in ("caf", "café", "a/b", "CON", "café"):
        at.text_input(key="mk_new_class").set_value(cls)
        at.button[[b.label for b in at.button].index("Add class")].click().run()
        assert not at.exception, at.exception
    assert builder.class_names(datasets / "pets") == ["caf", "café"]
    errors = [e.value for e in at.error]
    assert errors == ["class 'café' is already here"], errors  # the last one; each refusal shows on its own run
    at.text_input(key="mk_new_class").set_value("a/b")
    at.button[[b.label for b in at.button].index("Add class")].click().run()
    assert [e.value for e in at.error] == [
        "class name 'a/b': holds a path separator (/ or \\); a name is one folder, e.g. 'cats'"
    ]


def test_a_datasets_folder_outside_the_allowed_roots_is_refused_when_served(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_DATA_ROOTS", str(tmp_path / "allowed"))
    monkeypatch.setenv("TLS_DATASETS_DIR", str(tmp_path / "elsewhere"))
    at = overview("pets")
    assert any("Datasets folder" in e.value for e in at.error), [e.value for e in at.error]
    assert not (tmp_path / "elsewhere" / "pets").exists()
    assert "Add class" not in [b.label for b in at.button]  # no editor: nothing can be written there


def test_a_session_saves_at_most_its_upload_bound(datasets, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TLS_UPLOAD_MAX_FILES", "3")
    files = photos(tmp_path, (200, 30, 30), 5)
    source = tmp_path / "src"
    at = AppTest.from_string(f"""
from pathlib import Path
from ui.dataset_builder import _save
files = [(p.name, p.read_bytes()) for p in sorted(Path({str(source)!r}).iterdir())]
_save(Path({str(datasets / "pets")!r}), "cats", files[:2])
_save(Path({str(datasets / "pets")!r}), "cats", files[2:])
""").run()
    assert not at.exception, at.exception
    said = at.session_state["mk_said_cats"]
    assert [s.split(":")[0] for s in said if s.startswith("Refused")] == [f"Refused {n}" for n, _ in files[3:]]
    assert "TLS_UPLOAD_MAX_FILES=3" in said[0]
    assert builder.counts(datasets / "pets") == {"cats": 3}


def test_uploads_the_bound_turns_away_are_named_on_screen_and_duplicates_do_not_count(datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_UPLOAD_MAX_FILES", "3")
    builder.create_dataset("pets", ["cats"], datasets)
    files = photos(tmp_path, (200, 30, 30), 5)
    at = overview("pets")
    upload = [(n, d, "image/png") for n, d in files[:2] + files[:2]]  # two photos, each twice: 2 saved, 2 duplicates
    at.file_uploader(key="mk_up_cats_0").set_value(upload).run()
    assert not at.exception, at.exception
    assert "Added 2 images; 2 already here" in [c.value for c in at.caption] and at.session_state["mk_saved"][0] == 2
    at.file_uploader(key="mk_up_cats_1").set_value(
        [("notes.png", b"not an image", "image/png")] + [(n, d, "image/png") for n, d in files[2:]]
    ).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error if e.value.startswith("Refused")]  # (the report below says its own)
    assert errors[0].startswith("Refused notes.png: not a readable image")  # refused by the decoder: no room taken
    assert [e.split(":")[0] for e in errors[1:]] == [f"Refused {n}" for n, _ in files[3:]]
    assert all("this session has saved 3 images" in e and "TLS_UPLOAD_MAX_FILES=3" in e for e in errors[1:])
    assert "Added 1 image" in [c.value for c in at.caption]
    assert builder.counts(datasets / "pets") == {"cats": 3}
    first = builder.images_of(datasets / "pets", "cats")[0].name
    at.button(key=f"mk_del_cats_{first}").click().run()  # any other action clears what the upload said
    assert not [c.value for c in at.caption if c.value.startswith("Added")] and not at.error


def test_a_dataset_being_made_gets_no_folder_advice_and_no_choose_a_dataset_box(datasets):
    at = overview("pets")  # a name, no folder yet
    assert not at.exception, at.exception
    infos = [i.value for i in at.info]
    assert not any(i.startswith("Choose a dataset in the sidebar") for i in infos), infos
    for cls in ("cats", "dogs"):
        at.text_input(key="mk_new_class").set_value(cls)
        at.button[[b.label for b in at.button].index("Add class")].click().run()
    infos = [i.value for i in at.info]  # two empty classes: what to do next, not "use a flat DATA/<class>/ layout"
    assert infos == ["Add photos to at least two classes: the dataset's report, feature map and data health follow here then."]
    assert not any("no usable images" in w.value for w in at.warning)  # the report waits for photos


def test_thumbnail_names_keep_their_extension_and_tiles_are_one_size(tmp_path):
    from engine.data.images import square_thumbnail
    from tests.conftest import make_image
    from ui.dataset_builder import images_text
    from ui.dataset_photos import short_name

    assert short_name("IMG_20230412_1200_0412.jpg") == "IMG_202…0_0412.jpg"  # 18 characters, the extension whole
    assert short_name("cat.png") == "cat.png" and short_name("a" * 30 + ".webp") == "aaaaaa…aaaaaa.webp"
    assert short_name("no_extension_but_a_long_name") == "no_extens…ong_name"
    assert (images_text(1), images_text(2), images_text(0)) == ("1 image", "2 images", "0 images")
    make_image(tmp_path / "wide.png", (200, 30, 30), size=(120, 40))
    make_image(tmp_path / "tall.png", (30, 30, 200), size=(30, 90))
    assert (
        square_thumbnail(tmp_path / "wide.png", 160).shape == square_thumbnail(tmp_path / "tall.png", 160).shape == (160, 160, 3)
    )
