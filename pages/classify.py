import streamlit as st

from engine.errors import StudioError
from engine.insight import charts
from engine.insight.inference import Photo, load_run
from ui import resources
from ui.access import require_token
from ui.dataset_source import dataset_name
from ui.ensemble_view import classify_answers, classify_switches, show_ensemble
from ui.gradcam import gradcam_toggle, show_gradcam
from ui.run_labels import approach_title, on_dataset, run_label

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
if not st.toggle("Models of all datasets", key="cls_all", value=not here,
                 help=f"Off: only models trained on the sidebar's dataset ({dataset_name()})."):
    runs = here
if not runs:
    st.info(f"No model trained on {dataset_name()} yet: train one, or switch on “Models of all datasets”.")
    st.stop()
labels = {r.id: run_label(r) for r in runs}
if any(rid not in labels for rid in st.session_state.get("cls_runs", [])):
    del st.session_state["cls_runs"]  # models of another dataset, chosen before the filter changed
chosen = st.multiselect("Models (dataset · classes · approach · backbone · size · accuracy · id)", list(labels),
                        default=[runs[0].id], format_func=labels.get, key="cls_runs")  # newest first
uploads = st.file_uploader("Photos (one or several)", type=["jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff"],
                           key="cls_upload", accept_multiple_files=True)
camera = st.camera_input("…or take one", key="cls_camera") if st.toggle("Use camera", key="cls_cam_on") else None
photos = list(uploads or []) + ([camera] if camera is not None else [])
show_cam = gradcam_toggle()
tta, together, weighted = classify_switches(len(chosen))
for n, upload in enumerate(photos if chosen else []):
    try:  # the photo decoded once: its preview, every model's answer and Grad-CAM
        photo = Photo(upload.getvalue(), name=upload.name)
        loaded = [cached_run(str(store.root), rid) for rid in chosen]
        each, together_answer, problem = classify_answers(loaded, photo, tta=tta, together=together, weighted=weighted,
                                                          gradcam=show_cam)
    except StudioError as exc:  # one line naming the upload, or a truncated model.keras
        st.error(str(exc))
        continue
    left, right = st.columns([1, 2])
    left.image(photo.preview(512), caption=upload.name)  # what the model sees: oriented, RGB
    columns = right.columns(len(each) + together)  # the ensemble's answer in a last column
    if together:
        show_ensemble(columns[-1], together_answer, problem, key=f"e_{n}")
        if show_cam and together_answer is not None:
            show_gradcam(columns[-1], together_answer)
    for col, ans in zip(columns, each):
        rid = ans.runs[0]
        run = next(r for r in runs if r.id == rid)
        col.metric(f"{approach_title(run)} · {ans.ms:.0f} ms", ans.label, help=labels[rid])
        col.caption(labels[rid])
        col.plotly_chart(charts.probabilities_figure(ans.probabilities, ans.label), key=f"p_{n}_{rid}")
        if ans.caution:
            col.warning(ans.caution[0].upper() + ans.caution[1:] + ".")
        col.caption(f"This model only knows {', '.join(ans.probabilities)}: it answers with one of them for any photo.")
        if show_cam:  # under each model's answer: the approaches side by side, each explaining the class it shows
            show_gradcam(col, ans)
