#!/usr/bin/env bash
# Set-up (venv + pinned packages), then serve the dashboard on http://localhost:8501.
# Extra arguments go to `streamlit run` (e.g. --server.port 8600). Serving beyond this machine
# (--server.address 0.0.0.0) needs TLS_ACCESS_TOKEN: the app then asks every visitor for it.
set -euo pipefail
cd "$(dirname "$0")/.."
address="${STREAMLIT_SERVER_ADDRESS:-localhost}"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --server.address=*) address="${args[i]#*=}" ;;
    --server.address) address="${args[i + 1]:-}" ;;
  esac
done
case "$address" in
  localhost | 127.* | ::1 | "[::1]") ;;
  *)
    if [ -z "${TLS_ACCESS_TOKEN:-}" ]; then
      echo "app.sh: refusing to serve on '$address' without an access token; set TLS_ACCESS_TOKEN (see README, Serving on a network)." >&2
      exit 2
    fi
    ;;
esac
bash scripts/setup.sh requirements.txt
exec .venv/bin/python -m streamlit run serve.py "$@"  # app.py behind the access gate (serve.py)
