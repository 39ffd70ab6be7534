"""Numbers typed into the parameter editor's spin boxes, as a user types them, saved to a real database.

A spin box must never store a number other than the one typed: a number outside the row's range,
or text that is no number, is refused with the reason and the stored value stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QAbstractSpinBox

from llamadash.core import database
from llamadash.core.params import Capabilities, parse_help
from llamadash.ui.param_delegates import FloatEditor, IntEditor
from llamadash.ui.param_editor import ParamEditor
from llamadash.ui.param_model import VALUE_COLUMN

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def b11434() -> Capabilities:
    text = (DATA / "llama-server-help-b11434.txt").read_text(encoding="utf-8")
    return parse_help(text, label="llama-server b11434")


@pytest.fixture
def stored(tiny_model: Path) -> Iterator[int]:
    """A model in a real (per-test) database, with a few numbers already set; its id."""
    database.init_database()
    try:
        yield database.save_model(
            {
                "name": "tiny",
                "type": "llama",
                "status": "stopped",
                "model_path": str(tiny_model),
                "port": 8081,
                "ctx_size": 4096,
                "top_p": 0.5,
            }
        )
    finally:
        database.close_database()


@pytest.fixture
def editor(qtbot, stored: int, b11434: Capabilities) -> ParamEditor:
    widget = ParamEditor(database.get_model(stored), database.update_model, b11434, binary="llama-server")
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    return widget


def value_index(editor: ParamEditor, key: str) -> QModelIndex:
    index = editor.proxy.mapFromSource(editor.param_model.index_for(key, VALUE_COLUMN))
    assert index.isValid(), f"{key} is not shown"
    return index


def open_in_tree(editor: ParamEditor, key: str) -> tuple[QAbstractSpinBox, QModelIndex]:
    """Select the row and open its editor the way a double-click does."""
    editor.select_parameter(key)
    index = value_index(editor, key)
    editor.tree.edit(index)
    widget = editor.tree.indexWidget(index)
    assert isinstance(widget, QAbstractSpinBox), f"{key} has no spin box"
    return widget, index


def type_and_return(qtbot, editor: ParamEditor, key: str, typed: str) -> QAbstractSpinBox:
    """Replace the number with ``typed`` key by key, press Return and wait until the editor closes."""
    widget, index = open_in_tree(editor, key)
    widget.selectAll()  # what a spin box selects when it takes the focus: the number, not the unit
    qtbot.keyClicks(widget, typed)
    assert typed in widget.text(), "the spin box dropped keystrokes"
    qtbot.keyClick(widget, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.tree.indexWidget(index) is None)  # the view commits, then closes
    return widget


def stored_value(model_id: int, key: str) -> Any:
    model = database.get_model(model_id)
    assert model is not None
    return model[key]


@pytest.mark.parametrize(
    ("key", "typed", "message"),
    [
        ("port", "70000", "port: 70000 is above the maximum 65535"),
        ("port", "0", "port: 0 is below the minimum 1"),
        ("port", "80a", "port: expected a whole number from 1 to 65535, got '80a'"),
        ("ctx_size", "99999999999", "ctx_size: 99999999999 is above the maximum 2147483647"),
        ("ctx_size", "-5", "ctx_size: -5 is below the minimum 0"),
        ("top_p", "1.5", "top_p: 1.5 is above the maximum 1"),
        ("top_p", "-0.25", "top_p: -0.25 is below the minimum 0"),
        ("top_p", "high", "top_p: expected a number from 0 to 1, got 'high'"),
    ],
)
def test_a_typed_number_that_does_not_fit_is_refused_and_nothing_changes(
    qtbot, editor: ParamEditor, stored: int, key: str, typed: str, message: str
):
    before_value = editor.param_model.value(key)
    before_stored = stored_value(stored, key)
    before_command = editor.command_text()

    type_and_return(qtbot, editor, key, typed)

    assert editor.message_label.isVisible()
    assert editor.message_label.text() == message
    assert editor.param_model.value(key) == before_value
    assert stored_value(stored, key) == before_stored
    assert value_index(editor, key).data() == editor.param_model.schema[key].to_text(before_value)
    assert editor.command_text() == before_command
    assert not editor.undo_button.isEnabled()  # nothing happened, so there is nothing to undo


@pytest.mark.parametrize(
    ("key", "typed", "expected"),
    [
        ("port", "65535", 65535),
        ("ctx_size", "16384", 16384),  # the unit " tokens" stays after the typed number
        ("ctx_size", "2147483647", 2147483647),
        ("top_p", "0.125", 0.125),
        ("temperature", "1.2345678", 1.2345678),  # more decimals than the box shows: kept as typed
    ],
)
def test_a_typed_number_that_fits_is_saved_exactly(
    qtbot, editor: ParamEditor, stored: int, key: str, typed: str, expected: Any
):
    type_and_return(qtbot, editor, key, typed)
    assert not editor.message_label.isVisible()
    assert editor.param_model.value(key) == expected
    assert stored_value(stored, key) == expected


def test_the_arrow_keys_step_and_save(qtbot, editor: ParamEditor, stored: int):
    widget, index = open_in_tree(editor, "port")
    assert isinstance(widget, IntEditor)
    qtbot.keyClick(widget, Qt.Key.Key_Up)
    qtbot.keyClick(widget, Qt.Key.Key_Up)
    assert widget.value() == 8083
    qtbot.keyClick(widget, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.tree.indexWidget(index) is None)
    assert stored_value(stored, "port") == 8083

    widget, index = open_in_tree(editor, "top_p")
    assert isinstance(widget, FloatEditor)
    qtbot.keyClick(widget, Qt.Key.Key_Down)
    qtbot.keyClick(widget, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.tree.indexWidget(index) is None)
    assert stored_value(stored, "top_p") == pytest.approx(0.49)


def test_stepping_after_a_bad_number_saves_the_stepped_number(qtbot, editor: ParamEditor, stored: int):
    widget, index = open_in_tree(editor, "port")
    widget.selectAll()
    qtbot.keyClicks(widget, "70000")
    qtbot.keyClick(widget, Qt.Key.Key_Up)  # the first step goes back to the last good number
    qtbot.keyClick(widget, Qt.Key.Key_Up)
    qtbot.keyClick(widget, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.tree.indexWidget(index) is None)
    assert not editor.message_label.isVisible()
    assert stored_value(stored, "port") == int(widget.text())


def test_an_emptied_number_field_goes_back_to_the_default(qtbot, editor: ParamEditor, stored: int):
    widget, index = open_in_tree(editor, "port")
    widget.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Backspace)
    assert widget.text() == ""
    qtbot.keyClick(widget, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.tree.indexWidget(index) is None)
    assert stored_value(stored, "port") is None
    assert editor.param_model.value("port") is None
    editor.undo_button.click()
    assert stored_value(stored, "port") == 8081


def test_leaving_the_field_with_a_bad_number_is_refused_too(qtbot, editor: ParamEditor, stored: int):
    widget, index = open_in_tree(editor, "port")
    widget.selectAll()
    qtbot.keyClicks(widget, "70000")
    editor.search_box.setFocus()  # clicking elsewhere ends the edit as well
    qtbot.waitUntil(lambda: editor.tree.indexWidget(index) is None)
    assert editor.message_label.text() == "port: 70000 is above the maximum 65535"
    assert stored_value(stored, "port") == 8081


@pytest.mark.parametrize(("key", "odd"), [("port", 70000), ("ctx_size", 99999999999), ("top_p", 2.5)])
def test_closing_without_typing_keeps_a_stored_number_outside_the_spin_box_range(
    qtbot, b11434, key: str, odd: Any
):
    """A stored value the box cannot show (the CLI wrote it, say) is kept, not replaced by the nearest."""
    saved: list[dict[str, Any]] = []
    model = {"id": 3, "name": "odd", "type": "llama", "status": "stopped", key: odd}
    editor = ParamEditor(model, lambda _id, changes: saved.append(changes), b11434, check_files=False)
    qtbot.addWidget(editor)
    editor.show()
    assert editor.param_model.value(key) == odd  # kept as stored; validation reports it
    widget, index = open_in_tree(editor, key)
    qtbot.keyClick(widget, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.tree.indexWidget(index) is None)
    assert saved == []
    assert editor.param_model.value(key) == odd
    assert not editor.message_label.isVisible()
