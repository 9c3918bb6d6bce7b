import streamlit as st

from engine.data.augmentation import preview_augmentation
from engine.data.images import preview_image
from engine.data.pixels import read_image_file
from engine.insight import charts
from ui import resources
from ui.access import require_token
from ui.data_health_view import data_health_panel
from ui.dataset_builder import builder_panel
from ui.dataset_source import current_report, dataset_name
from ui.feature_map_view import feature_map_panel
from ui.form_fields import augmentation_fields
from ui.sidebar import base_config

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

st.title("Data overview")
if not resources.run_store().list().runs:
    st.container(border=True).markdown(
        "**Start here.** 1. Choose a dataset in the sidebar (the built-in sample works offline). "
        "2. Check it below: classes, counts, sizes. 3. Train **Feature extraction** first (fastest), then "
        "**Frozen training** and **Fine-tuning**. 4. See them side by side on **Compare**, and try a photo on **Classify**."
    )
if st.session_state.get("sb_source") == "made":
    builder_panel()  # classes, uploads, camera shots (ui/dataset_builder.py); the report below follows each change
report = current_report()
if report is not None:
    d = report.to_dict()
    st.caption(f"{d['root']} · {d['layout']} layout · {len(d['classes'])} classes · {d['num_images']} usable images")
    st.subheader(f"Dataset: {dataset_name()}")
    for w in d["warnings"]:
        st.warning(w.replace("(listed in bad_files)", "(listed under “Unreadable files” below)"))
    if "test" not in d["splits"]:
        st.info(
            "This dataset has no test split: results report validation accuracy, which also chose the best epoch, so it "
            "is optimistic. Add a test/ folder, or use a flat DATA/<class>/ layout and set the split in the sidebar."
        )
    st.plotly_chart(charts.class_counts_figure(d["splits"]))

    st.subheader("Samples per class")
    train = report.files.get("train", {})
    for cls in report.classes:
        files = train.get(cls, [])[:6]
        if files:
            st.markdown(f"**{cls}**")
            st.image([preview_image(f, 220) for f in files], width=110)  # the decoder's pixels: oriented, RGB, any format

    c1, c2 = st.columns(2)
    sizes = set(map(tuple, report.sizes or []))
    if len(sizes) == 1:
        ((w, h),) = sizes
        c1.markdown(f"**Image sizes**  \nAll {len(report.sizes)} images are {w}×{h} px.")
    elif sizes:
        c1.plotly_chart(charts.image_size_figure(report.sizes))
    c2.markdown("**File formats**")
    c2.table({"format": list(d["formats"]), "images": list(d["formats"].values())})
    if d["bad_files"]:
        st.subheader(f"Unreadable files ({len(d['bad_files'])}) — skipped by training")
        st.dataframe(d["bad_files"], hide_index=True)

    st.subheader("Augmentation preview")
    st.caption("The same settings as the Frozen training and Fine-tuning forms: changes here carry over, and back.")
    cfg = base_config("frozen")
    with st.expander("Augmentation settings", expanded=False):
        augmentation_fields(cfg)
    first = next((fs[0] for fs in train.values() if fs), None)
    if first:
        image = read_image_file(first, 160)[0].astype("uint8")
        st.image(list(preview_augmentation(image, cfg.augmentation, count=8, seed=int(cfg.fit.seed))), width=130)

    st.subheader("Feature map")
    feature_map_panel(base_config("feature_extraction"), key="data_feature_map")  # the sidebar's backbone, weights and size

    st.subheader("Data health")
    data_health_panel(
        base_config("feature_extraction"), st.session_state.get("data_path", ""), report.classes
    )  # leaks, labels, copies
