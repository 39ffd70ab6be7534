"""The Export/Import dialog on a real SQLite database (the test's own data directory)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMenu
from support import text_contrast

from llamadash.core import database, model_export
from llamadash.ui.main_window import MainWindow
from llamadash.ui.theme import apply_theme
from llamadash.ui.transfer_dialog import TransferDialog


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "data" / "llama-dashboard.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    database.init_database(path)
    yield path
    database.close_database()


def _add(name: str, **extra) -> int:
    return database.save_model(
        {"name": name, "type": "llama", "status": "stopped", "model_path": f"/models/{name}.gguf", **extra}
    )


@pytest.fixture
def dialog(qtbot, db):
    _add("alpha", ctx_size=4096, api_key="sk-secret")
    _add("beta", gpu_layers=20)
    changed: list[int] = []
    dlg = TransferDialog(database, on_changed=lambda: changed.append(1))
    dlg.changed_calls = changed  # type: ignore[attr-defined]  # what the tests read back
    qtbot.addWidget(dlg)
    dlg.show()
    yield dlg
    dlg.wait_for_export()


def _export_db(qtbot, dlg: TransferDialog, target: Path) -> tuple[bool, str]:
    dlg.export_db_path.set_path(target)
    with qtbot.waitSignal(dlg.databaseExported, timeout=20_000) as blocker:
        assert dlg.export_database()
    return tuple(blocker.args)


def test_export_database_reaches_100_percent_on_a_worker_thread(qtbot, dialog, tmp_path):
    for index in range(3000):  # several backup steps' worth of pages would need far more; any will do
        database.save_metrics({"cpu_usage": index % 100, "timestamp": 1_000_000 + index})
    seen: list[int] = []
    dialog.export_db_progress.valueChanged.connect(seen.append)
    ok, text = _export_db(qtbot, dialog, tmp_path / "backup.db")
    assert ok, text
    assert dialog.export_db_progress.value() == 100
    assert seen and seen[-1] == 100
    assert "exported" in dialog.export_db_status.text()
    assert dialog._export_thread is not None and dialog._export_thread.name == "llamadash-export"
    info = database.inspect_database_file(tmp_path / "backup.db")
    assert info["model_count"] == 2
    assert info["metrics_rows"] >= 3000


def test_export_database_never_overwrites_silently(qtbot, dialog, tmp_path):
    target = tmp_path / "taken.db"
    target.write_bytes(b"precious")
    ok, text = _export_db(qtbot, dialog, target)
    assert not ok
    assert "already exists" in text
    assert "Error" in dialog.export_db_status.text()
    assert target.read_bytes() == b"precious"
    dialog.export_db_overwrite.setChecked(True)
    ok, text = _export_db(qtbot, dialog, target)
    assert ok, text
    assert target.read_bytes().startswith(b"SQLite format 3")


def test_import_database_shows_the_contents_before_replacing(qtbot, dialog, db, tmp_path):
    source = tmp_path / "other.db"
    ok, _ = _export_db(qtbot, dialog, source)
    assert ok
    database.save_model({"name": "gamma", "type": "llama", "status": "stopped"})  # only in the current db
    dialog.tabs.setCurrentIndex(1)
    dialog.import_db_path.set_path(source)
    before = db.read_bytes()
    info = dialog.inspect_database()
    assert info is not None and info["model_count"] == 2
    summary = dialog.import_db_summary.text()
    for expected in ("alpha", "beta", "Metrics rows", "Database version", "Date"):
        assert expected in summary
    assert dialog.replace_button.isEnabled()
    assert "gamma" in {m["name"] for m in database.get_models()}  # nothing changed yet
    assert db.read_bytes() == before
    assert not dialog.changed_calls

    assert dialog.replace_database()
    assert {m["name"] for m in database.get_models()} == {"alpha", "beta"}
    assert "previous one is kept" in dialog.import_db_status.text()
    backups = list(db.parent.glob("llama-dashboard.db.bak-*"))
    assert backups
    assert dialog.changed_calls == [1]
    assert not dialog.replace_button.isEnabled()


@pytest.mark.parametrize(
    ("policy", "names", "alpha_ctx"),
    [
        ("skip", {"alpha", "beta", "gamma"}, 4096),
        ("overwrite", {"alpha", "beta", "gamma"}, 8192),
        ("keep_both", {"alpha", "beta", "gamma", "alpha (2)", "beta (2)"}, 4096),
    ],
)
def test_merge_the_models_of_a_database_file(qtbot, dialog, db, tmp_path, policy, names, alpha_ctx):
    # the file: alpha and beta as they are now, then alpha changed; the library gets gamma meanwhile
    source = tmp_path / "other.db"
    database.update_model(database.get_model_by_name("alpha")["id"], {"ctx_size": 8192})
    assert _export_db(qtbot, dialog, source)[0]
    database.update_model(database.get_model_by_name("alpha")["id"], {"ctx_size": 4096})
    _add("gamma")
    database.save_metrics({"cpu_usage": 12.0})
    dialog.tabs.setCurrentIndex(1)
    dialog.import_db_path.set_path(source)
    assert dialog.inspect_database() is not None and dialog.merge_button.isEnabled()
    dialog.merge_policy.setCurrentIndex(dialog.merge_policy.findData(policy))
    counts = dialog.merge_models()
    assert counts is not None
    assert {m["name"] for m in database.get_models()} == names
    assert database.get_model_by_name("alpha")["ctx_size"] == alpha_ctx
    assert database.get_metrics_history(60)[-1]["cpu_usage"] == 12.0  # the rest of the database stays
    assert list(db.parent.glob("llama-dashboard.db.bak-merge-*"))  # a backup came first
    assert dialog.changed_calls == [1]


def test_merge_from_a_bad_file_changes_nothing(qtbot, dialog, db, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x01" * 64)
    dialog.tabs.setCurrentIndex(1)
    dialog.import_db_path.set_path(bad)
    assert dialog.inspect_database() is None
    assert not dialog.merge_button.isEnabled()
    dialog._inspected = {"forced": True}  # even if the button were pressed, the file is checked again
    before = db.read_bytes()
    assert dialog.merge_models() is None
    assert "has not changed" in dialog.import_db_status.text()
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [
        b"",
        os.urandom(4096),
        b"SQLite format 3\x00" + b"\x00" * 50,  # truncated
        "other-app",
    ],
    ids=["empty", "random", "truncated", "other-sqlite"],
)
def test_a_bad_database_file_shows_an_error_and_changes_nothing(dialog, db, tmp_path, content):
    bad = tmp_path / "bad.db"
    if content == "other-app":
        with sqlite3.connect(bad) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.close()
    else:
        bad.write_bytes(content)
    database.release_connection()
    before = db.read_bytes()
    dialog.import_db_path.set_path(bad)
    assert dialog.inspect_database() is None
    assert dialog.import_db_status.text().startswith("Error:")
    assert not dialog.replace_button.isEnabled()
    assert not dialog.replace_database()  # refused without a good inspection
    database.release_connection()
    assert db.read_bytes() == before
    assert {m["name"] for m in database.get_models()} == {"alpha", "beta"}


def test_export_models_in_each_format(dialog, tmp_path):
    dialog.tabs.setCurrentIndex(2)
    assert sorted(dialog.checked_names()) == ["alpha", "beta"]
    dialog.set_checked(["alpha"])

    dialog.set_format("json")
    dialog.export_models_path.set_path(tmp_path / "m.json")
    assert dialog.export_models()
    document = json.loads((tmp_path / "m.json").read_text())
    assert document["format"] == "llamadash-models"
    assert [m["name"] for m in document["models"]] == ["alpha"]
    assert document["models"][0]["ctx_size"] == 4096
    assert "api_key" not in document["models"][0]
    assert not document["secrets_included"]

    dialog.secrets_check.setChecked(True)
    dialog.export_models_path.set_path(tmp_path / "secret.json")
    assert dialog.export_models()
    assert json.loads((tmp_path / "secret.json").read_text())["models"][0]["api_key"] == ["sk-secret"]

    dialog.set_checked(["alpha", "beta"])
    dialog.set_format("sh")
    dialog.export_models_path.set_path(tmp_path / "m.sh")
    dialog.secrets_check.setChecked(False)
    assert dialog.export_models()
    script = (tmp_path / "m.sh").read_text()
    assert script.startswith("#!/bin/sh")
    assert "# alpha" in script and "# beta" in script
    assert "--ctx-size 4096" in script and "sk-secret" not in script

    dialog.set_format("ini")
    assert not dialog.secrets_check.isEnabled()
    dialog.export_models_path.set_path(tmp_path / "models.ini")
    assert dialog.export_models()
    ini = (tmp_path / "models.ini").read_text()
    assert ini.startswith("version = 1")
    assert "[alpha]" in ini and "[beta]" in ini and "ctx-size = 4096" in ini
    assert model_export.parse_models_text(ini)[0]["name"] == "alpha"

    # an existing file is kept unless replacing is ticked
    assert not dialog.export_models()
    assert "already exists" in dialog.export_models_status.text()
    assert (tmp_path / "models.ini").read_text() == ini


def test_export_models_needs_a_ticked_model(dialog, tmp_path):
    dialog.set_checked([])
    dialog.export_models_path.set_path(tmp_path / "none.json")
    assert not dialog.export_models()
    assert not (tmp_path / "none.json").exists()


def _incoming_file(tmp_path: Path) -> Path:
    path = tmp_path / "incoming.json"
    models: list[dict[str, object]] = [
        {"name": "alpha", "type": "llama", "model_path": "/new/alpha.gguf", "ctx_size": 8192},
        {"name": "delta", "type": "llama", "model_path": "/new/delta.gguf"},
    ]
    path.write_text(model_export.export_json(models))
    return path


@pytest.mark.parametrize(
    ("policy", "names", "alpha_ctx"),
    [
        ("skip", {"alpha", "beta", "delta"}, 4096),
        ("overwrite", {"alpha", "beta", "delta"}, 8192),
        ("keep_both", {"alpha", "alpha (2)", "beta", "delta"}, 4096),
    ],
)
def test_import_models_with_each_merge_policy(dialog, tmp_path, policy, names, alpha_ctx):
    dialog.tabs.setCurrentIndex(3)
    dialog.import_models_path.set_path(_incoming_file(tmp_path))
    assert dialog.read_models_file()
    dialog.set_policy(policy)
    actions = {(row.action, row.name) for row in dialog.plan}
    assert dialog.preview.rowCount() == 2
    assert {m["name"] for m in database.get_models()} == {"alpha", "beta"}  # a preview changes nothing
    expected_alpha = {
        "skip": ("skip", "alpha"),
        "overwrite": ("overwrite", "alpha"),
        "keep_both": ("add", "alpha (2)"),
    }
    assert actions == {expected_alpha[policy], ("add", "delta")}
    shown = {dialog.preview.item(r, 1).text() for r in range(2)}
    assert expected_alpha[policy][1] in shown and "delta" in shown

    counts = dialog.apply_models()
    assert counts is not None
    assert {m["name"] for m in database.get_models()} == names
    assert database.get_model_by_name("alpha")["ctx_size"] == alpha_ctx
    assert dialog.changed_calls == [1]
    assert sorted(dialog.checked_names()) == sorted(names)  # the export list follows


def test_import_pasted_command_lines(dialog):
    dialog.paste_edit.setPlainText("llama-server -m /m/zeta.gguf --ctx-size 2048 --alias zeta\n")
    assert dialog.read_pasted()
    assert [(p.action, p.name) for p in dialog.plan] == [("add", "zeta")]
    assert dialog.apply_models() == {"add": 1, "overwrite": 0, "skip": 0}
    assert database.get_model_by_name("zeta")["ctx_size"] == 2048


@pytest.mark.parametrize(
    "text",
    [
        "",
        '{"format": "something-else", "models": []}',
        '{"format": "llamadash-models", "version": 99, "models": []}',
        "version = 1\n[*]\n[x]\nno-such-flag = 3\n",
    ],
    ids=["empty", "other-json", "newer-version", "unknown-ini-key"],
)
def test_a_bad_models_file_shows_an_error_and_changes_nothing(dialog, db, tmp_path, text):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    database.release_connection()
    before = db.read_bytes()
    dialog.import_models_path.set_path(bad)
    assert not dialog.read_models_file()
    assert dialog.import_models_status.text().startswith("Error:")
    assert "Nothing was changed" in dialog.import_models_status.text()
    assert not dialog.apply_button.isEnabled()
    assert dialog.apply_models() is None
    database.release_connection()
    assert db.read_bytes() == before


def test_the_window_opens_the_dialog_and_refreshes_after_an_import(qtbot, db, tmp_path):
    window = MainWindow(store=database, db_path=db, load_models=database.get_models, restore_layout=False)
    qtbot.addWidget(window)
    file_menu = window.menuBar().actions()[0].menu()
    assert isinstance(file_menu, QMenu)
    assert window.transfer_action in file_menu.actions()
    window.transfer_action.trigger()
    dlg = window.transfer_dialog
    assert isinstance(dlg, TransferDialog) and dlg.isVisible()
    assert window.instances_model.rowCount() == 0
    dlg.paste_edit.setPlainText("llama-server -m /m/one.gguf --alias one")
    assert dlg.read_pasted()
    dlg.apply_models()
    assert window.instances_model.rowCount() == 1
    dlg.close()
    QApplication.processEvents()


# ------------------------------------------------------------------------------------------------
# messages a person can read


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_error_messages_are_readable_in_both_themes(qtbot, db, tmp_path, theme):
    # QA saw red text on a red box: the text used palette(bright-text), which both themes make red
    apply_theme(theme)
    _add("alpha")
    dlg = TransferDialog(database)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.tabs.setCurrentIndex(3)
    dlg.paste_edit.setPlainText("[1,2,3]")
    assert not dlg.read_pasted()
    assert dlg.import_models_status.property("error") is True
    assert text_contrast(dlg.import_models_status) >= 4.5  # WCAG AA for normal text
    # every status line of the dialog shows errors the same way
    dlg.tabs.setCurrentIndex(2)
    dlg.export_models_path.set_path(tmp_path / "missing" / "m.json")
    assert not dlg.export_models()
    assert text_contrast(dlg.export_models_status) >= 4.5
    # and a message that is not an error is plain text on the dialog's own background
    dlg.export_models_path.set_path(tmp_path / "m.json")
    assert dlg.export_models()
    assert dlg.export_models_status.styleSheet() == ""
    assert text_contrast(dlg.export_models_status) >= 4.5


@pytest.mark.parametrize(
    "text",
    ["[1,2,3]", json.dumps([{"name": "x", "type": "llama", "model_path": "/m/x.gguf"}], indent=2)],
    ids=["numbers", "list-of-models"],
)
def test_a_json_array_is_called_json_not_a_presets_file(dialog, db, tmp_path, text):
    path = tmp_path / "models.json"
    path.write_text(text)
    database.release_connection()
    before = db.read_bytes()
    for read in (dialog.read_models_file, dialog.read_pasted):
        dialog.import_models_path.set_path(path)
        dialog.paste_edit.setPlainText(text)
        assert not read()
        status = dialog.import_models_status.text()
        assert "this is JSON, but not a llamadash models file" in status
        assert '"format": "llamadash-models"' in status
        assert "presets" not in status and "version = 1" not in status
        assert "Nothing was changed" in status
        assert not dialog.apply_button.isEnabled()
    database.release_connection()
    assert db.read_bytes() == before


def test_export_models_to_a_missing_folder_says_the_folder_does_not_exist(dialog, tmp_path):
    missing = tmp_path / "no-such-folder"
    dialog.export_models_path.set_path(missing / "models.json")
    assert not dialog.export_models()
    status = dialog.export_models_status.text()
    assert status.startswith(f"Error: the folder {missing} does not exist")
    assert "Errno" not in status
    assert not missing.exists()  # nothing was created on the way

    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    dialog.export_models_path.set_path(a_file / "models.json")
    assert not dialog.export_models()
    assert dialog.export_models_status.text().startswith(f"Error: {a_file} is not a folder")
    assert "Errno" not in dialog.export_models_status.text()
    assert a_file.read_text() == "keep me"


def test_export_models_that_cannot_be_written_says_why_in_words(dialog, tmp_path):
    folder = tmp_path / "models.json"
    folder.mkdir()  # a folder where the file should go: even "Replace" cannot write it
    dialog.export_models_overwrite.setChecked(True)
    dialog.export_models_path.set_path(folder)
    assert not dialog.export_models()
    assert dialog.export_models_status.text() == f"Error: cannot write {folder}: Is a directory"
    assert folder.is_dir()


def test_a_presets_file_with_a_flag_of_the_users_build_is_read_with_that_build(qtbot, db, tmp_path):
    from support import help_capabilities

    ini = tmp_path / "models.ini"
    ini.write_text("version = 1\n\n[*]\n\n[web]\nmodel = /m/web.gguf\ncors-origins = http://x\n")
    asked: list[int] = []

    def build():
        asked.append(1)
        return help_capabilities("b11434")

    dlg = TransferDialog(database, capabilities=build)
    qtbot.addWidget(dlg)
    dlg.import_models_path.set_path(ini)
    assert dlg.read_models_file() and asked == [1]
    assert dlg.apply_models() is not None
    assert database.get_model_by_name("web")["custom_params"] == {"--cors-origins": "http://x"}


def test_the_preview_says_what_an_import_leaves_out_and_keeps(qtbot, dialog, db, tmp_path):
    database.set_metadata("llama_server_path", "/opt/llama/llama-server")
    source = tmp_path / "crafted.db"
    assert _export_db(qtbot, dialog, source)[0]
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TRIGGER evil AFTER INSERT ON metrics_history BEGIN DELETE FROM models; END")
        conn.execute("UPDATE metadata SET value = './evil.sh' WHERE key = 'llama_server_path'")
    conn.close()
    dialog.tabs.setCurrentIndex(1)
    dialog.import_db_path.set_path(source)
    assert dialog.inspect_database() is not None
    summary = dialog.import_db_summary.text()
    assert "Left out" in summary and "trigger evil (on metrics_history)" in summary
    assert "Kept from this computer" in summary and "llama_server_path" in summary
    assert dialog.replace_database()
    assert database.get_metadata("llama_server_path") == "/opt/llama/llama-server"
    database.save_metrics({"cpu_usage": 1.0})
    assert {m["name"] for m in database.get_models()} == {"alpha", "beta"}


def test_a_file_with_a_bad_value_is_refused_with_its_place(qtbot, dialog, db, tmp_path):
    source = tmp_path / "bad-port.db"
    assert _export_db(qtbot, dialog, source)[0]
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE models SET port = 'abc' WHERE name = 'beta'")
    conn.close()
    dialog.tabs.setCurrentIndex(1)
    dialog.import_db_path.set_path(source)
    assert dialog.inspect_database() is None
    status = dialog.import_db_status.text()
    assert "models table" in status and "(model 'beta')" in status and "the column port" in status
    assert not dialog.replace_button.isEnabled()
