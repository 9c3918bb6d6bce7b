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
    """dataset · classes · approach · backbone · size · accuracy · id (+ state when not finished)."""
    acc, split = r.scored_accuracy
    names = r.classes
    shown = ", ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
    parts = [dataset_of(r), shown or "?", approach_title(r), r.backbone or "?", f"{r.image_size} px", f"{'test' if split == 'test' else 'val'} acc {acc:.3f}" if acc is not None else "no accuracy", r.id]
    return " · ".join(parts) + ("" if r.state in ("finished", "running") else f" ({r.state})")


def best_per_approach(runs: list) -> dict[str, str]:
    """approach -> id of its best finished run (highest scored accuracy; a stopped 1-epoch try never wins over it)."""
    best: dict[str, tuple] = {}
    for r in runs:
        acc, _ = r.scored_accuracy
        rank = (r.state == "finished", acc if acc is not None else -1.0, r.id)
        a = r.approach
        if a not in best or rank > best[a][0]:
            best[a] = (rank, r.id)
    return {a: rid for a, (_, rid) in best.items()}
