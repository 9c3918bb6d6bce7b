#!/usr/bin/env bash
# Creates .venv (once) and installs the pinned requirements into it (again only when they change).
set -euo pipefail
cd "$(dirname "$0")/.."
reqs="${1:-requirements.txt}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-$(basename "$reqs")"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet -r "$reqs"
  touch "$stamp"
fi
