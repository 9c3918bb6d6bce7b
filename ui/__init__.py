"""Streamlit-side helpers that are not pages: the access gate and upload folders."""
