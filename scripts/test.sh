#!/usr/bin/env bash
# Set-up (venv + pinned packages) and the whole test suite. Extra arguments go to pytest.
# Runs on TLS_TEST_WORKERS pytest-xdist workers (default 3; 0 = in this process), a test file per worker,
# the longest files first (tests/conftest.py HEAVY_FILES) so the workers end together. Three on a 2-core
# machine: a worker waiting on a training process or a browser leaves its core to the others (whole
# suite here: 2 workers 605 s, 3 workers 545 s, 4 workers 594 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
workers="${TLS_TEST_WORKERS:-3}"
if [ "$workers" = "0" ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"  # files in conftest's longest-first order
