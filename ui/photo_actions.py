"""One row of actions for a photo of a dataset (Relabel to …, Remove, Keep), and the one Undo: every place
that shows photos (data health, the error gallery, a confusion-matrix cell, the feature map's point) calls these.

The actions are engine/data/curation's (files moved inside the dataset, light enough for the page); a
refusal (`check_editable`: the sample, a zip's extraction, a folder outside the allowed roots) disables
them with the reason said once per place. A move changes the dataset, so the cached scan is cleared
and the page says to train again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from engine.data import curation
from engine.errors import StudioError
from ui import resources

NOTE_KEY = "photo_actions_note"  # (place key, "done" | "error", sentence) of the last action
CHANGED = "the dataset changed: train again to see the effect"
VERBS = {"relabel": "relabelled", "remove": "removed", "keep": "kept"}


def editable_problem(root: str | None) -> str:
    """'' when photos of the dataset at `root` may be moved, else why not (one sentence)."""
    if not root:
        return "no dataset folder is known for these photos"
    try:
        curation.check_editable(root)
    except StudioError as exc:
        return str(exc)
    return ""


def acted_on(root: str | None) -> set[str]:
    """Photos an action took out of the lists: kept ones and the files of every action in the history."""
    if not root:
        return set()
    try:
        done = set(curation.kept(root))
        for entry in live_actions(curation.history(root)):
            done.update(_files_of(entry))
    except (StudioError, OSError):
        return set()
    return {str(Path(p)) for p in done}


def still_listed(path: str, acted: set[str]) -> bool:
    """Whether a photo stays in a list: not acted on, still where the list found it."""
    return str(Path(path)) not in acted and Path(path).is_file()


def notice(root: str | None, key: str) -> str:
    """Said once per place, above its photos: what its last action did, why actions are off. Returns that reason."""
    note = st.session_state.get(NOTE_KEY)
    if note and note[0] == key:
        (st.success if note[1] == "done" else st.error)(note[2])
    problem = editable_problem(root)
    if problem:
        st.caption(f"Relabel, Remove and Keep are off here: {problem.rstrip('.')}.")
    return problem


def action_row(
    path: str, root: str | None, classes: list[str], key: str, problem: str = "", suggest: str | None = None, slot: str = ""
) -> None:
    """Relabel to … (the other classes, `suggest` first chosen) + Relabel, Remove, Keep (not an issue) for the photo at `path`.

    `key` names the place (its notice shows the outcome); `problem` (from notice) disables the row; `slot` tells
    apart two lists of one place that may show the same photo (a leak that is also an outlier)."""
    k = f"{key}{slot}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    given = Path(path).parent.name  # a photo's class is its folder, in either layout
    others = [c for c in classes if c != given] or list(classes)
    off = bool(problem)
    row = st.container(horizontal=True, vertical_alignment="bottom", gap="small")
    target = row.selectbox(
        "Relabel to …", others, index=others.index(suggest) if suggest in others else 0, key=f"{k}_to", disabled=off, width=160
    )
    row.button(
        "Relabel",
        key=f"{k}_relabel",
        on_click=_act,
        args=(key, "relabel", root, path, target),
        disabled=off or target == given,
        help=f"Move it to the class {target}",
    )
    row.button(
        "Remove",
        key=f"{k}_remove",
        on_click=_act,
        args=(key, "remove", root, path),
        disabled=off,
        help="Move it to the dataset's trash folder (Undo brings it back)",
    )
    row.button(
        "Keep (not an issue)",
        key=f"{k}_keep",
        on_click=_act,
        args=(key, "keep", root, path),
        disabled=off,
        help="Leave it as it is and never propose it again",
    )


def undo_button(root: str | None, key: str, problem: str = "") -> None:
    """One Undo per place: the dataset's last action, named on the button."""
    if problem:
        return
    try:
        history = curation.history(root)
    except (StudioError, OSError):
        return
    last = live_actions(history)
    if last:
        st.button(f"Undo: {describe(last[-1])}", key=f"{key}_undo", on_click=_undo, args=(key, root))


def live_actions(history: list[dict]) -> list[dict]:
    """The history's actions (relabel, remove, keep) not undone since, oldest first."""
    return [e for e in history if e.get("kind") in VERBS and not e.get("undone")]


def describe(entry: dict) -> str:
    """An action of curation's history in words: 'relabelled cat_3.png to dogs', 'removed 2 photos'."""
    files = _files_of(entry)
    what = Path(files[0]).name if len(files) == 1 else f"{len(files)} photos"
    kind = str(entry.get("kind", ""))
    if kind == "undo":  # its files go the other way: name where they went back to
        names = [Path(str(m.get("to"))).name for m in entry.get("files") or [] if isinstance(m, dict)]
        return f"undid a {entry.get('undid', 'change')}" + (f" of {names[0]}" if len(names) == 1 else "")
    target = f" to {entry['class']}" if kind == "relabel" and entry.get("class") else ""
    return f"{VERBS.get(kind, kind or 'changed')} {what}{target}"


def _files_of(entry: dict) -> list[str]:
    """Where an action's photos were before it (curation's log: files as {"from", "to"}, absolute)."""
    return [str(Path(m["from"])) for m in entry.get("files") or [] if isinstance(m, dict) and m.get("from")]


def _act(key: str, action: str, root: str, path: str, cls: str | None = None) -> None:
    """The button's callback (before the rerun draws): the move, then the sentence its place shows."""
    name = Path(path).name
    try:
        if action == "relabel":
            curation.relabel(root, [path], cls)
        elif action == "remove":
            curation.remove(root, [path])
        else:
            curation.keep(root, [path])
    except (StudioError, OSError) as exc:
        st.session_state[NOTE_KEY] = (key, "error", f"Could not {action} {name}: {exc}")
        return
    if action == "keep":
        st.session_state[NOTE_KEY] = (key, "done", f"Kept {name}: it is not proposed again.")
        return
    resources.scan.clear()  # the cached scan is keyed by a folder's mtime: never rely on its granularity
    said = f"Relabelled {name} to {cls}" if action == "relabel" else f"Removed {name} (to the dataset's trash folder)"
    st.session_state[NOTE_KEY] = (key, "done", f"{said}: {CHANGED}.")


def _undo(key: str, root: str) -> None:
    try:
        last = live_actions(curation.history(root))
        curation.undo(root)
    except (StudioError, OSError) as exc:
        st.session_state[NOTE_KEY] = (key, "error", f"Could not undo: {exc}")
        return
    resources.scan.clear()
    what = describe(last[-1]) if last else "the last action"
    if last and last[-1].get("kind") == "keep":  # nothing moved: the photo is proposed again
        st.session_state[NOTE_KEY] = (key, "done", f"Undid: {what}; it may be proposed again.")
        return
    st.session_state[NOTE_KEY] = (key, "done", f"Undid: {what}; {CHANGED}.")
