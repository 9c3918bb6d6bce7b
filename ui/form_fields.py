"""The approach forms' field groups (training, head, augmentation) and the check of their number boxes.

Each field goes through `ui.forms.field`, so it survives a page switch or a refresh and takes its
bounds from the engine's knob metadata.
"""

from __future__ import annotations

import streamlit as st

from engine.config import RunConfig
from ui.forms import field, meta

DENSE_UNITS = (0, 32, 64, 128, 256, 512, 1024)  # the head's choices (a sweep's values are checked against them too)


def out_of_range(label: str, value, section: str, name: str) -> str:
    """'Epochs must be between 1 and 1000; it is 0.' — or '' when the value is allowed."""
    m = meta(section, name)
    lo, hi, strict = m["min"], m["max"], m.get("min_exclusive")
    below = lo is not None and (value <= lo if strict else value < lo)
    if not below and not (hi is not None and value > hi):
        return ""
    if strict:
        allowed = f"greater than {lo:g}" + (f" and at most {hi:g}" if hi is not None else "")
    elif lo is not None and hi is not None:
        allowed = f"between {lo:g} and {hi:g}"
    else:
        allowed = f"at least {lo:g}" if lo is not None else f"at most {hi:g}"
    return f"{label} must be {allowed}; it is {value:g}."


def take_phase_one(cfg: RunConfig, run) -> None:
    """Puts the finished frozen run's (RunRecord) phase-1 settings into `cfg`: epochs, learning rate, finder setting, head."""
    f, h = cfg.fit, cfg.head
    ran, head = run.config.get("fit") or {}, run.config.get("head") or {}
    f.epochs, f.learning_rate = int(ran.get("epochs", f.epochs)), float(ran.get("learning_rate", f.learning_rate))
    f.find_learning_rate = bool(ran.get("find_learning_rate", False))
    h.pooling, h.dense_units = str(head.get("pooling", h.pooling)), int(head.get("dense_units", h.dense_units))
    h.dropout = float(head.get("dropout", h.dropout))


def fit_fields(cfg: RunConfig, key: str, phase_one=None) -> None:
    """Epochs, batch, learning rate, optimizer, class weights, patience, the training recipe. `phase_one`: the finished
    frozen run (RunRecord) fine-tuning continues: its epochs, learning rate and finder setting were phase 1's, so they
    are shown from its recorded config, not editable, and put into `cfg` (the user's own values wait for "Train phase 1 here")."""
    f = cfg.fit
    c1, c2, c3, c4 = st.columns(4)
    if phase_one is not None:
        take_phase_one(cfg, phase_one)
        tag = f"{key}_of_{phase_one.id}"  # a widget per run: its value is that run's, never the form's remembered one
        c1.number_input("Epochs", value=f.epochs, disabled=True, key=f"{tag}_epochs")
        c3.checkbox("Learning rate from the finder", value=f.find_learning_rate, disabled=True, key=f"{tag}_findlr")
        c3.number_input("Learning rate", value=f.learning_rate, format="%.6f", disabled=True, key=f"{tag}_lr")
    else:
        f.epochs = int(field(c1.number_input, "Epochs", f"{key}_epochs", f.epochs, ("fit", "epochs"), step=1))
        f.find_learning_rate = bool(
            field(
                c3.checkbox,
                "Learning rate from the finder",
                f"{key}_findlr",
                f.find_learning_rate,
                ("fit", "find_learning_rate"),
                help=meta("fit", "find_learning_rate")["help"],
            )
        )
        f.learning_rate = float(
            field(
                c3.number_input,
                "Learning rate",
                f"{key}_lr",
                f.learning_rate,
                ("fit", "learning_rate"),
                format="%.6f",
                disabled=f.find_learning_rate,
                help="Found before training while “Learning rate from the finder” is on." if f.find_learning_rate else None,
            )
        )
    f.batch_size = int(field(c2.number_input, "Batch size", f"{key}_bs", f.batch_size, ("fit", "batch_size"), step=1))
    f.optimizer = field(
        c4.selectbox, "Optimizer", f"{key}_opt", f.optimizer, ("fit", "optimizer"), options=meta("fit", "optimizer")["choices"]
    )
    f.class_weight = field(
        c4.selectbox,
        "Class weights",
        f"{key}_cw",
        f.class_weight,
        ("fit", "class_weight"),
        options=meta("fit", "class_weight")["choices"],
        help="balanced: a rare class's mistakes cost as much as a common one's (scikit-learn's rule, from the training split)",
    )
    hi = meta("fit", "early_stopping_patience")["max"]
    f.early_stopping_patience = field(
        st.slider,
        "Early stopping patience (0 = off)",
        f"{key}_patience",
        f.early_stopping_patience,
        ("fit", "early_stopping_patience"),
        min_value=0,
        max_value=int(hi),
        help="Stops after this many epochs without a lower validation loss and keeps the best epoch.",
    )
    recipe_fields(cfg, key)


def recipe_fields(cfg: RunConfig, key: str) -> None:
    """Schedule and warmup, label smoothing, AdamW's weight decay; fine-tuning: the unfrozen block's share of phase 2's rate."""
    f = cfg.fit
    with st.expander("Training recipe: schedule, label smoothing, weight decay"):
        c1, c2, c3, c4 = st.columns(4)
        f.schedule = field(
            c1.selectbox,
            "Learning-rate schedule",
            f"{key}_sched",
            f.schedule,
            ("fit", "schedule"),
            options=meta("fit", "schedule")["choices"],
            help=meta("fit", "schedule")["help"],
        )
        f.warmup_epochs = int(
            field(
                c2.number_input,
                "Warmup epochs",
                f"{key}_warmup",
                f.warmup_epochs,
                ("fit", "warmup_epochs"),
                step=1,
                disabled=f.schedule != "cosine",
                help=meta("fit", "warmup_epochs")["help"],
            )
        )
        f.label_smoothing = float(
            field(
                c3.slider,
                "Label smoothing",
                f"{key}_ls",
                f.label_smoothing,
                ("fit", "label_smoothing"),
                min_value=0.0,
                max_value=0.45,
                step=0.05,
                help=meta("fit", "label_smoothing")["help"],
            )
        )
        f.weight_decay = float(
            field(
                c4.number_input,
                "Weight decay (AdamW)",
                f"{key}_wd",
                f.weight_decay,
                ("fit", "weight_decay"),
                format="%.6f",
                disabled=f.optimizer != "adamw",
                help=meta("fit", "weight_decay")["help"],
            )
        )
        if cfg.approach == "fine_tuning":
            t = cfg.fine_tune
            t.discriminative_rate = float(
                field(
                    st.slider,
                    "Unfrozen block's share of phase 2's rate",
                    f"{key}_discr",
                    t.discriminative_rate,
                    ("fine_tune", "discriminative_rate"),
                    min_value=0.01,
                    max_value=1.0,
                    step=0.01,
                    help=meta("fine_tune", "discriminative_rate")["help"],
                )
            )


def head_fields(cfg: RunConfig, key: str, phase_one=None) -> None:
    """Pooling, dense units, dropout. `phase_one`: the finished frozen run (RunRecord) fine-tuning continues, whose
    head phase 2 starts from: its recorded head is shown, not editable, and put into `cfg`."""
    h = cfg.head
    c1, c2, c3 = st.columns(3)
    if phase_one is not None:
        take_phase_one(cfg, phase_one)
        tag, pools = f"{key}_of_{phase_one.id}", list(meta("head", "pooling")["choices"])
        c1.radio(
            "Pooling",
            pools,
            index=pools.index(h.pooling) if h.pooling in pools else 0,
            horizontal=True,
            disabled=True,
            key=f"{tag}_pool",
        )
        c2.select_slider(
            "Dense units", sorted({*DENSE_UNITS, h.dense_units}), value=h.dense_units, disabled=True, key=f"{tag}_units"
        )
        c3.slider(
            "Dropout", 0.0, float(meta("head", "dropout")["max"]), value=h.dropout, step=0.05, disabled=True, key=f"{tag}_drop"
        )
        return
    h.pooling = field(
        c1.radio,
        "Pooling",
        f"{key}_pool",
        h.pooling,
        ("head", "pooling"),
        options=meta("head", "pooling")["choices"],
        horizontal=True,
    )
    h.dense_units = field(c2.select_slider, "Dense units", f"{key}_units", h.dense_units, options=list(DENSE_UNITS))
    h.dropout = field(
        c3.slider,
        "Dropout",
        f"{key}_drop",
        h.dropout,
        ("head", "dropout"),
        min_value=0.0,
        max_value=float(meta("head", "dropout")["max"]),
        step=0.05,
    )


def augmentation_fields(cfg: RunConfig) -> None:
    """The augmentation settings, shared by every page (keys `aug_*`)."""
    a = cfg.augmentation
    bound = lambda name: meta("augmentation", name)["max"]  # noqa: E731
    a.enabled = field(st.checkbox, "Data augmentation", "aug_enabled", a.enabled, ("augmentation", "enabled"))
    c1, c2, c3, c4 = st.columns(4)
    a.rotation = float(
        field(
            c1.slider,
            "Rotation (°)",
            "aug_rot",
            int(a.rotation),
            ("augmentation", "rotation"),
            min_value=0,
            max_value=int(bound("rotation")),
        )
    )
    a.width_shift = field(
        c2.slider,
        "Width shift",
        "aug_ws",
        a.width_shift,
        ("augmentation", "width_shift"),
        min_value=0.0,
        max_value=float(bound("width_shift")),
    )
    a.height_shift = field(
        c3.slider,
        "Height shift",
        "aug_hs",
        a.height_shift,
        ("augmentation", "height_shift"),
        min_value=0.0,
        max_value=float(bound("height_shift")),
    )
    a.zoom = field(c4.slider, "Zoom", "aug_zoom", a.zoom, ("augmentation", "zoom"), min_value=0.0, max_value=float(bound("zoom")))
    c5, c6, c7 = st.columns(3)
    a.horizontal_flip = field(c5.checkbox, "Horizontal flip", "aug_hf", a.horizontal_flip, ("augmentation", "horizontal_flip"))
    a.vertical_flip = field(
        c6.checkbox,
        "Vertical flip (the lecture's)",
        "aug_vf",
        a.vertical_flip,
        ("augmentation", "vertical_flip"),
        help="The lecture flips photos upside down too. Cats and dogs are rarely seen that way: off "
        "usually suits photos of upright things; on suits images with no up (cells, satellites, textures).",
    )
    a.views = int(
        field(
            c7.number_input,
            "Augmented views (K)",
            "aug_views",
            a.views,
            ("augmentation", "views"),
            step=1,
            help="The frozen base runs once per view of the training set (cached for later runs); epochs cycle "
            "through the K views. K = epochs gives every epoch fresh images, as the lecture does, at K times the cost.",
        )
    )


def form_problems(cfg: RunConfig) -> list[str]:
    """Every out-of-range number box, as one sentence each (empty when the form can train)."""
    checks = [
        ("Epochs", cfg.fit.epochs, "fit", "epochs"),
        ("Batch size", cfg.fit.batch_size, "fit", "batch_size"),
        ("Learning rate", cfg.fit.learning_rate, "fit", "learning_rate"),
        ("Warmup epochs", cfg.fit.warmup_epochs, "fit", "warmup_epochs"),
        ("Weight decay", cfg.fit.weight_decay, "fit", "weight_decay"),
    ]
    if cfg.approach != "feature_extraction":
        checks.append(("Augmented views (K)", cfg.augmentation.views, "augmentation", "views"))
    if cfg.approach == "fine_tuning":
        checks += [
            ("Fine-tuning learning rate", cfg.fine_tune.learning_rate, "fine_tune", "learning_rate"),
            ("Fine-tuning epochs", cfg.fine_tune.epochs, "fine_tune", "epochs"),
        ]
    return [p for p in (out_of_range(*c) for c in checks) if p]
