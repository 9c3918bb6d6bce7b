"""The sidebar's dataset choice (sample, download, folder, zip) and the scan of the active dataset.

`st.session_state["data_path"]` is the one active dataset every page reads. A refused zip
clears it *and says so* on the page: the previous dataset never stays active silently.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.data.downloads import DownloadUnavailable, download_cats_and_dogs
from engine.data.layout import DatasetError
from engine.data.paths import confine
from engine.data.report import DatasetReport
from engine.data.sample import ensure_sample_dataset
from engine.data.zip_import import import_zip
from ui import resources
from ui.dataset_builder import sidebar_fields
from ui.forms import own
from ui.uploads import UploadFolder

# Stable option keys (kept in the URL) -> what the radio shows.
SOURCES = {
    "sample": "Built-in sample",
    "catsdogs": "Cats & dogs (download)",
    "folder": "Folder path",
    "zip": "Upload .zip",
    "made": "Make a dataset",
}


def _forget_upload() -> None:
    """Deletes this session's unpacked zip and clears it as the active dataset."""
    folder = st.session_state.pop("sb_zip_folder", None)
    if folder is not None:
        folder.remove()
    for key in ("sb_zip_root", "sb_zip_name", "sb_zip_error"):
        st.session_state.pop(key, None)


def _zip_dataset(up) -> str:
    """Unpacks a new upload into its own private folder (the previous one is deleted); returns its root or ""."""
    if st.session_state.get("sb_zip_name") != (up.name, up.size):
        _forget_upload()  # a refused zip must not leave the previous dataset active
        st.session_state["sb_zip_name"] = (up.name, up.size)  # refused or not, not retried on every rerun
        folder = UploadFolder()
        try:
            st.session_state["sb_zip_root"] = str(import_zip(up, folder.path))
            st.session_state["sb_zip_folder"] = folder
        except DatasetError as exc:
            folder.remove()
            st.session_state["sb_zip_error"] = f"{up.name}: {exc}"
    if st.session_state.get("sb_zip_error"):
        st.sidebar.error(st.session_state["sb_zip_error"])
    return st.session_state.get("sb_zip_root", "")


def confined(key: str, what: str) -> str:
    """The sidebar text field `key` as a resolved path inside the allowed roots; "" (and an error shown) if not."""
    typed = str(st.session_state.get(key, "")).strip()
    st.session_state.pop("sb_path_error", None)
    if not typed:
        return ""
    try:
        return str(confine(typed, what))
    except DatasetError as exc:
        st.sidebar.error(str(exc))
        st.session_state["sb_path_error"] = str(exc)  # said in the main pane too (current_report)
        return ""


def dataset_fields() -> str:
    """The Dataset radio and what each source needs; returns the active dataset's folder ("" = none)."""
    sb = st.sidebar
    source = sb.radio("Dataset", list(SOURCES), key="sb_source", format_func=SOURCES.get, **own("sb_source", list(SOURCES)))
    path = ""
    if source == "sample":
        path = str(ensure_sample_dataset())
        sb.caption("Three classes of drawn shapes (train/validation/test), generated on first use.")
    elif source == "catsdogs":
        if st.session_state.get("sb_catsdogs_root"):
            path = st.session_state["sb_catsdogs_root"]
        elif not resources.online():
            sb.warning(
                "Offline: the cats-and-dogs sample cannot be downloaded. Use the built-in sample, a folder path or a .zip upload."
            )
        elif sb.button("Download cats & dogs (68 MB, cached)", key="sb_catsdogs_get"):
            try:
                with st.spinner("Downloading …"):
                    path = st.session_state["sb_catsdogs_root"] = str(download_cats_and_dogs())
            except DownloadUnavailable as exc:
                sb.error(str(exc))
    elif source == "folder":
        sb.text_input("Folder", key="sb_folder", placeholder="/data/cats_vs_dogs_small", **own("sb_folder", fallback=""))
        path = confined("sb_folder", "Folder path")  # refused: no scan, the error says which folders are allowed
    elif source == "made":
        path = sidebar_fields()  # ui/dataset_builder.py: the editor itself is on Data overview
    else:
        up = sb.file_uploader("Zip of DATA/{train,validation}/<class>/ or DATA/<class>/", type=["zip"], key="sb_zip")
        if up is not None:
            path = _zip_dataset(up)
    st.session_state["data_path"] = path
    return path


def dataset_name(path: str | None = None) -> str:
    """A short name for a dataset folder (its last path part), as labels show it."""
    path = st.session_state.get("data_path", "") if path is None else path
    return Path(path).name if path else "—"


def current_report() -> DatasetReport | None:
    """Scans the sidebar's dataset (cached); shows a clear message instead of raising."""
    path = st.session_state.get("data_path", "")
    if not path:
        source = st.session_state.get("sb_source")
        error_key = {"zip": "sb_zip_error", "folder": "sb_path_error"}.get(source)
        refused = st.session_state.get(error_key, "") if error_key else ""
        if refused:
            what = (
                f"the uploaded zip was refused ({refused}). Upload another zip"
                if source == "zip"
                else f"{refused}. Type another folder"
            )
            st.warning(f"No dataset is active: {what} or choose another source.")
        else:
            st.info(
                "Choose a dataset in the sidebar: the built-in sample, a folder path, a .zip upload, or make one (Make a dataset)."
            )
        return None
    try:
        return resources.scan(path, resources.folder_mtime(path))
    except DatasetError as exc:
        st.error(str(exc))
        return None
