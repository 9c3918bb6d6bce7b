import streamlit as st

from engine import charts
from engine.augmentation import preview_augmentation
from engine.datasets import read_image_file
from engine.images import preview_image
from pages import shared
from ui.access import require_token

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

st.title("Data overview")
report = shared.current_report()
if report is not None:
    d = report.to_dict()
    st.caption(f"{d['root']} · {d['layout']} layout · {len(d['classes'])} classes · {d['num_images']} usable images")
    for w in d["warnings"]:
        st.warning(w)
    st.plotly_chart(charts.class_counts_figure(d["splits"]))

    st.subheader("Samples per class")
    train = report.files.get("train", {})
    for cls in report.classes:
        files = train.get(cls, [])[:6]
        if files:
            st.markdown(f"**{cls}**")
            st.image([preview_image(f, 220) for f in files], width=110)  # the decoder's pixels: oriented, RGB, any format

    c1, c2 = st.columns(2)
    if report.sizes:
        c1.plotly_chart(charts.image_size_figure(report.sizes))
    c2.markdown("**File formats**")
    c2.table({"format": list(d["formats"]), "images": list(d["formats"].values())})
    if d["bad_files"]:
        st.subheader(f"Unreadable files ({len(d['bad_files'])}) — skipped by training")
        st.dataframe(d["bad_files"], hide_index=True)

    st.subheader("Augmentation preview")
    cfg = shared.base_config("frozen")
    with st.expander("Augmentation settings", expanded=False):
        shared.augmentation_fields(cfg, "overview")
    first = next((fs[0] for fs in train.values() if fs), None)
    if first:
        image = read_image_file(first, 160)[0].astype("uint8")
        st.image(list(preview_augmentation(image, cfg.augmentation, count=8, seed=int(cfg.fit.seed))), width=130)
