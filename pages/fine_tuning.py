import streamlit as st

from pages import shared
from ui.access import require_token

require_token()  # also here: a fresh server's first request for this page's URL runs the page without app.py


def finished_frozen_runs(cfg, report) -> list:
    """Finished frozen runs that fine-tuning can continue from: same dataset, backbone and image size."""
    from engine.backbones import image_size_for

    size = image_size_for(cfg.backbone)
    out = []
    for r in shared.run_store().list().runs:
        c = r.config
        res = c.get("resolved") or {}
        if (c.get("approach") == "frozen" and r.state == "finished" and res.get("dataset_root") == report.root
                and (c.get("backbone") or {}).get("name") == cfg.backbone.name and res.get("image_size") == size):
            out.append(r)
    return out


def fine_tune_fields(cfg, key):
    runs = finished_frozen_runs(cfg, shared.current_report())
    labels = {"": "Train phase 1 here (frozen base, head only)"}
    for r in runs:
        acc = ((r.metrics.get("validation") or {}).get("accuracy"))
        labels[r.id] = f"Continue from frozen run {r.id} ({len(r.history.get('loss', []))} epochs, val acc {acc:.3f})" if acc is not None else r.id
    cfg.fine_tune.from_run = st.selectbox(
        "Phase 1", list(labels), format_func=labels.get, key=f"{key}_from_run",
        help="Continuing from a finished frozen run skips phase 1 and reuses its cached views: only phase 2 trains.")
    shared.augmentation_fields(cfg, key)
    st.markdown("**Phase 2: fine-tuning**")
    c1, c2, c3 = st.columns(3)
    cfg.fine_tune.unfreeze_blocks = c1.slider("Top blocks to unfreeze", 1, 3, value=cfg.fine_tune.unfreeze_blocks, key=f"{key}_blocks")
    cfg.fine_tune.learning_rate = c2.number_input("Fine-tuning learning rate", 1e-8, 1.0, value=cfg.fine_tune.learning_rate, format="%.7f", key=f"{key}_ftlr")
    cfg.fine_tune.epochs = c3.number_input("Fine-tuning epochs", 0, 500, value=cfg.fine_tune.epochs, key=f"{key}_ftep")


shared.approach_page(
    "fine_tuning",
    "Fine-tuning",
    """**Phase 1** is frozen training (head only). **Phase 2** unfreezes the top block(s) of the base —
for VGG16 `block5_conv1..3`, as in the lecture — and trains again at a *lower* learning rate, so the
pretrained filters adapt gently to your images. BatchNorm layers stay frozen (inference mode) and the
model is recompiled after changing what is trainable.""",
    extra_fields=fine_tune_fields,
)
