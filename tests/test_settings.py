"""engine/settings.py: every TLS_* variable read in one place, typed, with one-line refusals."""

import pytest

from engine import settings
from engine.data.paths import confined_here


@pytest.mark.parametrize(
    "token,problem",
    [
        ("", "is 0 characters"),
        (" ", "holds whitespace"),
        ("short-token", "is 11 characters"),
        ("sixteen-chars-ok", ""),
        ("a token with spaces inside", "holds whitespace"),
        ("tab\tinside-a-long-token", "holds whitespace"),
    ],
)
def test_token_problem_refuses_short_or_spaced_tokens(token, problem):
    got = settings.token_problem(token)
    assert (problem in got) if problem else got == ""
    assert "\n" not in got


def test_a_token_of_one_space_is_set_for_the_gate_and_the_confinement_alike(monkeypatch):
    monkeypatch.delenv(settings.DATA_ROOTS, raising=False)
    monkeypatch.setenv(settings.TOKEN, " ")
    assert settings.token_set() and settings.access_token() == " " and confined_here()
    monkeypatch.setenv(settings.TOKEN, "")
    assert not settings.token_set() and not confined_here()


def test_positive_numbers_are_checked_and_name_the_variable(monkeypatch):
    monkeypatch.setenv(settings.UPLOAD_MAX_FILES, "7")
    monkeypatch.setenv(settings.UPLOAD_MAX_MB, "1.5")
    assert settings.upload_limits() == (7, int(1.5 * 2**20))
    for bad in ("nan", "inf", "-1", "0", "lots"):
        monkeypatch.setenv(settings.UPLOAD_MAX_MB, bad)
        with pytest.raises(settings.SettingError, match=f"TLS_UPLOAD_MAX_MB='{bad}' is not a positive number"):
            settings.upload_limits()


def test_folders_default_and_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(settings.RUNS_DIR, raising=False)
    assert str(settings.runs_dir()) == "runs" and settings.runs_dir_override() is None
    monkeypatch.setenv(settings.RUNS_DIR, str(tmp_path))
    assert settings.runs_dir() == tmp_path and settings.runs_dir_override() == str(tmp_path)
    monkeypatch.setenv(settings.WARM_START, "0")
    assert not settings.warm_start()
