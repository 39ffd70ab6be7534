"""The main window shows the model library it is given."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from llamadash.ui.main_window import MainWindow


def test_window_lists_models_and_refreshes(qtbot, tmp_path: Path):
    models = [
        {"name": "llama-3-8b", "type": "llama", "status": "running", "port": 8081, "model_path": "/m/llama.gguf"},
        {"name": "qwen-router", "type": "qwen2", "status": "stopped", "port": None, "hf_repo": "Qwen/Qwen3-8B-GGUF"},
    ]
    window = MainWindow(db_path=tmp_path / "x.db", load_models=lambda: list(models))
    qtbot.addWidget(window)
    window.show()
    table = window.models_model
    assert table.rowCount() == 2
    assert table.data(table.index(0, 0)) == "llama-3-8b"
    assert table.data(table.index(0, 3)) == "8081"
    assert table.data(table.index(1, 3)) == "8080"  # llama-server's default port
    assert table.data(table.index(1, 4)) == "Qwen/Qwen3-8B-GGUF"
    assert table.headerData(2, Qt.Orientation.Horizontal) == "Status"
    assert str(tmp_path / "x.db") in window.db_label.text()

    models.pop()
    window.refresh()
    assert table.rowCount() == 1
