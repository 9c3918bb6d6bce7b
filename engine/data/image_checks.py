"""What `images.check_image` said of each file, remembered while the file is unchanged.

Why: every run scans its dataset again in its own process (dashboard jobs are CLI
subprocesses), and the scan decodes every image in full to know which ones training can
read: 1.1 s of a 35 s second try on 3000 photos (2 cores), proportionally more on larger
datasets, every time, for files that did not change. A file counts as unchanged while its
size, modification time (ns) and inode are; anything else is checked again. The results
live in one JSON file in the feature cache folder, written atomically; two processes
saving at once only lose each other's new entries, which are then checked again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from engine.data.images import ImageInfo

CHECKS_FILE = "image-checks.json"
MAX_ENTRIES = 200_000  # the oldest entries go first beyond this (≈30 MB of JSON)


def _identity(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class ImageChecks:
    """`get` / `put` check results by file, `save` them for the next scan."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / CHECKS_FILE
        self._entries = self._read()
        self._changed = False

    def _read(self) -> dict:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or damaged: everything is checked again
        return raw if isinstance(raw, dict) else {}

    def get(self, path: Path) -> ImageInfo | str | None:
        """The remembered result for an unchanged file, else None (check it)."""
        entry = self._entries.get(str(path))
        if not isinstance(entry, list) or len(entry) != 4 or entry[:3] != _identity(path):
            return None
        result = entry[3]
        if isinstance(result, str):
            return result
        try:
            return ImageInfo(int(result["width"]), int(result["height"]), str(result["format"]))
        except (TypeError, KeyError, ValueError):
            return None

    def put(self, path: Path, result: ImageInfo | str) -> None:
        identity = _identity(path)
        if identity is None:
            return
        value = result if isinstance(result, str) else {"width": result.width, "height": result.height, "format": result.format}
        self._entries.pop(str(path), None)  # re-inserted last: the newest survive the cap
        self._entries[str(path)] = [*identity, value]
        self._changed = True

    def save(self) -> None:
        """Writes the results if any are new; best effort (a read-only or full disk only costs a re-check)."""
        if not self._changed:
            return
        entries = self._entries
        if len(entries) > MAX_ENTRIES:
            entries = dict(list(entries.items())[-MAX_ENTRIES:])
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".image-checks.", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(fd, "w") as fh:
                json.dump(entries, fh)
            os.replace(tmp, self.path)
            self._changed = False
        except OSError:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
