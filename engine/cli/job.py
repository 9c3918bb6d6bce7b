"""`python -m engine job SPEC.json`: what the job runner starts, a typed job spec turned into one command.

The runner (engine/store/jobs.py) writes a spec, `{"command": "run", "options": {"approach": "frozen", "run_id": ...},
"error_file": PATH}`, with each option under its argparse dest; it never spells a flag. This module turns the
options into the command's own flags by reading the command's parser (`argv_for`), so a spec can only say what the
command accepts (an unknown option is one line, not a silent drop), and every rule of the command holds for a job
too: the output gate, the knob ranges, the one-line refusals. A refusal is also written to the spec's
`error_file`, which the runner reads instead of scraping the job's log.
"""

from __future__ import annotations

import argparse
import json

from engine.config import ConfigError
from engine.data.reads import read_regular_file

MAX_SPEC_BYTES = 1_000_000  # a spec holds a config (≈1.5 kB) and a few options


def add_parser(sub) -> None:
    p = sub.add_parser("job", help="run a job spec the dashboard's job runner wrote (JSON: command, options, error_file)")
    p.add_argument("spec", help="the spec file")
    p.set_defaults(func=cmd_job)


def command_parser(command: str) -> argparse.ArgumentParser:
    from engine.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if command not in sub.choices or command == "job":
        raise ConfigError(f"job spec: no command {command!r}; one of {', '.join(c for c in sub.choices if c != 'job')}")
    return sub.choices[command]


def argv_for(command: str, options: dict) -> list[str]:
    """The command's argv for options given by argparse dest (True for a switch; a list for a repeated option)."""
    parser = command_parser(command)
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    argv, positionals = [command], []
    for dest, value in options.items():
        action = actions.get(dest)
        if action is None:
            raise ConfigError(f"job spec: {command} has no option {dest!r}")
        values = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        if not action.option_strings:
            positionals.append((parser._actions.index(action), values))
        elif action.nargs == 0:  # a switch: store_true (off = left out), or a BooleanOptionalAction (off = --no-...)
            off = [o for o in action.option_strings if o.startswith("--no-")]
            argv += [action.option_strings[0]] if value else off[:1]
        elif isinstance(action, argparse._AppendAction):
            for v in values:
                argv += [action.option_strings[0], v]
        else:
            argv += [action.option_strings[0], *values]
    for _, values in sorted(positionals):
        argv += values
    return argv


def cmd_job(args) -> int:
    from engine.cli import main

    try:
        spec = json.loads(read_regular_file(args.spec, MAX_SPEC_BYTES).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"job spec {args.spec}: not a JSON spec ({exc})") from None
    if not (isinstance(spec, dict) and isinstance(spec.get("command"), str) and isinstance(spec.get("options"), dict)):
        raise ConfigError(f"job spec {args.spec}: needs a command and its options")
    error_file = spec.get("error_file") if isinstance(spec.get("error_file"), str) else None
    try:
        argv = argv_for(spec["command"], spec["options"])
    except ConfigError as exc:
        from engine.cli import _refuse

        return _refuse(str(exc), error_file)
    return main(argv, error_file)
