#!/usr/bin/env bash
# Set-up (venv + pinned packages), then train all three approaches on the built-in sample from the CLI.
# Weights: $TLS_WEIGHTS (imagenet by default, or a weights-file path). Offline without a local file it
# falls back to random weights, which still runs end to end but learns little. (The dashboard replaces this.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
args=(run --data sample --approach all --backbone mobilenet_v2 --image-size 96 --epochs 5 --fine-tune-epochs 3 --learning-rate 1e-3 "$@")
.venv/bin/python -m engine scan sample
if ! .venv/bin/python -m engine "${args[@]}" --weights "${TLS_WEIGHTS:-imagenet}"; then
  echo "Falling back to --weights none (random initialisation): expect near-chance accuracy." >&2
  echo "For real results set TLS_WEIGHTS=/path/to/mobilenet_v2_1.0_imagenet_no_top.weights.h5" >&2
  exec .venv/bin/python -m engine "${args[@]}" --weights none
fi
