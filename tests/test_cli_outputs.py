"""Every command's outputs and numbers, enumerated from the CLI parser itself (not a hand list).

A command added tomorrow is covered the day it is added: each output it declares (engine/store/outputs.add_output)
is fed an existing file, a file inside a run folder, a folder, a device node, a FIFO, a file inside a dataset
folder and a missing parent; each numeric flag inf, nan and 1e300. Each must exit 2 with one line naming the
flag, before any work, the target unchanged. A flag that writes a file but was not declared fails the last test.
"""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from engine import cli
from engine.store.outputs import OUTPUTS_KEY, output_flags
from tests.conftest import make_image

# A value for each required argument of any command, by argparse dest. A new required argument fails
# test_every_required_argument_has_a_placeholder until it gets one here (placeholders need not exist:
# the gate answers before a command reads anything).
PLACEHOLDERS = {
    "data": "no-such-dataset",
    "approach": "frozen",
    "run": ["no-such-run"],
    "format": "keras",
    "images": ["IMAGE"],
    "files": ["IMAGE"],
    "name": "d1",
    "cls": "cats",
    "zip": "missing.zip",
    "dest": "new-folder",
    "out": "new-output",
    "spec": "no-such-spec.json",
}


def leaf_parsers(parser: argparse.ArgumentParser, path=()):
    """(command words, parser) of every runnable command, nested ones (`dataset zip`) included."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaf_parsers(child, (*path, name))


COMMANDS = list(leaf_parsers(cli.build_parser()))


def required_argv(words, parser, image: str, skip=()) -> list[str]:
    argv = list(words)
    for a in parser._actions:
        if a.dest in skip or not (a.required or (not a.option_strings and a.nargs != "?")):
            continue
        if isinstance(a, argparse._SubParsersAction):
            continue
        value = PLACEHOLDERS[a.dest]
        values = [image if v == "IMAGE" else v for v in (value if isinstance(value, list) else [value])]
        argv += ([a.option_strings[0]] if a.option_strings else []) + values
    return argv


def _action_of(parser, out):
    return next(
        (a for a in parser._actions if a.dest == out.dest and (out.flag in a.option_strings or not a.option_strings)), None
    )


def output_cases():
    for words, parser in COMMANDS:
        for out in parser.get_default(OUTPUTS_KEY) or ():
            for case in ("existing", "run_folder", "folder", "device", "fifo", "dataset", "missing_parent"):
                yield pytest.param(words, out, case, id=f"{' '.join(words)} {out.flag} {case}")


def test_every_required_argument_has_a_placeholder():
    for words, parser in COMMANDS:
        required_argv(words, parser, "x.png")  # a KeyError names the dest that needs one


def test_commands_with_outputs_are_found():
    declared = {(" ".join(w), o.flag) for w, p in COMMANDS for o in p.get_default(OUTPUTS_KEY) or ()}
    assert {
        ("run", "--report"),
        ("lr-find", "--out"),
        ("feature-map", "--out"),
        ("predict", "--gradcam"),
        ("export", "--out"),
        ("export", "--zip"),
        ("dataset zip", "OUT"),
        ("bench", "--json"),
        ("estimate", "--out"),
        ("sample", "DIR"),
        ("import-zip", "DEST"),
    } <= declared


def _snapshot(p: Path):
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    body = p.read_bytes() if stat.S_ISREG(st.st_mode) else sorted(os.listdir(p)) if stat.S_ISDIR(st.st_mode) else None
    return stat.S_IFMT(st.st_mode), body


def _make(case: str, target: Path, kind: str) -> None:
    """Puts the hostile thing at `target` (the path the output would be written to)."""
    if case in ("existing", "run_folder", "dataset"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("keep me")
    elif case == "folder":
        target.mkdir(parents=True)
        (target / "inside.txt").write_text("keep me")  # an export folder may be new or empty: this one is neither
    elif case == "fifo":
        os.mkfifo(target)
    elif case == "device":
        if os.geteuid() == 0:
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # /dev/null's numbers
        else:
            os.symlink("/dev/null", target)  # not root: a link to a device, refused as a link


def _value_for(case: str, tmp: Path) -> Path:
    base = {"run_folder": tmp / "runs" / "run-1", "dataset": tmp / "ds", "missing_parent": tmp / "no-such-folder"}.get(case, tmp)
    return base / "target"


@pytest.mark.parametrize("words,out,case", list(output_cases()))
def test_every_output_refuses_what_it_must_not_write(words, out, case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TLS_RUNS_DIR", str(tmp_path / "other-runs"))  # the run folder is found by its files, not its store
    (tmp_path / "runs" / "run-1").mkdir(parents=True)
    (tmp_path / "runs" / "run-1" / "config.json").write_text('{"approach": "frozen"}')
    (tmp_path / "runs" / "run-1" / "history.json").write_text("{}")
    for split in ("train", "validation"):
        (tmp_path / "ds" / split / "cats").mkdir(parents=True)
    image = tmp_path / "photo.png"
    make_image(image, (200, 30, 30))
    parser = dict(COMMANDS)[words]
    derived = _action_of(parser, out) is None  # e.g. export --zip: FOLDER.zip from --out FOLDER
    value = _value_for(case, tmp_path)
    argv = required_argv(words, parser, str(image), skip={out.dest})
    own = next(a for a in parser._actions if a.dest == out.dest)
    argv += ([own.option_strings[0]] if own.option_strings else []) + [str(value)]
    argv += [out.flag] if derived else []  # the switch that asks for the derived file
    forceable = any("--force" in a.option_strings for a in parser._actions)
    argv += ["--force"] if case in ("run_folder", "dataset") and forceable else []  # only the place may refuse these
    ns = parser.parse_args(argv[len(words) :])
    target = Path(out.targets(ns, str(value))[0]) if out.targets else value
    if case not in ("missing_parent", "run_folder", "dataset"):
        _make(case, target, out.kind)
    before = _snapshot(target)
    rc = cli.main(argv)
    err = capsys.readouterr().err
    flags = {o.flag for o in parser.get_default(OUTPUTS_KEY) if o.dest == out.dest}  # a derived file's base may refuse first
    assert rc == 2, err
    assert err.count("\n") == 1 and any(err.startswith(f"error: {f} ") for f in flags), err  # one line, from the gate
    assert _snapshot(target) == before


def numeric_cases():
    for words, parser in COMMANDS:
        for a in parser._actions:
            name = getattr(a.type, "__name__", "")
            if a.option_strings and name in ("int", "float"):
                for bad in ("inf", "nan", "1e300", "-inf"):
                    yield pytest.param(words, a, bad, id=f"{' '.join(words)} {a.option_strings[0]} {bad}")


@pytest.mark.parametrize("words,action,bad", list(numeric_cases()))
def test_every_number_flag_refuses_non_finite_and_huge_values(words, action, bad, capsys, tmp_path):
    parser = dict((w, p) for w, p in COMMANDS)[words]
    argv = required_argv(words, parser, str(tmp_path / "x.png"), skip={action.dest})
    argv += [action.option_strings[0]] + [bad] * (action.nargs if isinstance(action.nargs, int) else 1)
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and action.option_strings[0] in err, err


def test_numbers_are_never_plain_float_or_int():
    """Every numeric flag carries its knob's range (flags.number_type), so none takes 1e300 for a setting."""
    plain = [(" ".join(w), a.option_strings[0]) for w, p in COMMANDS for a in p._actions if a.type in (float, int)]
    assert plain == []


WRITES = ("--out", "--output", "--report", "--gradcam", "--json-out", "--save", "--zip")


def test_every_flag_that_writes_is_declared_to_the_gate():
    """A flag named like an output, or whose help says it writes a file, must be an add_output (or a switch of one)."""
    missing = []
    for words, parser in COMMANDS:
        declared = {o.flag for o in output_flags(argparse.Namespace(**{OUTPUTS_KEY: parser.get_default(OUTPUTS_KEY)}))}
        for a in parser._actions:
            names = set(a.option_strings) or {a.metavar or a.dest}
            says_write = "write" in (a.help or "").lower() and (a.metavar or "").upper() in (
                "FILE",
                "OUT",
                "OUT.PNG",
                "FOLDER",
                "PATH",
            )
            if (names & set(WRITES) or says_write) and not names & declared:
                missing.append(f"{' '.join(words)} {sorted(names)[0]}")
    assert missing == []


def test_the_job_runners_result_folder_is_open_to_its_own_command_only(tmp_path, monkeypatch, capsys):
    """A tool job answers in RUNS/.<command>/; that folder, and only for that command, is open inside the store."""
    from engine.store.outputs import Protected

    store = tmp_path / "runs"
    (store / ".lr-find").mkdir(parents=True)
    guard = Protected([store], [], [], command="lr-find")
    assert guard.problem(store / ".lr-find" / "job.json") == ""
    assert "run store" in guard.problem(store / ".feature-map" / "job.json")
    assert "run store" in Protected([store], [], [], command="feature-map").problem(store / ".lr-find" / "job.json")


def test_a_full_disk_leaves_nothing_behind(tmp_path, monkeypatch):
    """The write goes to a temp file beside the target; an OSError removes it and says one line."""
    import errno

    from engine.store.outputs import OutputFailed, claim

    out = claim("--out", str(tmp_path / "r.json"))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        OutputFailed, match=r"^--out .*r\.json: could not write it \(No space left on device\); nothing was written$"
    ):
        out.write_json({"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_json_the_engine_writes_holds_no_nan_or_infinity(tmp_path):
    import json

    from engine.config import dumps
    from engine.store.outputs import claim

    text = dumps({"loss": [0.5, float("nan")], "rate": float("inf"), "n": 1})
    assert json.loads(text) == {"loss": [0.5, None], "rate": None, "n": 1} and "NaN" not in text
    path = claim("--out", str(tmp_path / "d.json")).write_json({"x": float("-inf")})
    assert json.loads(path.read_text()) == {"x": None}


def test_a_folder_output_may_be_reused_only_when_it_holds_what_the_command_makes(tmp_path, capsys):
    """`sample DIR` twice answers the same folder (its `.complete` mark); a folder of something else is refused."""
    assert cli.main(["sample", str(tmp_path / "s")]) == 0 and cli.main(["sample", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "s")] * 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert cli.main(["sample", str(tmp_path / "other")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: DIR {tmp_path / 'other'}: is a folder that is not empty; give a new (or empty) folder\n"
    )
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]
