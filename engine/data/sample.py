"""The built-in sample dataset: procedurally drawn shapes in three classes, made on first use.

A fresh clone with no internet can still train every approach end to end in well under a
minute. Each class is a shape (circle, square, triangle) drawn with random size, position,
colour and background noise, in the split layout train/validation/test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine import settings
from engine.errors import StudioError

CLASSES = ("circle", "square", "triangle")
COUNTS = {"train": 60, "validation": 20, "test": 20}  # per class
SIZE = 64  # pixels; images are drawn at this size and resized by the loader


def default_sample_dir() -> Path:
    return settings.sample_dir()


def resolve_data_path(value: str) -> str:
    """'sample' means the built-in sample dataset (generated on first use); anything else is a path."""
    return str(ensure_sample_dataset()) if value == "sample" else value


def _draw(shape: str, rng: np.random.Generator) -> Image.Image:
    bg = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8) // 4 + rng.integers(0, 160, size=3, dtype=np.uint8)
    img = Image.fromarray(bg.astype(np.uint8))
    d = ImageDraw.Draw(img)
    r = int(rng.integers(SIZE // 6, SIZE // 3))
    cx, cy = (int(v) for v in rng.integers(r + 2, SIZE - r - 2, size=2))
    colour = tuple(int(v) for v in rng.integers(150, 256, size=3))
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


def ensure_sample_dataset(root: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Creates the sample under `root` (default: TLS_SAMPLE_DIR or ~/.cache/...) if absent; returns it."""
    root = Path(root) if root else default_sample_dir()
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    try:
        for split, n in COUNTS.items():
            for cls in CLASSES:
                folder = root / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    _draw(cls, rng).save(folder / f"{cls}_{i:03d}.png")
        done.write_text("ok\n")
    except OSError as exc:
        raise StudioError(
            f"{root}: cannot create the sample there ({exc.strerror or exc}); "
            "give a folder you can write to (or set TLS_SAMPLE_DIR)"
        ) from None
    return root
