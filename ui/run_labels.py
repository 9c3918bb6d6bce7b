"""How pages name a saved run: its dataset, classes, approach, backbone, size, accuracy, id.

Read through the run record's accessors (engine/store/record.py), so Compare rows, Classify
labels and the approach pages agree with the CLI.
"""

from __future__ import annotations

from pathlib import Path

from engine.insight import charts


def dataset_of(r) -> str:
    return Path(r.dataset_root).name if r.dataset_root else "—"


def on_dataset(r, path: str) -> bool:
    """Whether run `r` was trained on the dataset folder `path` (as typed or resolved)."""
    if not path:
        return False
    try:
        resolved = str(Path(path).resolve())
    except OSError:
        resolved = path
    return r.dataset_root in (path, resolved) or (r.config.get("data") or {}).get("path") == path


def approach_title(r) -> str:
    return charts.APPROACH_TITLES.get(r.approach, "?")


def run_label(r) -> str:
    """dataset (· ≤N/class) · classes · approach · backbone · size · accuracy · id (+ state when not finished)."""
    acc, split = r.scored_accuracy
    names = r.classes
    shown = ", ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
    score = f"{'test' if split == 'test' else 'val'} acc {acc:.3f}" if acc is not None else "no accuracy"
    parts = [dataset_of(r), shown or "?", approach_title(r), r.backbone or "?", f"{r.image_size} px", score, r.id]
    if sample := sample_label(r):
        parts.insert(1, sample)
    return " · ".join(parts) + ("" if r.state in ("finished", "running") else f" ({r.state})")


def sample_label(r) -> str:
    """The bound of a run trained on a sample of its dataset (`data.max_per_class`) as "≤50/class", else ""."""
    n = (r.config.get("data") or {}).get("max_per_class") or 0
    return f"≤{n}/class" if isinstance(n, int) and n > 0 else ""


DEFAULT_RULE = "the best finished run"  # Compare and Classify preselect by this one rule, and say it in these words


def _rank(r) -> tuple:
    acc, _ = r.scored_accuracy
    return acc if acc is not None else -1.0, r.id  # a tie goes to the newer run (ids start with their time)


def best_per_approach(runs: list) -> dict[str, str]:
    """approach -> id of its best finished run (highest scored accuracy); stopped, failed and running runs are never
    preselected: a stopped 1-epoch try does not stand for its approach."""
    best: dict[str, tuple] = {}
    for r in runs:
        if r.state != "finished":
            continue
        rank = _rank(r)
        a = r.approach
        if a not in best or rank > best[a][0]:
            best[a] = (rank, r.id)
    return {a: rid for a, (_, rid) in best.items()}


def best_finished_run(runs: list) -> str | None:
    """Classify's default: the best of the runs `best_per_approach` picks (highest scored accuracy), or None when no
    run has finished."""
    best = set(best_per_approach(runs).values())
    top = max((r for r in runs if r.id in best), key=_rank, default=None)
    return top.id if top else None
