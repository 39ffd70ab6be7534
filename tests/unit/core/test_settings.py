"""Settings: defaults, round trips through the database, and values refused with a reason."""

from __future__ import annotations

import dataclasses
import os
import stat
import typing
from pathlib import Path

import pytest

from llamadash.core import database, settings
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.settings import Settings, SettingsError
from llamadash.services.sampler import MAX_INTERVAL_S, MIN_INTERVAL_S


@pytest.fixture
def db(tmp_path: Path):
    database.init_database(tmp_path / "settings.db")
    yield database
    database.close_database()


def test_a_new_database_gives_the_defaults(db):
    loaded = settings.load_settings(db)
    assert loaded == Settings()
    assert loaded.stop_on_quit is True
    assert loaded.theme_preference == "system"
    assert loaded.sample_interval_s == 1.0 and loaded.history_minutes == 10


def test_every_setting_survives_a_restart(db, tmp_path: Path):
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    models = tmp_path / "models"
    models.mkdir()
    chosen = Settings(
        llama_server_path=str(binary),
        models_dir=str(models),
        sample_interval_s=2.5,
        history_minutes=30,
        theme_preference="dark",
        chart_theme_follows_app=False,
        start_minimized=True,
        close_to_tray=True,
        stop_on_quit=False,
    )
    settings.save_settings(chosen, db)
    path = database.get_database_path()
    database.close_database()
    database.init_database(path)
    assert settings.load_settings(db) == chosen
    # the binary is where the CLI and the instance manager look for it
    assert database.get_metadata(METADATA_KEY) == str(binary)


def test_theme_uses_the_seed_key_and_its_values(db):
    db.set_metadata("theme_preference", "light")  # as the seed database stores it
    assert settings.load_settings(db).theme_preference == "light"
    settings.save_settings(Settings(theme_preference="dark"), db)
    assert db.get_metadata("theme_preference") == "dark"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("sample_interval_s", 0.0, "from 0.25 to 10"),
        ("sample_interval_s", 11, "from 0.25 to 10"),
        ("history_minutes", 0, "from 1 to 60"),
        ("history_minutes", 2.5, "whole number"),
        ("theme_preference", "blue", "light, dark, system"),
        ("llama_server_path", "/no/such/llama-server", "does not exist"),
        ("models_dir", "/no/such/folder", "not an existing folder"),
        ("stop_on_quit", "yes", "on or off"),
    ],
)
def test_a_bad_value_is_refused_with_a_reason_and_nothing_is_stored(db, name, value, words):
    with pytest.raises(SettingsError) as refused:
        settings.save_settings(Settings().replace(**{name: value}), db)
    assert words in refused.value.message
    assert refused.value.name == name
    assert settings.load_settings(db) == Settings()


def test_a_folder_or_a_plain_file_is_not_a_binary(db, tmp_path: Path):
    with pytest.raises(SettingsError, match="is a folder"):
        settings.check_value("llama_server_path", str(tmp_path))
    plain = tmp_path / "notes.txt"
    plain.write_text("x")
    if os.name == "posix":
        with pytest.raises(SettingsError, match="not executable"):
            settings.check_value("llama_server_path", str(plain))


def test_only_changed_values_are_checked(db, tmp_path: Path):
    """A binary that disappeared later must not block changing the theme."""
    db.set_metadata(METADATA_KEY, str(tmp_path / "gone" / "llama-server"))
    current = settings.load_settings(db)
    assert current.llama_server_path.endswith("gone/llama-server")  # shown as stored, to be fixed
    saved = settings.save_settings(current.replace(theme_preference="dark"), db, previous=current)
    assert saved.theme_preference == "dark"
    with pytest.raises(SettingsError):
        settings.save_settings(current, db)  # checked when everything is saved


def test_clearing_a_path_removes_the_key(db, tmp_path: Path):
    models = tmp_path / "m"
    models.mkdir()
    settings.save_settings(Settings(models_dir=str(models)), db)
    settings.save_settings(Settings(models_dir=""), db)
    assert db.get_metadata("models_dir") is None
    assert settings.load_settings(db).models_dir == ""


def test_unreadable_stored_values_fall_back_to_defaults(db, caplog):
    db.set_metadata("sample_interval_s", "fast")
    db.set_metadata("history_minutes", "9999")
    db.set_metadata("stop_on_quit", "maybe")
    db.set_metadata("theme_preference", "neon")
    db.set_metadata("close_to_tray", "yes")
    db.set_metadata("notifications", "disabled")  # the schema's true/false words
    db.set_metadata("start_minimized", "")
    loaded = settings.load_settings(db)
    assert loaded.sample_interval_s == 1.0
    assert loaded.history_minutes == 10
    assert loaded.stop_on_quit is True
    assert loaded.theme_preference == "system"
    assert loaded.close_to_tray is True
    assert loaded.notifications is False and loaded.start_minimized is False
    assert "sample_interval_s" in caplog.text


def test_the_interval_limits_match_the_sampler():
    item = settings.spec("sample_interval_s")
    assert (item.minimum, item.maximum) == (MIN_INTERVAL_S, MAX_INTERVAL_S)


def test_every_setting_is_declared_once_with_a_matching_field():
    names = [item.name for item in settings.SPECS]
    assert len(names) == len(set(names))
    assert set(names) == set(Settings.__dataclass_fields__)
    for item in settings.SPECS:
        assert item.title and item.help
        assert getattr(Settings(), item.name) == item.default
        settings.check_value(item.name, item.default)  # every default is allowed


def test_each_spec_agrees_with_its_field():
    """SPECS is made from the fields: name, default and type agree, and every field is declared."""
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    assert [item.name for item in settings.SPECS] == list(fields)  # the dialog's order is the fields'
    types = typing.get_type_hints(Settings)
    python_type = {"bool": bool, "int": int, "float": float}
    for item in settings.SPECS:
        field = fields[item.name]
        assert field.default == item.default, item.name
        assert type(item.default) is types[item.name], item.name  # the default has the field's type
        assert python_type.get(item.kind, str) is types[item.name], item.name
        assert item.group, item.name
        if item.kind in ("int", "float"):
            assert item.minimum is not None and item.maximum is not None, item.name
            assert item.minimum <= item.default <= item.maximum, item.name
        else:
            assert item.minimum is item.maximum is None, item.name
        assert bool(item.choices) == (item.kind == "choice"), item.name
    keys = [item.key for item in settings.SPECS]
    assert len(keys) == len(set(keys))
    assert settings.spec("llama_server_path").key == METADATA_KEY


def test_a_field_without_a_declaration_is_refused():
    """A field added to Settings without setting(...) fails at import, not later in the dialog."""

    @dataclasses.dataclass(frozen=True)
    class Broken:
        declared: int = settings.setting(1, title="t", help="h", group="g", minimum=0, maximum=2)
        undeclared: int = 3

    with pytest.raises(KeyError):
        [settings._spec_of(field) for field in dataclasses.fields(Broken)]
