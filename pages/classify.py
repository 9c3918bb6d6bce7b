import streamlit as st

from engine import charts
from engine.images import ImageDecodeError, preview_image
from engine.inference import classify_bytes, load_run
from engine.runs import RunStoreError
from pages import shared
from ui.access import require_token
from ui.gradcam import gradcam_toggle, show_gradcam

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

st.title("Classify")


@st.cache_resource(show_spinner="Loading model …")
def cached_run(runs_dir: str, run_id: str):
    from engine.runs import RunStore

    return load_run(RunStore(runs_dir), run_id)


store = shared.run_store()
listing = store.list()
for bad in listing.damaged:
    st.warning(f"Run folder {bad.id} is damaged and left out: {bad.reason}")
runs = [r for r in listing.runs if r.model_path.exists()]
if not runs:
    st.info("No trained model yet: train one of the approaches first.")
    st.stop()
labels = {r.id: f"{charts.APPROACH_TITLES.get(r.config.get('approach'), '?')} · {r.config['backbone']['name']} · {r.id}"
          + ("" if r.state in ("finished", "running") else f" ({r.state})") for r in runs}
chosen = st.multiselect("Models", [r.id for r in runs], default=[runs[0].id], format_func=labels.get, key="cls_runs")
upload = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff"], key="cls_upload")
camera = st.camera_input("…or take one", key="cls_camera") if st.toggle("Use camera", key="cls_cam_on") else None
photo = upload or camera
show_cam = gradcam_toggle()
if photo is not None and chosen:
    data = photo.getvalue()
    left, right = st.columns([1, 2])
    try:
        results = [classify_bytes(cached_run(str(store.root), rid), data, name=photo.name) for rid in chosen]
    except ImageDecodeError as exc:  # the decoder's one-line reason, naming the upload
        st.error(str(exc))
        st.stop()
    except RunStoreError as exc:  # e.g. a model.keras that is truncated or corrupt
        st.error(str(exc))
        st.stop()
    left.image(preview_image(data, 512), caption=photo.name)  # what the model sees: oriented, RGB
    cols = right.columns(len(results))
    for col, res in zip(cols, results):
        col.metric(f"{labels[res['run']].split(' · ')[0]} · {res['seconds'] * 1000:.0f} ms", res["predicted"])
        col.plotly_chart(charts.probabilities_figure(res["probabilities"], res["predicted"]), key=f"p_{res['run']}")
        if show_cam:  # under each model's prediction: the approaches side by side on the same photo
            show_gradcam(col, cached_run(str(store.root), res["run"]), data, photo.name)
