"""Every `TLS_*` environment variable, read in one place (the way Keras reads its backend config).

A setting is read when it is asked for, never cached: tests and the dashboard's start-up script
set variables at run time. Each reader returns a typed value; a malformed number says so in one
line naming the variable (a `StudioError`), except where a wrong value must never stop a run
(the cache budget: a warning and the default). docs/settings.md lists the same table.

`access_token()` is the one answer to "is a token set": the access gate, the page script's check
and the confinement of typed paths all ask it, so a token of one space can no longer switch the
gate on and the confinement off. `token_problem()` is what serve.py and app.sh refuse to start with.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from engine.errors import StudioError

TOKEN = "TLS_ACCESS_TOKEN"  # served to others: every request needs this token (ui/access_gate.py)
DATA_ROOTS = "TLS_DATA_ROOTS"  # os.pathsep-separated folders typed paths must lie in (engine/data/paths.py)
RUNS_DIR = "TLS_RUNS_DIR"  # the run store (default ./runs)
CACHE_DIR = "TLS_CACHE_DIR"  # the feature cache (default ~/.cache/transfer-learning-studio/features)
CACHE_MAX_GB = "TLS_CACHE_MAX_GB"  # the feature cache's size budget in GiB (default 20)
SAMPLE_DIR = "TLS_SAMPLE_DIR"  # where the built-in sample is made (default ~/.cache/transfer-learning-studio/sample-shapes)
DATASETS_DIR = "TLS_DATASETS_DIR"  # made datasets (default ./data)
WEIGHTS_DIR = "TLS_WEIGHTS_DIR"  # local weights files, searched first (engine/models/backbones.py)
TENSORBOARD_DIR = "TLS_TENSORBOARD_DIR"  # the dashboard's TensorBoard folder (default ./tensorboard)
WARM_START = "TLS_WARM_START"  # 0 = no standby process for the next job (default 1)
UPLOAD_MAX_FILES = "TLS_UPLOAD_MAX_FILES"  # files one browser session may hold uploaded at once (default 300)
UPLOAD_MAX_MB = "TLS_UPLOAD_MAX_MB"  # MB one browser session may hold uploaded at once (default 1024)
ZIP_MAX_BYTES = "TLS_ZIP_MAX_BYTES"  # what a dataset zip may unpack to, in bytes (default 2 GiB)
ZIP_MAX_FILES = "TLS_ZIP_MAX_FILES"  # entries a dataset zip may hold (default 50,000)
ZIP_MAX_RATIO = "TLS_ZIP_MAX_RATIO"  # uncompressed / compressed a zip entry may reach (default 100)

MIN_TOKEN_CHARS = 16  # shorter tokens are guessable; `secrets.token_urlsafe(16)` gives 22 characters
DEFAULT_CACHE_GB = 20.0
APP_HOME = Path.home() / ".cache" / "transfer-learning-studio"


class SettingError(StudioError, ValueError):
    """An environment variable holds a value the studio cannot use; the message names it and what to set."""


def _raw(name: str) -> str:
    return os.environ.get(name, "")


def access_token() -> str:
    """The access token exactly as set ('' = none). Set at all means served to others: gate and confinement on."""
    return _raw(TOKEN)


def token_set() -> bool:
    """One rule for "a token is set", for the gate and the confinement alike (a weak token is refused at start)."""
    return access_token() != ""


def token_problem(token: str | None = None) -> str:
    """'' when the token may guard a server, else the one-line reason (too short, or holding whitespace)."""
    token = access_token() if token is None else token
    if any(c.isspace() for c in token):
        return (
            f"{TOKEN} holds whitespace; use a random token of {MIN_TOKEN_CHARS}+ characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    if len(token) < MIN_TOKEN_CHARS:
        return (
            f"{TOKEN} is {len(token)} characters; use a random token of {MIN_TOKEN_CHARS} or more "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return ""


def data_roots() -> list[Path]:
    """TLS_DATA_ROOTS as paths ([] when unset: the defaults of engine/data/paths.py apply)."""
    return [Path(p) for p in _raw(DATA_ROOTS).split(os.pathsep) if p.strip()]


def confined() -> bool:
    """Typed paths stay inside the allowed roots: served with a token, or roots set explicitly."""
    return token_set() or bool(data_roots())


def runs_dir() -> Path:
    return Path(_raw(RUNS_DIR) or "runs")


def runs_dir_override() -> str | None:
    """TLS_RUNS_DIR as set, or None (a job runner keyed on what was set)."""
    return _raw(RUNS_DIR) or None


def cache_dir() -> Path:
    return Path(_raw(CACHE_DIR) or APP_HOME / "features")


def cache_dir_override() -> str | None:
    return _raw(CACHE_DIR) or None


def cache_budget_bytes() -> int:
    """The feature cache's budget; a malformed value warns and keeps the default (a run must not fail on it)."""
    raw = _raw(CACHE_MAX_GB).strip()
    gb = DEFAULT_CACHE_GB
    if raw:
        try:
            gb = float(raw)
        except ValueError:
            gb = math.nan
        if not (math.isfinite(gb) and gb >= 0):
            print(f"warning: {CACHE_MAX_GB}={raw!r} is not a number; using {DEFAULT_CACHE_GB} GB", file=sys.stderr)
            gb = DEFAULT_CACHE_GB
    return int(gb * 1024**3)


def sample_dir() -> Path:
    return Path(_raw(SAMPLE_DIR) or APP_HOME / "sample-shapes")


def datasets_dir() -> Path:
    return Path(_raw(DATASETS_DIR) or Path.cwd() / "data")


def weights_dir() -> Path | None:
    return Path(_raw(WEIGHTS_DIR)).expanduser() if _raw(WEIGHTS_DIR) else None


def keras_home() -> Path:
    """Keras' own folder ($KERAS_HOME or ~/.keras), where its downloads are cached."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def tensorboard_dir() -> Path:
    return Path(_raw(TENSORBOARD_DIR) or "tensorboard").expanduser().resolve()


def warm_start() -> bool:
    return _raw(WARM_START).strip() != "0"


def positive_number(name: str, default: float, integer: bool = False) -> float:
    """A positive finite number from variable `name` (default when unset); else a SettingError naming it."""
    raw = _raw(name).strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = 0
    if not (math.isfinite(value) and value > 0):
        raise SettingError(f"{name}={raw!r} is not a positive number{' (a whole one)' if integer else ''}; fix or unset it")
    return value


def upload_limits() -> tuple[int, int]:
    """(files, bytes) one browser session may hold in Streamlit's upload store."""
    files = int(positive_number(UPLOAD_MAX_FILES, 300, integer=True))
    mb = positive_number(UPLOAD_MAX_MB, 1024)
    return files, int(mb * 1024 * 1024)
