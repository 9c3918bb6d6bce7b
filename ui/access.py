"""The page script's side of the access token: render only behind the gate.

The token itself is checked by `ui/access_gate.py` in front of Streamlit's server (login page,
cookie, 403 for everything else); this check makes sure the app never renders when it is served
without that gate (`streamlit run app.py` with TLS_ACCESS_TOKEN set), where the server would
take messages and uploads from anyone. Behind the gate every request carries its `x-tls-gate`
header, which a client cannot forge without the token. Without the variable there is no gate:
the default bind is localhost, where the local user is the only visitor. A weak token (see
engine/settings.token_problem) never renders the app either: it says why instead.
"""

from __future__ import annotations

import hmac

import streamlit as st

from engine import settings
from ui.access_gate import PASS_HEADER, pass_mark

UNGATED = (
    "TLS_ACCESS_TOKEN is set but this server has no access gate in front of it, so it will not "
    "show the dashboard: start it with `bash scripts/app.sh` (or `streamlit run serve.py`), not `streamlit run app.py`."
)


def behind_gate(headers, token: str) -> bool:
    """True when the request came through AccessGate for this token."""
    given = (headers or {}).get(PASS_HEADER, "") or ""
    return hmac.compare_digest(given.encode(), pass_mark(token).encode())


def require_token() -> None:
    """Returns when this session may see the app; otherwise shows why not and calls st.stop()."""
    token = settings.access_token()
    if not token:
        return
    problem = settings.token_problem(token)  # serve.py and the gate refuse it; never render behind one either
    if not problem and behind_gate(st.context.headers, token):
        return
    st.error(f"{problem}; restart the dashboard with a stronger one." if problem else UNGATED)
    st.stop()
