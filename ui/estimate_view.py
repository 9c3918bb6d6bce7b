"""Cost before you click: the estimate next to Train, and its error on Compare."""

from __future__ import annotations

import streamlit as st

from engine.errors import StudioError
from engine.training.estimate import estimate_run


@st.cache_data(show_spinner="Measuring this machine once for this backbone and size ...", ttl=60)
def _estimate(cfg_json: str, data_path: str, fractions: tuple, seed: int, cache_dir: str | None) -> dict:
    from engine.training.approaches import prepare_data
    from engine.config import RunConfig

    data = prepare_data(data_path, fractions, seed)
    return estimate_run(RunConfig.from_json(cfg_json), data, cache_dir)


def show_estimate(cfg, cache_dir: str | None = None) -> dict | None:
    """Wall time, peak memory and cache reuse of `cfg`, one line under the Train button."""
    d = cfg.data
    try:
        est = _estimate(cfg.to_json(), d.path, (d.train_fraction, d.val_fraction, d.test_fraction), cfg.fit.seed, cache_dir)
    except StudioError as exc:
        st.caption(f"No estimate: {exc}")
        return None
    reuse = {"all": "all cached features/views reused", "partial": "some cached features/views reused",
             "none": "nothing cached yet: the base runs over every image"}[est["reuse"]]
    st.caption(f"Estimate on this machine: about {_human(est['wall_s'])} (+{est['startup_s']:.0f} s to build the base), "
               f"peak memory about {est['peak_memory_mb'] / 1024:.1f} GB; {reuse}.")
    return est


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
