"""Data overview's "Data health": a `data-health` job through the runner, then what it found, each photo with its actions.

Queued, watched and stopped like the feature map (ui/feature_map_view.py); its one JSON file is the only
channel back (JobRunner.tool_result). Leaks first (the same photo in train and validation/test makes a
score optimistic), then likely wrong labels (given → suggested, the probability the heads gave the
given label), duplicate groups side by side, outliers. Every photo has ui/photo_actions' row; a photo
acted on leaves the lists at once (moved, kept, or in curation's history), Undo brings it back.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.config import RunConfig
from engine.data.images import preview_image
from engine.errors import StudioError
from ui import photo_actions, resources

SHOWN = 8  # photos (groups) per list at once: the next ones show as these are settled
THUMB = 120


def data_health_panel(cfg: RunConfig, root: str, classes: list[str], key: str = "dh") -> None:
    """The button that queues the check of `cfg`'s dataset with its base, the job's line while it runs, then the lists."""
    state_key = f"{key}_job"
    st.caption(
        "Finds photos that are probably labelled wrong (out-of-fold heads on the base's features), duplicates "
        "(a copy across train and validation/test is a leak), and outliers; the base runs only when the feature "
        "cache is cold. Act on each photo here: Relabel, Remove (to a trash folder inside the dataset) or Keep."
    )
    if st.button("Check data health", key=f"{key}_check"):
        try:
            st.session_state[state_key] = resources.job_runner().submit_tool("data-health", cfg).id
        except StudioError as exc:
            st.error(f"The check cannot start: {exc}")
    if state_key in st.session_state:
        _live(key, st.session_state[state_key], root, classes)


def _live(key: str, job_id: str, root: str, classes: list[str]) -> None:
    """The job's line in a fragment (every second) while it is queued or running; its end reruns the page once."""
    runner = resources.job_runner()
    job = runner.get(job_id)
    if job is None or job.state not in ("queued", "running"):
        _show(key, job_id, root, classes)
        return

    @st.fragment(run_every=1.0)
    def live() -> None:
        if runner.get(job_id).state in ("queued", "running"):
            _show(key, job_id, root, classes)
        else:
            st.rerun()

    live()


def _show(key: str, job_id: str, root: str, classes: list[str]) -> None:
    runner = resources.job_runner()
    job = runner.get(job_id)
    if job is None:  # the server restarted: its jobs are gone
        return
    if job.state in ("queued", "running"):
        lines = [l for l in runner.log_tail(job_id, lines=20).splitlines() if l.startswith("[data-health]")]
        st.info(f"Data health {job.state}: {lines[-1].removeprefix('[data-health] ') if lines else 'starting'}")
        st.button("Stop the check", key=f"{job_id}_stop", on_click=runner.stop, args=(job_id,))
        return
    if job.state == "cancelled":
        st.caption("The data health check was cancelled before it started.")
        return
    doc = runner.tool_result(job_id)
    if not doc:
        st.error(f"The data health check failed: {runner.job_error(job_id) or runner.exit_description(job)}")
        return
    show_health(doc, root, classes, key)


def show_health(doc: dict, root: str, classes: list[str], key: str) -> None:
    """Leaks, label issues, duplicates, outliers: the photos not acted on yet, each with its actions; one Undo."""
    problem = photo_actions.notice(root, key)
    photo_actions.undo_button(root, key, problem)
    acted = photo_actions.acted_on(root)
    listed = lambda p: photo_actions.still_listed(p, acted)  # noqa: E731
    groups = [{**g, "left": [(p, s) for p, s in zip(g["paths"], g["splits"]) if listed(p)]} for g in doc.get("duplicates", [])]
    groups = [g for g in groups if len(g["left"]) > 1]  # one copy left: settled
    issues = [i for i in doc.get("label_issues", []) if listed(i["path"])]
    outliers = [o for o in doc.get("outliers", []) if listed(o["path"])]
    s = doc.get("summary") or {}
    if "photos" in s:
        st.caption(
            f"Checked {s['photos']} photos: {s.get('label_issues', 0)} label issues, {s.get('duplicate_groups', 0)} "
            f"duplicate groups ({s.get('leaks', 0)} leaks), {s.get('outliers', 0)} outliers. Still open below."
        )
    ctx = (root, classes, key, problem)
    _groups(
        "Leaks: the same photo in more than one split",
        [g for g in groups if g.get("leak")],
        ctx,
        "a validation or test score counts these photos the model trained on: remove one copy",
        "_leak",
    )
    st.markdown(f"**Likely wrong labels ({len(issues)})**")
    for i in issues[:SHOWN]:
        _photo(
            i["path"],
            f"{i['split']} · labelled **{i['given']}** → probably **{i['suggested']}** "
            f"(probability of its label {i['score']:.2f})",
            ctx,
            "_label",
            suggest=i["suggested"],
        )
    _more(len(issues))
    _groups("Duplicates", [g for g in groups if not g.get("leak")], ctx, "copies within one split weigh a photo twice", "_copy")
    st.markdown(f"**Outliers ({len(outliers)})**")
    for o in outliers[:SHOWN]:
        _photo(
            o["path"], f"{o['split']} · far from every class (score {o['score']:.2f}): another kind of photo?", ctx, "_outlier"
        )
    _more(len(outliers))


def _groups(title: str, groups: list[dict], ctx: tuple, why: str, slot: str) -> None:
    """Each group's photos side by side, each with its actions."""
    root, classes, key, problem = ctx
    st.markdown(f"**{title} ({len(groups)})**" + (f"  \n{why}" if groups else ""))
    for g in groups[:SHOWN]:
        how = "exact copies" if g.get("exact") else f"similarity {g.get('similarity', 0):.3f}"
        st.caption(f"{len(g['left'])} photos, {how}")
        for col, (path, split) in zip(st.columns(len(g["left"])), g["left"]):
            with col:
                _thumb(path)
                st.caption(f"{split} · {Path(path).parent.name} · {Path(path).name}")
                photo_actions.action_row(path, root, classes, key, problem, slot=slot)
    _more(len(groups))


def _photo(path: str, text: str, ctx: tuple, slot: str, suggest: str | None = None) -> None:
    root, classes, key, problem = ctx
    left, right = st.columns([1, 4])
    with left:
        _thumb(path)
    with right:
        st.markdown(f"{Path(path).name}  \n{text}")
        photo_actions.action_row(path, root, classes, key, problem, suggest=suggest, slot=slot)


def _thumb(path: str) -> None:
    try:
        st.image(preview_image(path, THUMB * 2), width=THUMB)  # the one decoder: oriented, RGB, any format
    except Exception:  # moved or changed since the check: the row still says what it was
        st.caption("(image no longer readable)")


def _more(n: int) -> None:
    if n > SHOWN:
        st.caption(f"… and {n - SHOWN} more: they show here as these are settled.")
