"""The window and the command line change the library by the same rules (one home for them: the
core's :class:`~llamadash.core.library_service.Library`), driven through the same cases: a pasted
command line with relative paths, a file that is not GGUF, a file already in the library, a model
imported with "Keep both", and a model whose llama-server runs (neither renamed nor removed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import cli, recorded_llama_server

from llamadash.core import database
from llamadash.core import db as store  # the functions of llamadash.core.database, as typed
from llamadash.ui.library_view import LibraryView


class WindowLibrary(LibraryView):
    """The window's library tab with its message boxes recorded (title, text) instead of shown."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        super().__init__(store)

    def _show_error(self, title: str, text: str) -> None:
        self.errors.append((title, text))

    def _show_info(self, title: str, text: str) -> None:
        self.infos.append((title, text))


@pytest.fixture
def window_library(qtbot, tmp_path: Path) -> Iterator[WindowLibrary]:
    database.init_database(tmp_path / "window" / "llama-dashboard.db")
    view = WindowLibrary()
    qtbot.addWidget(view)
    yield view
    database.close_database()


def _cli_models(data_dir: Path) -> list[dict]:
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        return database.get_models()
    finally:
        database.close_database()


def test_a_pasted_command_line_with_relative_paths_is_stored_absolute_by_both(
    window_library: WindowLibrary, tiny_model: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tiny_model.parent)
    (tiny_model.parent / "slots").mkdir(exist_ok=True)
    line = f"llama-server -m {tiny_model.name} --slot-save-path slots"
    window_library.add_command_line(line, "pasted")
    in_window = database.get_model_by_name("pasted")
    database.close_database()
    code, _out, err = cli("models", "add", "pasted", "--from-command", line, data_dir=tmp_path / "cli")
    assert code == 0, err
    (in_cli,) = _cli_models(tmp_path / "cli")
    for model in (in_window, in_cli):
        assert model["model_path"] == str(tiny_model.resolve())
        assert model["slot_save_path"] == str((tiny_model.parent / "slots").resolve())


def test_a_file_that_is_not_gguf_is_refused_by_both(window_library: WindowLibrary, tmp_path: Path):
    notes = tmp_path / "notes.py"
    notes.write_text("print('hello')\n")
    assert window_library.add_files([notes]) == []
    ((_title, text),) = window_library.errors
    assert "not a GGUF file" in text
    assert database.get_models() == []
    database.close_database()
    code, out, err = cli("models", "add", "bad", "--model-path", str(notes), data_dir=tmp_path / "cli")
    assert code == 1 and out == ""
    assert "not a GGUF file" in err
    assert _cli_models(tmp_path / "cli") == []


def test_a_file_already_in_the_library_is_not_added_again_unasked(
    window_library: WindowLibrary, tiny_model: Path, tmp_path: Path
):
    window_library.add_files([tiny_model])
    assert window_library.add_files([tiny_model]) == []  # a drop of the same file: said, not added
    assert "already in the library as 'tiny-test-llama'" in window_library.errors[0][1]
    assert [m["name"] for m in database.get_models()] == ["tiny-test-llama"]
    # a pasted line for the same file, unnamed, is refused the same way
    assert window_library.add_command_line(f"llama-server -m {tiny_model} -c 512") is None
    assert "already in the library as 'tiny-test-llama'" in window_library.errors[1][1]
    # named by the user, it is a second entry on a port of its own, and the window says so
    assert window_library.add_command_line(f"llama-server -m {tiny_model} -c 512", "second") is not None
    in_window = [(m["name"], m["port"]) for m in database.get_models()]
    database.close_database()
    # the CLI always names the entry: added, and said the same way
    for name in ("tiny-test-llama", "second"):
        code, _out, err = cli(
            "models", "add", name, "--model-path", str(tiny_model), data_dir=tmp_path / "cli"
        )
        assert code == 0, err
    in_cli = [(m["name"], m["port"]) for m in _cli_models(tmp_path / "cli")]
    assert in_window == in_cli == [("tiny-test-llama", 8080), ("second", 8081)]
    note = "second uses the model file of 'tiny-test-llama' too (it has a port of its own)"
    assert window_library.infos == [("Already in the library", note)]
    assert err == f"llamadash: note: {note}\n"


def test_a_running_model_is_renamed_and_removed_by_neither(qtbot, tmp_path: Path, tiny_model: Path):
    """One rule: a live llama-server of the model in the database's process records (a window's, a
    ``llamadash run``'s, one left behind) is running, whichever front end asks."""
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.save_model(
        {"name": "tiny", "type": "llama", "status": "running", "model_path": str(tiny_model), "port": 8080}
    )
    view = WindowLibrary()
    qtbot.addWidget(view)
    with recorded_llama_server(tmp_path, "tiny"):
        assert view.select_model(database.get_model_by_name("tiny")["id"])
        assert not view.rename_selected("renamed") and not view.delete_selected(confirm=False)
        assert view.errors == [
            ("The model is running", "Stop tiny before renaming it."),
            ("The model is running", "Stop tiny before deleting it."),
        ]
        database.close_database()
        refused = [
            cli("models", *change, data_dir=data_dir)
            for change in (["set", "tiny", "name=renamed"], ["remove", "tiny"])
        ]
        assert [code for code, _out, _err in refused] == [1, 1]
        assert [err for _code, _out, err in refused] == [
            "llamadash: error: tiny is running; stop it before renaming it\n",
            "llamadash: error: tiny is running; stop it before deleting it\n",
        ]
        assert [m["name"] for m in _cli_models(data_dir)] == ["tiny"]
    # its server is gone: both may now (the status column said "running" all along: not the rule)
    code, _out, err = cli("models", "set", "tiny", "name=renamed", data_dir=data_dir)
    assert code == 0, err
    database.init_database(data_dir / "llama-dashboard.db")
    view.refresh()
    assert view.select_model(database.get_model_by_name("renamed")["id"])
    assert view.delete_selected(confirm=False)
    assert database.get_models() == []
    database.close_database()


def test_keep_both_gives_the_second_entry_a_free_port_in_both(qtbot, tmp_path: Path, tiny_model: Path):
    from llamadash.core import model_export
    from llamadash.ui.transfer_dialog import TransferDialog

    models_file = tmp_path / "models.json"
    for front_end in ("window", "cli"):
        data_dir = tmp_path / front_end
        database.init_database(data_dir / "llama-dashboard.db")
        database.save_model(
            {
                "name": "tiny",
                "type": "llama",
                "status": "stopped",
                "model_path": str(tiny_model),
                "port": 8080,
            }
        )
        models_file.write_text(model_export.export_json(database.get_models()), encoding="utf-8")
        if front_end == "window":
            dialog = TransferDialog(database)
            qtbot.addWidget(dialog)
            dialog.tabs.setCurrentIndex(3)  # Import models
            dialog.import_models_path.set_path(models_file)
            assert dialog.read_models_file()
            dialog.set_policy("keep_both")
            assert dialog.apply_models() is not None
            ports = {m["name"]: m["port"] for m in database.get_models()}
            database.close_database()
        else:
            database.close_database()
            code, _out, err = cli(
                "models", "import", str(models_file), "--on-conflict", "keep-both", data_dir=data_dir
            )
            assert code == 0, err
            ports = {m["name"]: m["port"] for m in _cli_models(data_dir)}
        assert ports == {"tiny": 8080, "tiny (2)": 8081}, front_end
