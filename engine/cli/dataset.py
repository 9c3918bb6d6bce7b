"""`python -m engine dataset add|list|zip`: datasets made image by image (engine/data/builder.py), for scripts.

The same checks as the dashboard's "Make a dataset": each file read through the one read gate (a regular file
within the decoder's byte limit: a FIFO or /dev/zero is refused, never waited on or read), then through the one
decoder before it is written; names kept as typed or refused with the reason; duplicates (same content in the
class) skipped. A refused file is named with its reason on stderr; the readable ones are still added, and the
exit status is 2 so a script notices.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.data import builder
from engine.data.layout import DatasetError
from engine.store.outputs import add_output, output_of
from engine.data.reads import MAX_IMAGE_BYTES, FileRefused, read_regular_file

EXIT_REFUSED = 2


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="make a dataset image by image: add photos to a class, list made datasets, zip one")
    p.add_argument("--datasets-dir", help=f"where made datasets live (default ${builder.DATASETS_ENV} or ./data)")
    verbs = p.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="add image files to CLASS of dataset NAME (both made when new)")
    add.add_argument("name", help="dataset name (a folder under the datasets folder)")
    add.add_argument("cls", metavar="CLASS", help="class name (a folder of the dataset)")
    add.add_argument("files", nargs="+", help="image files")
    add.set_defaults(func=cmd_add)
    ls = verbs.add_parser("list", help="made datasets with their images per class")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    z = verbs.add_parser("zip", help="write dataset NAME as a zip of NAME/<class>/<image> (import-zip reads it)")
    z.add_argument("name")
    add_output(z, "out", metavar="OUT", help="the .zip file to write (never inside a dataset, the run store or the cache)")
    z.set_defaults(func=cmd_zip)


def _root(args) -> Path:
    return Path(args.datasets_dir) if args.datasets_dir else builder.datasets_dir()


def _read_each(paths: list[str], refused: list[tuple[str, str]]):
    """(file name, bytes) of each path through the read gate, one at a time; a refused file is noted and skipped."""
    for f in paths:
        try:
            yield Path(f).name, read_regular_file(f, MAX_IMAGE_BYTES)
        except FileRefused as exc:  # a pipe, a device, a folder, too big, missing: named, the others still added
            refused.append((f, exc.reason))


def cmd_add(args) -> int:
    path = builder.create_dataset(args.name, [args.cls], _root(args))
    cls = builder.check_name(args.cls, "class name")
    refused: list[tuple[str, str]] = []
    added = builder.add_images(path, cls, _read_each(args.files, refused))
    for name, reason in refused + added.refused:
        print(f"refused {name}: {reason}", file=sys.stderr)
    print(f"{path}: {len(added.saved)} added to {cls!r}" + (f", {len(added.duplicates)} already there" if added.duplicates else "")
          + (f", {len(refused) + len(added.refused)} refused" if refused or added.refused else "")
          + f"; {cls!r} now holds {len(builder.images_of(path, cls))}")
    return EXIT_REFUSED if refused or added.refused else 0


def cmd_list(args) -> int:
    found = builder.list_datasets(_root(args))
    if args.json:
        print(json.dumps({"datasets": found}, indent=2))
        return 0
    if not found:
        print(f"no datasets in {_root(args)} (make one: python -m engine dataset add NAME CLASS FILES...)")
    for d in found:
        print(f"{d['name']}  " + ", ".join(f"{c} {n}" for c, n in d["classes"].items()) + f"  ({d['path']})")
    return 0


def cmd_zip(args) -> int:
    path = builder.dataset_path(args.name, _root(args))
    if not path.is_dir():
        raise DatasetError(f"dataset {args.name!r}: not found in {_root(args)}; see `python -m engine dataset list`")
    print(output_of(args, "OUT").write_bytes(builder.zip_bytes(path)))  # claimed before any work (cli.main)
    return 0
