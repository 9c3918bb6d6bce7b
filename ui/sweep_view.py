"""An approach page's sweep: choose one or two knobs and their values, queue one job per point, read the results.

Each point (× seeds) is a normal training job through the runner (its own live panel and Stop), recorded
with `--sweep-group G --sweep-point JSON` (engine/cli/train.py); the run store is the only channel back.
Every point after the first reads the feature cache the first one wrote. Selection is on validation only.
"""

from __future__ import annotations

import json

import streamlit as st

from engine.config import ConfigError, RunConfig, validate
from engine.insight import sweep_charts, sweeps
from engine.store.jobs import DuplicateJob
from ui import resources
from ui.form_fields import DENSE_UNITS
from ui.forms import set_field
from ui.run_labels import on_dataset

# The form field each knob lives in (ui/form_fields.fit_fields/head_fields/augmentation_fields, pages/fine_tuning.py).
FORM_KEYS = {
    "fit.epochs": "{a}_epochs",
    "fit.batch_size": "{a}_bs",
    "fit.learning_rate": "{a}_lr",
    "fit.optimizer": "{a}_opt",
    "fit.early_stopping_patience": "{a}_patience",
    "head.pooling": "{a}_pool",
    "head.dense_units": "{a}_units",
    "head.dropout": "{a}_drop",
    "augmentation.views": "aug_views",
    "augmentation.rotation": "aug_rot",
    "augmentation.zoom": "aug_zoom",
    "augmentation.width_shift": "aug_ws",
    "augmentation.height_shift": "aug_hs",
    "augmentation.horizontal_flip": "aug_hf",
    "augmentation.vertical_flip": "aug_vf",
    "fine_tune.unfreeze_blocks": "{a}_blocks",
    "fine_tune.learning_rate": "{a}_ftlr",
    "fine_tune.epochs": "{a}_ftep",
    "fit.schedule": "{a}_sched",
    "fit.warmup_epochs": "{a}_warmup",
    "fit.label_smoothing": "{a}_ls",
    "fit.weight_decay": "{a}_wd",
    "fine_tune.discriminative_rate": "{a}_discr",
    "fit.find_learning_rate": "{a}_findlr",
    "fit.class_weight": "{a}_cw",
}

PICKED_TEST = "test accuracy of the picked point (scored once)"


def sweep_panel(approach: str, cfg: RunConfig, preset: str | None = None, blocked: str = "") -> None:
    """The expander: knobs, values, seeds, **Queue sweep**; then the results of a sweep of this approach and dataset."""
    with st.expander("Sweep: try several values", expanded=f"{approach}_sweep_group" in st.session_state):
        st.caption(
            "One training job per point (× seeds), queued like repeats; every point reuses the feature cache. "
            "The best point is picked on validation accuracy; only its test accuracy is shown."
        )
        axes, problems = _knob_fields(approach, cfg)
        seeds = int(st.number_input("Seeds per point", min_value=1, max_value=20, step=1, key=f"{approach}_sweep_seeds"))
        points = []
        if axes and not problems:
            try:
                points = sweeps.grid(axes, seeds)
            except ConfigError as exc:
                problems.append(str(exc))
        for problem in problems:
            st.error(problem)
        if points:
            st.caption(f"{len(points)} point(s) × {seeds} seed(s) = {len(points) * seeds} job(s).")
        why_not = blocked or ("choose one or two knobs" if not axes else "")
        if st.button("Queue sweep", key=f"{approach}_sweep_queue", disabled=bool(why_not or problems), help=why_not or None):
            _queue(approach, cfg, preset, points, seeds)
        _results(approach)


def _knob_fields(approach: str, cfg: RunConfig) -> tuple[list, list[str]]:
    """The knobs chosen and their values (prefilled from the suggestion, editable): ([(dotted, values)], problems)."""
    table = sweeps.sweepable()
    options = [d for d in sweeps.RELEVANT[approach] if d in table]
    chosen = st.multiselect(
        "Knobs to vary (one or two)",
        options,
        max_selections=sweeps.MAX_KNOBS,
        format_func=lambda d: table[d]["flag"],
        key=f"{approach}_sweep_knobs",
    )
    axes, problems = [], []
    for dotted in chosen:
        section, name = dotted.split(".")
        current = getattr(getattr(cfg, section), name)
        suggested = ", ".join(sweeps.format_value(v) for v in sweeps.suggest(dotted, current))
        text = st.text_input(
            f"Values of {table[dotted]['flag']} (comma-separated)",
            value=suggested,
            key=f"{approach}_sweep_values_{dotted}",
            help=table[dotted]["help"],
        )
        try:
            axes.append(sweeps.parse_sweep(f"{dotted}={text}", approach))
        except ConfigError as exc:
            problems.append(str(exc).replace(f"--sweep {dotted}", f"Values of {table[dotted]['flag']}"))
    return axes, problems


def _queue(approach: str, cfg: RunConfig, preset: str | None, points: list[dict], seeds: int) -> None:
    """One job per point (its seeds a repeat group), all recorded under one new sweep group."""
    group = sweeps.new_group_id(approach)  # a random suffix: two sweeps started in one second stay apart
    runner, queued, refused = resources.job_runner(), 0, []
    for point in points:
        try:
            runner.submit(
                validate(sweeps.apply_point(cfg, point)),
                preset=preset,
                seeds=seeds,
                options={"sweep_group": group, "sweep_point": json.dumps(point)},
            )
            queued += 1
        except (DuplicateJob, ConfigError) as exc:  # the same settings already queued, or a value the backbone refuses
            refused.append(f"{sweeps.point_label(point)}: {exc}")
    st.session_state[f"{approach}_sweep_group"] = group
    st.toast(f"Sweep {group}: {queued * seeds} job(s) queued")
    for line in refused:
        st.warning(f"Not queued: {line}")


def plural(n: int, word: str) -> str:
    """'1 point', '4 points'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _group_label(group: dict, records, pending: list) -> str:
    """'G · learning-rate, dropout · 4 points: 3 finished, 1 queued' — every point counted, run folder or still queued."""
    mine = [r for r in records if r.sweep_group == group["group"]]
    points = {json.dumps(r.sweep_point, sort_keys=True) for r in mine} | {str(j.options.get("sweep_point")) for j in pending}
    finished = sum(r.state == "finished" for r in mine)
    knobs = ", ".join(sweeps.sweepable().get(k, {}).get("flag", k) for k in group["knobs"])
    waiting = f", {len(pending)} queued" if pending else ""
    return f"{group['group']} · {knobs} · {plural(len(points), 'point')}: {finished} of {plural(len(mine) + len(pending), 'run')} finished{waiting}"


def _results(approach: str) -> None:
    """A sweep of this approach on the sidebar's dataset: the grid chart, every trial, the best point, Apply best.

    While a point's job is queued or running, the results redraw every second from the run store and the page
    reruns once when the last one ends, so the best point shows as soon as it exists."""
    data_path = st.session_state.get("data_path", "")
    runner = resources.job_runner()
    records = [r for r in resources.run_store().list().runs if r.approach == approach and on_dataset(r, data_path)]
    groups = sweeps.sweep_groups(records)
    if not groups:
        return
    ids = [g["group"] for g in groups]
    mine = st.session_state.get(f"{approach}_sweep_group")
    queued = [j for j in runner.active() if j.state == "queued" and j.options.get("sweep_group")]
    labels = {g["group"]: _group_label(g, records, [j for j in queued if j.options["sweep_group"] == g["group"]]) for g in groups}
    group = st.selectbox(
        "Sweep results", ids, index=ids.index(mine) if mine in ids else 0, format_func=labels.get, key=f"{approach}_sweep_shown"
    )
    if not _active_points(runner, group):
        _group_results(approach, group, records)
        return

    @st.fragment(run_every=1.0)
    def live() -> None:
        if not _active_points(runner, group):
            st.rerun()  # the last point ended: the whole page once, with the best point and Apply best
        fresh = [r for r in resources.run_store().list().runs if r.approach == approach and on_dataset(r, data_path)]
        _group_results(approach, group, fresh)

    live()


def _active_points(runner, group: str) -> list:
    """The sweep's jobs still queued or running."""
    return [j for j in runner.active() if j.options.get("sweep_group") == group]


def _group_results(approach: str, group: str, records) -> None:
    summary = sweeps.summarize(records, group)
    st.plotly_chart(sweep_charts.grid_figure(summary), width="stretch", key=f"{approach}_sweep_grid")
    st.plotly_chart(sweep_charts.parallel_figure(summary), width="stretch", key=f"{approach}_sweep_parallel")
    if summary["best"] is None:
        st.info(
            "No point of this sweep has finished yet."
            if _active_points(resources.job_runner(), group)
            else "No point of this sweep finished: each one failed or was stopped (its job panel says why)."
        )
        return
    best = summary["points"][summary["best"]]
    test = summary["picked_test_accuracy"]
    c1, c2, c3 = st.columns([2, 2, 1])
    c1.metric(
        "Best on validation",
        f"{best['mean']:.3f}",
        help=f"{best['label']}; mean ± std {best['std']:.3f} over {best['n']} seed(s)",
    )
    c2.metric(
        PICKED_TEST,
        "no test split" if test is None else f"{test:.3f}",
        help="Scored only for the point validation picked: the other points' test scores are not read.",
    )
    c1.caption(best["label"])
    c3.button(
        "Apply best", key=f"{approach}_sweep_apply", on_click=apply_best, args=(approach, best["point"], group), type="primary"
    )


def apply_best(approach: str, point: dict, group: str = "") -> None:
    """Sets the form's fields to the point's values (ui/forms.set_field: the browser shows them at the rerun)."""
    skipped = []
    for dotted, value in point.items():
        key = FORM_KEYS.get(dotted, "").format(a=approach)
        if not key or (dotted == "head.dense_units" and value not in DENSE_UNITS):
            skipped.append(sweeps.point_label({dotted: value}))
            continue
        origin = f"from sweep {group}" if group else "from a sweep"
        set_field(key, int(value) if dotted == "augmentation.rotation" else value, origin)
        if dotted == "fit.learning_rate":  # a rate the sweep chose: the run trains at it, not at a finder's
            set_field(f"{approach}_findlr", False, origin)
    st.toast("Form set to the best point" + (f" (not on the form: {', '.join(skipped)})" if skipped else ""))
