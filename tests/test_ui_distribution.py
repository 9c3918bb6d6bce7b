"""ui.distribution: the training forms' Distribution choice, only where more than one device is visible."""

import pytest
from streamlit.testing.v1 import AppTest

FORM = """
import streamlit as st
from engine.config import default_config
from ui.distribution import distribution_fields

cfg = default_config("frozen")
with st.form("f"):
    distribution_fields(cfg, "t")
    st.form_submit_button("Train")
st.write(f"distribute={cfg.compute.distribute}")
"""


def form(monkeypatch, devices: int) -> AppTest:
    import ui.distribution

    monkeypatch.setattr(ui.distribution, "visible_device_count", lambda: devices)
    return AppTest.from_string(FORM, default_timeout=30).run()


def test_hidden_with_one_device(monkeypatch):
    at = form(monkeypatch, 1)
    assert not at.exception and not at.radio and at.markdown[-1].value == "distribute=none"


@pytest.mark.parametrize(
    "choice, shown",
    [
        ("none", "20 per replica × 1 replica(s) = global batch 20"),
        ("mirrored", "20 per replica × 4 replica(s) = global batch 80"),
    ],
)
def test_shown_with_several_devices_with_per_replica_and_global_batch(monkeypatch, choice, shown):
    at = form(monkeypatch, 4)
    at.radio(key="t_distribute").set_value(choice)
    at.button[0].click().run()
    assert not at.exception
    assert shown in at.caption[0].value and at.markdown[-1].value == f"distribute={choice}"
