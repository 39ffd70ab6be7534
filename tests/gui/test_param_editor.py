"""The parameter editor: the schema tree, its delegates, filters, validation and command preview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLineEdit, QStyleOptionViewItem

from llamadash.core.params import Capabilities, load_schema, parse_help
from llamadash.ui.param_delegates import (
    ChoiceEditor,
    FlagSwitchEditor,
    FloatEditor,
    IntEditor,
    KeywordEditor,
    PathEditor,
    SecretEditor,
    TextEditor,
)
from llamadash.ui.param_editor import NO_ROW_HELP, RESTART_OFFER, ParamEditor
from llamadash.ui.param_model import (
    CHANGED_ROLE,
    KEY_ROLE,
    OTHER_FLAGS_GROUP,
    TEXT_EDIT_ROLE,
    UNSUPPORTED_ROLE,
    VALUE_COLUMN,
    ParamTreeModel,
)

DATA = Path(__file__).parent.parent / "data"


def caps_of(build: str) -> Capabilities:
    text = (DATA / f"llama-server-help-{build}.txt").read_text(encoding="utf-8")
    return parse_help(text, label=f"llama-server {build}")


@pytest.fixture(scope="module")
def b11434() -> Capabilities:
    return caps_of("b11434")


@pytest.fixture(scope="module")
def b10001() -> Capabilities:
    return caps_of("b10001")


class Store:
    """Stands in for the database: records what the editor saves, or refuses with a message."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, Any]]] = []
        self.refuse_with: str | None = None

    def save(self, model_id: int, changes: dict[str, Any]) -> None:
        if self.refuse_with:
            raise RuntimeError(self.refuse_with)
        self.calls.append((model_id, dict(changes)))


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def make_editor(qtbot, store: Store, tiny_model: Path, b11434: Capabilities):
    def make(status: str = "stopped", caps: Capabilities | None = b11434, **values: Any) -> ParamEditor:
        model = {"id": 7, "name": "tiny", "type": "llama", "status": status, "model_path": str(tiny_model)}
        model.update(values)
        editor = ParamEditor(model, store.save, caps, binary="llama-server")
        qtbot.addWidget(editor)
        editor.resize(1000, 700)
        editor.show()
        return editor

    return make


def value_index(editor: ParamEditor, key: str) -> QModelIndex:
    """The value cell of ``key`` as the tree shows it (through the filter proxy)."""
    index = editor.proxy.mapFromSource(editor.param_model.index_for(key, VALUE_COLUMN))
    assert index.isValid(), f"{key} is not shown"
    return index


def open_editor(editor: ParamEditor, key: str):
    index = value_index(editor, key)
    widget = editor.delegate.createEditor(editor.tree.viewport(), QStyleOptionViewItem(), index)
    editor.delegate.setEditorData(widget, index)
    return widget, index


def commit(editor: ParamEditor, widget, index: QModelIndex) -> None:
    editor.delegate.setModelData(widget, editor.proxy, index)
    widget.deleteLater()


def visible_keys(editor: ParamEditor) -> set[str]:
    proxy = editor.proxy
    keys = set()
    for g in range(proxy.rowCount()):
        group = proxy.index(g, 0)
        for r in range(proxy.rowCount(group)):
            keys.add(proxy.index(r, 0, group).data(KEY_ROLE))
    return keys


def visible_groups(editor: ParamEditor) -> list[str]:
    return [editor.proxy.index(g, 0).data() for g in range(editor.proxy.rowCount())]


# ------------------------------------------------------------------------------------------------
# the tree model


def test_tree_model_passes_the_model_tester(qtmodeltester, b11434: Capabilities, tiny_model: Path):
    config = {"model_path": str(tiny_model), "ctx_size": 4096, "custom_params": {"--perf": True}}
    model = ParamTreeModel(config, b11434)
    qtmodeltester.check(model, force_py=True)
    qtmodeltester.check(ParamTreeModel(config, None))


def test_filter_proxy_passes_the_model_tester(qtmodeltester, make_editor):
    editor = make_editor(ctx_size=4096)
    editor.search_box.setText("ctx")
    qtmodeltester.check(editor.proxy, force_py=True)


def test_tree_is_generated_from_the_schema(b11434: Capabilities):
    schema = load_schema()
    model = ParamTreeModel({}, b11434)
    sections = schema.sections()
    assert model.group_titles() == [*sections, OTHER_FLAGS_GROUP]
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(4)] == [
        "Parameter",
        "Value",
        "Default",
        "Flag",
    ]
    for row, (section, params) in enumerate(sections.items()):
        group = model.index(row, 0)
        assert [model.index(r, 0, group).data(KEY_ROLE) for r in range(model.rowCount(group))] == [
            p.column for p in params
        ], section
    ctx = model.index_for("ctx_size")
    assert model.index(ctx.row(), 2, ctx.parent()).data() == "0 (0 = loaded from model)"
    assert model.index(ctx.row(), 3, ctx.parent()).data() == "--ctx-size"
    tooltip = ctx.data(Qt.ItemDataRole.ToolTipRole)
    assert "--ctx-size" in tooltip and "size of the prompt context" in tooltip
    other = model.group_index(OTHER_FLAGS_GROUP)
    flags = [model.index(r, 3, other).data() for r in range(model.rowCount(other))]
    assert flags == [entry.long_flag for entry in b11434.uncovered(schema)]


def test_changed_values_are_bold_and_counted_in_their_group(make_editor):
    editor = make_editor(ctx_size=4096, temperature=0.8)  # 0.8 is llama-server's default
    model = editor.param_model
    assert model.index_for("ctx_size", VALUE_COLUMN).data(Qt.ItemDataRole.FontRole).bold()
    assert model.index_for("ctx_size", VALUE_COLUMN).data() == "4096"
    assert model.index_for("temperature", VALUE_COLUMN).data(Qt.ItemDataRole.FontRole) is None
    assert model.index_for("temperature", VALUE_COLUMN).data() == "0.8"
    group = model.group_index("Context & Processing")
    assert model.index(group.row(), VALUE_COLUMN).data() == "1 changed"


def test_rows_the_build_cannot_take_are_greyed_with_the_reason(b11434: Capabilities, b10001: Capabilities):
    on_new = ParamTreeModel({}, b11434)
    row = on_new.index_for("hf_file_v", VALUE_COLUMN)
    reason = row.data(UNSUPPORTED_ROLE)
    assert reason == "hf_file_v is not supported by llama-server b11434"
    assert not row.flags() & Qt.ItemFlag.ItemIsEditable
    assert row.data() == "not supported"
    assert reason in row.data(Qt.ItemDataRole.ToolTipRole)
    grey = row.data(Qt.ItemDataRole.ForegroundRole).color()
    assert grey != on_new.index_for("ctx_size", VALUE_COLUMN).data(Qt.ItemDataRole.ForegroundRole)

    on_old = ParamTreeModel({}, b10001)
    assert on_old.index_for("hf_file_v", VALUE_COLUMN).data(UNSUPPORTED_ROLE) is None
    assert on_old.index_for("hf_file_v", VALUE_COLUMN).flags() & Qt.ItemFlag.ItemIsEditable
    assert "not supported by llama-server b10001" in on_old.index_for("rpc").data(UNSUPPORTED_ROLE)


# ------------------------------------------------------------------------------------------------
# editing each kind of row through its delegate


def test_int_row_uses_a_spin_box_with_the_row_range(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "ctx_size")
    assert isinstance(widget, IntEditor)
    assert widget.minimum() == 0 and widget.value() == 0  # unset: starts at the default
    widget.setValue(8192)
    commit(editor, widget, index)
    assert store.calls == [(7, {"ctx_size": 8192})]
    assert "--ctx-size 8192" in editor.command_text()
    assert value_index(editor, "ctx_size").data(Qt.ItemDataRole.FontRole).bold()


def test_unchanged_spin_box_saves_nothing(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "batch_size")
    commit(editor, widget, index)  # opened and closed on the default
    assert store.calls == []


def test_float_row_uses_a_double_spin_box(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "top_p")
    assert isinstance(widget, FloatEditor)
    assert (widget.minimum(), widget.maximum()) == (0.0, 1.0)
    assert widget.value() == pytest.approx(0.95)
    widget.setValue(0.5)
    assert widget.text() == "0.5"
    commit(editor, widget, index)
    assert store.calls == [(7, {"top_p": 0.5})]
    assert "--top-p 0.5" in editor.command_text()


def test_enum_row_uses_a_combo_box_of_its_choices(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "cache_type_k")
    assert isinstance(widget, ChoiceEditor)
    assert [widget.itemText(i) for i in range(4)] == ["default (f16)", "f32", "f16", "bf16"]
    widget.setCurrentIndex(widget.findText("q8_0"))
    commit(editor, widget, index)
    assert store.calls == [(7, {"cache_type_k": "q8_0"})]
    assert "--cache-type-k q8_0" in editor.command_text()


def test_bool_pair_row_is_tri_state(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "cont_batching")
    assert isinstance(widget, ChoiceEditor)
    assert [widget.itemText(i) for i in range(widget.count())] == ["default (on)", "on", "off"]
    widget.setCurrentIndex(2)
    commit(editor, widget, index)
    assert store.calls == [(7, {"cont_batching": False})]
    assert "--no-cont-batching" in editor.command_text()
    assert value_index(editor, "cont_batching").data() == "off"

    widget, index = open_editor(editor, "cont_batching")
    assert widget.currentText() == "off"
    widget.setCurrentIndex(0)  # back to "default"
    commit(editor, widget, index)
    assert store.calls[-1] == (7, {"cont_batching": None})
    assert "cont-batching" not in editor.command_text()


def test_switch_row_offers_default_and_on(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "metrics_enabled")
    assert [widget.itemText(i) for i in range(widget.count())] == ["default (off)", "on"]
    widget.setCurrentIndex(1)
    commit(editor, widget, index)
    assert store.calls == [(7, {"metrics_enabled": True})]
    assert "--metrics" in editor.command_text()


@pytest.mark.parametrize(("typed", "stored", "argument"), [("all", "all", "all"), ("12", 12, "12")])
def test_int_or_keyword_row_takes_a_keyword_or_a_number(make_editor, store: Store, typed, stored, argument):
    editor = make_editor()
    widget, index = open_editor(editor, "gpu_layers")
    assert isinstance(widget, KeywordEditor)
    assert [widget.itemText(i) for i in range(widget.count())] == ["auto", "all"]
    widget.setCurrentText(typed)
    commit(editor, widget, index)
    assert store.calls == [(7, {"gpu_layers": stored})]
    assert f"--gpu-layers {argument}" in editor.command_text()


def test_file_row_uses_a_path_picker(make_editor, store: Store, tiny_model: Path):
    editor = make_editor()
    widget, index = open_editor(editor, "mmproj")
    assert isinstance(widget, PathEditor) and not widget.directory
    assert widget.button.isVisibleTo(widget)
    widget.line_edit.setText(str(tiny_model))
    commit(editor, widget, index)
    assert store.calls == [(7, {"mmproj": str(tiny_model)})]
    assert f"--mmproj {tiny_model}" in editor.command_text()


def test_directory_row_uses_a_directory_picker(make_editor, store: Store, tmp_path: Path):
    editor = make_editor()
    widget, index = open_editor(editor, "slot_save_path")
    assert isinstance(widget, PathEditor) and widget.directory
    widget.line_edit.setText(str(tmp_path))
    commit(editor, widget, index)
    assert store.calls == [(7, {"slot_save_path": str(tmp_path)})]
    assert f"--slot-save-path {tmp_path}" in editor.command_text()


def test_secret_row_is_masked_with_a_reveal_button(make_editor, store: Store):
    editor = make_editor(host="0.0.0.0")
    assert any(i.column == "host" and i.severity == "warning" for i in editor.issues())
    widget, index = open_editor(editor, "api_key")
    assert isinstance(widget, SecretEditor)
    assert widget.line_edit.echoMode() == QLineEdit.EchoMode.Password
    widget.button.click()
    assert widget.line_edit.echoMode() == QLineEdit.EchoMode.Normal
    widget.line_edit.setText("s3cret-key")
    commit(editor, widget, index)
    assert store.calls == [(7, {"api_key": ["s3cret-key"]})]
    command = editor.command_text()
    assert command.startswith("LLAMA_API_KEY=*** llama-server")
    assert "s3cret-key" not in command
    assert "s3cret-key" not in value_index(editor, "api_key").data()
    assert not any(i.column == "host" for i in editor.issues())  # the warning went away


def test_list_row_is_edited_as_text_with_its_separator(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "tensor_split")
    assert isinstance(widget, TextEditor)
    assert "','" in widget.placeholderText()
    widget.setText("3, 1")
    commit(editor, widget, index)
    assert store.calls == [(7, {"tensor_split": ["3", "1"]})]
    assert "--tensor-split 3,1" in editor.command_text()
    widget, index = open_editor(editor, "tensor_split")
    assert widget.text() == "3,1"


def test_string_and_int_pair_rows_are_edited_as_text(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "host")
    widget.setText("127.0.0.2")
    commit(editor, widget, index)
    widget, index = open_editor(editor, "control_vector_layer_range")
    assert widget.placeholderText() == "START END"
    widget.setText("2 5")
    commit(editor, widget, index)
    assert [changes for _, changes in store.calls] == [
        {"host": "127.0.0.2"},
        {"control_vector_layer_range": [2, 5]},
    ]
    command = editor.command_text()
    assert "--host 127.0.0.2" in command and "--control-vector-layer-range 2 5" in command


def test_other_flags_of_the_build_are_stored_in_custom_params(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "--perf")
    assert isinstance(widget, FlagSwitchEditor)
    widget.setCurrentIndex(1)
    commit(editor, widget, index)
    widget, index = open_editor(editor, "--keep")
    assert isinstance(widget, TextEditor)
    widget.setText("32")
    commit(editor, widget, index)
    assert [changes for _, changes in store.calls] == [
        {"custom_params": {"--perf": True}},
        {"custom_params": {"--perf": True, "--keep": "32"}},
    ]
    command = editor.command_text()
    assert "--perf" in command and "--keep 32" in command


def test_a_stored_flag_the_build_does_not_know_is_shown_greyed(make_editor):
    editor = make_editor(custom_params={"--made-up-flag": "1"})
    index = editor.param_model.index_for("--made-up-flag", VALUE_COLUMN)
    assert index.data() == "1"
    assert "not accepted by llama-server b11434" in index.data(UNSUPPORTED_ROLE)
    assert any("--made-up-flag" in i.message and i.severity == "error" for i in editor.issues())
    assert editor.startAllowed is False


# ------------------------------------------------------------------------------------------------
# refusals, undo, reset


@pytest.mark.parametrize(
    ("key", "typed", "message"),
    [
        ("control_vector_layer_range", "5 2", "START must not be greater than END"),
        ("gpu_layers", "lots", "expected a whole number or auto or all"),
        ("seed", "-7", "-7 is below the minimum -1"),
        ("--perf", "maybe", "--perf takes no value"),
    ],
)
def test_an_invalid_value_is_refused_with_its_message_and_nothing_is_saved(
    make_editor, store: Store, key: str, typed: str, message: str
):
    editor = make_editor()
    before = editor.command_text()
    index = value_index(editor, key)
    editor.proxy.setData(index, typed, TEXT_EDIT_ROLE)
    assert store.calls == []
    assert editor.message_label.isVisible()
    assert message in editor.message_label.text()
    assert editor.param_model.value(key) is None
    assert editor.command_text() == before


def test_invalid_text_through_the_delegate_is_refused(make_editor, store: Store):
    editor = make_editor()
    widget, index = open_editor(editor, "control_vector_layer_range")
    widget.setText("9 1")
    commit(editor, widget, index)
    assert store.calls == []
    assert "START must not be greater than END" in editor.message_label.text()


def test_a_refused_save_changes_nothing(make_editor, store: Store):
    editor = make_editor()
    store.refuse_with = "the database is locked"
    widget, index = open_editor(editor, "ctx_size")
    widget.setValue(2048)
    commit(editor, widget, index)
    assert editor.param_model.value("ctx_size") is None
    assert "not saved: the database is locked" in editor.message_label.text()
    assert "--ctx-size" not in editor.command_text()
    assert not editor.undo_button.isEnabled()


def test_the_last_change_can_be_undone(make_editor, store: Store):
    editor = make_editor(ctx_size=4096)
    assert not editor.undo_button.isEnabled()
    editor.param_model.set_value("ctx_size", 8192)
    assert "--ctx-size 8192" in editor.command_text()
    assert editor.undo_button.isEnabled()
    editor.undo_button.click()
    assert store.calls == [(7, {"ctx_size": 8192}), (7, {"ctx_size": 4096})]
    assert editor.param_model.value("ctx_size") == 4096
    assert "--ctx-size 4096" in editor.command_text()


def test_reset_to_default_clears_the_row(make_editor, store: Store):
    editor = make_editor(ctx_size=4096)
    assert editor.reset_button.isEnabled() is False  # nothing selected yet
    editor.select_parameter("ctx_size")
    assert editor.reset_button.isEnabled()
    editor.reset_button.click()
    assert store.calls == [(7, {"ctx_size": None})]
    assert "--ctx-size" not in editor.command_text()
    assert not value_index(editor, "ctx_size").data(CHANGED_ROLE)
    assert not editor.reset_button.isEnabled()
    editor.reset_action.trigger()  # nothing left to reset: no save
    assert len(store.calls) == 1


# ------------------------------------------------------------------------------------------------
# filters


def test_search_matches_name_flag_and_help_and_keeps_groups(make_editor):
    editor = make_editor()
    editor.search_box.setText("top_k")  # the column, and the samplers row whose help names it
    assert visible_keys(editor) == {"top_k", "samplers"}
    assert visible_groups(editor) == ["Sampling"]
    editor.search_box.setText("--top-k")
    assert visible_keys(editor) == {"top_k"}
    editor.search_box.setText("--cont-batching")
    assert visible_keys(editor) == {"cont_batching"}
    editor.search_box.setText("ZZQXJ")  # no such word anywhere: nothing, not even groups
    assert visible_groups(editor) == []
    editor.search_box.setText("top-p sampling")  # words of the help text
    assert visible_keys(editor) == {"top_p"}
    editor.search_box.setText("--keep")  # an "other flag" of the build
    assert visible_groups(editor) == [OTHER_FLAGS_GROUP]
    editor.search_box.clear()
    assert len(visible_keys(editor)) > len(load_schema())


def test_rows_show_their_label_and_the_column_and_flags_stay_findable(make_editor):
    editor = make_editor()
    model = editor.param_model
    ctx = model.index_for("ctx_size")
    assert ctx.data() == load_schema()["ctx_size"].label == "Context size"
    assert model.index_for("n_parallel").data() == "Parallel slots"
    tooltip = ctx.data(Qt.ItemDataRole.ToolTipRole)
    assert "Context size" in tooltip and "ctx_size" in tooltip and "--ctx-size" in tooltip
    assert model.index(ctx.row(), 3, ctx.parent()).data() == "--ctx-size"  # the flag beside it
    editor.search_box.setText("parallel slots")  # the label's words (and an other flag's help)
    assert visible_keys(editor) & set(load_schema().columns) == {"n_parallel"}
    editor.search_box.setText("n_parallel")  # the column name, which the row no longer shows
    assert visible_keys(editor) & set(load_schema().columns) == {"n_parallel"}


def test_show_only_changed(make_editor):
    editor = make_editor(ctx_size=4096, temperature=0.8, custom_params={"--perf": True})
    editor.changed_only_box.setChecked(True)
    # model_path is set, temperature equals the default so it does not count
    assert visible_keys(editor) == {"model_path", "ctx_size", "--perf"}
    assert visible_groups(editor) == ["Model Path & Loading", "Context & Processing", OTHER_FLAGS_GROUP]
    editor.search_box.setText("ctx")
    assert visible_keys(editor) == {"ctx_size"}
    editor.param_model.set_value("top_k", 10)
    editor.search_box.clear()
    assert "top_k" in visible_keys(editor)
    editor.changed_only_box.setChecked(False)
    assert "batch_size" in visible_keys(editor)


# ------------------------------------------------------------------------------------------------
# validation, start, restart, preview


def test_validation_errors_block_start(make_editor, qtbot, tmp_path: Path):
    editor = make_editor()
    assert editor.startAllowed is True
    with qtbot.waitSignal(editor.startAllowedChanged) as blocker:
        editor.param_model.set_value("model_path", str(tmp_path / "gone.gguf"))
    assert blocker.args == [False]
    assert editor.property("startAllowed") is False
    assert "file not found" in editor.issue_list.item(0).text()
    issue_cell = value_index(editor, "model_path")
    assert not issue_cell.data(Qt.ItemDataRole.DecorationRole).isNull()
    assert "file not found" in issue_cell.data(Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(editor.startAllowedChanged) as blocker:
        editor.undo_button.click()
    assert blocker.args == [True]


def test_a_warning_does_not_block_start(make_editor):
    editor = make_editor(host="0.0.0.0")
    assert [i.severity for i in editor.issues()] == ["warning"]
    assert editor.startAllowed is True
    assert "1 warning" in editor.issues_title.text()


def test_unsupported_value_is_an_error_and_left_out_of_the_preview(make_editor, b11434: Capabilities):
    editor = make_editor(hf_file_v="mmproj-F16.gguf")
    assert editor.startAllowed is False
    command = editor.command_text()
    assert command.splitlines()[0].startswith("# left out, cannot start: hf_file_v")
    assert "--hf-file-v" not in command and "--model" in command


def test_running_model_offers_a_restart(make_editor, qtbot):
    editor = make_editor(status="running")
    assert not editor.restart_bar.isVisible()
    editor.param_model.set_value("ctx_size", 2048)
    assert editor.restart_bar.isVisible()
    with qtbot.waitSignal(editor.restartRequested) as blocker:
        editor.restart_button.click()
    assert blocker.args == [7]
    assert not editor.restart_bar.isVisible()


def test_stopped_model_offers_no_restart(make_editor):
    editor = make_editor(status="stopped")
    editor.param_model.set_value("ctx_size", 2048)
    assert not editor.restart_bar.isVisible()


def test_copy_puts_the_masked_command_on_the_clipboard(make_editor):
    editor = make_editor(api_key=["hunter2"], ctx_size=1024)
    editor.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert copied == editor.command_text()
    assert "hunter2" not in copied and "LLAMA_API_KEY=***" in copied and "--ctx-size 1024" in copied


# ------------------------------------------------------------------------------------------------
# editing in the tree itself, as a user does


def edit_in_tree(editor: ParamEditor, key: str):
    editor.select_parameter(key)
    index = value_index(editor, key)
    editor.tree.edit(index)
    widget = editor.tree.indexWidget(index)
    assert widget is not None, f"no editor opened for {key}"
    return widget


def test_typing_a_number_and_return_saves_it(make_editor, store: Store, qtbot):
    editor = make_editor()
    widget = edit_in_tree(editor, "ctx_size")
    assert isinstance(widget, IntEditor)
    widget.selectAll()
    qtbot.keyClicks(widget, "16384")
    qtbot.keyClick(widget, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(store.calls))  # the view commits on Return through a queued call
    assert store.calls == [(7, {"ctx_size": 16384})]
    assert value_index(editor, "ctx_size").data() == "16384"
    assert "--ctx-size 16384" in editor.command_text()


def test_picking_from_a_combo_saves_at_once(make_editor, store: Store):
    editor = make_editor()
    widget = edit_in_tree(editor, "cache_type_v")
    position = widget.findText("q4_0")
    widget.setCurrentIndex(position)
    widget.activated.emit(position)  # what a click on the item does
    assert store.calls == [(7, {"cache_type_v": "q4_0"})]
    assert editor.tree.indexWidget(value_index(editor, "cache_type_v")) is None  # closed


def test_typing_a_path_and_return_saves_it(make_editor, store: Store, qtbot, tmp_path: Path):
    editor = make_editor()
    widget = edit_in_tree(editor, "slot_save_path")
    qtbot.keyClicks(widget.line_edit, str(tmp_path))
    qtbot.keyClick(widget.line_edit, Qt.Key.Key_Return)
    assert store.calls == [(7, {"slot_save_path": str(tmp_path)})]


def test_the_browse_button_fills_the_path(make_editor, store: Store, monkeypatch, tiny_model: Path):
    editor = make_editor()
    widget = edit_in_tree(editor, "mmproj")
    monkeypatch.setattr(
        "llamadash.ui.param_delegates.QFileDialog.getOpenFileName", lambda *args: (str(tiny_model), "")
    )
    widget.button.click()
    assert store.calls == [(7, {"mmproj": str(tiny_model)})]


def test_double_click_edits_supported_rows_only(make_editor, qtbot):
    editor = make_editor()
    viewport = editor.tree.viewport()
    for key, opens in (("hf_file_v", False), ("hf_file", True)):
        editor.select_parameter(key)
        index = value_index(editor, key)
        center = editor.tree.visualRect(index).center()
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=center)
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=center)
        assert (editor.tree.indexWidget(index) is not None) is opens, key


def test_the_preview_is_one_flag_per_line_and_reads_back(make_editor, tiny_model: Path):
    from llamadash.core.params import parse_command_line

    kwargs = '{"enable_thinking": false}'
    editor = make_editor(
        ctx_size=4096,
        tensor_split=["3", "1"],
        cont_batching=False,
        chat_template_kwargs=kwargs,
        custom_params={"--perf": True},
    )
    lines = editor.command_text().splitlines()
    assert lines[0] == "llama-server \\"
    assert "  --ctx-size 4096 \\" in lines
    assert lines[-1] == "  --perf"
    assert parse_command_line(editor.command_text()) == {
        "model_path": str(tiny_model),
        "ctx_size": 4096,
        "cont_batching": False,
        "tensor_split": ["3", "1"],
        "chat_template_kwargs": kwargs,
        "custom_params": {"--perf": True},
    }


def test_edits_reach_the_real_database_and_read_back(qtbot, tiny_model: Path, b11434: Capabilities):
    from llamadash.core import database

    database.init_database()
    try:
        model_id = database.save_model(
            {"name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model)}
        )
        editor = ParamEditor(database.get_model(model_id), database.update_model, b11434)
        qtbot.addWidget(editor)
        model = editor.param_model
        for key, value in [
            ("ctx_size", 4096),
            ("temperature", 0.25),
            ("cache_type_k", "q8_0"),
            ("cont_batching", False),
            ("gpu_layers", "all"),
            ("tensor_split", ["3", "1"]),
            ("control_vector_layer_range", [2, 5]),
            ("api_key", ["k1", "k2"]),
            ("--perf", True),
        ]:
            assert model.set_value(key, value), key
        stored = database.get_model(model_id)
        assert stored["ctx_size"] == 4096 and stored["temperature"] == 0.25
        assert stored["cont_batching"] is False and stored["gpu_layers"] == "all"
        assert stored["tensor_split"] == ["3", "1"] and stored["api_key"] == ["k1", "k2"]
        assert stored["custom_params"] == {"--perf": True}

        reopened = ParamEditor(stored, database.update_model, b11434)
        qtbot.addWidget(reopened)
        assert reopened.config() == editor.config()
        assert reopened.command_text() == editor.command_text()

        editor.undo_button.click()  # the last change: --perf
        assert database.get_model(model_id)["custom_params"] == {}
    finally:
        database.close_database()


def test_switching_builds_regreys_rows_and_revalidates(make_editor, b10001: Capabilities):
    editor = make_editor(hf_file_v="mmproj-F16.gguf", hf_repo="ggml-org/gemma-3-4b-it-GGUF")
    assert editor.startAllowed is False
    editor.set_capabilities(b10001, binary="/opt/old/llama-server")
    assert value_index(editor, "hf_file_v").data(UNSUPPORTED_ROLE) is None
    assert editor.startAllowed is True
    assert "--hf-file-v mmproj-F16.gguf" in editor.command_text()
    assert editor.command_text().startswith("/opt/old/llama-server \\")
    assert "rpc" in visible_keys(editor)
    assert value_index(editor, "rpc").data(UNSUPPORTED_ROLE)


# ------------------------------------------------------------------------------------------------
# the message under the search box is about the latest edit


@pytest.mark.parametrize(
    ("key", "typed"),
    [
        ("host", "   "),  # blank text on an unset row: no change
        ("ctx_size", "0"),  # the default, on an unset row: no change
        ("control_vector_layer_range", ""),  # unset it while unset: no change
        ("host", "127.0.0.2"),  # a change that is saved
    ],
)
def test_a_later_edit_that_goes_through_clears_the_refusal(make_editor, store: Store, key: str, typed: str):
    editor = make_editor()
    editor.proxy.setData(value_index(editor, "control_vector_layer_range"), "5 2", TEXT_EDIT_ROLE)
    assert editor.message_label.isVisible()
    assert "START must not be greater than END" in editor.message_label.text()

    editor.proxy.setData(value_index(editor, key), typed, TEXT_EDIT_ROLE)
    assert not editor.message_label.isVisible()


def test_an_untouched_editor_closed_after_a_refusal_clears_it(make_editor, store: Store, qtbot):
    editor = make_editor()
    editor.proxy.setData(value_index(editor, "port"), "70000", TEXT_EDIT_ROLE)
    assert editor.message_label.text() == "port: 70000 is above the maximum 65535"
    widget = edit_in_tree(editor, "cache_type_v")
    widget.activated.emit(0)  # "default (f16)" on an unset row: a pick that changes nothing
    assert not editor.message_label.isVisible()
    assert store.calls == []


def test_a_refusal_after_a_refusal_shows_the_new_reason(make_editor):
    editor = make_editor()
    editor.proxy.setData(value_index(editor, "control_vector_layer_range"), "5 2", TEXT_EDIT_ROLE)
    editor.proxy.setData(value_index(editor, "gpu_layers"), "lots", TEXT_EDIT_ROLE)
    assert editor.message_label.isVisible()
    assert editor.message_label.text().startswith("gpu_layers: ")


# ------------------------------------------------------------------------------------------------
# a refused undo keeps the undo step


def test_an_undo_the_store_refuses_keeps_its_step_until_it_can_be_saved(make_editor, store: Store):
    editor = make_editor(ctx_size=4096)
    editor.param_model.set_value("ctx_size", 8192)
    store.refuse_with = "the database is locked"

    for undo in (editor.undo_button.click, editor.undo_action.trigger):  # the button and Ctrl+Z
        undo()
        assert editor.param_model.value("ctx_size") == 8192
        assert "--ctx-size 8192" in editor.command_text()
        assert editor.message_label.text() == (
            "ctx_size: could not undo this change, not saved: the database is locked"
        )
        assert editor.undo_button.isEnabled() and editor.undo_action.isEnabled()
        assert editor.param_model.undo_stack.index() == 1

    store.refuse_with = None
    editor.undo_button.click()  # the step was kept: now it goes through
    assert editor.param_model.value("ctx_size") == 4096
    assert store.calls[-1] == (7, {"ctx_size": 4096})
    assert not editor.message_label.isVisible()
    assert not editor.undo_button.isEnabled()

    store.refuse_with = "the disk is full"  # and redo keeps its step the same way
    editor.param_model.undo_stack.redo()
    assert editor.param_model.value("ctx_size") == 4096
    assert editor.param_model.undo_stack.canRedo()
    assert "could not redo this change, not saved: the disk is full" in editor.message_label.text()
    store.refuse_with = None
    editor.param_model.undo_stack.redo()
    assert editor.param_model.value("ctx_size") == 8192
    assert store.calls[-1] == (7, {"ctx_size": 8192})


def test_a_model_deleted_while_edited_refuses_edits_and_undo_then_the_editor_empties(
    qtbot, tiny_model: Path, b11434: Capabilities
):
    from llamadash.core import database

    database.init_database()
    try:
        model_id = database.save_model(
            {"name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model)}
        )
        editor = ParamEditor(database.get_model(model_id), database.update_model, b11434)
        qtbot.addWidget(editor)
        editor.show()
        assert editor.param_model.set_value("ctx_size", 4096)
        database.delete_model(model_id)

        assert not editor.param_model.set_value("ctx_size", 8192)
        assert editor.message_label.text() == f"ctx_size: not saved: there is no model with id {model_id}"
        editor.undo_button.click()
        assert editor.message_label.text() == (
            f"ctx_size: could not undo this change, not saved: there is no model with id {model_id}"
        )
        assert editor.param_model.value("ctx_size") == 4096
        assert editor.undo_button.isEnabled()  # the step is still there

        # what the library does when it deletes the edited model
        with qtbot.waitSignal(editor.startStatusChanged) as status:
            editor.clear_model("tiny was deleted from the library.")
        assert status.args == [None, True, ""]
        assert not editor.has_model and editor.model_id is None and editor.model_name is None
        assert editor.empty_label.isVisible() and not editor.tree.isVisible()
        assert editor.empty_label.text().startswith("tiny was deleted from the library.")
        assert not editor.undo_button.isEnabled() and not editor.message_label.isVisible()
        assert editor.config() == {} and editor.command_text() == ""
    finally:
        database.close_database()


def test_an_empty_editor_opens_a_model_again(qtbot, store: Store, tiny_model: Path, b11434: Capabilities):
    editor = ParamEditor(None, store.save, b11434)
    qtbot.addWidget(editor)
    editor.show()
    assert not editor.has_model and editor.empty_label.isVisible()
    assert "No model is open" in editor.empty_label.text()
    editor.set_model({"id": 7, "name": "tiny", "status": "stopped", "model_path": str(tiny_model)})
    assert editor.has_model and editor.tree.isVisible() and not editor.empty_label.isVisible()
    assert editor.model_name == "tiny"
    assert editor.param_model.set_value("ctx_size", 1024)
    assert store.calls == [(7, {"ctx_size": 1024})]


# ------------------------------------------------------------------------------------------------
# whether the edited model may start, and why not


def test_start_status_says_which_model_and_why(make_editor, qtbot, tmp_path: Path, tiny_model: Path):
    editor = make_editor()
    assert (editor.model_name, editor.start_allowed, editor.start_problem) == ("tiny", True, None)

    with (
        qtbot.waitSignal(editor.startAllowedChanged) as allowed,
        qtbot.waitSignal(editor.startStatusChanged) as status,
    ):
        editor.param_model.set_value("model_path", str(tmp_path / "gone.gguf"))
    problem = editor.start_problem
    assert problem is not None and problem.startswith("model_path: ") and "file not found" in problem
    assert allowed.args == [False]
    assert status.args == ["tiny", False, problem]
    assert editor.issue_list.item(0).text() == problem

    with qtbot.waitSignal(editor.startStatusChanged) as status:  # still blocked, by the other model
        editor.set_model({"id": 8, "name": "other", "model_path": str(tiny_model), "hf_file_v": "x.gguf"})
    assert status.args[:2] == ["other", False] and status.args[2].startswith("hf_file_v: ")
    assert editor.start_problem == status.args[2]

    with qtbot.waitSignal(editor.startStatusChanged) as status:
        editor.set_model_name("renamed")
    assert status.args[:2] == ["renamed", False] and editor.model_name == "renamed"

    with qtbot.waitSignal(editor.startAllowedChanged) as allowed:
        editor.param_model.reset(editor.param_model.index_for("hf_file_v"))
    assert allowed.args == [True]
    assert (editor.start_allowed, editor.start_problem) == (True, None)


def test_start_status_follows_the_build_and_files_on_disk(make_editor, qtbot, tmp_path: Path, b10001):
    draft = tmp_path / "draft.gguf"
    draft.write_bytes(b"GGUF")
    editor = make_editor(hf_file_v="mmproj-F16.gguf", hf_repo="ggml-org/gemma-3-4b-it-GGUF")
    assert editor.start_allowed is False
    with qtbot.waitSignal(editor.startAllowedChanged) as allowed:
        editor.set_capabilities(b10001)
    assert allowed.args == [True]

    assert editor.param_model.set_value("model_draft", str(draft))
    assert editor.start_allowed is True
    draft.unlink()  # gone behind the editor's back: found by the next check
    with qtbot.waitSignal(editor.startStatusChanged) as status:
        editor.revalidate()
    assert status.args[1] is False and status.args[2].startswith("model_draft: ")
    assert editor.property("startAllowed") is False


# ------------------------------------------------------------------------------------------------
# no llama-server to check against


NO_BINARY = "no llama-server found: set it in File ▸ Settings ▸ llama-server binary"


def test_a_missing_llama_server_is_listed_as_a_warning_that_leads_to_settings(
    qtbot, store: Store, tiny_model: Path, b11434: Capabilities
):
    model = {"id": 7, "name": "tiny", "type": "llama", "status": "stopped", "model_path": str(tiny_model)}
    # what the window's controller passes when nothing is found: no build, no binary, and why
    editor = ParamEditor(model, store.save, None, binary=None, binary_problem=NO_BINARY)
    qtbot.addWidget(editor)
    editor.show()
    assert [(i.severity, i.message) for i in editor.issues()] == [("warning", NO_BINARY)]
    assert editor.issues_title.text() != "No problems found."
    assert "1 warning" in editor.issues_title.text()
    assert editor.issue_list.isVisible() and editor.issue_list.item(0).text() == NO_BINARY
    assert editor.command_text().splitlines()[0] == f"# {NO_BINARY}"
    assert editor.start_allowed  # a warning: the start itself is refused with the reason
    with qtbot.waitSignal(editor.settingsRequested):
        editor.issue_list.itemClicked.emit(editor.issue_list.item(0))

    # a binary set meanwhile: the warning goes, the preview names it
    editor.set_capabilities(b11434, "/opt/llama.cpp/bin/llama-server")
    assert editor.issues() == [] and editor.issues_title.text() == "No problems found."
    assert editor.command_text().startswith("/opt/llama.cpp/bin/llama-server")


def test_the_missing_llama_server_comes_before_the_configurations_own_problems(
    qtbot, store: Store, tmp_path: Path
):
    model = {
        "id": 7,
        "name": "tiny",
        "type": "llama",
        "status": "stopped",
        "model_path": str(tmp_path / "gone"),
    }
    editor = ParamEditor(model, store.save, None, binary_problem=NO_BINARY)
    qtbot.addWidget(editor)
    assert [i.severity for i in editor.issues()] == ["warning", "error"]
    assert not editor.start_allowed and editor.start_problem.startswith("model_path: ")
    assert [editor.issue_list.item(r).text().split(":")[0] for r in range(2)] == [
        "no llama-server found",
        "model_path",
    ]
    assert editor.command_text().splitlines()[0] == f"# {NO_BINARY}"


# ------------------------------------------------------------------------------------------------
# in the user's language: sections, the help of the selected row, defaults for this model


def test_sections_come_in_the_order_users_look_for_them(make_editor):
    editor = make_editor()
    groups = visible_groups(editor)
    assert groups[:4] == ["Model Path & Loading", "Context & Processing", "GPU Offloading", "Sampling"]
    assert groups[-1] == OTHER_FLAGS_GROUP
    model = editor.param_model
    assert model.index_for("repack").parent().data() == "Memory & Performance"  # a CPU matter
    gpu = model.group_index("GPU Offloading")
    gpu_rows = {model.index(r, 0, gpu).data(KEY_ROLE) for r in range(model.rowCount(gpu))}
    assert "repack" not in gpu_rows and "gpu_layers" in gpu_rows
    editor.search_box.setText("weight repacking")  # found by its label, in its new section
    assert visible_keys(editor) & set(load_schema().columns) == {"repack"}
    assert visible_groups(editor) == ["Memory & Performance"]


def test_the_selected_rows_help_is_shown_below_the_tree(make_editor, qtbot):
    editor = make_editor()
    assert editor.help_panel.isVisible()
    assert editor.help_text() == NO_ROW_HELP
    editor.select_parameter("ctx_size")
    text = editor.help_text()
    assert text.startswith("Context size")
    assert "-c, --ctx-size" in text and "size of the prompt context" in text
    assert "This model: 512 (from its file)" in text  # the tiny model's trained context
    assert editor.help_label.visibleRegion().boundingRect().height() > 0  # on screen, not a tooltip

    editor.select_parameter("--kv-unified-per-slot")  # an "other flag" of the build: its own help
    assert editor.help_text().startswith("kv-unified-per-slot")
    assert "context limit per parallel slot" in editor.help_text()

    editor.select_parameter("host")
    editor.param_model.set_value("host", "0.0.0.0")
    assert "Warning:" in editor.help_text()  # the row's finding is said there too

    editor.search_box.setText("--mlock")  # search still finds by flag, label, name and help
    assert visible_keys(editor) == {"mlock"}
    editor.search_box.setText("Lock the model in RAM")  # the label
    assert visible_keys(editor) == {"mlock"}
    editor.search_box.setText("model_path")
    assert "model_path" in visible_keys(editor)


def default_cell(editor: ParamEditor, key: str) -> str:
    source = editor.param_model.index_for(key)
    return editor.param_model.index(source.row(), 2, source.parent()).data()


def test_defaults_say_what_they_are_for_this_model(make_editor, tmp_path: Path, monkeypatch):
    import gguf

    from llamadash.core import library

    reads: list[str] = []
    real_read = library.read_model_info

    def counted_read(path: Any) -> Any:  # the real reader, counted
        reads.append(str(path))
        return real_read(path)

    monkeypatch.setattr(library, "read_model_info", counted_read)
    editor = make_editor()
    assert default_cell(editor, "ctx_size") == "0 (from the model: 512)"
    assert reads == [editor.param_model.value("model_path")]
    for _ in range(3):  # painting, selecting and re-checking read nothing again
        editor.tree.viewport().repaint()
        editor.revalidate()
    editor.select_parameter("ctx_size")
    assert len(reads) == 1

    long_context = tmp_path / "long-context.gguf"
    writer = gguf.GGUFWriter(str(long_context), "qwen3")
    writer.add_context_length(32768)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    editor.param_model.set_value("model_path", str(long_context))
    assert default_cell(editor, "ctx_size") == "0 (from the model: 32,768)"
    assert default_cell(editor, "rope_freq_base") == "from the model: 1,000,000"
    assert len(reads) == 2  # once for the new file

    editor.param_model.set_value("model_path", str(tmp_path / "gone.gguf"))  # nothing to read
    assert default_cell(editor, "ctx_size") == "0 (0 = loaded from model)"
    assert default_cell(editor, "rope_freq_base") == "loaded from model"
    editor.set_model({"id": 9, "name": "hf", "hf_repo": "ggml-org/gemma-3-1b-it-GGUF"})
    assert default_cell(editor, "ctx_size") == "0 (0 = loaded from model)"


def test_an_other_flags_default_is_read_up_to_its_closing_parenthesis(make_editor):
    editor = make_editor()
    assert default_cell(editor, "--kv-unified-per-slot") == "unset, behavior unchanged"
    assert default_cell(editor, "--keep") == "0, -1 = all"  # the help's line break is a space
    assert default_cell(editor, "--perf") == "false"  # no "(env: ...)" after it


# ------------------------------------------------------------------------------------------------
# "Restart to apply" only when the new configuration can start


def test_restart_is_not_offered_while_the_new_configuration_cannot_start(make_editor, qtbot, tmp_path):
    editor = make_editor(status="running")
    editor.param_model.set_value("model_path", str(tmp_path / "gone.gguf"))
    assert editor.restart_bar.isVisible() and not editor.restart_button.isVisible()
    assert not editor.restart_offered
    assert editor.restart_problem is not None and editor.restart_problem.startswith("model_path: ")
    label = editor.restart_label.text()
    assert "keeps" in label and "file not found" in label
    with qtbot.assertNotEmitted(editor.restartRequested):
        editor.restart_button.click()  # hidden; even a click that reaches it restarts nothing

    editor.undo_button.click()  # the file is back: the restart can apply the change now
    assert editor.restart_offered and editor.restart_button.isVisible()
    assert editor.restart_label.text() == RESTART_OFFER
    with qtbot.waitSignal(editor.restartRequested) as blocker:
        editor.restart_button.click()
    assert blocker.args == [7] and not editor.restart_bar.isVisible()


def test_restart_says_why_when_launch_planning_refuses(qtbot, store: Store, tiny_model: Path, b11434):
    model = {"id": 7, "name": "tiny", "status": "running", "model_path": str(tiny_model)}
    editor = ParamEditor(model, store.save, None, binary=None, binary_problem=NO_BINARY)
    qtbot.addWidget(editor)
    editor.show()
    editor.param_model.set_value("ctx_size", 1024)  # no error of the configuration itself
    assert editor.start_allowed and not editor.restart_offered
    assert editor.restart_problem == f"cannot start tiny: {NO_BINARY}"
    assert not editor.restart_button.isVisible() and NO_BINARY in editor.restart_label.text()
    editor.set_capabilities(b11434, "/opt/llama.cpp/bin/llama-server")  # found meanwhile
    assert editor.restart_offered and editor.restart_button.isVisible()

    tiny_copy = tiny_model.parent / "copy-for-restart.gguf"
    tiny_copy.write_bytes(tiny_model.read_bytes())
    editor.param_model.set_value("model_path", str(tiny_copy))
    assert editor.restart_offered
    tiny_copy.unlink()  # gone before the click: checked again, nothing restarted
    with qtbot.assertNotEmitted(editor.restartRequested):
        editor.restart_button.click()
    assert not editor.restart_offered and "file not found" in editor.restart_label.text()
    editor.set_running(False)  # stopped: nothing to restart, nothing said
    assert not editor.restart_bar.isVisible()
