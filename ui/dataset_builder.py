"""“Make a dataset”: classes, uploads and camera shots per class, saved as an ordinary image folder.

The sidebar's Dataset choice "Make a dataset" names the dataset (`sb_made`, kept in the URL so a reload
keeps it); Data overview draws this editor above the usual report. All file work is the engine's
(engine/data/builder.py: the decoder's checks, names kept or refused, atomic writes); this module only keeps
which uploads it has already taken, and the session's bound on how much it saves. Each class's photos, with
Remove and its Undo, are ui/dataset_photos.py's.
"""

from __future__ import annotations

import streamlit as st

from engine.data import builder
from engine.data.layout import DatasetError
from engine.data.paths import confine
from engine.data.report import IMBALANCE_RATIO
from ui.access_gate import upload_limits
from ui.dataset_photos import forget_notes, photo_grid, undo_row
from ui.forms import own

MIN_PER_CLASS = 10  # fewer and the seeded split leaves a class with no validation image worth the name


def checked_path(name: str):
    """The folder of made dataset `name`, inside the allowed roots when served (engine/data/paths.confine).

    The datasets folder is made first: the default ./data joins the allowed roots only once it exists.
    Raises DatasetError with the reason (a name that cannot be a folder, a folder outside the roots)."""
    path = builder.dataset_path(name)  # the name first: a refused one makes nothing
    builder.make_datasets_dir()
    confine(str(path), f"Datasets folder (${builder.DATASETS_ENV})")
    return path


def made_dataset_path(name: str) -> str:
    """The folder of made dataset `name` once it exists ("" before, or when refused: the sidebar says why)."""
    if not name.strip():
        return ""
    try:
        path = checked_path(name)
    except DatasetError as exc:
        st.sidebar.error(str(exc))
        return ""
    return str(path) if path.is_dir() else ""


def sidebar_fields() -> str:
    """The sidebar part: the dataset's name (new or one made before); returns its folder once it exists."""
    sb = st.sidebar
    root = builder.datasets_dir()  # a file in its place: made_dataset_path says so once a name is typed
    made = builder.list_datasets() if root.is_dir() or not root.exists() else []
    sb.text_input(
        "Dataset name",
        key="sb_made",
        placeholder="my-photos",
        **own("sb_made", fallback=""),
        help="A new name starts a dataset; the name of one made before opens it to add more.",
    )
    if made:
        sb.caption("Made here: " + ", ".join(d["name"] for d in made))
    sb.caption(f"Saved under {builder.datasets_dir()} as NAME/<class>/ images; the Data overview page edits it.")
    return made_dataset_path(str(st.session_state.get("sb_made", "")))


def builder_panel() -> None:
    """Data overview's editor of the sidebar's made dataset: classes, their images, uploads, camera, zip.

    Until two classes hold photos the page stops here (st.stop): the report below it would only say "Choose a
    dataset in the sidebar" or give a folder's advice (a flat layout, a test split) to a dataset being made."""
    name = str(st.session_state.get("sb_made", "")).strip()
    if not name:
        st.info("Name your dataset in the sidebar (Dataset name), then add two or more classes here.")
        st.stop()
    try:
        path = checked_path(name)
    except DatasetError as exc:
        st.error(str(exc))
        st.stop()
    st.subheader(f"Make a dataset: {path.name}")
    counts = builder.counts(path)
    undo_row(path)
    _add_class_field(name, counts)
    for cls in counts:
        with st.container(border=True):
            _class_editor(path, cls, counts[cls])
    if counts:
        _summary(path, counts)
    if sum(1 for n in counts.values() if n) < 2:
        if len(counts) >= 2:
            st.info("Add photos to at least two classes: the dataset's report, feature map and data health follow here then.")
        st.stop()


def images_text(n: int) -> str:
    """'1 image', '12 images'."""
    return f"{n} image" + ("" if n == 1 else "s")


def _add_class_field(name: str, counts: dict) -> None:
    with st.form("mk_add_class_form", clear_on_submit=True, border=False):  # the field empties once the class exists
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        new = c1.text_input("New class", key="mk_new_class", placeholder="cats")
        if c2.form_submit_button("Add class") and new.strip():
            try:  # a name is kept as typed or refused with the reason (builder.check_name), never merged with another
                if (kept := builder.check_name(new, "class name")) in counts:
                    raise DatasetError(f"class {kept!r} is already here")
                builder.create_dataset(name, [new])  # the name passed checked_path in builder_panel
                forget_notes()
                st.rerun()
            except DatasetError as exc:
                st.error(str(exc))
    if len(counts) < 2:
        st.caption("A dataset needs two or more classes: add them one by one.")


def _class_editor(path, cls: str, count: int) -> None:
    """One class: its count, rename/remove, uploads and camera shots, then its thumbnails with a remove button each."""
    head, rename, remove = st.columns([3, 2, 1])
    head.markdown(f"**{cls}** · {images_text(count)}" + (f" — add at least {MIN_PER_CLASS}" if count < MIN_PER_CLASS else ""))
    new_name = rename.text_input("Rename", value=cls, key=f"mk_rename_{cls}", label_visibility="collapsed")
    if new_name.strip() and new_name.strip() != cls:  # an unchanged name (spaces aside) is no rename: no rerun loop
        _act(lambda: builder.rename_class(path, cls, new_name))
    if remove.button("Remove class", key=f"mk_remove_{cls}"):
        st.session_state[f"mk_confirm_{cls}"] = True  # its photos go from disk: asked once more
    if st.session_state.get(f"mk_confirm_{cls}"):
        ask, yes, no = st.columns([4, 1, 1], vertical_alignment="center")
        ask.warning(f"Remove class {cls} and its {images_text(count)} from disk?")
        if yes.button("Yes, remove", key=f"mk_remove_yes_{cls}", type="primary"):
            st.session_state.pop(f"mk_confirm_{cls}")
            _act(lambda: builder.remove_class(path, cls))
        if no.button("Cancel", key=f"mk_remove_no_{cls}"):
            st.session_state.pop(f"mk_confirm_{cls}")
            st.rerun()
    n = st.session_state.setdefault(f"mk_round_{cls}", 0)  # a new key empties the uploader once its files are saved
    ups = st.file_uploader(
        f"Photos of {cls}",
        accept_multiple_files=True,
        key=f"mk_up_{cls}_{n}",
        type=sorted(s.lstrip(".") for s in builder.IMAGE_SUFFIXES),
    )
    shot = (
        st.camera_input(f"Take a photo of {cls}", key=f"mk_cam_{cls}_{n}")
        if st.toggle(f"Camera for {cls}", key=f"mk_cam_on_{cls}")
        else None
    )
    files = [(u.name, u.getvalue()) for u in list(ups or []) + ([shot] if shot is not None else [])]
    if files:
        forget_notes()
        _save(path, cls, files)
        st.session_state[f"mk_round_{cls}"] = n + 1
        st.rerun()
    for line in st.session_state.get(f"mk_said_{cls}", []):
        (st.error if line.startswith("Refused") else st.caption)(line)
    photo_grid(path, cls)


def _save(path, cls: str, files: list[tuple[str, bytes]]) -> None:
    """Saves the uploads within this session's bound (TLS_UPLOAD_MAX_FILES / _MB), said under the class: only saved
    images count (not duplicates or refused files), and each upload the bound turns away is named with the reason."""
    max_files, max_bytes = upload_limits()
    done_files, done_bytes = st.session_state.get("mk_saved", (0, 0))
    pending, said, saved, duplicates = list(files), [], 0, 0
    while pending:
        take, rest, size = [], [], 0
        for name, data in pending:
            fits = len(take) < max_files - done_files and done_bytes + size + len(data) <= max_bytes
            (take if fits else rest).append((name, data))
            size += len(data) if fits else 0
        if not take:
            break
        try:
            added = builder.add_images(path, cls, take)
        except DatasetError as exc:  # a full disk: what was saved before it stays, the rest is to add again
            said, pending = said + [f"Refused the rest: {exc}"], []
            break
        done_files, done_bytes = (
            done_files + len(added.saved),
            done_bytes + sum((path / cls / n).stat().st_size for n in added.saved),
        )
        saved, duplicates, pending = saved + len(added.saved), duplicates + len(added.duplicates), rest
        said += [f"Refused {name}: {reason}" for name, reason in added.refused]
    st.session_state["mk_saved"] = (done_files, done_bytes)
    said += [
        f"Refused {name}: this session has saved {done_files} images ({done_bytes / 2**20:.0f} MB), its bound "
        f"(TLS_UPLOAD_MAX_FILES={max_files}, TLS_UPLOAD_MAX_MB={max_bytes / 2**20:.0f}); reload the page to go on"
        for name, _ in pending
    ]
    if saved:
        said.append(f"Added {images_text(saved)}" + (f"; {duplicates} already here" if duplicates else ""))
    elif duplicates:
        said.append(f"{images_text(duplicates)} already here, not added twice")
    st.session_state[f"mk_said_{cls}"] = said


def _act(change) -> None:
    """Runs one change to the dataset and reruns (the counts and thumbnails follow); a refusal is shown instead."""
    forget_notes()
    try:
        change()
    except (DatasetError, OSError) as exc:
        st.error(str(exc))
        return
    st.rerun()


@st.cache_data(show_spinner="Zipping the dataset …", max_entries=2)
def _zip(path: str, stamp: tuple) -> bytes:
    return builder.zip_bytes(path)


def _summary(path, counts: dict) -> None:
    """Counts per class, the warnings a scan would give, and the dataset as a zip."""
    filled = {c: n for c, n in counts.items() if n}
    if len(filled) >= 2 and max(filled.values()) / min(filled.values()) > IMBALANCE_RATIO:
        st.warning(
            "Classes are imbalanced: " + ", ".join(f"{c} {n}" for c, n in counts.items()) + ". Add images to the smaller ones."
        )
    few = [c for c, n in counts.items() if n < MIN_PER_CLASS]
    if few:
        st.warning(f"Too few images in {', '.join(few)}: add at least {MIN_PER_CLASS} per class before training.")
    stamp = tuple(sorted((c, tuple(p.name for p in builder.images_of(path, c))) for c in counts))
    st.download_button(
        "Download as zip",
        _zip(str(path), stamp),
        f"{path.name}.zip",
        "application/zip",
        key="mk_zip",
        help="NAME/<class>/<image>: `python -m engine import-zip` and any image-folder tool read it.",
    )
