#!/usr/bin/env bash
# Set-up (venv + pinned packages) and the whole test suite. Extra arguments go to pytest.
# Runs on TLS_TEST_WORKERS pytest-xdist workers (default 2; 0 = in this process), a test file per worker,
# the longest files first (tests/conftest.py HEAVY_FILES) so both workers end together.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
workers="${TLS_TEST_WORKERS:-2}"
if [ "$workers" = "0" ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"  # files in conftest's longest-first order
