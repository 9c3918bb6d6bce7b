"""Which learning rate a run trained at, and where it came from: as set, found by the run itself
(`fit.find_learning_rate`), or a learning-rate finder's suggestion the user applied (**Use this rate**).

The finder's jobs leave their curve in `runs/.lr-find/JOB.json` (engine/cli/finder.py), with the
dataset, backbone and size it ramped on; a run whose rate is that suggestion as the page fills it
in (two significant digits), on the same dataset, approach, backbone and size, used it. Pure
functions on plain data: Compare shows the result beside each run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

FINDER_FOLDER = ".lr-find"  # the job runner's tool-job folder for `lr-find` (engine/store/jobs.py)


def stored_finder_results(runs_root: str | Path) -> list[dict]:
    """Every finished finder job's result in the run store, each with its `job` id, oldest first."""
    out = []
    for path in sorted(Path(runs_root, FINDER_FOLDER).glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a result being written, or damaged: it advised no run
        if isinstance(doc, dict) and doc.get("suggested"):
            out.append({**doc, "job": path.stem})
    return out


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


def learning_rate_source(config: dict, metrics: dict, finder_results: list[dict]) -> dict:
    """{"rate", "source", "job"} of the rate the run's trained phase used (fine-tuning: phase 2's).

    source: "found in the run" (its own ramp, metrics' learning_rate_finder), "finder" (a finder job's
    suggestion, `job` its id) or "set".
    """
    approach = config.get("approach")
    fine = approach == "fine_tuning"
    rate = (config.get("fine_tune") if fine else config.get("fit") or {}).get("learning_rate")
    found = metrics.get("learning_rate_finder") or {}
    if not fine and found.get("used"):
        return {"rate": found["used"], "source": "found in the run", "job": "", "rule": found.get("rule", "")}
    if not isinstance(rate, (int, float)):
        return {"rate": None, "source": "set", "job": ""}
    resolved = config.get("resolved") or {}
    for doc in reversed(finder_results):  # the latest finder that suggested it
        if (
            doc.get("approach") == approach
            and doc.get("dataset_root") == resolved.get("dataset_root")
            and doc.get("backbone") == (config.get("backbone") or {}).get("name")
            and doc.get("image_size") == resolved.get("image_size")
            and _same(float(f"{doc['suggested']:.2g}"), rate)
        ):
            return {"rate": rate, "source": "finder", "job": doc["job"], "rule": doc.get("rule", "")}
    return {"rate": rate, "source": "set", "job": ""}


def learning_rate_label(source: dict) -> str:
    """'0.0028 (finder, in the run)', '1.3e-05 (finder: lr-find-…)', '2e-05', or '—'."""
    if source.get("rate") is None:
        return "—"
    rate = f"{source['rate']:.2g}"
    if source["source"] == "found in the run":
        return f"{rate} (finder, in the run)"
    if source["source"] == "finder":
        return f"{rate} (finder: {source['job']})"
    return rate
