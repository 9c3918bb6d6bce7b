"""The server entry point: `streamlit run serve.py` (what scripts/app.sh runs) serves app.py and the
web API (ui/api.py, /api/v1/…) behind the access gate and upload bounds of ui/access_gate.py, which
must sit in front of Streamlit's server, where a page script cannot reach (see that module).

A weak TLS_ACCESS_TOKEN (under 16 characters, or holding whitespace) stops the server here: one line
on stderr, exit status 2. Streamlit finds `app` without running this file and then has uvicorn import
it, before the first request is accepted; the gate itself is only built at the first request, so its
own refusal of such a token would come too late to stop the process."""

import sys

from engine import settings

if settings.token_set() and settings.token_problem():
    print(f"serve.py: refusing to serve: {settings.token_problem()}", file=sys.stderr, flush=True)
    sys.exit(2)

import streamlit as st  # noqa: E402  (after the refusal: nothing of Streamlit's is set up for a weak token)
from starlette.middleware import Middleware  # noqa: E402

from ui.access_gate import AccessGate  # noqa: E402
from ui.api import api_routes  # noqa: E402

# The web API (ui/api.py) is served beside the dashboard, behind the same gate: the cookie or a Bearer token.
app = st.App("app.py", routes=api_routes(), middleware=[Middleware(AccessGate)])
