"""A made dataset's photos on Data overview: a grid of same-size tiles per class, Remove to the trash, and Undo.

Every tile is the same (the photo's centre square, a one-line name that keeps its extension, a Remove button), so
the buttons line up. Remove moves the photo into the dataset's trash (engine/data/curation: ROOT/.tls-curation/,
which no scan, count or zip reads) and offers Undo until the next action; what an action said (an upload's
"Added …", a removal) goes with the next one (`forget_notes`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from engine.data import builder, curation
from engine.data.images import square_thumbnail
from engine.data.layout import DatasetError
from ui import resources

THUMBS_PER_ROW = 8
THUMB_PX = 160  # every tile the same square (the photo's centre): the Remove buttons line up
NAME_CHARS = 18  # a tile's caption on one line at 8 tiles a row; longer names keep their start, end and extension
UNDO_KEY = "mk_undo"  # (dataset folder, curation action id or None, what it said) of the last Remove: Undo until the next action


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    """A file name in at most `limit` characters: the stem's start and end around "…", the extension kept whole
    (IMG_20230412_1200_0412.jpg: "IMG_202…0_0412.jpg"), so a caption never ends mid-extension."""
    if len(name) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 5:
        stem, ext = name, ""
    room = max(2, limit - len(ext) - (1 if ext else 0) - 1)  # the stem's characters besides "…"
    head = (room + 1) // 2
    return f"{stem[:head]}…{stem[len(stem) - (room - head) :]}" + (f".{ext}" if ext else "")


def forget_notes() -> None:
    """Any new action clears what the last one said (an upload's "Added …") and its Undo."""
    for key in [k for k in st.session_state if str(k).startswith("mk_said_")] + [UNDO_KEY]:
        st.session_state.pop(key, None)


def photo_grid(path, cls: str) -> None:
    """The class's photos, 8 a row, each tile the same: a square, a one-line name, a Remove button."""
    images = builder.images_of(path, cls)
    for start in range(0, len(images), THUMBS_PER_ROW):
        cols = st.columns(THUMBS_PER_ROW)
        for col, img in zip(cols, images[start : start + THUMBS_PER_ROW]):
            try:
                pixels, caption = square_thumbnail(str(img), THUMB_PX), short_name(img.name)
            except Exception:  # a file changed on disk since it was added: a blank tile of the same size, still removable
                pixels, caption = (
                    np.full((THUMB_PX, THUMB_PX, 3), 235, dtype=np.uint8),
                    "⚠ " + short_name(img.name, NAME_CHARS - 2),
                )
            col.image(pixels, caption=caption, width="stretch")
            col.button(
                "Remove",
                key=f"mk_del_{cls}_{img.name}",
                help=f"{img.name}: moved to the dataset's trash (Undo brings it back)",
                on_click=_remove_photo,
                args=(str(path), str(img)),
                width="stretch",
            )


def _remove_photo(root: str, image: str) -> None:
    """Remove's callback: the photo to the dataset's trash (engine/data/curation), Undo offered until the next action."""
    forget_notes()
    try:
        done = curation.remove(root, [image])
    except (DatasetError, OSError) as exc:
        st.session_state[UNDO_KEY] = (root, None, f"Could not remove {Path(image).name}: {exc}")
        return
    resources.scan.clear()  # the cached scan is keyed by the folders' mtimes: never rely on their granularity
    st.session_state[UNDO_KEY] = (root, done["id"], f"Removed {Path(image).name} from {Path(image).parent.name}")


def undo_row(path) -> None:
    """What the last Remove did, with its Undo (which refuses when another place acted on the dataset since)."""
    root, action, said = st.session_state.get(UNDO_KEY) or (None, None, "")
    if root != str(path):
        return
    if action is None:
        st.error(said)
        return
    line, button = st.columns([4, 1], vertical_alignment="center")
    line.success(f"{said} (to the dataset's trash folder).")
    button.button("Undo", key="mk_undo_remove", on_click=_undo_remove, args=(root, action), icon=":material/undo:")


def _undo_remove(root: str, action: int) -> None:
    forget_notes()
    try:
        live = [e for e in curation.history(root) if e.get("kind") in curation.KINDS and not e.get("undone")]
        if not live or live[-1].get("id") != action:  # another place acted on this dataset since: not ours to undo
            raise DatasetError("another change came after it; undo that one first (Data health's Undo)")
        curation.undo(root)
    except (DatasetError, OSError) as exc:
        st.session_state[UNDO_KEY] = (root, None, f"Could not undo: {exc}")
        return
    resources.scan.clear()
