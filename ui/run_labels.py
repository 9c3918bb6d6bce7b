"""How pages name a saved run: its dataset, classes, approach, backbone, size, accuracy, id.

Read from the run's config ("resolved" holds what the engine decided: classes, image size,
dataset root), so Compare rows, Classify labels and the approach pages agree.
"""

from __future__ import annotations

from pathlib import Path

from engine.insight import charts


def dataset_root(r) -> str:
    c = r.config
    return (c.get("resolved") or {}).get("dataset_root") or (c.get("data") or {}).get("path") or ""


def dataset_of(r) -> str:
    root = dataset_root(r)
    return Path(root).name if root else "—"


def on_dataset(r, path: str) -> bool:
    """Whether run `r` was trained on the dataset folder `path` (as typed or resolved)."""
    if not path:
        return False
    try:
        resolved = str(Path(path).resolve())
    except OSError:
        resolved = path
    return dataset_root(r) in (path, resolved) or (r.config.get("data") or {}).get("path") == path


def image_size(r):
    return (r.config.get("resolved") or {}).get("image_size") or (r.config.get("backbone") or {}).get("image_size")


def classes(r) -> list:
    return list((r.config.get("resolved") or {}).get("classes") or [])


def scored_accuracy(r) -> tuple[float | None, str]:
    """(accuracy, "test" | "validation"): test when the run has a test split, else validation."""
    m = r.metrics
    if (m.get("test") or {}).get("accuracy") is not None:
        return m["test"]["accuracy"], "test"
    return (m.get("validation") or {}).get("accuracy"), "validation"


def approach_title(r) -> str:
    return charts.APPROACH_TITLES.get(r.config.get("approach"), "?")


def run_label(r) -> str:
    """dataset · classes · approach · backbone · size · accuracy · id (+ state when not finished)."""
    acc, split = scored_accuracy(r)
    names = classes(r)
    shown = ", ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
    parts = [dataset_of(r), shown or "?", approach_title(r), (r.config.get("backbone") or {}).get("name", "?"),
             f"{image_size(r)} px", f"{'test' if split == 'test' else 'val'} acc {acc:.3f}" if acc is not None else "no accuracy", r.id]
    return " · ".join(parts) + ("" if r.state in ("finished", "running") else f" ({r.state})")


def best_per_approach(runs: list) -> dict[str, str]:
    """approach -> id of its best finished run (highest scored accuracy; a stopped 1-epoch try never wins over it)."""
    best: dict[str, tuple] = {}
    for r in runs:
        acc, _ = scored_accuracy(r)
        rank = (r.state == "finished", acc if acc is not None else -1.0, r.id)
        a = r.config.get("approach")
        if a not in best or rank > best[a][0]:
            best[a] = (rank, r.id)
    return {a: rid for a, (_, rid) in best.items()}
