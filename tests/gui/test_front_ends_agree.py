"""The window and the command line add models by the same rules (one home for each rule: the core
library), driven through the same cases: a pasted command line with relative paths, a file that is
not GGUF, a file already in the library."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import cli

from llamadash.core import database
from llamadash.ui.library_view import LibraryView


@pytest.fixture
def window_library(qtbot, tmp_path: Path):
    database.init_database(tmp_path / "window" / "llama-dashboard.db")
    view = LibraryView(database)
    qtbot.addWidget(view)
    view.errors = []  # type: ignore[attr-defined]
    view._show_error = lambda title, text: view.errors.append((title, text))  # type: ignore[method-assign]
    yield view
    database.close_database()


def _cli_models(data_dir: Path) -> list[dict]:
    database.init_database(data_dir / "llama-dashboard.db", record_start=False)
    try:
        return database.get_models()
    finally:
        database.close_database()


def test_a_pasted_command_line_with_relative_paths_is_stored_absolute_by_both(
    window_library: LibraryView, tiny_model: Path, tmp_path: Path, monkeypatch
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


def test_a_file_that_is_not_gguf_is_refused_by_both(window_library: LibraryView, tmp_path: Path):
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
    window_library: LibraryView, tiny_model: Path, tmp_path: Path
):
    window_library.add_files([tiny_model])
    assert window_library.add_files([tiny_model]) == []  # a drop of the same file: said, not added
    assert "already in the library as 'tiny-test-llama'" in window_library.errors[0][1]
    assert [m["name"] for m in database.get_models()] == ["tiny-test-llama"]


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
