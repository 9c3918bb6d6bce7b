"""docs/cli.md is what the parser says: scripts/gen_cli_docs.py writes it from engine/cli's `--help` texts."""

import importlib.util

from tests.conftest import ROOT


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_parser():
    gen = load_generator()
    assert gen.CLI_DOC.read_text() == gen.cli_markdown(), f"docs/cli.md is out of date with the parser; run `{gen.REGENERATE}`"


def test_cli_reference_holds_every_command_and_flag():
    from engine.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()
    sub = load_generator()._subcommands(build_parser())
    for name, parser in sub.items():
        assert f"## `python -m engine {name}`" in text
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in text, f"{name} {flag}"
    assert "### `python -m engine dataset relabel`" in text  # nested commands too
