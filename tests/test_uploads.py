"""Upload folders: private, removed when replaced, refused or collected; stale ones swept; the sidebar flow."""

import gc
import os
import tempfile
import time

import pytest

from tests.conftest import ROOT
from tests.test_app_pages import page
from tests.test_import_zip import dataset_zip, make_zip
from ui.uploads import UploadFolder, sweep_stale


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """mkdtemp() goes to a folder of this test's own, so counting tls-upload-* folders is exact."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.chdir(ROOT)
    return tmp


def uploads(tmp):
    return sorted(p.name for p in tmp.glob("tls-upload-*"))


def test_upload_folder_is_private_and_removed_once(private_tmp):
    f = UploadFolder()
    assert f.path.parent == private_tmp and f.path.name.startswith("tls-upload-")
    assert f.path.stat().st_mode & 0o777 == 0o700
    (f.path / "x").write_text("data")
    f.remove()
    f.remove()  # idempotent
    assert uploads(private_tmp) == []


def test_upload_folder_goes_with_its_owner(private_tmp):
    f = UploadFolder()
    (f.path / "x").write_text("data")
    del f
    gc.collect()
    assert uploads(private_tmp) == []


def test_sweep_removes_only_old_upload_folders(private_tmp):
    old, new, other = private_tmp / "tls-upload-old", private_tmp / "tls-upload-new", private_tmp / "keep-me"
    for d in (old, new, other):
        (d / "sub").mkdir(parents=True)
    link = private_tmp / "tls-upload-link"
    link.symlink_to(other)
    two_days_ago = time.time() - 2 * 86400
    for p in (old, other):
        os.utime(p, (two_days_ago, two_days_ago))
    os.utime(link, (two_days_ago, two_days_ago), follow_symlinks=False)
    assert sweep_stale() == [old]
    assert sorted(p.name for p in private_tmp.iterdir()) == ["keep-me", "tls-upload-link", "tls-upload-new"]
    assert (other / "sub").is_dir()


def upload(at, name: str, data: bytes):
    at.file_uploader(key="sb_zip").set_value((name, data, "application/zip")).run()
    assert not at.exception, at.exception
    return at


def test_sidebar_uploads_replace_refuse_and_clean_up(tmp_path, private_tmp):
    at = page("pages/data_overview.py")
    at.query_params["source"] = "Upload .zip"
    at.run()
    upload(at, "first.zip", dataset_zip(tmp_path / "a", top="first"))
    first = at.session_state["sb_zip_folder"].path
    assert at.session_state["data_path"] == str(first / "first")
    assert at.caption[0].value.startswith(f"{first / 'first'} · split layout")

    upload(at, "second.zip", dataset_zip(tmp_path / "b", top="second"))
    second = at.session_state["sb_zip_folder"].path
    assert not first.exists() and uploads(private_tmp) == [second.name]  # the replaced upload is deleted

    upload(at, "evil.zip", make_zip([("ok/a.png", b"x"), ("../evil", b"x")]))
    assert (
        at.sidebar.error[0].value
        == "evil.zip: zip entry '../evil' climbs out of the folder with '..'; refusing to unpack the zip"
    )
    assert at.session_state["data_path"] == ""  # the previous dataset is not silently kept
    assert at.warning[0].value.startswith("No dataset is active: the uploaded zip was refused (evil.zip: ")  # said on the page
    assert uploads(private_tmp) == []  # neither the refused nor the previous folder is left
    at.run()
    assert at.sidebar.error[0].value.startswith("evil.zip: ")  # still explained on later reruns
