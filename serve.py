"""The server entry point: `streamlit run serve.py` (what scripts/app.sh runs) serves app.py behind
the access gate and upload bounds of ui/access_gate.py, which must sit in front of Streamlit's server,
where a page script cannot reach (see that module)."""

import streamlit as st
from starlette.middleware import Middleware

from ui.access_gate import AccessGate

app = st.App("app.py", middleware=[Middleware(AccessGate)])
