"""`python -m engine bench`: time each stage of the pipeline and report peak memory, as JSON.

Speed and memory targets live here, not in timed tests. Stages: scan, decode+resize,
frozen feature extraction (images/s), one feature-extraction epoch on cached features,
one frozen+augmentation epoch, one fine-tuning epoch, and a second feature-extraction run
to show the cache hit.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time


def add_bench_arguments(p) -> None:
    p.add_argument("--data", default="sample", help="dataset folder, or 'sample'")
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--weights", default="none", help="imagenet | none | PATH")
    p.add_argument("--image-size", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--report", help="also write the JSON here")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cmd_bench(args) -> int:
    from .approaches import RUNNERS, prepare_data
    from .backbones import image_size_for
    from .cli import resolve_data_path
    from .config import BackboneConfig, default_config
    from .datasets import scan_dataset

    path = resolve_data_path(args.data)
    out: dict = {"data": path, "backbone": args.backbone, "weights": args.weights}
    t = time.perf_counter()
    scan_dataset(path)
    out["scan_seconds"] = round(time.perf_counter() - t, 3)
    data = prepare_data(path)
    size = image_size_for(BackboneConfig(name=args.backbone, image_size=args.image_size))
    out["image_size"] = size
    t = time.perf_counter()
    n = sum(len(data.images(s, size)) for s in data.splits)
    out["decode_images_per_second"] = round(n / (time.perf_counter() - t), 1)
    with tempfile.TemporaryDirectory() as tmp:
        stages = [("feature_extraction", "feature_extraction_first"), ("feature_extraction", "feature_extraction_cached"),
                  ("frozen", "frozen_one_epoch"), ("fine_tuning", "fine_tuning_one_plus_one_epoch")]
        for approach, label in stages:
            cfg = default_config(approach)
            cfg.data.path = path
            cfg.backbone.name, cfg.backbone.weights, cfg.backbone.image_size = args.backbone, args.weights, args.image_size
            cfg.fit.epochs, cfg.fit.batch_size, cfg.fine_tune.epochs = 1, args.batch_size, 1
            t = time.perf_counter()
            res = RUNNERS[approach](cfg, data, runs_dir=f"{tmp}/runs", cache_dir=f"{tmp}/cache")
            out[f"{label}_seconds"] = round(time.perf_counter() - t, 3)
            out[f"{label}_epoch_seconds"] = res.history["epoch_seconds"]
            out[f"{label}_cache"] = res.metrics.get("feature_cache")
            print(f"bench: {label} {out[f'{label}_seconds']}s", file=sys.stderr, flush=True)
    out["train_images"] = len(data.splits["train"])
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    text = json.dumps(out, indent=2)
    print(text)
    if args.report:
        with open(args.report, "w") as fh:
            fh.write(text)
    return 0
