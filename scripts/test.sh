#!/usr/bin/env bash
# Set-up (venv + pinned packages) and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
