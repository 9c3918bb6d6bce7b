"""ruff (pinned in requirements-dev.txt, configured in pyproject.toml): the code lints and is formatted.

Run by the quick loop and CI alike; ruff checks the whole tree in about a second. Without ruff the tests skip
with the reason, and fail under TLS_REQUIRE_ASSETS=1 (CI), like every other tool the suite needs.
"""

import importlib.util
import subprocess
import sys

from tests.conftest import ROOT, missing


def ruff(*args: str) -> subprocess.CompletedProcess:
    """Runs the interpreter's own ruff (the pinned one in .venv) on the repository."""
    if importlib.util.find_spec("ruff") is None:
        missing("ruff is not installed (pip install -r requirements-dev.txt)")
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_check_is_clean():
    done = ruff("check", "--output-format", "concise", ".")
    assert done.returncode == 0, (
        f"ruff check found problems; fix them (`.venv/bin/ruff check --fix .` does some):\n{done.stdout[-4000:]}"
    )


def test_ruff_format_check_is_clean():
    done = ruff("format", "--check", ".")
    assert done.returncode == 0, f"files not formatted; run `.venv/bin/ruff format .`:\n{done.stdout[-4000:]}"


def test_ruff_reads_the_projects_settings():
    shown = ruff("check", "--show-settings", "app.py").stdout
    assert f'Settings path: "{ROOT / "pyproject.toml"}"' in shown  # not ruff's own defaults
    assert "linter.line_length = 130" in shown and "linter.pycodestyle.max_line_length = 150" in shown
