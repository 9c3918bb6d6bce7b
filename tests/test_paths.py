"""Allowed roots: served with a token, typed dashboard paths must resolve inside them (symlinks followed); on localhost any folder."""

import os
from pathlib import Path

import pytest

from engine.data.layout import DatasetError
from engine.data.paths import PathNotAllowed, allowed_roots, confine


@pytest.fixture
def roots_env(tmp_path, monkeypatch):
    """A fake home, sample folder and working directory; served with a token, TLS_DATA_ROOTS unset (the defaults apply)."""
    monkeypatch.setenv("TLS_ACCESS_TOKEN", "a-token")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TLS_SAMPLE_DIR", str(tmp_path / "cache" / "tls" / "sample-shapes"))
    monkeypatch.delenv("TLS_DATA_ROOTS", raising=False)
    monkeypatch.delenv("TLS_WEIGHTS_DIR", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_default_roots(roots_env, monkeypatch):
    t = roots_env.resolve()
    expected = [t / "home", t / "cache" / "tls", Path(os.environ["KERAS_HOME"]).resolve()]
    assert allowed_roots() == expected  # ./data and ./weights absent: not allowed
    (t / "work" / "data").mkdir()
    (t / "work" / "weights").mkdir()
    monkeypatch.setenv("TLS_WEIGHTS_DIR", str(t / "w"))
    assert allowed_roots() == [*expected, t / "w", t / "work" / "data", t / "work" / "weights"]


def test_inside_a_root_is_allowed_and_resolved(roots_env):
    home = (roots_env / "home").resolve()
    (home / "data").mkdir()
    assert confine(str(home / "data" / ".." / "data"), "Folder path") == home / "data"
    assert confine("~/not-yet-there", "Folder path") == home / "not-yet-there"  # scan reports it missing later
    (roots_env / "work" / "data").mkdir()
    assert confine("data", "Folder path") == (roots_env / "work" / "data").resolve()  # relative to the cwd


def test_etc_is_refused_with_a_one_line_message(roots_env):
    with pytest.raises(PathNotAllowed) as err:
        confine("/etc", "Folder path")
    msg = str(err.value)
    assert msg.startswith(f"Folder path /etc is outside the allowed folders ({(roots_env / 'home').resolve()}, ")
    assert msg.endswith("served with an access token, so only those are open: add the folder to TLS_DATA_ROOTS when starting it")
    assert "\n" not in msg
    assert isinstance(err.value, DatasetError)  # callers that already handle DatasetError handle this too


def test_dotdot_and_symlink_escapes_are_refused(roots_env):
    home = roots_env / "home"
    (home / "escape").symlink_to("/etc")
    with pytest.raises(PathNotAllowed, match=r"Weights file .*/escape/passwd \(resolves to /etc/passwd\) is outside"):
        confine(str(home / "escape" / "passwd"), "Weights file")
    with pytest.raises(PathNotAllowed, match="resolves to /etc"):
        confine(str(home / ".." / ".." / ".." / ".." / ".." / ".." / "etc"), "Folder path")
    (home / "inside").symlink_to(home)
    assert confine(str(home / "inside"), "Folder path") == home.resolve()  # a link that stays inside is fine


def test_tls_data_roots_replaces_the_defaults(roots_env, monkeypatch):
    a, b = roots_env / "a", roots_env / "b"
    monkeypatch.setenv("TLS_DATA_ROOTS", os.pathsep.join([str(a), "", str(b), str(a)]))
    assert allowed_roots() == [a.resolve(), b.resolve()]
    assert confine(str(b / "x"), "Folder path") == b.resolve() / "x"
    with pytest.raises(PathNotAllowed, match=r"\(.*/a, .*/b\); this dashboard is served with an access token"):
        confine(str(roots_env / "home"), "Folder path")  # home is no longer allowed
    monkeypatch.setenv("TLS_DATA_ROOTS", "/etc")
    assert confine("/etc/hostname", "Folder path") == Path("/etc/hostname").resolve()


def test_an_unusable_path_is_refused_not_raised_raw(roots_env):
    with pytest.raises(PathNotAllowed, match="not a usable path"):
        confine("bad\0name", "Folder path")


def test_on_localhost_without_a_token_any_readable_folder_is_accepted(roots_env, monkeypatch):
    monkeypatch.delenv("TLS_ACCESS_TOKEN")
    assert confine("/etc", "Folder path") == Path("/etc").resolve()
    assert confine(str(roots_env / "home" / ".." / "work"), "Folder path") == (roots_env / "work").resolve()
    monkeypatch.setenv("TLS_DATA_ROOTS", str(roots_env / "home"))  # roots set explicitly: confined even without a token
    with pytest.raises(PathNotAllowed):
        confine("/etc", "Folder path")
