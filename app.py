"""Transfer Learning Studio — the Streamlit router: page config, navigation, shared sidebar."""

import streamlit as st

from pages import shared

st.set_page_config(page_title="Transfer Learning Studio", page_icon="🧪", layout="wide")

PAGES = [
    st.Page("pages/data_overview.py", title="Data overview", icon="🗂️", default=True),
    st.Page("pages/feature_extraction.py", title="Feature extraction", icon="1️⃣"),
    st.Page("pages/frozen_training.py", title="Frozen training", icon="2️⃣"),
    st.Page("pages/fine_tuning.py", title="Fine-tuning", icon="3️⃣"),
    st.Page("pages/compare.py", title="Compare", icon="📊"),
    st.Page("pages/classify.py", title="Classify", icon="🔎"),
]

nav = st.navigation(PAGES)
shared.render_sidebar()
nav.run()
