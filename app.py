"""Transfer Learning Studio — the Streamlit router: page config, navigation, shared sidebar."""

import streamlit as st

from ui import access
from ui.sidebar import render_sidebar

st.set_page_config(page_title="Transfer Learning Studio", page_icon=":material/science:", layout="wide")
access.require_token()  # before navigation and sidebar: without the token nothing else renders
# Streamlit's own status-bar Stop (it stops this page's script, not a training job) and Deploy button
# sat next to ours and confused users: jobs are stopped with the pages' own Stop button.
st.html("<style>[data-testid='stStatusWidget'] button, [data-testid='stAppDeployButton'] {display: none}</style>")

PAGES = [
    st.Page("pages/data_overview.py", title="Data overview", icon=":material/dataset:", default=True),
    st.Page("pages/feature_extraction.py", title="Feature extraction", icon=":material/filter_1:"),
    st.Page("pages/frozen_training.py", title="Frozen training", icon=":material/filter_2:"),
    st.Page("pages/fine_tuning.py", title="Fine-tuning", icon=":material/filter_3:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/image_search:"),
]

nav = st.navigation(PAGES)
render_sidebar()
nav.run()
