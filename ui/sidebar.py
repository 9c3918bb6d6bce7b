"""The shared sidebar: dataset, backbone, weights, image size, split, seed — kept in the URL.

Options are stable keys (what the URL and session state hold) shown through `format_func`.
Anything that stops training (no weights anywhere, an empty or refused weights path) is one
sentence at the TOP of the sidebar, and the same sentence disables Train (`weights_problem`).
"""

from __future__ import annotations

import streamlit as st

from engine.config import BackboneConfig, RunConfig, default_config
from engine.data.layout import DatasetError
from engine.data.paths import confine
from engine.models import backbones
from ui import resources
from ui.dataset_source import SOURCES, dataset_fields
from ui.forms import KEEP, own

WEIGHTS = {"imagenet": "ImageNet", "local": "Local file", "none": "None (random)"}
NO_PATH = "Weights: “Local file” has no path yet. Type the path of a .weights.h5 file, or choose ImageNet or None (random)."

# key -> (default, type); mirrored into the query string so a refresh or a shared link restores them.
DEFAULTS = {
    "sb_source": ("sample", str),
    "sb_folder": ("", str),
    "sb_made": ("", str),
    "sb_backbone": ("mobilenet_v2", str),
    "sb_weights": ("imagenet", str),
    "sb_weights_path": ("", str),
    "sb_image_size": (backbones.BACKBONES["mobilenet_v2"].default_size, int),
    "sb_seed": (42, int),
    "sb_train_pct": (70, int),
    "sb_val_pct": (15, int),
    "sb_max_per_class": (0, int),
}
_ALLOWED = {"sb_source": tuple(SOURCES), "sb_backbone": tuple(backbones.BACKBONES), "sb_weights": tuple(WEIGHTS)}
_LABELS = {**{v: k for k, v in SOURCES.items()}, **{v: k for k, v in WEIGHTS.items()}}  # links made before the keys


@st.cache_data(ttl=300, show_spinner=False)
def weights_default(name: str, alpha: float, image_size: int):
    """The engine's offline-aware default (ImageNet if cached/downloadable, else a local file found, else none)."""
    return backbones.default_weights(name, alpha, image_size)


def _restore() -> None:
    """Every run: a field missing from session state gets its kept copy (`_keep_<key>`, saved by `_save`), else on a
    session's first run the default overridden by a valid value from the query string.

    Streamlit drops a widget's state in the first run that does not draw it: the Folder box and the made dataset's
    name are drawn only for their source, and a page switch drops their URL parameters, so without the kept copy
    switching the source away and back forgot what was typed."""
    fresh = "sb_weights" not in st.session_state and "weights" not in st.query_params
    for key, (default, kind) in DEFAULTS.items():
        if key in st.session_state:
            continue
        if KEEP + key in st.session_state:
            st.session_state[key] = st.session_state[KEEP + key]
            continue
        value, raw = default, st.query_params.get(key.removeprefix("sb_"))
        if raw is not None:
            try:
                parsed = _LABELS.get(raw, raw) if key in _ALLOWED else kind(raw)
                if key not in _ALLOWED or parsed in _ALLOWED[key]:
                    value = parsed
            except ValueError:
                pass  # a hand-edited URL never breaks the page
        if key == "sb_image_size":
            value = min(
                max(value, 32), max(s.max_size for s in backbones.BACKBONES.values())
            )  # the row's own range: render_sidebar
        st.session_state[key] = value
    if fresh:  # offline-first: a local weights file found in the known places becomes the default
        found = _found_here()
        if found:
            st.session_state["sb_weights"], st.session_state["sb_weights_path"] = "local", found


def _save() -> None:
    """Each field's value into its kept copy (this session) and the URL (a refresh, a shared link); an emptied one leaves the URL."""
    shown = {}
    for key in (k for k in DEFAULTS if k in st.session_state):
        value = st.session_state[KEEP + key] = st.session_state[key]
        if value not in ("", None):
            shown[key.removeprefix("sb_")] = str(value)
        elif key.removeprefix("sb_") in st.query_params:
            del st.query_params[key.removeprefix("sb_")]
    st.query_params.update(shown)


def _found_here() -> str:
    """The local weights file the engine itself found for the sidebar's backbone and size ("" if none)."""
    size = backbones.image_size_for(
        BackboneConfig(
            name=st.session_state.get("sb_backbone", "mobilenet_v2"), image_size=int(st.session_state.get("sb_image_size", 0))
        )
    )
    value = weights_default(st.session_state.get("sb_backbone", "mobilenet_v2"), 1.0, size).value
    return value if value not in ("imagenet", "") else ""


def _local_path() -> tuple[str, str]:
    """(resolved path, problem) for the Local file box; a file the engine found itself needs no allowed root."""
    typed = st.session_state.get("sb_weights_path", "").strip()
    if not typed:
        return "", NO_PATH
    if typed == _found_here():
        return typed, ""
    try:
        path = confine(typed, "Weights file")  # the resolved path: what was checked is what trains
    except DatasetError as exc:
        return typed, str(exc)
    return str(path), "" if path.is_file() else f"Weights file {typed} does not exist; type the path of a .weights.h5 file."


def weights_setting() -> str:
    """What BackboneConfig.weights gets: "imagenet", "none" or the local path ("" when none is typed)."""
    choice = st.session_state.get("sb_weights", "imagenet")
    if choice != "local":
        return choice if choice in WEIGHTS else "imagenet"
    return _local_path()[0]


def _imagenet_problem() -> str:
    spec = backbones.get_spec(st.session_state.get("sb_backbone", "mobilenet_v2"))
    wanted = BackboneConfig(name=spec.name, image_size=int(st.session_state.get("sb_image_size", 0)))
    size = backbones.image_size_for(wanted)
    found = weights_default(spec.name, 1.0, size)  # the engine's answer: cached, downloadable, a local file, or nothing
    if found.value == "imagenet":
        return ""
    if found.value:
        return f"Offline: ImageNet weights for {spec.title} cannot be downloaded; choose Local file to use {found.value}."
    return found.problem


def weights_problem() -> str:
    """Why training may not start with the sidebar's weights ("" when it may); shown once, disables Train."""
    choice = st.session_state.get("sb_weights", "imagenet")
    if choice == "local":
        return _local_path()[1]
    return _imagenet_problem() if choice == "imagenet" else ""


def split_fractions() -> tuple[float, float, float]:
    train, val = int(st.session_state.get("sb_train_pct", 70)), int(st.session_state.get("sb_val_pct", 15))
    return train / 100, val / 100, max(0, 100 - train - val) / 100


def speed_label(name: str) -> str:
    """The row's note and measured CPU speed (forward pass at its default size, random weights, 2 cores)."""
    spec = backbones.BACKBONES[name]
    return f"{spec.note} ~{spec.cpu_images_per_s:.3g} images/s on a 2-core CPU at {spec.default_size} px."


def speeds_help() -> str:
    """Every backbone's measured speed, for the selectbox's tooltip."""
    rows = [f"{s.title}: ~{s.cpu_images_per_s:.3g} images/s at {s.default_size} px" for s in backbones.BACKBONES.values()]
    return "Forward pass on a 2-core CPU (measured, random weights): " + "; ".join(rows) + "."


def render_sidebar() -> None:
    """Dataset source, backbone, weights, image size, split, seed; values live in st.session_state."""
    _restore()
    resources.sweep_stale_uploads()
    sb = st.sidebar
    top = sb.container()  # filled last: the blocking problem sits above the fold
    sb.header("Setup")
    dataset_fields()
    sb.selectbox(
        "Backbone",
        list(backbones.BACKBONES),
        key="sb_backbone",
        format_func=lambda n: backbones.BACKBONES[n].title,
        help=speeds_help(),
        **own("sb_backbone", list(backbones.BACKBONES)),
    )
    choice = sb.radio("Weights", list(WEIGHTS), key="sb_weights", format_func=WEIGHTS.get, **own("sb_weights", list(WEIGHTS)))
    if choice == "local":
        sb.text_input("Weights file (.weights.h5 / .h5)", key="sb_weights_path", **own("sb_weights_path", fallback=""))
    spec = backbones.get_spec(st.session_state["sb_backbone"])
    sb.caption(speed_label(spec.name))
    size = own(
        "sb_image_size", fallback=spec.default_size
    )  # the row's range: a value kept from another backbone is moved into it
    size["value"] = min(max(int(size["value"]), spec.min_size), spec.max_size)
    sb.slider(
        "Image size (px)",
        spec.min_size,
        spec.max_size,
        step=1,
        key="sb_image_size",
        help=f"{spec.title}: default {spec.default_size} px, {spec.min_size}-{spec.max_size} px",
        **size,
    )
    with sb.expander("Split for flat folders (DATA/<class>/*)"):
        st.slider("Train %", 5, 95, step=5, key="sb_train_pct", **own("sb_train_pct"))
        st.slider("Validation %", 5, 95, step=5, key="sb_val_pct", **own("sb_val_pct"))
        train, val, test = split_fractions()
        if train + val > 1:
            st.error(f"Train % + Validation % is {train + val:.0%}; keep it at most 100 %.")
        else:
            st.caption(
                f"train {train:.0%} · validation {val:.0%} · test {test:.0%} (a given train/validation/test layout is kept as is)"
            )
    sb.number_input("Seed", 0, 2**31 - 1, key="sb_seed", **own("sb_seed"))
    sb.number_input(
        "At most N photos per class (0 = all)",
        0,
        10**7,
        step=10,
        key="sb_max_per_class",
        help="A first try on a big folder: a sample of each class, drawn with the seed (--max-per-class).",
        **own("sb_max_per_class"),
    )
    problem = weights_problem()
    if problem:  # offline ImageNet is a warning with a way out; a bad local path is an error
        (top.warning if choice == "imagenet" else top.error)(problem)
    elif choice == "imagenet":
        sb.caption("ImageNet weights: from Keras' cache, or downloaded once on the first training run.")
    _save()


def base_config(approach: str) -> RunConfig:
    """The lecture defaults for `approach`, with the sidebar's data/backbone/weights/size/split/seed."""
    cfg = default_config(approach)
    cfg.data.path = st.session_state.get("data_path", "")
    cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.test_fraction = split_fractions()
    cfg.backbone = BackboneConfig(
        name=st.session_state.get("sb_backbone", "mobilenet_v2"),
        weights=weights_setting() or "none",
        image_size=int(st.session_state.get("sb_image_size", 0)),
    )
    cfg.fit.seed = int(st.session_state.get("sb_seed", 42))
    cfg.data.max_per_class = int(st.session_state.get("sb_max_per_class", 0))
    return cfg
