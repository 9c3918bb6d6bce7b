"""`python -m engine dataset add|list|zip`: datasets made image by image (engine/data/builder.py), for scripts;
`dataset relabel|remove|keep|undo|history --data PATH`: fixing a dataset's files (engine/data/curation.py).

The same checks as the dashboard's "Make a dataset": each file read through the one read gate (a regular file
within the decoder's byte limit: a FIFO or /dev/zero is refused, never waited on or read), then through the one
decoder before it is written; names kept as typed or refused with the reason; duplicates (same content in the
class) skipped. A refused file is named with its reason on stderr; the readable ones are still added, and the
exit status is 2 so a script notices.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from engine.data import builder, curation
from engine.data.layout import DatasetError
from engine.data.reads import MAX_IMAGE_BYTES, FileRefused, read_regular_file
from engine.data.sample import default_sample_dir
from engine.store.outputs import add_output, output_of

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
    add_curation_parsers(verbs)


def add_curation_parsers(verbs) -> None:
    """relabel/remove/keep/undo/history of any dataset folder (--data), one line per action; refusals exit 2."""
    data_help = "the dataset folder (its log and trash live in DATA/.tls-curation/)"
    r = verbs.add_parser("relabel", help="move FILES to class CLASS of their own split (a new class is made)")
    r.add_argument("--data", required=True, help=data_help)
    r.add_argument("files", nargs="+", metavar="FILE", help="image files of the dataset")
    r.add_argument("cls", metavar="CLASS", help="the class they belong to")
    r.set_defaults(func=cmd_relabel)
    rm = verbs.add_parser("remove", help="move FILES into the dataset's trash (never deleted; `dataset undo` puts them back)")
    rm.add_argument("--data", required=True, help=data_help)
    rm.add_argument("files", nargs="+", metavar="FILE", help="image files of the dataset")
    rm.set_defaults(func=cmd_remove)
    k = verbs.add_parser("keep", help="mark FILES as not an issue: data health does not propose them again")
    k.add_argument("--data", required=True, help=data_help)
    k.add_argument("files", nargs="+", metavar="FILE", help="image files of the dataset")
    k.set_defaults(func=cmd_keep)
    u = verbs.add_parser("undo", help="revert the last relabel, remove or keep")
    u.add_argument("--data", required=True, help=data_help)
    u.set_defaults(func=cmd_undo)
    h = verbs.add_parser("history", help="the actions taken on the dataset, oldest first")
    h.add_argument("--data", required=True, help=data_help)
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=cmd_history)


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
    print(
        f"{path}: {len(added.saved)} added to {cls!r}"
        + (f", {len(added.duplicates)} already there" if added.duplicates else "")
        + (f", {len(refused) + len(added.refused)} refused" if refused or added.refused else "")
        + f"; {cls!r} now holds {len(builder.images_of(path, cls))}"
    )
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


def _data(args) -> str:
    return resolve_sample_name(args.data)


def resolve_sample_name(value: str) -> str:
    """'sample' names the built-in sample (as `run --data sample`), so its refusal says what it is."""
    return str(default_sample_dir()) if value == "sample" else value


def _short(root: str, path: str | None) -> str:
    return os.path.relpath(path, root) if path else "-"


def _moves(done: dict) -> str:
    return ", ".join(f"{_short(done['root'], m['from'])} -> {_short(done['root'], m['to'])}" for m in done["files"])


def cmd_relabel(args) -> int:
    done = curation.relabel(_data(args), args.files, args.cls)
    same = f"; {len(done['unchanged'])} already in {done['class']!r}" if done["unchanged"] else ""
    print(f"relabeled {len(done['files'])} file(s) to {done['class']!r}" + (f": {_moves(done)}" if done["files"] else "") + same)
    return 0


def cmd_remove(args) -> int:
    done = curation.remove(_data(args), args.files)
    print(
        f"removed {len(done['files'])} file(s) to the trash (undo: python -m engine dataset undo --data {args.data}): {_moves(done)}"
    )
    return 0


def cmd_keep(args) -> int:
    done = curation.keep(_data(args), args.files)
    print(
        f"kept {len(done['files'])} file(s) as not an issue: " + ", ".join(_short(done["root"], m["from"]) for m in done["files"])
    )
    return 0


def cmd_undo(args) -> int:
    done = curation.undo(_data(args))
    print(f"undid {done['undid']} #{done['of']}" + (f": {_moves(done)}" if done["files"] else ""))
    return 0


def cmd_history(args) -> int:
    actions = curation.history(_data(args))
    if args.json:
        print(json.dumps({"history": actions}, indent=2, ensure_ascii=False))
        return 0
    if not actions:
        print(f"no actions on {args.data} yet")
    for a in actions:
        undone = " (undone)" if a["undone"] else ""
        if a["kind"] == "undo":
            print(f"#{a['id']} {a['time']} undo of #{a['of']} ({a['undid']}): {_moves(a) or 'no files moved'}")
        elif a["kind"] == "keep":
            print(f"#{a['id']} {a['time']} keep{undone}: " + ", ".join(_short(a["root"], m["from"]) for m in a["files"]))
        else:
            to = f" to {a['class']!r}" if a.get("class") else ""
            print(f"#{a['id']} {a['time']} {a['kind']}{to}{undone}: {_moves(a)}")
    return 0
