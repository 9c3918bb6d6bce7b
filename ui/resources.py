"""Server-wide resources the pages share: the job runner, the run store, cached scans and checks.

The job runner is a plain process-wide object, not `st.cache_resource`: a client's `clear_cache`
message clears every cache_resource of the server, and with it the running job's Stop and the
one-job-at-a-time queue. `st.cache_data` results are keyed by their arguments (a scan by path +
folder mtime); clearing those only costs a re-scan.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading

import streamlit as st

from engine import settings
from engine.config import RunConfig
from engine.data.downloads import internet_available
from engine.data.report import DatasetReport
from engine.data.scan import scan_dataset
from engine.store.jobs import JobRunner
from engine.store.runs import RunStore
from engine.training.features import default_cache_dir
from ui.uploads import sweep_stale

_RUNNERS: dict[tuple, JobRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def _job_runner(runs_dir: str | None, cache_dir: str | None, warm_start: bool = True) -> JobRunner:
    with _RUNNERS_LOCK:  # two first sessions at once must not start two runners
        key = (runs_dir, cache_dir, warm_start)
        if key not in _RUNNERS:
            _RUNNERS[key] = JobRunner(runs_dir=runs_dir, cache_dir=cache_dir, warm_start=warm_start)
        return _RUNNERS[key]


def job_runner() -> JobRunner:
    """One runner per server process (and run store), shared by every session and tab.

    Warm start (a training process waiting with TensorFlow imported: a try starts ≈3 s
    sooner) unless TLS_WARM_START=0, e.g. where an idle process's 0.58 GB matters.
    """
    return _job_runner(settings.runs_dir_override(), settings.cache_dir_override(), settings.warm_start())


def run_store() -> RunStore:
    return RunStore(settings.runs_dir_override())


@st.cache_data(ttl=300, show_spinner=False)
def online() -> bool:
    return internet_available()


@st.cache_data(show_spinner="Scanning the dataset …")
def scan(path: str, mtime_key: float) -> DatasetReport:
    # Remembers each file's check in the feature cache folder: the job's own scan then decodes nothing.
    return scan_dataset(path, checks_dir=default_cache_dir())


def folder_mtime(path: str) -> float:
    """Latest mtime of the dataset's folders: adding or removing an image anywhere triggers a re-scan."""
    try:
        return max(os.stat(d).st_mtime for d, _, _ in os.walk(path))
    except (OSError, ValueError):
        return 0.0


@st.cache_resource
def sweep_stale_uploads() -> int:
    """Once per server process: upload folders of sessions a killed server never cleaned up."""
    return len(sweep_stale())


@st.cache_data(show_spinner="Building the base once to count its parameters …")
def base_summary(backbone_json: str, approach: str, unfreeze_blocks: int) -> dict:
    from engine.models.modeling import describe_base

    cfg = RunConfig(approach=approach)
    cfg.backbone = RunConfig.from_json(backbone_json).backbone
    cfg.fine_tune.unfreeze_blocks = unfreeze_blocks
    return describe_base(cfg)


def model_summary(cfg_json: str, num_classes: int) -> dict:
    """Parameter counts for the form as it stands: the base's part cached, the head's counted at once."""
    from engine.models.modeling import describe_model

    cfg = RunConfig.from_json(cfg_json)
    base = base_summary(json.dumps({"backbone": dataclasses.asdict(cfg.backbone)}), cfg.approach, cfg.fine_tune.unfreeze_blocks)
    return describe_model(cfg, num_classes, base)
