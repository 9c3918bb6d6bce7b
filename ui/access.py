"""Optional access token for a dashboard served beyond localhost.

When TLS_ACCESS_TOKEN is set, each browser session must present it once — `?token=...` in
the URL or the password box — before anything else renders; success is remembered in
st.session_state (a refresh is a new session and asks again). Without the variable the gate
is open: the default bind is localhost, where the local user is the only visitor.
"""

from __future__ import annotations

import hmac
import os

import streamlit as st

TOKEN_ENV = "TLS_ACCESS_TOKEN"
_GRANTED = "_tls_access_granted"
_BOX = "_tls_access_box"


def _matches(given: str, expected: str) -> bool:
    # Constant-time comparison: response timing must not reveal how much of a guess was right.
    return hmac.compare_digest(given.encode(), expected.encode())


def require_token() -> None:
    """Returns when this session may see the app; otherwise renders the gate and calls st.stop()."""
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected or st.session_state.get(_GRANTED):
        return
    from_url = st.query_params.get("token", "")
    typed = st.session_state.get(_BOX, "")
    if (from_url and _matches(from_url, expected)) or (typed and _matches(typed, expected)):
        st.session_state[_GRANTED] = True
        if from_url:
            del st.query_params["token"]  # keep the secret out of the address bar, history and shared links
        return
    st.text_input("Access token", type="password", key=_BOX)
    if typed or from_url:
        st.error("That access token is not right; ask whoever runs this dashboard for it.")
    else:
        st.info("This dashboard needs its access token: type it above or open the link with ?token=… .")
    st.stop()
