#!/usr/bin/env bash
# Set-up (venv + pinned packages), then train all three approaches on the built-in sample from the CLI.
# (The dashboard replaces this once it exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
exec .venv/bin/python -m engine run --data sample --approach all --weights "${TLS_WEIGHTS:-none}" --image-size 64 --epochs 5 --fine-tune-epochs 3 --learning-rate 1e-3 "$@"
