"""Writes a large synthetic image dataset (JPEG, split layout) for scale and memory tests.

    .venv/bin/python scripts/make_synthetic_dataset.py /tmp/synth20k --train 17000 --validation 3000 --size 224

Each image is smooth random texture with a class signal: stripes at a class-specific angle
(random frequency and phase) and a slight class-specific tint, so every approach has
something to learn; the noise makes every image different. Files are
DEST/{train,validation[,test]}/<class>/<class>_<n>.jpg. Deterministic for a seed.
Keep it out of the repository (e.g. under /tmp): 20,000 images at 224 px are ~0.5 GB.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image


def draw(cls: int, num_classes: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of class `cls`: coarse noise upscaled (texture) + stripes at the class's angle + tint."""
    coarse = rng.random((size // 8, size // 8, 3), dtype=np.float32)
    texture = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR), np.float32)
    angle = math.pi * cls / num_classes + rng.normal(0, 0.1)
    freq = rng.uniform(4, 12) * 2 * math.pi / size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    stripes = np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + rng.uniform(0, 2 * math.pi))
    tint = np.roll(np.array([30.0, 0.0, -30.0], np.float32), cls)
    pixels = 0.6 * texture + 60 * stripes[..., None] + tint + 50 + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_dataset(dest: Path, counts: dict[str, int], num_classes: int, size: int, seed: int, quality: int) -> int:
    """Writes counts[split] images per split, spread evenly over the classes; returns how many."""
    written = 0
    for s, (split, total) in enumerate(counts.items()):
        for cls in range(num_classes):
            name = f"class_{cls}"
            folder = dest / split / name
            folder.mkdir(parents=True, exist_ok=True)
            per_class = total // num_classes + (1 if cls < total % num_classes else 0)
            for i in range(per_class):
                rng = np.random.default_rng((seed, s, cls, i))
                draw(cls, num_classes, size, rng).save(folder / f"{name}_{i:05d}.jpg", quality=quality)
                written += 1
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dest", type=Path, help="new folder for the dataset (keep it outside the repository)")
    p.add_argument("--train", type=int, default=17000, help="training images (all classes together)")
    p.add_argument("--validation", type=int, default=3000, help="validation images")
    p.add_argument("--test", type=int, default=0, help="test images (0 = no test split)")
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--size", type=int, default=224, help="square side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    a = p.parse_args()
    counts = {"train": a.train, "validation": a.validation, **({"test": a.test} if a.test else {})}
    n = make_dataset(a.dest, counts, a.classes, a.size, a.seed, a.quality)
    print(f"{a.dest}: {n} images")


if __name__ == "__main__":
    main()
