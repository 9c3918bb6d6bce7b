"""Allowed roots for paths typed into the dashboard (Folder path, weights Local file).

A dashboard served to other people must not turn a text box into a file browser for the
whole server (`/etc`, other users' files), so when it is served with an access token
(TLS_ACCESS_TOKEN, the network set-up) or TLS_DATA_ROOTS is set, typed paths are resolved
— symlinks followed, `..` collapsed — and must land inside one of the allowed roots. On
localhost without a token the dashboard is its user's own tool, like the CLI: any folder
that user can read is accepted.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine import settings
from engine.data.layout import DatasetError
from engine.data.sample import default_sample_dir

ROOTS_ENV = settings.DATA_ROOTS


def confined_here() -> bool:
    """Whether typed paths must stay inside the allowed roots: served with a token (any, even one refused as
    weak: settings.token_set is the gate's own rule), or roots set explicitly."""
    return settings.confined()


class PathNotAllowed(DatasetError):
    """A typed path resolves outside every allowed root; the message names the roots and the env var."""


def keras_home() -> Path:
    """Keras' own folder ($KERAS_HOME or ~/.keras): its `models/` cache holds downloaded weights."""
    return settings.keras_home()


def _default_roots() -> list[Path]:
    roots = [Path.home(), default_sample_dir().parent, keras_home()]
    if settings.weights_dir():
        roots.append(settings.weights_dir())
    # ./data and ./weights only when present: a missing folder must not widen the allowance later by accident.
    roots += [p for p in (Path.cwd() / "data", Path.cwd() / "weights") if p.is_dir()]
    return roots


def allowed_roots() -> list[Path]:
    """TLS_DATA_ROOTS (os.pathsep-separated) if set, else the defaults; resolved, duplicates removed."""
    candidates = settings.data_roots() or _default_roots()
    out: list[Path] = []
    for p in candidates:
        resolved = p.expanduser().resolve()
        if resolved not in out:
            out.append(resolved)
    return out


def confine(path: str, what: str) -> Path:
    """Resolves a typed path (`~`, `..`, symlinks) and, when `confined_here()`, checks it lies inside an allowed root.

    Args:
        path: what the user typed; relative paths are taken from the working directory.
        what: the field's name for the message ("Folder path", "Weights file").

    Returns:
        The resolved path (it need not exist; the caller reports a missing file).

    Raises:
        PathNotAllowed: outside every root (the message lists them and names TLS_DATA_ROOTS),
            or not a usable path at all.
    """
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # NUL bytes, symlink loops
        raise PathNotAllowed(f"{what} {path!r} is not a usable path ({exc}); type a folder inside the allowed folders") from None
    if not confined_here():
        return resolved
    roots = allowed_roots()
    if any(resolved.is_relative_to(root) for root in roots):
        return resolved
    shown = f"{path} (resolves to {resolved})" if str(resolved) != (path.rstrip(os.sep) or os.sep) else path
    raise PathNotAllowed(
        f"{what} {shown} is outside the allowed folders ({', '.join(map(str, roots))}); this dashboard is served with an "
        f"access token, so only those are open: add the folder to {ROOTS_ENV} when starting it"
    )
