"""The three approaches used together: Compare's ensemble row, Classify's flip-averaging and ensemble switches.

The averaging and its weighting rule live in the engine (engine/insight/ensemble.py for stored
predictions, engine/insight/inference.py's `answer` for photos); this module only draws them.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.errors import StudioError
from engine.insight import charts
from engine.insight.ensemble import EnsembleError, ensemble_of_runs, ensemble_problem
from engine.insight.inference import answer
from engine.insight.intervals import accuracy_text
from ui import resources
from ui.run_labels import approach_title

WEIGHT_HELP = "Each run weighs its validation accuracy (weights summing to 1); off: every run weighs the same."


def _fmt(value, pattern: str = "{:.3f}") -> str:
    return "—" if value is None else pattern.format(value)


def _acc(score: dict) -> str:
    return accuracy_text(score.get("accuracy"), score.get("num_images"))  # '0.800 (4/5, 95 % 0.38–0.96)'


def ensemble_rows(result, titles: dict[str, str]) -> list[dict]:
    """One row per member and the row "Ensemble (N runs)": validation accuracy (with its count and 95 % interval) and
    loss, test (scored once), weight; "with TTA" in each name when every image was averaged with its flip."""
    val, test = result.splits["validation"], result.splits.get("test")
    weights = dict(zip(result.members, result.weights))
    test_col = "test acc (scored once)"
    how = ", with TTA" if result.tta else ""

    def row(name: str, scores_of) -> dict:
        return {
            "": name,
            "validation acc": _acc(scores_of(val)),
            "validation loss": _fmt(scores_of(val)["loss"], "{:.4f}"),
            test_col: _acc(scores_of(test)) if test else "—",
        }

    rows = [
        {
            **row(titles.get(rid, rid) + (" with TTA" if result.tta else ""), lambda s, rid=rid: s["members"][rid]),
            "weight": f"{weights[rid]:.3f}",
            "run": rid,
        }
        for rid in result.members
    ]
    total = {**row(f"Ensemble ({len(result.members)} runs{how})", lambda s: s["ensemble"]), "weight": "1.000", "run": "—"}
    return rows + [total]


@st.cache_data(max_entries=8, show_spinner=False)
def _flip_scores(run_ids: tuple[str, ...], weighted: bool, runs_root: str):  # runs_root: one cache entry per run store
    """The ensemble with each image averaged with its flip: every member's saved model classifies its validation (and
    test) images again, the CLI's `ensemble --tta` path. Kept per choice of runs: a finished run's model does not change."""
    store = resources.run_store()
    from engine.insight.inference import flip_averaged

    return ensemble_of_runs([store.load(rid) for rid in run_ids], weighted, rescore=lambda m: flip_averaged(store, m))


def ensemble_section(picked_runs: list, key: str = "cmp_ens") -> None:
    """Under Compare's table: the selected runs averaged, as its own row, when they can be (one dataset, same files)."""
    if len(picked_runs) < 2:
        return
    problem = ensemble_problem(picked_runs)
    if problem:
        st.caption(f"Ensemble of the selected runs: not offered ({problem}).")
        return
    if not st.toggle(
        "Ensemble of the selected runs",
        key=key,
        help="The runs' stored probabilities for every validation (and test) image averaged: no model runs.",
    ):
        return
    c0, c1 = st.columns(2)
    weighted = c0.checkbox("Weight by validation accuracy", key=f"{key}_weighted", help=WEIGHT_HELP)
    tta = c1.checkbox(
        "Average each image with its horizontal flip (TTA)",
        key=f"{key}_tta",
        help="Each run's model classifies its validation and test images again, each with its mirror image, "
        "as `python -m engine ensemble --tta` does: seconds to minutes, once per choice of runs.",
    )
    try:
        if tta:
            with st.spinner(
                f"Classifying every validation and test image of {len(picked_runs)} runs again, each with its flip …"
            ):
                result = _flip_scores(tuple(r.id for r in picked_runs), weighted, str(resources.run_store().root))
        else:
            result = ensemble_of_runs(picked_runs, weighted)
    except StudioError as exc:  # other files in a split, unreadable predictions, a model gone: one sentence naming the run
        st.warning(str(exc))
        return
    st.dataframe(pd.DataFrame(ensemble_rows(result, {r.id: approach_title(r) for r in picked_runs})), hide_index=True)
    st.caption(
        f"Test: {result.test_note}. Choose runs and weighting on validation; a weighted ensemble's validation "
        "score is slightly optimistic (its weights were read from validation)."
        + (" With TTA: every image averaged with its horizontal flip through each run's model." if result.tta else "")
    )


def classify_switches(chosen: int) -> tuple[bool, bool, bool]:
    """Classify's switches: (flip averaging, ensemble of the chosen models, weighted by validation accuracy)."""
    tta = st.toggle(
        "Average with the horizontal flip (TTA)",
        key="cls_tta",
        help="Each photo and its mirror image go through the model together; their probabilities are averaged.",
    )
    if chosen < 2:
        return tta, False, False
    together = st.toggle(
        "Ensemble of the chosen models",
        key="cls_ens",
        help="One more answer: the chosen models' probabilities averaged (they must share their classes).",
    )
    weighted = together and st.checkbox("Weight by validation accuracy", key="cls_ens_weighted", help=WEIGHT_HELP)
    return tta, together, bool(weighted)


def classify_answers(loaded_runs: list, photo, *, tta: bool, together: bool, weighted: bool, gradcam: bool):
    """(each chosen model's answer, the ensemble's answer or None, why none) for one decoded photo.

    Together: one `answer` over the runs, each run's own answer coming with it as a member;
    apart, or when the runs cannot be averaged (other classes), one `answer` per run.
    """
    problem = ""
    if together:
        try:
            both = answer(loaded_runs, photo, weighted=weighted, tta=tta, gradcam=gradcam, max_side=512)
            return list(both.members), both, ""
        except EnsembleError as exc:  # other classes or another class order; no validation accuracy to weigh by
            problem = str(exc)
    return [answer(run, photo, tta=tta, gradcam=gradcam, max_side=512) for run in loaded_runs], None, problem


def show_ensemble(container, together, problem: str, key: str) -> None:
    """The averaged answer (an `inference.Answer`) beside each model's, or one line saying why there is none."""
    if together is None:
        container.warning(problem)
        return
    how = ", weighted by validation accuracy" if together.weighted else ""
    container.metric(
        f"Ensemble of {len(together.runs)} models{how}",
        together.label,
        help="The chosen models' probabilities averaged" + (" (each with its flip)" if together.tta else ""),
    )
    container.plotly_chart(charts.probabilities_figure(together.probabilities, together.label), key=key)
    if together.caution:
        container.warning(together.caution[0].upper() + together.caution[1:] + ".")
