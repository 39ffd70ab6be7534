"""Values another program wrote into the live database: the window shows and names them, runs nothing;
an edit of custom flags keeps the flags another process set meanwhile."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from support import launch_gui, raw_sqlite

from llamadash.app import shutdown
from llamadash.core import database
from llamadash.core.llama_server import METADATA_KEY
from llamadash.ui.instances_view import COLUMN
from llamadash.ui.param_editor import ParamEditor


def test_the_library_and_editor_show_a_bad_stored_value_and_name_it(
    qtbot, tmp_path: Path, tiny_model, llama_server
):
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata(METADATA_KEY, str(llama_server))
    database.save_model({"name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model)})
    database.close_database()
    with raw_sqlite(data_dir / "llama-dashboard.db") as conn:
        conn.execute("UPDATE models SET port = 'abc', temperature = 'hot'")

    gui = launch_gui(qtbot, data_dir)
    try:
        window = gui.window
        assert window.library_widget.visible_names() == ["tiny"]
        assert window.instances_model.names() == ["tiny"]
        port_cell = window.instances_model.index(0, COLUMN["port"])
        assert port_cell.data() == "⚠ 'abc'"  # what is stored, not a made-up 8080
        assert "The stored port 'abc' is not a port" in port_cell.data(Qt.ItemDataRole.ToolTipRole)
        window.open_configuration("tiny")
        editor = window.findChild(ParamEditor)
        problems = {issue.column: issue.message for issue in editor.issues() if issue.severity == "error"}
        assert "the value stored in the database is not valid" in problems["port"]
        assert "'abc'" in problems["port"]
        assert "the value stored in the database is not valid" in problems["temperature"]
        assert not editor.property("startAllowed")
        # fixing it in the editor saves a valid value
        editor.param_model.set_value("port", 8095)
        assert database.get_model_by_name("tiny")["port"] == 8095
    finally:
        shutdown(gui)


def test_an_edit_of_custom_flags_keeps_a_flag_another_process_set_meanwhile(
    qtbot, tmp_path: Path, tiny_model, llama_server
):
    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata(METADATA_KEY, str(llama_server))
    database.save_model(
        {
            "name": "tiny",
            "type": "llama",
            "status": "stopped",
            "model_path": str(tiny_model),
            "custom_params": {"--keep": "8"},
        }
    )
    database.close_database()
    gui = launch_gui(qtbot, data_dir)
    try:
        gui.window.open_configuration("tiny")
        editor = gui.window.findChild(ParamEditor)
        # meanwhile `llamadash models set tiny --perf` in a terminal (written as another process would)
        with raw_sqlite(data_dir / "llama-dashboard.db") as conn:
            conn.execute("""UPDATE models SET custom_params = '{"--keep": "8", "--perf": true}'""")
        assert editor.param_model.set_value("--keep", "16")
        assert database.get_model_by_name("tiny")["custom_params"] == {"--keep": "16", "--perf": True}
        assert editor.param_model.set_value("--keep", None)  # taken out: the other flag stays
        assert database.get_model_by_name("tiny")["custom_params"] == {"--perf": True}
    finally:
        shutdown(gui)
