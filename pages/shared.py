"""UI pieces shared by pages: the sidebar, cached engine calls, the live job panel.

Pages stay thin: they read widgets into a config dataclass, call one engine function or
submit one job, and render what comes back with the helpers here.
"""

from __future__ import annotations

import os
import time

import streamlit as st

from engine import backbones, charts
from engine.config import BackboneConfig, RunConfig, default_config
from engine.datasets import DatasetError, DatasetReport, import_zip, scan_dataset
from engine.downloads import DownloadUnavailable, download_cats_and_dogs, internet_available
from engine.jobs import JobRunner
from engine.paths import confine
from engine.runs import RunStore
from engine.sample import ensure_sample_dataset
from ui.distribution import distribution_fields
from ui.tensorboard_logs import tensorboard_fields
from ui.uploads import UploadFolder, sweep_stale

SOURCES = ("Built-in sample", "Cats & dogs (download)", "Folder path", "Upload .zip")
WEIGHT_CHOICES = ("ImageNet", "Local file", "None (random)")


@st.cache_resource
def _job_runner(runs_dir: str | None, cache_dir: str | None) -> JobRunner:
    return JobRunner(runs_dir=runs_dir, cache_dir=cache_dir)


def job_runner() -> JobRunner:
    """One runner per server process (and run store), shared by every session and tab."""
    return _job_runner(os.environ.get("TLS_RUNS_DIR"), os.environ.get("TLS_CACHE_DIR"))


@st.cache_data(ttl=300, show_spinner=False)
def online() -> bool:
    return internet_available()


@st.cache_data(show_spinner="Scanning the dataset …")
def scan(path: str, mtime_key: float) -> DatasetReport:
    return scan_dataset(path)


def _folder_mtime(path: str) -> float:
    """Latest mtime of the dataset's folders: adding or removing an image anywhere triggers a re-scan."""
    try:
        return max(os.stat(d).st_mtime for d, _, _ in os.walk(path))
    except (OSError, ValueError):
        return 0.0


@st.cache_resource
def _sweep_stale_uploads() -> int:
    """Once per server process: upload folders of sessions a killed server never cleaned up."""
    return len(sweep_stale())


def _forget_upload() -> None:
    """Deletes this session's unpacked zip and clears it as the active dataset."""
    folder = st.session_state.pop("sb_zip_folder", None)
    if folder is not None:
        folder.remove()
    for key in ("sb_zip_root", "sb_zip_name", "sb_zip_error"):
        st.session_state.pop(key, None)


def _zip_dataset(up) -> str:
    """Unpacks a new upload into its own private folder (the previous one is deleted); returns its root or ""."""
    if st.session_state.get("sb_zip_name") != (up.name, up.size):
        _forget_upload()  # a refused zip must not leave the previous dataset active
        st.session_state["sb_zip_name"] = (up.name, up.size)  # refused or not, not retried on every rerun
        folder = UploadFolder()
        try:
            st.session_state["sb_zip_root"] = str(import_zip(up, folder.path))
            st.session_state["sb_zip_folder"] = folder
        except DatasetError as exc:
            folder.remove()
            st.session_state["sb_zip_error"] = f"{up.name}: {exc}"
    if st.session_state.get("sb_zip_error"):
        st.sidebar.error(st.session_state["sb_zip_error"])
    return st.session_state.get("sb_zip_root", "")


def _confined(key: str, what: str) -> str:
    """The sidebar text field `key` as a resolved path inside the allowed roots; "" (and an error shown) if not."""
    typed = str(st.session_state.get(key, "")).strip()
    if not typed:
        return ""
    try:
        return str(confine(typed, what))
    except DatasetError as exc:
        st.sidebar.error(str(exc))
        return ""


# Sidebar settings: key -> (default, type). Mirrored into the URL's query string, so a browser
# refresh (a new Streamlit session) or a shared link restores them.
SIDEBAR_DEFAULTS = {
    "sb_source": (SOURCES[0], str),
    "sb_folder": ("", str),
    "sb_backbone": ("mobilenet_v2", str),
    "sb_weights": (WEIGHT_CHOICES[0], str),
    "sb_weights_path": ("", str),
    "sb_image_size": (backbones.BACKBONES["mobilenet_v2"].default_size, int),
    "sb_seed": (42, int),
}
_ALLOWED = {"sb_source": SOURCES, "sb_backbone": tuple(backbones.BACKBONES), "sb_weights": WEIGHT_CHOICES}


def _restore_sidebar_state() -> None:
    """First run of a session: defaults, overridden by valid values from the query string."""
    for key, (default, kind) in SIDEBAR_DEFAULTS.items():
        if key in st.session_state:
            continue
        value = default
        raw = st.query_params.get(key.removeprefix("sb_"))
        if raw is not None:
            try:
                parsed = kind(raw)
                if key not in _ALLOWED or parsed in _ALLOWED[key]:
                    value = parsed
            except ValueError:
                pass  # a hand-edited URL never breaks the page
        if key == "sb_image_size":
            value = min(max(value, 32), 320)
        st.session_state[key] = value


def _save_sidebar_state() -> None:
    st.query_params.update({k.removeprefix("sb_"): str(st.session_state[k]) for k in SIDEBAR_DEFAULTS if st.session_state.get(k) not in ("", None)})


def render_sidebar() -> None:
    """Dataset source, backbone, weights, image size, seed; values live in st.session_state."""
    _restore_sidebar_state()
    _sweep_stale_uploads()
    sb = st.sidebar
    sb.header("Setup")
    source = sb.radio("Dataset", SOURCES, key="sb_source")
    path = ""
    if source == "Built-in sample":
        path = str(ensure_sample_dataset())
        sb.caption("Three classes of drawn shapes (train/validation/test), generated on first use.")
    elif source == "Cats & dogs (download)":
        if st.session_state.get("sb_catsdogs_root"):
            path = st.session_state["sb_catsdogs_root"]
        elif not online():
            sb.warning("Offline: the cats-and-dogs sample cannot be downloaded. Use the built-in sample, a folder path or a .zip upload.")
        elif sb.button("Download cats & dogs (68 MB, cached)", key="sb_catsdogs_get"):
            try:
                with st.spinner("Downloading …"):
                    path = st.session_state["sb_catsdogs_root"] = str(download_cats_and_dogs())
            except DownloadUnavailable as exc:
                sb.error(str(exc))
    elif source == "Folder path":
        sb.text_input("Folder", key="sb_folder", placeholder="/data/cats_vs_dogs_small")
        path = _confined("sb_folder", "Folder path")  # refused: no scan, the error says which folders are allowed
    else:
        up = sb.file_uploader("Zip of DATA/{train,validation}/<class>/ or DATA/<class>/", type=["zip"], key="sb_zip")
        if up is not None:
            path = _zip_dataset(up)
    st.session_state["data_path"] = path

    names = list(backbones.BACKBONES)
    sb.selectbox("Backbone", names, key="sb_backbone", format_func=lambda n: backbones.BACKBONES[n].title)
    choice = sb.radio("Weights", WEIGHT_CHOICES, key="sb_weights")
    if choice == "Local file":
        sb.text_input("Weights file (.weights.h5 / .h5)", key="sb_weights_path")
        _confined("sb_weights_path", "Weights file")
    spec = backbones.get_spec(st.session_state["sb_backbone"])
    sb.slider("Image size (px)", 32, 320, step=2, key="sb_image_size", help=f"{spec.title} default: {spec.default_size} px")
    sb.number_input("Seed", 0, 2**31 - 1, key="sb_seed")
    if choice == "ImageNet":
        wanted = BackboneConfig(name=spec.name, image_size=int(st.session_state["sb_image_size"]))
        fname = backbones.imagenet_weights_filename(wanted, backbones.image_size_for(wanted))
        if backbones.cached_imagenet_weights(wanted, backbones.image_size_for(wanted)):
            sb.caption(f"ImageNet weights ready in Keras' cache ({fname}).")
        elif online():
            sb.caption(f"ImageNet weights ({fname}) are downloaded once, on the first training run.")
        else:
            sb.warning(
                f"Offline: ImageNet weights for {spec.title} cannot be downloaded ({fname}). "
                f"Copy that file into {backbones.keras_cache_dir()}/, or choose **Local file** or **None (random)**."
            )
    _save_sidebar_state()


def weights_setting() -> str:
    choice = st.session_state.get("sb_weights", WEIGHT_CHOICES[0])
    if choice == "Local file":
        typed = st.session_state.get("sb_weights_path", "").strip()
        if not typed:
            return "none"
        try:
            return str(confine(typed, "Weights file"))  # the resolved path: what was checked is what trains
        except DatasetError:
            return typed  # approach_page refuses to train with it (weights_refusal)
    return "imagenet" if choice == "ImageNet" else "none"


def weights_refusal() -> str:
    """Why the sidebar's local weights file may not be used ("" when it may): training must not start with it."""
    typed = st.session_state.get("sb_weights_path", "").strip()
    if st.session_state.get("sb_weights") != "Local file" or not typed:
        return ""
    try:
        confine(typed, "Weights file")
        return ""
    except DatasetError as exc:
        return str(exc)


def base_config(approach: str) -> RunConfig:
    """The lecture defaults for `approach`, with the sidebar's data/backbone/weights/size/seed."""
    cfg = default_config(approach)
    cfg.data.path = st.session_state.get("data_path", "")
    cfg.backbone = BackboneConfig(name=st.session_state.get("sb_backbone", "mobilenet_v2"), weights=weights_setting(),
                                  image_size=int(st.session_state.get("sb_image_size", 0)))
    cfg.fit.seed = int(st.session_state.get("sb_seed", 42))
    return cfg


def current_report() -> DatasetReport | None:
    """Scans the sidebar's dataset (cached); shows a clear message instead of raising."""
    path = st.session_state.get("data_path", "")
    if not path:
        st.info("Choose a dataset in the sidebar: the built-in sample, a folder path, or a .zip upload.")
        return None
    try:
        return scan(path, _folder_mtime(path))
    except DatasetError as exc:
        st.error(str(exc))
        return None


def run_store() -> RunStore:
    return RunStore(os.environ.get("TLS_RUNS_DIR"))


def job_panel(approach: str) -> None:
    """Live view of this page's latest job: progress, ETA, growing curves, Stop; results when done."""
    runner = job_runner()
    queue = runner.active()
    if queue:
        st.caption("Queue: " + " → ".join(f"{charts.APPROACH_TITLES.get(j.approach, j.approach)} ({j.state})" for j in queue))
    mine = [j for j in runner.jobs() if j.approach == approach]
    if not mine:
        return
    job = mine[-1]
    prog = runner.progress(job.id)
    hist, metrics = prog["history"], prog["metrics"]
    done_epochs = len(hist.get("loss", []))
    total = metrics.get("epochs_total") or done_epochs or 1
    state = metrics.get("state", job.state) if job.state != "queued" else "queued"
    elapsed = time.time() - (job.started or time.time())
    eta = (elapsed / done_epochs) * (total - done_epochs) if done_epochs and state == "running" else 0
    st.progress(min(done_epochs / total, 1.0), text=f"{state}: epoch {done_epochs}/{total} · elapsed {elapsed:.0f}s · ETA {eta:.0f}s")
    # the run is saved (the process may still be exiting), or its process died / its folder is unreadable
    final = state in ("finished", "stopped", "failed", "interrupted", "damaged")
    if job.state in ("queued", "running") and not final and st.button("Stop", key=f"stop_{approach}"):
        runner.stop(job.id)
    if hist.get("loss"):
        series = [{"label": charts.APPROACH_TITLES[approach], "approach": approach, "history": hist}]
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts.curves_figure(series, "accuracy"), key=f"acc_{approach}")
        c2.plotly_chart(charts.curves_figure(series, "loss"), key=f"loss_{approach}")
    if final:
        render_results(metrics, state)


def render_results(metrics: dict, state: str) -> None:
    if state == "failed":
        st.error(f"Training failed: {metrics.get('message', '')}")
    elif state in ("interrupted", "damaged"):
        st.warning(f"Run {state}: {metrics.get('message', '')}")
        if state == "damaged":
            return
    elif metrics.get("message"):
        st.info(metrics["message"])
    val, test = metrics.get("validation") or {}, metrics.get("test") or {}
    c = st.columns(4)
    c[0].metric("Validation accuracy", f"{val['accuracy']:.3f}" if val else "–")
    c[1].metric("Test accuracy", f"{test['accuracy']:.3f}" if test else "–")
    c[2].metric("Trainable params", f"{metrics.get('trainable_params', 0):,}")
    c[3].metric("Wall time", f"{metrics.get('wall_seconds', 0):.0f}s")
    scored = test or val
    if scored:
        classes = list(scored["per_class"])
        st.plotly_chart(charts.confusion_figure(scored["confusion_matrix"], classes))
        wrong = scored.get("misclassified", [])[:6]
        if wrong:
            st.caption("Some misclassified images")
            cols = st.columns(len(wrong))
            for col, m in zip(cols, wrong):
                col.image(m["path"], caption=f"{m['true']} → {m['predicted']} ({max(m['probabilities'].values()):.0%})")


@st.cache_data(show_spinner="Counting parameters …")
def model_summary(cfg_json: str, num_classes: int) -> dict:
    from engine.modeling import describe_model

    return describe_model(RunConfig.from_json(cfg_json), num_classes)


def head_fields(cfg: RunConfig, key: str) -> None:
    c1, c2, c3 = st.columns(3)
    cfg.head.pooling = c1.radio("Pooling", ("flatten", "avg"), index=("flatten", "avg").index(cfg.head.pooling), key=f"{key}_pool", horizontal=True)
    cfg.head.dense_units = c2.select_slider("Dense units", [0, 32, 64, 128, 256, 512, 1024], value=cfg.head.dense_units, key=f"{key}_units")
    cfg.head.dropout = c3.slider("Dropout", 0.0, 0.9, value=cfg.head.dropout, step=0.05, key=f"{key}_drop")


def fit_fields(cfg: RunConfig, key: str) -> None:
    c1, c2, c3, c4 = st.columns(4)
    cfg.fit.epochs = c1.number_input("Epochs", 1, 500, value=cfg.fit.epochs, key=f"{key}_epochs")
    cfg.fit.batch_size = c2.number_input("Batch size", 1, 512, value=cfg.fit.batch_size, key=f"{key}_bs")
    cfg.fit.learning_rate = c3.number_input("Learning rate", 1e-7, 1.0, value=cfg.fit.learning_rate, format="%.6f", key=f"{key}_lr")
    cfg.fit.optimizer = c4.selectbox("Optimizer", ("rmsprop", "adam", "sgd"), key=f"{key}_opt")
    cfg.fit.early_stopping_patience = st.slider("Early stopping patience (0 = off)", 0, 20, value=0, key=f"{key}_patience")


def augmentation_fields(cfg: RunConfig, key: str) -> None:
    a = cfg.augmentation
    a.enabled = st.checkbox("Data augmentation", value=a.enabled, key=f"{key}_aug")
    c1, c2, c3, c4 = st.columns(4)
    a.rotation = c1.slider("Rotation (°)", 0, 180, value=int(a.rotation), key=f"{key}_rot")
    a.width_shift = c2.slider("Width shift", 0.0, 0.5, value=a.width_shift, key=f"{key}_ws")
    a.height_shift = c3.slider("Height shift", 0.0, 0.5, value=a.height_shift, key=f"{key}_hs")
    a.zoom = c4.slider("Zoom", 0.0, 0.9, value=a.zoom, key=f"{key}_zoom")
    c5, c6, c7 = st.columns(3)
    a.horizontal_flip = c5.checkbox("Horizontal flip", value=a.horizontal_flip, key=f"{key}_hf")
    a.vertical_flip = c6.checkbox("Vertical flip (the lecture's)", value=a.vertical_flip, key=f"{key}_vf")
    a.views = int(c7.number_input(
        "Augmented views (K)", 1, 100, value=a.views, key=f"{key}_views",
        help="The frozen base runs once per view of the training set (cached for later runs); epochs cycle "
             "through the K views. K = epochs gives every epoch fresh images, as the lecture does, at K times the cost."))


def approach_page(approach: str, title: str, explanation: str, extra_fields=None) -> None:
    """The common shape of the three approach pages: explain, summarise, form, train, live panel."""
    st.title(title)
    st.markdown(explanation)
    report = current_report()
    if report is None:
        return
    cfg = base_config(approach)
    with st.form(f"{approach}_form"):
        st.subheader("Hyper-parameters (lecture defaults)")
        fit_fields(cfg, approach)
        distribution_fields(cfg, approach)  # only when more than one device is visible
        head_fields(cfg, approach)
        if extra_fields:
            extra_fields(cfg, approach)
        tensorboard_fields(cfg, approach)
        submitted = st.form_submit_button("Train", type="primary")
    try:
        counts = model_summary(cfg.to_json(), len(report.classes))
        c = st.columns(3)
        c[0].metric("Total params", f"{counts['total_params']:,}")
        c[1].metric("Trainable params", f"{counts['trainable_params']:,}")
        c[2].metric("Non-trainable params", f"{counts['non_trainable_params']:,}")
    except Exception as exc:  # a bad setting must not take the page down
        st.warning(f"Could not build the model summary: {exc}")
    refusal = weights_refusal() if submitted else ""
    if refusal:
        st.error(refusal)
    elif submitted:
        try:
            job_runner().submit(cfg)
            st.toast("Training job queued")
        except ValueError as exc:
            st.error(str(exc))

    @st.fragment(run_every=1.0)
    def live() -> None:
        job_panel(approach)

    live()
