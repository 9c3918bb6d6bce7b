#!/usr/bin/env bash
# Set-up (venv + pinned packages), then serve the dashboard on http://localhost:8501.
# Extra arguments go to `streamlit run` (e.g. --server.port 8600). Serving beyond this machine
# (--server.address 0.0.0.0) needs TLS_ACCESS_TOKEN: the app then asks every visitor for it.
# A token, wherever served, must be 16+ characters without whitespace (serve.py checks the same).
set -euo pipefail
cd "$(dirname "$0")/.."
token="${TLS_ACCESS_TOKEN:-}"
if [ -n "$token" ]; then
  if [[ "$token" =~ [[:space:]] ]]; then
    echo "app.sh: refusing to serve: TLS_ACCESS_TOKEN holds whitespace; use a random token of 16+ characters without spaces (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')." >&2
    exit 2
  elif [ "${#token}" -lt 16 ]; then
    echo "app.sh: refusing to serve: TLS_ACCESS_TOKEN is ${#token} characters; use a random token of 16 or more (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')." >&2
    exit 2
  fi
fi
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
    if [ -z "$token" ]; then
      echo "app.sh: refusing to serve on '$address' without an access token; set TLS_ACCESS_TOKEN (see docs/serving.md)." >&2
      exit 2
    fi
    ;;
esac
bash scripts/setup.sh requirements.txt
exec .venv/bin/python -m streamlit run serve.py "$@"  # app.py behind the access gate (serve.py)
