import streamlit as st

from ui import resources
from ui.access import require_token
from ui.approach_page import approach_page
from ui.dataset_source import current_report
from ui.form_fields import augmentation_fields
from ui.forms import field, meta

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py


def finished_frozen_runs(cfg, report) -> list:
    """The runs fine-tuning can continue from (the engine's one rule: RunRecord.continue_problem)."""
    from engine.models.backbones import image_size_for

    size = image_size_for(cfg.backbone)
    return [
        r
        for r in resources.run_store().list().runs
        if not r.continue_problem(dataset_root=report.root, classes=report.classes, backbone=cfg.backbone.name, image_size=size)
    ]


def _name_unfrozen_layers(cfg) -> None:
    """Which layers phase 2 trains, for this backbone and size (from the base built once for the counts)."""
    import dataclasses
    import json

    side = resources.base_summary(
        json.dumps({"backbone": dataclasses.asdict(cfg.backbone)}), "fine_tuning", cfg.fine_tune.unfreeze_blocks
    )
    names = side["unfrozen_layers"]
    shown = ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])} … {', '.join(names[-2:])}"
    st.caption(f"Phase 2 trains {len(names)} layers of {cfg.backbone.name}: {shown} (BatchNorm layers stay frozen).")


def fine_tune_fields(cfg, key):
    runs = finished_frozen_runs(cfg, current_report())
    labels = {"": "Train phase 1 here (frozen base, head only)"}
    for r in runs:
        acc = r.accuracy("validation")
        labels[r.id] = f"Continue from frozen run {r.id} ({r.epochs_run} epochs, val acc {acc:.3f})" if acc is not None else r.id
    if st.session_state.get(f"{key}_from_run") not in labels:
        st.session_state.pop(f"{key}_from_run", None)  # a run of another dataset/backbone kept from before
        st.session_state.pop(f"_keep_{key}_from_run", None)
    cfg.fine_tune.from_run = field(
        st.selectbox,
        "Phase 1",
        f"{key}_from_run",
        "",
        options=list(labels),
        format_func=labels.get,
        help="Continuing from a finished frozen run skips phase 1 and reuses its cached views: only phase 2 trains.",
    )
    augmentation_fields(cfg)
    st.markdown("**Phase 2: fine-tuning**")
    t = cfg.fine_tune
    c1, c2, c3 = st.columns(3)
    from engine.models.backbones import get_spec

    listed = len(get_spec(cfg.backbone.name).top_block_cuts)  # what this backbone supports (VGG16: 3, ...)
    most = max(2, min(int(meta("fine_tune", "unfreeze_blocks")["max"]), listed))  # a slider needs min < max
    t.unfreeze_blocks = min(
        int(
            field(
                c1.slider,
                "Top blocks to unfreeze",
                f"{key}_blocks",
                t.unfreeze_blocks,
                ("fine_tune", "unfreeze_blocks"),
                min_value=1,
                max_value=most,
                step=1,
            )
        ),
        listed,
    )
    _name_unfrozen_layers(cfg)
    t.learning_rate = float(
        field(
            c2.number_input,
            "Fine-tuning learning rate",
            f"{key}_ftlr",
            t.learning_rate,
            ("fine_tune", "learning_rate"),
            format="%.7f",
        )
    )
    t.epochs = int(field(c3.number_input, "Fine-tuning epochs", f"{key}_ftep", t.epochs, ("fine_tune", "epochs"), step=1))


approach_page(
    "fine_tuning",
    "Fine-tuning",
    """**Phase 1** is frozen training (head only). **Phase 2** unfreezes the top block(s) of the base —
for VGG16 `block5_conv1..3`, as in the lecture — and trains again at a *lower* learning rate, so the
pretrained filters adapt gently to your images. BatchNorm layers stay frozen (inference mode) and the
model is recompiled after changing what is trainable.""",
    extra_fields=fine_tune_fields,
)
