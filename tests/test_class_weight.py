"""fit.class_weight: "balanced" weights (scikit-learn's rule) reach Keras' fit in every approach; the flag and the form."""

import keras
import numpy as np
import pytest

from engine import cli
from engine.cli.flags import build_config
from engine.config import RunConfig, default_config, validate
from engine.training.approaches import RUNNERS, prepare_data
from engine.training.fit import balanced_class_weight
from tests.conftest import COLOURS, make_image, tiny_config


@pytest.fixture
def imbalanced(tmp_path):
    """Split layout, cats 6 / dogs 2 in train (validation and test 2 / 2)."""
    root = tmp_path / "imbalanced"
    counts = {"train": {"cats": 6, "dogs": 2}, "validation": {"cats": 2, "dogs": 2}, "test": {"cats": 2, "dogs": 2}}
    i = 0
    for split, by_class in counts.items():
        for cls, n in by_class.items():
            for k in range(n):
                make_image(root / split / cls / f"{cls}_{k}.png", COLOURS[cls], seed=i)
                i += 1
    return root


def test_balanced_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 6 + [1] * 2 + [2] * 1)
    ours = balanced_class_weight(y, 3)
    theirs = compute_class_weight("balanced", classes=np.unique(y), y=y)
    assert list(ours) == [0, 1, 2] and np.allclose(list(ours.values()), theirs)
    assert ours == {0: 9 / 18, 1: 9 / 6, 2: 9 / 3}
    assert balanced_class_weight(np.array([0, 0, 2]), 3) == {0: 0.75, 1: 1.0, 2: 1.5}  # a class with no training image


@pytest.fixture
def fit_calls(monkeypatch):
    """The class_weight of every Keras Model.fit call (the real fit still runs)."""
    calls = []
    real = keras.Model.fit

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("class_weight"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("approach", ["feature_extraction", "fine_tuning"])
def test_a_balanced_run_passes_the_weights_to_every_fit(imbalanced, fit_calls, approach):
    cfg = tiny_config(approach, imbalanced)
    cfg.fit.class_weight = "balanced"
    result = RUNNERS[approach](cfg, prepare_data(str(imbalanced)))
    assert result.config["fit"]["class_weight"] == "balanced"
    expected = {0: 8 / (2 * 6), 1: 8 / (2 * 2)}  # cats 6, dogs 2 in train
    assert fit_calls == [expected] * (2 if approach == "fine_tuning" else 1)


@pytest.mark.slow
def test_no_class_weight_by_default(imbalanced, fit_calls):
    cfg = tiny_config("feature_extraction", imbalanced)
    assert cfg.fit.class_weight == "none"
    RUNNERS["feature_extraction"](cfg, prepare_data(str(imbalanced)))
    assert fit_calls == [None]


def test_the_flag_parses_and_a_bad_value_is_refused(imbalanced, capsys):
    args = cli.build_parser().parse_args(["run", "--approach", "frozen", "--data", str(imbalanced), "--class-weight", "balanced"])
    assert build_config("frozen", args).fit.class_weight == "balanced"
    assert (
        build_config(
            "frozen", cli.build_parser().parse_args(["run", "--approach", "frozen", "--data", str(imbalanced)])
        ).fit.class_weight
        == "none"
    )
    assert cli.main(["run", "--approach", "frozen", "--data", str(imbalanced), "--class-weight", "inverse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--class-weight" in err


def test_the_knob_round_trips_and_is_validated():
    cfg = default_config("frozen")
    cfg.fit.class_weight = "balanced"
    assert RunConfig.from_dict(cfg.to_dict()).fit.class_weight == "balanced"
    cfg.fit.class_weight = "inverse"
    with pytest.raises(Exception, match="class_weight"):
        validate(cfg)
