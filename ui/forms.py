"""Hyper-parameter fields, their bounds, and values that survive a page switch or a refresh.

Widget state is dropped by Streamlit when its page is left; each field therefore primes its
widget from a kept copy (`_keep_<key>` in session state, and `f_<key>` in the URL when it
differs from the default) and saves it back after rendering. Augmentation keys are shared by
every page (`aug_*`), so the Data overview preview shows what the training forms will use.
Number boxes are unbounded on purpose: an out-of-range value gets a visible error naming the
field and its range (`ui.form_fields.out_of_range`), not a browser tooltip that silently blocks Train.
"""

from __future__ import annotations

import streamlit as st

from engine.config import field_meta, field_problem

KEEP = "_keep_"
NOTE = "_note_"  # why a remembered value was not used (shown under the field once)
SET = "_set_"  # a value a button put into a field (set_field), shown by the browser at the next rerun
DRAWN = "_drawn_"  # the value= / index= a field was first drawn with in this visit (field)
ORIGIN = "_origin_"  # (where a button's value came from, the value): the form's heading names it (ui/form_origin)


def meta(section: str, name: str) -> dict:
    """The field's min/max/choices/help, all from the engine's config metadata (engine.config.field_meta).

    Raises:
        ConfigError: no such section or field.
    """
    m = field_meta(section, name)
    return {
        "min": m.get("min"),
        "max": m.get("max"),
        "choices": m.get("choices"),
        "help": m.get("help"),
        "min_exclusive": bool(m.get("min_exclusive")),
    }


def _parse(raw: str, default):
    if isinstance(default, bool):
        return raw == "True"
    return type(default)(raw)


def remember(key: str, default, knob: tuple[str, str] | None = None) -> str:
    """Primes widget `key` (once per widget life) from the kept value, else the URL, else `default`.

    What is remembered is checked first (its type, and the knob's range and choices when `knob`
    = (section, name) is given): a value that would not train falls back to `default`, with a
    note shown under the field, never to 0 or an empty box.
    """
    if key not in st.session_state:
        value = st.session_state.get(KEEP + key, default)
        raw = st.query_params.get("f_" + key)
        if KEEP + key not in st.session_state and raw is not None:
            try:
                value = _parse(raw, default)
            except (TypeError, ValueError):
                pass  # a hand-edited URL never breaks the page
        problem = _problem(value, default, knob)
        if problem:
            st.session_state[NOTE + key] = f"the remembered value {value!r} {problem}; back to the default {default!r}"
            value = default
        st.session_state[key] = value
    return key


def _problem(value, default, knob: tuple[str, str] | None) -> str:
    """Why a remembered value cannot prime its field ('' when it can)."""
    numeric = (int, float)
    if (
        isinstance(default, bool) != isinstance(value, bool)
        or (isinstance(default, numeric) and not isinstance(value, numeric))
        or (isinstance(default, str) and not isinstance(value, str))
    ):
        return "has the wrong type"
    if knob is None:
        return ""
    return field_problem(value, field_meta(*knob))


def keep(key: str, default) -> None:
    """Saves widget `key`'s value for the next visit (session) and the next session (URL)."""
    value = st.session_state.get(key, default)
    st.session_state[KEEP + key] = value
    if value != default:
        st.query_params["f_" + key] = str(value)
    elif "f_" + key in st.query_params:
        del st.query_params["f_" + key]


def field(widget, label: str, key: str, default, knob: tuple[str, str] | None = None, **kwargs):
    """Renders `widget(label, key=key, **kwargs)` with remembered state (checked against `knob`'s limits); returns its value.

    The value goes to the widget as its own `value=` (`index=` for a choice), never only through
    `st.session_state`: a browser that has not drawn the widget yet sends the widget's default back
    on the next rerun, and a default of False / 0 became the form's value (measured in Chromium: the
    augmentation fields unchecked and 0, the sidebar's split at its minimum). With the remembered
    value as the default, what comes back is that value. Keyed widgets keep their identity when
    `value` changes (Streamlit's key_as_main_identity), so the user's edits stand.

    That default is the one the widget was first drawn with in this visit (`_drawn_<key>`), not its value of the
    last run: a default that followed every edit raced with the browser (measured in Chromium: two quick presses
    on Dropout, 0.60 → 0.55 → 0.50, and a run begun at 0.55 answered with default 0.55 after 0.50 was sent; the
    browser kept 0.55 and sent it with the next click, so the form came back from other pages at 0.55).
    """
    primed = key not in st.session_state  # a new visit: Streamlit dropped the widget when its page was left
    if primed:
        remember(key, default, knob)
    choices = list(kwargs["options"]) if widget.__name__ in ("selectbox", "radio") else None
    if SET + key in st.session_state:  # through session state, the one way Streamlit sends a new value to a drawn widget
        st.session_state[key] = st.session_state.pop(SET + key)
        value = widget(label, key=key, **kwargs)
        shown = st.session_state[key]  # later runs draw it with the value it now shows (read, not `own`: that pops the state)
        st.session_state[DRAWN + key] = (
            {"value": shown} if choices is None else {"index": choices.index(shown) if shown in choices else 0}
        )
    elif primed or DRAWN + key not in st.session_state:
        given = st.session_state[DRAWN + key] = own(key, choices)
        value = widget(label, key=key, **given, **kwargs)
    else:  # drawn before in this visit: its state is the browser's; the default it was drawn with stays the same
        value = widget(label, key=key, **st.session_state[DRAWN + key], **kwargs)
    note = st.session_state.pop(NOTE + key, None)
    if note:
        st.caption(f"⚠️ {label}: {note}.")
    keep(key, default)
    return value


def set_field(key: str, value, origin: str = "") -> None:
    """For a button's on_click: field `key` shows `value` from the next rerun on, in the browser too (a value
    handed back as the widget's own default would not move a widget the browser has drawn). `origin` says where
    the value came from ("learning rate from the finder"), for the form's heading while the field keeps it."""
    st.session_state[SET + key] = value
    if origin:
        st.session_state[ORIGIN + key] = (origin, value)


def own(key: str, options: list | None = None, fallback=None) -> dict:
    """Widget `key`'s state handed back as its own default: {"value": v}, or {"index": i} among `options`.

    Not through `st.session_state`: a browser that has not drawn a widget yet (a collapsed
    expander, a page just opened) sends the widget's default on the next rerun, and the sidebar's
    split sliders fell to their minimum, 5 % train, as the augmentation fields fell to 0 (`field`).
    """
    current = st.session_state.pop(key, fallback)
    if options is None:
        return {"value": current}
    return {"index": options.index(current) if current in options else 0}
