"""Where llamadash keeps user data: per-user directory, portable mode, explicit override."""

from __future__ import annotations

import os
import sys

import pytest

from llamadash.core import paths

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No override, no XDG_DATA_HOME, a fake home, not frozen."""
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.delattr(sys, "frozen", raising=False)
    return home


class TestUserDataDir:
    def test_linux_uses_absolute_xdg_data_home(self, tmp_path):
        got = paths.user_data_dir("linux", {"XDG_DATA_HOME": str(tmp_path / "xdg")}, home=tmp_path)
        assert got == tmp_path / "xdg" / "llamadash"

    @pytest.mark.parametrize("xdg", ["", "relative/dir"])
    def test_linux_falls_back_to_local_share(self, tmp_path, xdg):
        got = paths.user_data_dir("linux", {"XDG_DATA_HOME": xdg}, home=tmp_path)
        assert got == tmp_path / ".local" / "share" / "llamadash"

    def test_windows_uses_appdata(self, tmp_path):
        got = paths.user_data_dir("win32", {"APPDATA": str(tmp_path / "Roaming")}, home=tmp_path)
        assert got == tmp_path / "Roaming" / "llamadash"

    def test_windows_without_appdata(self, tmp_path):
        assert (
            paths.user_data_dir("win32", {}, home=tmp_path) == tmp_path / "AppData" / "Roaming" / "llamadash"
        )

    def test_macos_uses_application_support(self, tmp_path):
        got = paths.user_data_dir("darwin", {"XDG_DATA_HOME": "/ignored"}, home=tmp_path)
        assert got == tmp_path / "Library" / "Application Support" / "llamadash"


class TestPortable:
    def test_source_checkout_is_never_portable(self, tmp_path):
        (tmp_path / "data").mkdir()
        assert paths.portable_data_dir(frozen=False, executable=tmp_path / "llamadash") is None

    def test_frozen_with_data_folder(self, tmp_path):
        (tmp_path / "data").mkdir()
        assert (
            paths.portable_data_dir(frozen=True, executable=tmp_path / "llamadash.exe") == tmp_path / "data"
        )

    def test_frozen_with_marker_file(self, tmp_path):
        (tmp_path / "portable").write_text("")
        assert paths.portable_data_dir(frozen=True, executable=tmp_path / "llamadash") == tmp_path / "data"

    def test_frozen_without_folder_or_marker(self, tmp_path):
        assert paths.portable_data_dir(frozen=True, executable=tmp_path / "llamadash") is None

    def test_resolve_uses_portable_folder_when_frozen(self, clean_env, monkeypatch, tmp_path):
        install = tmp_path / "install"
        install.mkdir()
        (install / "portable").write_text("")
        monkeypatch.setattr(sys, "frozen", True, raising=False)
        monkeypatch.setattr(sys, "executable", str(install / "llamadash"))
        got = paths.resolve_data_dir()
        assert got == install / "data"
        assert got.is_dir()


class TestResolve:
    def test_default_is_the_user_data_dir(self, clean_env):
        got = paths.resolve_data_dir()
        assert got == paths.user_data_dir()
        assert got.is_dir()
        assert str(got).startswith(str(clean_env))

    def test_argument_beats_environment(self, clean_env, monkeypatch, tmp_path):
        monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "from-env"))
        assert paths.resolve_data_dir(tmp_path / "from-arg") == tmp_path / "from-arg"
        assert not (tmp_path / "from-env").exists()

    def test_environment_override(self, clean_env, monkeypatch, tmp_path):
        monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "from-env"))
        assert paths.resolve_data_dir() == tmp_path / "from-env"
        assert (tmp_path / "from-env").is_dir()

    def test_empty_environment_value_is_ignored(self, clean_env, monkeypatch):
        monkeypatch.setenv(paths.DATA_DIR_ENV, "")
        assert paths.resolve_data_dir() == paths.user_data_dir()

    def test_relative_override_becomes_absolute(self, clean_env, monkeypatch, tmp_path):
        monkeypatch.chdir(tmp_path)
        got = paths.resolve_data_dir("rel/data")
        assert got.is_absolute()
        assert got == tmp_path / "rel" / "data"

    def test_tilde_is_expanded(self, clean_env):
        assert paths.resolve_data_dir("~/dash") == clean_env / "dash"

    @posix_only
    def test_created_directory_is_private(self, clean_env, tmp_path):
        got = paths.resolve_data_dir(tmp_path / "a" / "b")
        assert got.stat().st_mode & 0o777 == 0o700

    @posix_only
    def test_existing_directory_keeps_its_mode(self, clean_env, tmp_path):
        existing = tmp_path / "shared"
        existing.mkdir()
        os.chmod(existing, 0o755)
        paths.resolve_data_dir(existing)
        assert existing.stat().st_mode & 0o777 == 0o755

    def test_a_file_in_the_way_is_an_error(self, clean_env, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(NotADirectoryError, match="not a directory"):
            paths.resolve_data_dir(tmp_path / "file")

    def test_database_path_and_logs_dir(self, clean_env, tmp_path):
        db = paths.default_database_path(tmp_path / "d")
        assert db == tmp_path / "d" / "llama-dashboard.db"
        assert not db.exists()
        logs = paths.logs_dir(tmp_path / "d")
        assert logs == tmp_path / "d" / "logs"
        assert logs.is_dir()


def test_a_data_directory_another_process_makes_at_the_same_moment_is_used(tmp_path, monkeypatch):
    # two commands on a new data folder: the other one makes it between this one's look and its mkdir
    from pathlib import Path

    target = tmp_path / "data"
    target.mkdir()
    real_is_dir = Path.is_dir
    looked: list[Path] = []

    def is_dir_before_the_other_made_it(self: Path) -> bool:
        if self == target and not looked:  # the first look: not there yet
            looked.append(self)
            return False
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir_before_the_other_made_it)
    assert paths.make_private_dir(target) == target
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        paths.make_private_dir(tmp_path / "file")
