"""Issue 30's acceptance, by hand (minutes per heavy backbone; not a CI test): every registry row end to end.

For each backbone, through the CLI as a user runs it, in a fresh runs folder:
  run --data sample --backbone B --weights none --image-size 96 --approach all --epochs 1 --fine-tune-epochs 1
  predict --run <fine-tuning run> --gradcam OUT.png <a test photo>
  export <fine-tuning run> --format tflite --out DIR   (the export checks itself against the model)
and, independently here, the TFLite file's answers against the run's saved model on the test photos.

    python scripts/backbone_acceptance.py [--backbones a,b] [--work /tmp/accept] [--size 96]

Prints one markdown row per backbone and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the engine package is beside scripts/


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True)


def tflite_difference(tflite: Path, model_file: Path, photos: list[Path], size: int) -> float:
    import keras
    import numpy as np
    from PIL import Image

    import engine.models.modeling  # noqa: F401  (registers the saved model's preprocessing layer)
    from engine.insight.export import tflite_answers

    pixels = np.stack(
        [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.float32) for p in photos]
    )
    model = keras.saving.load_model(model_file, compile=False)
    return float(
        np.max(np.abs(tflite_answers(tflite.read_bytes(), pixels) - np.asarray(model(pixels, training=False))))
    )  # Keras 3 random layers augment unless told


def accept(name: str, work: Path, size: int) -> dict:
    runs = work / name / "runs"
    row = {"backbone": name}
    t = time.perf_counter()
    r = engine(
        "run",
        "--data",
        "sample",
        "--backbone",
        name,
        "--weights",
        "none",
        "--image-size",
        str(size),
        "--approach",
        "all",
        "--epochs",
        "1",
        "--fine-tune-epochs",
        "1",
        "--runs-dir",
        str(runs),
    )
    row["run_s"] = round(time.perf_counter() - t, 1)
    if r.returncode != 0:
        return {**row, "error": f"run exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}"}
    listed = json.loads(engine("runs", "--json", "--runs-dir", str(runs)).stdout)["runs"]
    row["approaches"] = sorted(x["approach"] for x in listed if x["state"] == "finished")
    ft = next(x for x in listed if x["approach"] == "fine_tuning")
    from engine.data.sample import default_sample_dir

    photos = sorted((default_sample_dir() / "test").rglob("*.png"))[::10]
    cam = work / name / "gradcam.png"
    r = engine("predict", "--run", ft["id"], "--runs-dir", str(runs), "--gradcam", str(cam), "--force", str(photos[0]))
    row["gradcam"] = r.returncode == 0 and cam.stat().st_size > 0
    if not row["gradcam"]:
        return {**row, "error": f"predict exit {r.returncode}: {r.stderr.strip()[-300:]}"}
    out = work / name / "tflite"
    t = time.perf_counter()
    r = engine("export", ft["id"], "--runs-dir", str(runs), "--format", "tflite", "--out", str(out))
    row["export_s"] = round(time.perf_counter() - t, 1)
    if r.returncode != 0:
        return {**row, "error": f"export exit {r.returncode}: {r.stderr.strip()[-300:]}"}
    row["tflite_max_diff"] = tflite_difference(out / "model.tflite", runs / ft["id"] / "model.keras", photos, size)
    return row


def main() -> int:
    from engine.models.backbones import BACKBONES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", default=",".join(BACKBONES))
    p.add_argument("--work", default="/tmp/backbone-acceptance")
    p.add_argument("--size", type=int, default=96)
    args = p.parse_args()
    rows, failed = [], False
    print("| backbone | run (3 approaches) | approaches finished | Grad-CAM | TFLite export | TFLite vs Keras, max diff |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for name in args.backbones.split(","):
        row = accept(name, Path(args.work), args.size)
        rows.append(row)
        failed |= "error" in row or len(row.get("approaches", [])) != 3
        print(
            f"| `{name}` | {row['run_s']} s | {len(row.get('approaches', []))}/3 | {'yes' if row.get('gradcam') else 'no'} | "
            f"{row.get('export_s', '-')} s | {row.get('tflite_max_diff', float('nan')):.1e} |"
            + (f" {row['error']}" if "error" in row else ""),
            flush=True,
        )
    (Path(args.work) / "acceptance.json").write_text(json.dumps(rows, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
