"""Cost before you click: the estimate next to Train, and its error on Compare.

The server never fits a model: the estimate is read from this machine's stored calibration (instant).
Where none is stored yet for the backbone and size, Estimate queues `python -m engine estimate` through
the job runner, which measures the machine once (tens of seconds, in its own process, queued like every
other job) and answers with the estimate; the page shows it when the job has ended.
"""

from __future__ import annotations

import streamlit as st

from engine.errors import StudioError
from engine.training.estimate import CalibrationMissing, calibration_stamp, estimate_run, forward_floor


@st.cache_data(show_spinner=False, ttl=60)
def _estimate(
    cfg_json: str, data_path: str, fractions: tuple, seed: int, max_per_class: int, cache_dir: str | None, calibrated: float
) -> dict:
    from engine.config import RunConfig
    from engine.training.approaches import prepare_data

    data = prepare_data(data_path, fractions, seed, max_per_class=max_per_class)
    try:
        return estimate_run(RunConfig.from_json(cfg_json), data, cache_dir, calibrate=False)  # `calibrated`: the cache key only
    except CalibrationMissing:
        return {"floor": forward_floor(RunConfig.from_json(cfg_json), data, cache_dir)}


def show_estimate(cfg, runner, key: str) -> dict | None:
    """Wall time, peak memory and cache reuse of `cfg`, one line under the Train button; a measuring job when needed."""
    d = cfg.data
    try:
        est = _estimate(
            cfg.to_json(),
            d.path,
            (d.train_fraction, d.val_fraction, d.test_fraction),
            cfg.fit.seed,
            d.max_per_class,
            runner.cache_dir,
            calibration_stamp(runner.cache_dir),
        )
    except StudioError as exc:
        st.caption(f"No estimate: {exc}")
        return None
    if "floor" in est:  # not measured here yet: a floor from the backbone's speed now, the estimate from a queued job
        job = runner.submit_tool("estimate", cfg)
        st.session_state[key] = job.id
        st.caption(
            _floor_text(est["floor"]) + " Measuring this machine for the full estimate in the job queue "
            "(tens of seconds, once); it shows here when that job ends."
        )
        return None
    _caption(est)
    return est


def _floor_text(floor: dict) -> str:
    if not floor["images"]:
        return "Every feature pass is already cached."
    return (
        f"At least {_human(floor['floor_s'])}: the base's passes over {floor['images']} images at ~{floor['images_per_s']:g} "
        f"images/s ({floor['backbone']}'s measured speed, scaled to {floor['image_size']} px), epochs on top."
    )


def show_measured_estimate(runner, key: str) -> None:
    """The answer of the estimate job this page queued, once it has ended (its error if it failed)."""
    job_id = st.session_state.get(key)
    job = runner.get(job_id) if job_id else None
    if job is None or job.state not in ("done", "cancelled"):
        if job is not None:
            st.caption("Measuring this machine for the estimate (a job in the queue) …")
        return
    result = runner.tool_result(job_id)
    if result:
        _caption(result)
    else:
        st.caption(f"No estimate: {runner.progress(job_id).get('error') or 'the measuring job ended without one'}")


def _caption(est: dict) -> None:
    reuse = {
        "all": "all cached features/views reused",
        "partial": "some cached features/views reused",
        "none": "nothing cached yet: the base runs over every image",
    }[est["reuse"]]
    st.caption(
        f"Estimate on this machine: about {_human(est['wall_s'])} (+{est['startup_s']:.0f} s to build the base), "
        f"peak memory about {est['peak_memory_mb'] / 1024:.1f} GB; {reuse}."
    )


def estimate_error(r) -> str:
    """'estimated 2 min 10 s, took 2 min 30 s (15% longer than estimated)' for Compare, or '' when the run (a RunRecord) has no estimate."""
    est, wall = r.estimate_s, r.wall_seconds
    if not est or not wall:
        return ""
    off = (wall - est) / est
    how = "as estimated" if abs(off) < 0.005 else f"{abs(off):.0%} {'longer' if off > 0 else 'shorter'} than estimated"
    return f"estimated {_human(est)}, took {_human(wall)} ({how})"


def _human(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s} s" if m else f"{s} s"
