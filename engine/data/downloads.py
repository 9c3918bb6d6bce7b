"""Optional downloads (the TensorFlow tutorials' cats-and-dogs sample) and an internet check.

Everything here degrades to a clear message offline; nothing in training depends on it.
"""

from __future__ import annotations

import socket
from pathlib import Path

from engine.errors import StudioError

CATS_DOGS_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
CATS_DOGS_FILE = "cats_and_dogs_filtered.zip"


class DownloadUnavailable(StudioError, RuntimeError):
    """A download failed; the message says how to get the data another way."""


def internet_available(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 1.5) -> bool:
    """True if a TCP connection to the host Keras downloads from can be opened quickly."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _dataset_root(extracted: Path) -> Path | None:
    for cand in (extracted, extracted / "cats_and_dogs_filtered", extracted.parent / "cats_and_dogs_filtered"):
        if (cand / "train").is_dir() and (cand / "validation").is_dir():
            return cand
    return None


def download_cats_and_dogs() -> Path:
    """The tutorials' cats_and_dogs_filtered (2000 train / 1000 validation), via Keras' get_file cache.

    Raises:
        DownloadUnavailable: offline, or the archive is not laid out as expected.
    """
    import keras

    try:
        path = Path(keras.utils.get_file(CATS_DOGS_FILE, CATS_DOGS_URL, extract=True))
    except Exception as exc:  # get_file raises plain Exception on network errors
        raise DownloadUnavailable(
            f"could not download the cats-and-dogs sample ({type(exc).__name__}); this machine seems to be offline. "
            f"Fetch {CATS_DOGS_URL} on another machine, then upload the zip or unzip it and give the folder path."
        ) from None
    root = _dataset_root(path)
    if root is None:
        raise DownloadUnavailable(f"{path}: downloaded, but no train/ and validation/ folders were found inside")
    return root
