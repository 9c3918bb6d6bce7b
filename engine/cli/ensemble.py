"""`python -m engine ensemble`: an ensemble of finished runs and/or flip averaging, scored on their own images.

Without --tta it reads the runs' stored predictions (predictions.json): instant, no TensorFlow.
With --tta each run's saved model classifies the validation (and test) files listed there
again, each image with its horizontal flip. One line per member and one for the ensemble,
validation first; test only when every run has one, labelled "scored once" (nothing is chosen
on it). Nothing here imports Keras at module level: the parser imports this module.
"""

from __future__ import annotations

import sys

from engine.config import dumps


def add_parser(sub) -> None:
    en = sub.add_parser("ensemble", help="score an ensemble of finished runs (probabilities averaged) and/or flip averaging")
    en.add_argument("--run", required=True, action="append", help="run id; give it two or more times (one is enough with --tta)")
    en.add_argument("--runs-dir")
    en.add_argument("--weighted", action="store_true", help="weigh each run by its recorded validation accuracy (else 1/N each)")
    en.add_argument(
        "--tta",
        action="store_true",
        help="classify the images again through each model, averaged with their horizontal flip (minutes, not instant)",
    )
    en.add_argument("--json", action="store_true", help="print one JSON object instead of a line per run")
    en.set_defaults(func=cmd_ensemble)


def cmd_ensemble(args) -> int:
    from engine.insight.ensemble import EnsembleError, check_members, load_member, score_ensemble
    from engine.insight.inference import flip_averaged
    from engine.store.runs import RunStore

    if len(args.run) < 2 and not args.tta:
        raise EnsembleError("--run: give two or more runs for an ensemble (or one run with --tta to score flip averaging)")
    store = RunStore(args.runs_dir)
    members = check_members([load_member(store.load(rid)) for rid in args.run])  # every refusal before a model loads
    if args.tta:

        def progress(message: str) -> None:
            print(f"[ensemble] {message}", file=sys.stderr, flush=True)

        members = [flip_averaged(store, m, progress) for m in members]
    result = score_ensemble(members, args.weighted, args.tta)
    if args.json:
        print(dumps(result.to_dict(), indent=2))
        return 0
    for line in score_lines(result):
        print(line)
    return 0


def score_lines(result) -> list[str]:
    """One line per member and one for the ensemble per split, validation first; test labelled "scored once"."""
    how = ", ".join(["weighted by validation accuracy" if result.weighted else "equal weights"] + ["with flips"] * result.tta)
    weights = dict(zip(result.members, result.weights))
    lines = []
    for split in ("validation", "test"):
        scores = result.splits.get(split)
        label = "test (scored once)" if split == "test" else split
        if scores is None:
            if split == "test":
                lines.append(f"test                {result.test_note}")
            continue
        for rid, s in scores["members"].items():
            lines.append(
                f"{label:<19} {rid}  accuracy {s['accuracy']:.4f}  loss {s['loss']:.4f}  weight {weights[rid]:.3f}"
                + ("  with flips" if result.tta else "")
            )
        if len(result.members) > 1:
            s = scores["ensemble"]
            lines.append(
                f"{label:<19} ensemble of {len(result.members)} runs ({how})  accuracy {s['accuracy']:.4f}  "
                f"loss {s['loss']:.4f}  ({s['num_images']} images)"
            )
    return lines
