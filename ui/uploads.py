"""Private temp folders for uploaded zips, and their clean-up.

Each upload is unpacked into its own `tempfile.mkdtemp(prefix="tls-upload-")` folder (mode
0700). The folder is removed when the session replaces the upload, when the zip is refused,
and when the session's state is garbage-collected (weakref.finalize: Streamlit has no
session-end hook). Folders a crashed or killed server left behind are swept at start-up
once they are older than STALE_AFTER_S.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path

PREFIX = "tls-upload-"
STALE_AFTER_S = 24 * 3600


class UploadFolder:
    """One upload's folder; deleted by `remove()`, or when this object is collected, or at exit."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX))
        # The finalizer holds the path, not self, so the folder goes when the session state does.
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def remove(self) -> None:
        self._finalizer()  # idempotent: runs at most once


def sweep_stale(max_age_s: float = STALE_AFTER_S, tmp_dir: str | None = None) -> list[Path]:
    """Removes this user's `tls-upload-*` folders older than `max_age_s`; returns what was removed."""
    removed = []
    cutoff = time.time() - max_age_s
    for p in Path(tmp_dir or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        # Only real folders we own: never follow a link planted in a shared /tmp.
        if p.is_symlink() or not p.is_dir() or st.st_uid != os.getuid() or st.st_mtime > cutoff:
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed
