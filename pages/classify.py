import streamlit as st

from engine.errors import StudioError
from engine.insight.inference import Photo, load_run
from ui import resources
from ui.access import require_token
from ui.classify_rows import answer_rows
from ui.dataset_source import dataset_name
from ui.ensemble_view import classify_answers, classify_switches
from ui.gradcam import gradcam_toggle
from ui.run_labels import DEFAULT_RULE, best_finished_run, on_dataset, run_label

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py

st.title("Classify")


@st.cache_resource(show_spinner="Loading model …")
def cached_run(runs_dir: str, run_id: str):
    from engine.store.runs import RunStore

    return load_run(RunStore(runs_dir), run_id)


store = resources.run_store()
listing = store.list()
for bad in listing.damaged:
    st.warning(f"Run folder {bad.id} is damaged and left out: {bad.reason}")
runs = [r for r in listing.runs if r.model_path.exists()]
if not runs:
    st.info("No trained model yet: train one of the approaches first.")
    st.stop()
here = [r for r in runs if on_dataset(r, st.session_state.get("data_path", ""))]
if not st.toggle(
    "Models of all datasets",
    key="cls_all",
    value=not here,
    help=f"Off: only models trained on the sidebar's dataset ({dataset_name()}).",
):
    runs = here
if not runs:
    st.info(f"No model trained on {dataset_name()} yet: train one, or switch on “Models of all datasets”.")
    st.stop()
labels = {r.id: run_label(r) for r in runs}
if any(rid not in labels for rid in st.session_state.get("cls_runs", [])):
    del st.session_state["cls_runs"]  # models of another dataset, chosen before the filter changed
best = best_finished_run(runs)  # the one rule Compare follows too (ui/run_labels): stopped or failed runs never by default
chosen = st.multiselect(
    f"Models (default: {DEFAULT_RULE})",
    list(labels),
    default=[best] if best else [],
    format_func=labels.get,
    key="cls_runs",
    help="Each: dataset · classes · approach · backbone · size · accuracy · id. One row per model below.",
)
if not best and not chosen:
    st.info("No run here has finished: choose a model above (stopped and failed runs are listed, never preselected).")
uploads = st.file_uploader(
    "Photos (one or several)",
    type=["jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff"],
    key="cls_upload",
    accept_multiple_files=True,
)
camera = st.camera_input("…or take one", key="cls_camera") if st.toggle("Use camera", key="cls_cam_on") else None
photos = list(uploads or []) + ([camera] if camera is not None else [])
show_cam = gradcam_toggle()
tta, together, weighted = classify_switches(len(chosen))
by_id = {r.id: r for r in runs}
for n, upload in enumerate(photos if chosen else []):
    try:  # the photo decoded once: its preview, every model's answer and Grad-CAM
        photo = Photo(upload.getvalue(), name=upload.name)
        loaded = [cached_run(str(store.root), rid) for rid in chosen]
        each, together_answer, problem = classify_answers(
            loaded, photo, tta=tta, together=together, weighted=weighted, gradcam=show_cam
        )
    except StudioError as exc:  # one line naming the upload, or a truncated model.keras
        st.error(str(exc))
        continue
    answer_rows(
        n,
        upload.name,
        photo.preview(512),
        [(by_id[a.runs[0]], a) for a in each],
        (together_answer, problem) if together else None,
        show_cam,
    )
