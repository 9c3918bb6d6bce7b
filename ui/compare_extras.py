"""Compare's honest parts: cost beside accuracy, repeats as mean ± std, where the runs disagree, runs that saw other photos."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import streamlit as st

from engine.data import curation
from engine.errors import StudioError
from engine.insight import analysis, intervals
from ui import analysis_view, estimate_view, resources
from ui.photo_actions import describe
from ui.run_labels import approach_title


def cache_note(metrics: dict) -> str:
    """'cached rerun' when the run's training inputs came from the cache (its time is not a from-scratch cost);
    'partly cached (validation)' when only other splits did; 'from scratch' when it computed everything."""
    stats = metrics.get("feature_cache")
    if not isinstance(stats, dict):
        return "—"
    reused = stats.get("reused_splits")
    if reused is None:  # runs recorded before the splits were: only the count is known
        return "cached rerun" if stats.get("hits") else "from scratch"
    if "train" in reused:
        return "cached rerun"
    return f"partly cached ({', '.join(reused)})" if reused else "from scratch"


def images_per_second(r) -> str:
    """Training throughput (images through the trainable part per second, all epochs of this run)."""
    value = r.images_per_second
    return f"{value:,.0f}" if isinstance(value, (int, float)) and value > 0 else "—"


def _phase_1(r, runs: list):
    """(the frozen run a fine-tuning continued, or None when it is gone; its id, '' when the run did not continue one)."""
    source = (r.config.get("fine_tune") or {}).get("from_run") if r.approach == "fine_tuning" else ""
    if not source:
        return None, ""
    first = next((o for o in runs if o.id == source), None)
    return (first if first is not None and first.wall_seconds is not None else None), source


def whole_cost(r, runs: list) -> tuple[float | None, float | None]:
    """(the run's whole wall time, its own part when it continued a frozen run, else None): the table and the
    accuracy-vs-time chart both read it, so a continued fine-tuning costs the same in both (phase 1 + phase 2)."""
    if r.wall_seconds is None:
        return None, None
    first, _ = _phase_1(r, runs)
    return (r.wall_seconds + first.wall_seconds, r.wall_seconds) if first is not None else (r.wall_seconds, None)


def wall_time(r, runs: list) -> str:
    """The run's wall time; fine-tuning that continued a frozen run adds that run's time as its phase 1."""
    if r.wall_seconds is None:
        return "—"
    first, source = _phase_1(r, runs)
    if not source:
        return f"{r.wall_seconds:,.0f}"
    if first is None:
        return f"{r.wall_seconds:,.0f} + phase 1 in run {source}"
    return f"{r.wall_seconds + first.wall_seconds:,.0f} ({r.wall_seconds:,.0f} + {first.wall_seconds:,.0f} phase 1, run …{source[-6:]})"


def scored(r, split: str) -> tuple[float | None, int | None]:
    """(accuracy, photos it was scored on) of a run's "validation" or "test" split (the count derived for old runs)."""
    metrics = r.metrics.get(split) or {}
    return r.accuracy(split), intervals.scored_count(metrics)


def best_of(picked: list, split: str) -> tuple[str | None, str]:
    """(the id of the clearly best run on `split`, or None; the sentence saying so): a ★ only when its 95 % interval
    lies above every other run's (intervals.clear_best), else "no clear best on N photos"."""
    ranked = [(r, *scored(r, split)) for r in picked]
    ranked = [(r, a, n) for r, a, n in ranked if a is not None]  # a run stopped before it was scored is in no race
    scores = [(a, n) for _, a, n in ranked]
    if len(ranked) < 2:
        return None, ""
    best = intervals.clear_best(scores)
    if best is not None:
        return ranked[best][0].id, f"★ {split} accuracy clearly best: its 95 % interval lies above every other run's."
    if any(n is None for _, n in scores):
        return None, "No ★: not every run recorded how many photos it was scored on, so no interval can say which is best."
    return None, (
        intervals.no_clear_best([n for _, n in scores], split).capitalize()
        + ": the runs' 95 % intervals overlap, so no ★ (more photos narrow them)."
    )


def accuracy_point(r, split: str, runs: list) -> dict:
    """Compare's accuracy-vs-time point of a run: its accuracy and 95 % interval, its whole cost (phase 1 + 2)."""
    acc, n = scored(r, split)
    total, own = whole_cost(r, runs)
    point = {"accuracy": acc or 0.0, "wall_seconds": total or 0.0, "hover": intervals.accuracy_text(acc, n)}
    ci = intervals.accuracy_interval(acc, n)
    if ci is not None:
        point["low"], point["high"] = ci[1], ci[2]
    if own is not None:
        point["phase2_seconds"] = own
        point["hover"] += f"<br>{own:,.0f} s phase 2 + {total - own:,.0f} s phase 1 (the frozen run it continued)"
    return point


def recipe_label(config: dict) -> str:
    """The training recipe a run's config.json holds, shortly: 'adamw wd 0.0001 · cosine (warmup 1) · smoothing 0.1 ·
    block ×0.1'; 'constant' for today's defaults (and for runs recorded before the recipe knobs)."""
    fit, ft = config.get("fit") or {}, config.get("fine_tune") or {}
    parts = []
    if fit.get("optimizer") == "adamw":
        parts.append(f"adamw wd {fit.get('weight_decay', 0):g}")
    schedule = fit.get("schedule") or "constant"
    warmup = fit.get("warmup_epochs") or 0
    parts.append(f"{schedule} (warmup {warmup})" if schedule == "cosine" and warmup else schedule)
    if fit.get("label_smoothing"):
        parts.append(f"smoothing {fit['label_smoothing']:g}")
    if config.get("approach") == "fine_tuning" and ft.get("discriminative_rate", 1.0) != 1.0:
        parts.append(f"block ×{ft['discriminative_rate']:g}")
    return " · ".join(parts)


def cost_columns(r) -> dict:
    """Cost beside accuracy: images/s when measured, cache use, the estimate's error; and the run's training recipe."""
    return {
        "images/s": images_per_second(r),
        "feature cache": cache_note(r.metrics),
        "estimate vs actual": estimate_view.estimate_error(r) or "—",
        "recipe": recipe_label(r.config or {}),
    }


def show_repeats(runs: list, metric: str) -> None:
    """Repeat groups (runs trained with seeds N, N+1, ...): mean ± std with error bars and overlap."""
    if not any(r.repeat_group for r in runs):
        st.caption(
            "No repeated runs yet: use “Repeat with N seeds” on an approach page (CLI: `--seeds 3`) "
            "to see mean ± std instead of one seed's number."
        )
        return
    st.subheader("Repeats over seeds")
    analysis_view.show_repeat_groups(runs, metric)


def show_disagreements(picked: list) -> None:
    """Images where the picked runs predict different classes (only runs on the same split agree to compare)."""
    if len(picked) < 2:
        return
    with st.expander("Images where the selected runs disagree"):
        root = resources.run_store().root
        labels = {f"{approach_title(r)} ({r.id[-6:]})": root / r.id for r in picked}
        analysis_view.show_disagreements(labels)


def show_photo_changes(picked: list) -> None:
    """A note for runs of one dataset that scored different photos (their predictions' files per split), with the
    curation actions between their starts: their scores are then not on the same photos."""
    by_root: dict[str, list] = {}
    for r in picked:
        if r.dataset_root:
            by_root.setdefault(r.dataset_root, []).append(r)
    for root, runs in by_root.items():
        runs = sorted(runs, key=started)
        for a, b in zip(runs, runs[1:]):
            changed = split_changes(resources.run_store().root, a.id, b.id)
            if changed:
                actions = actions_between(root, started(a), started(b))
                st.warning(
                    f"{approach_title(a)} (…{a.id[-6:]}) and {approach_title(b)} (…{b.id[-6:]}) saw different photos: "
                    + "; ".join(changed)
                    + "."
                    + (f" Between their starts: {actions}." if actions else "")
                )


def split_changes(runs_root: Path, a: str, b: str) -> list[str]:
    """'validation changed: 3 photos differ, so their scores are not on the same photos' per stored split that differs.

    A photo moved to another class (relabelled) counts once: gone under one name's folder, back under another."""
    out = []
    for split in ("validation", "test"):
        try:
            fa = set(analysis.load_predictions(runs_root / a, split).files)
            fb = set(analysis.load_predictions(runs_root / b, split).files)
        except analysis.AnalysisError:  # a run without stored predictions of this split: nothing to compare
            continue
        gone, new = fa - fb, fb - fa
        moved = {Path(f).name for f in gone} & {Path(f).name for f in new}
        n = len(gone) + len(new) - len(moved)
        if n:
            out.append(
                f"{split} changed: {n} photo{'s' if n > 1 else ''} differ{'' if n > 1 else 's'}, "
                "so their scores are not on the same photos"
            )
    return out


def actions_between(root: str, start: float, end: float, shown: int = 5) -> str:
    """The dataset's curation actions (and undos) made between two times, in words; '' when none or no history."""
    try:
        history = curation.history(root)
    except (StudioError, OSError):
        return ""
    done = [describe(e) for e in history if start <= _unix(e.get("time")) <= end]
    more = f" and {len(done) - shown} more" if len(done) > shown else ""
    return ", ".join(done[:shown]) + more


def started(r) -> float:
    """When a run began (its heartbeat's start, else status.json's, else its config's write time)."""
    value = r.owner.get("started")
    if not isinstance(value, (int, float)):
        try:
            value = json.loads((r.path / "status.json").read_text()).get("started")
        except (OSError, ValueError, AttributeError):
            value = None
    if not isinstance(value, (int, float)):
        try:
            value = (r.path / "config.json").stat().st_mtime
        except OSError:
            value = 0.0
    return float(value)


def _unix(stamp) -> float:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return -1.0
