"""Library ▸ Run across workers…: the registered workers as checkboxes and a tensor split; OK sets
the model's --rpc list through the library service (as ``llamadash workers use``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox
from support import free_port, tiny_model_record

from llamadash.core import database, workers
from llamadash.core.params import COLUMN, build_command
from llamadash.ui.library_view import LibraryView
from llamadash.ui.rpc_choice_dialog import ACTION_TEXT, RpcWorkersDialog

SHOTS = os.environ.get("LLAMADASH_SHOTS")  # a folder to save the dialog's screenshot in


@pytest.fixture
def view(qtbot, tiny_model: Path):
    database.init_database()
    for name in ("w1", "w2"):
        workers.add_worker(workers.make_worker(name, port=free_port()))
    workers.add_worker(workers.make_worker("far", kind="remote", host="10.0.0.7", port=50052))
    database.save_model(tiny_model_record(tiny_model))
    widget = LibraryView(database)
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.show()
    widget.refresh()
    yield widget
    database.close_database()


def _open(view: LibraryView) -> RpcWorkersDialog:
    model = database.get_model_by_name("tiny")
    assert model is not None and view.select_model(int(model["id"]))
    action = next(a for a in view.context_menu().actions() if a.text() == ACTION_TEXT)
    action.trigger()
    dialog = next(d for d in view.findChildren(RpcWorkersDialog) if d.isVisible())
    assert isinstance(dialog, RpcWorkersDialog) and dialog.isVisible()
    return dialog


def test_the_checked_workers_become_the_models_rpc_list(qtbot, view: LibraryView) -> None:
    dialog = _open(view)
    assert list(dialog.boxes) == [w.name for w in workers.list_workers()] == ["far", "w1", "w2"]
    assert not any(b.isChecked() for b in dialog.boxes.values())
    dialog.boxes["w2"].setChecked(True)
    dialog.boxes["far"].setChecked(True)
    dialog.split_edit.setText("1,1,2")
    if SHOTS:
        assert dialog.grab().save(str(Path(SHOTS) / "run-across-workers.png"))
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    model = database.get_model_by_name("tiny")
    w2 = workers.get_worker("w2")
    assert w2 is not None and model is not None
    assert model[COLUMN.rpc] == ["10.0.0.7:50052", w2.endpoint]
    assert model[COLUMN.tensor_split] == ["1", "1", "2"]  # as the schema keeps a list
    argv, _env = build_command(model, None, binary="llama-server")
    assert f"10.0.0.7:50052,{w2.endpoint}" in argv and "1,1,2" in argv

    model_order = ["w2", "far"]  # a list set elsewhere (workers use tiny w2,far)
    used = {COLUMN.rpc: [w2.endpoint, "10.0.0.7:50052"]}
    view.service.set_parameters(int(model["id"]), used)
    view.refresh(select_id=model["id"])
    again = _open(view)  # the model's workers come first, checked, in its order
    assert list(again.boxes)[:2] == model_order and again.boxes["w2"].isChecked()
    assert not again.boxes["w1"].isChecked() and again.split_edit.text() == "1,1,2"
    for box in again.boxes.values():
        box.setChecked(False)
    again.split_edit.setText("")
    again.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    cleared = database.get_model_by_name("tiny")
    assert cleared[COLUMN.rpc] is None and cleared[COLUMN.tensor_split] is None


def test_a_bad_tensor_split_is_said_and_changes_nothing(qtbot, view: LibraryView) -> None:
    dialog = _open(view)
    dialog.boxes["w1"].setChecked(True)
    dialog.split_edit.setText("1,fast")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.isVisible() and dialog.error_label.isVisible()
    assert "Tensor split" in dialog.error_label.text()
    assert database.get_model_by_name("tiny")[COLUMN.rpc] is None
    dialog.reject()
