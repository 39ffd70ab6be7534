"""The model library widget over the real database: adding, scanning, editing, filtering."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QDialog, QDialogButtonBox
from support import recorded_llama_server

from llamadash.core import database
from llamadash.ui import library_view
from llamadash.ui.library_view import CommandLineDialog, HfSpecDialog, LibraryView, ScanDialog


@pytest.fixture
def db():
    database.init_database()  # in the test's own data directory (conftest)
    yield database
    database.close_database()


class RecordingView(LibraryView):
    """The library view with its message boxes recorded (title, text) instead of shown."""

    def __init__(self, store: Any) -> None:
        self.errors: list[tuple[str, str]] = []
        self.infos: list[tuple[str, str]] = []
        super().__init__(store)

    def _show_error(self, title: str, text: str) -> None:
        self.errors.append((title, text))

    def _show_info(self, title: str, text: str) -> None:
        self.infos.append((title, text))


@pytest.fixture
def view(qtbot, db):
    widget = RecordingView(db)
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    return widget


def split_model(directory: Path, stem: str = "x") -> list[Path]:
    """A llama model split in two parts the way llama.cpp's gguf-split names them."""
    writer = gguf.GGUFWriter(str(directory / f"{stem}.gguf"), "llama", split_max_tensors=2)
    writer.add_name(stem)
    writer.add_context_length(4096)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for i in range(4):
        writer.add_tensor(f"blk.{i}.weight", np.zeros((4, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(directory.glob(f"{stem}-*.gguf"))


def drop_event(cls, paths: list[Path]):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    if cls is QDragEnterEvent:
        return mime, QDragEnterEvent(
            QPoint(5, 5),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    return mime, QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )


# ------------------------------------------------------------------------------------------------
# adding


def test_adding_the_tiny_gguf_fills_type_and_metadata(view: RecordingView, db, tiny_model: Path, qtbot):
    with qtbot.waitSignal(view.libraryChanged):
        added = view.add_files([tiny_model])
    stored = db.get_model(added[0])
    assert stored["name"] == "tiny-test-llama"
    assert stored["type"] == "llama"  # general.architecture
    assert stored["status"] == "stopped"
    assert stored["model_path"] == str(tiny_model)
    assert view.visible_names() == ["tiny-test-llama"]
    assert view.selected_model()["id"] == added[0]
    details = dict(view.details_rows())
    assert details["Architecture"] == "llama"
    assert details["Name"] == "tiny-test-llama"
    assert details["Parameters"] == "116 K (counted from the tensor shapes)"
    assert details["Quantization"] == "F32"
    assert details["Trained context"] == "512 tokens"
    assert details["Size on disk"].endswith("KiB")
    assert view.column_texts("Source") == ["file: tiny-llama.gguf"]


def test_adding_a_file_that_is_already_in_the_library_says_so_and_adds_nothing(
    view: RecordingView, db, tiny_model: Path
):
    # (it used to add "tiny-test-llama (copy)" silently; Duplicate is the way to a second entry,
    # with its own name and port: test_duplicate_copies_the_settings_under_a_new_name)
    view.add_files([tiny_model])
    assert view.add_files([tiny_model]) == []
    assert [m["name"] for m in db.get_models()] == ["tiny-test-llama"]
    assert view.errors == [
        (
            "Some files were not added",
            f"{tiny_model}: already in the library as 'tiny-test-llama' (Duplicate makes a second entry)",
        )
    ]


def test_dropping_gguf_files_adds_them(view: RecordingView, db, tiny_model: Path, tmp_path: Path):
    text = tmp_path / "readme.txt"
    text.write_text("no model")
    _, enter = drop_event(QDragEnterEvent, [text])
    view.dragEnterEvent(enter)
    assert not enter.isAccepted()  # nothing to add: the drop is refused
    _, enter = drop_event(QDragEnterEvent, [tiny_model])
    view.dragEnterEvent(enter)
    assert enter.isAccepted()
    _, drop = drop_event(QDropEvent, [tiny_model, text])
    view.dropEvent(drop)
    assert [(m["name"], m["type"]) for m in db.get_models()] == [("tiny-test-llama", "llama")]


def test_a_projector_or_broken_file_is_not_added_as_a_model(
    view: RecordingView, db, tiny_model: Path, tmp_path: Path
):
    projector = shutil.copy(tiny_model, tmp_path / "mmproj-tiny.gguf")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"nope")
    assert view.add_files([projector, broken]) == []
    assert db.get_models() == []
    ((_title, text),) = view.errors
    assert "multimodal projector" in text and "not a GGUF file" in text


def test_adding_one_part_adds_the_whole_split_model(view: RecordingView, db, tmp_path: Path):
    parts = split_model(tmp_path)
    view.add_files([parts[1]])
    (model,) = db.get_models()
    assert model["model_path"] == str(parts[0])  # llama-server is given the first part
    details = dict(view.details_rows())
    assert details["Parts"] == "2 of 2"
    assert details["Parameters"] == "128 (counted from the tensor shapes)"
    assert details["Quantization"] == "F16"


def test_hf_spec_dialog_accepts_only_a_spec(qtbot):
    dialog = HfSpecDialog()
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled()
    dialog.spec_edit.setText("not a spec")
    assert not ok.isEnabled()
    assert "user/model" in dialog.status_label.text()
    dialog.spec_edit.setText("ggml-org/gemma-3-1b-it-GGUF:Q4_K_M")
    assert ok.isEnabled()
    assert dialog.name_edit.placeholderText() == "gemma-3-1b-it-Q4_K_M"


def test_adding_from_an_hf_spec(view: RecordingView, db):
    model_id = view.add_hf_spec("ggml-org/gemma-3-1b-it-GGUF:Q4_K_M")
    stored = db.get_model(model_id)
    assert (stored["name"], stored["type"], stored["hf_repo"]) == (
        "gemma-3-1b-it-Q4_K_M",
        "unknown",
        "ggml-org/gemma-3-1b-it-GGUF:Q4_K_M",
    )
    details = dict(view.details_rows())
    assert details["Source"] == "Hugging Face: ggml-org/gemma-3-1b-it-GGUF:Q4_K_M"
    assert details["Metadata"].startswith("n/a")
    with pytest.raises(ValueError, match="user/model"):
        view.add_hf_spec("gemma")


def test_command_line_dialog_shows_errors_and_stays_open(qtbot):
    dialog = CommandLineDialog()
    qtbot.addWidget(dialog)
    dialog.text_edit.setPlainText("llama-server -m model.gguf --ctx-size")
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.config is None
    assert "--ctx-size needs a value" in dialog.error_label.text()
    assert not dialog.error_label.isHidden()


def test_adding_from_a_pasted_command_line(view: RecordingView, db, tiny_model: Path, qtbot):
    dialog = CommandLineDialog()
    qtbot.addWidget(dialog)
    dialog.text_edit.setPlainText(f"llama-server \\\n  -m {tiny_model} -c 4096 \\\n  --port 8081 --perf")
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.config is not None
    model_id = view.add_config(dialog.config)
    stored = db.get_model(model_id)
    assert stored["type"] == "llama"  # read from the file the command line names
    assert stored["name"] == "tiny-test-llama"
    assert (stored["ctx_size"], stored["port"]) == (4096, 8081)
    assert stored["custom_params"] == {"--perf": True}


def test_command_line_errors_reach_the_caller(view: RecordingView, db):
    with pytest.raises(ValueError, match="unexpected argument"):
        view.add_command_line("llama-server stray -m x.gguf")
    assert db.get_models() == []


# ------------------------------------------------------------------------------------------------
# scanning


def make_models_dir(root: Path, tiny_model: Path) -> Path:
    (root / "qwen").mkdir(parents=True)
    split_model(root / "qwen")
    shutil.copy(tiny_model, root / "qwen" / "mmproj-x.gguf")
    shutil.copy(tiny_model, root / "single.gguf")
    return root


def test_scan_dialog_lists_split_models_once_and_offers_projectors(qtbot, tmp_path: Path, tiny_model: Path):
    root = make_models_dir(tmp_path / "models", tiny_model)
    result = library_view.library.scan_directory(root)
    dialog = ScanDialog(result, root)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 2
    assert [dialog.table.item(r, 0).text() for r in range(2)] == ["qwen/x-00001-of-00002.gguf", "single.gguf"]
    assert dialog.table.item(0, 3).text().endswith("(2 of 2 parts)")
    assert [dialog.projector_list.item(i).text() for i in range(dialog.projector_list.count())] == [
        "qwen/mmproj-x.gguf"
    ]
    assert dialog.projector_box(0).currentText() == "qwen/mmproj-x.gguf"  # the one beside it
    assert dialog.projector_box(1).currentText() == "(none)"
    chosen = dialog.chosen()
    assert [(info.path.name, projector.name if projector else None) for info, projector in chosen] == [
        ("x-00001-of-00002.gguf", "mmproj-x.gguf"),
        ("single.gguf", None),
    ]


def test_scan_adds_the_checked_models_with_their_projector(
    view: RecordingView, db, tmp_path: Path, tiny_model: Path, monkeypatch
):
    root = make_models_dir(tmp_path / "models", tiny_model)

    def accept_without_single(dialog: ScanDialog) -> int:
        dialog.set_checked(1, False)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ScanDialog, "exec", accept_without_single)
    view.scan_dialog(root)
    (model,) = db.get_models()
    assert model["model_path"] == str(root / "qwen" / "x-00001-of-00002.gguf")
    assert model["mmproj"] == str(root / "qwen" / "mmproj-x.gguf")
    assert model["name"] == "x" and model["type"] == "llama"
    assert dict(view.details_rows())["Projector"] == str(root / "qwen" / "mmproj-x.gguf")


def test_scan_of_a_directory_without_models_says_so(view: RecordingView, tmp_path: Path):
    view.scan_dialog(tmp_path)
    assert view.errors == [("No models found", f"{tmp_path} holds no readable .gguf models.")]


# ------------------------------------------------------------------------------------------------
# duplicate, rename, delete


def test_duplicate_copies_the_settings_under_a_new_name(view: RecordingView, db, tiny_model: Path):
    original = view.add_files([tiny_model])[0]
    db.update_model(original, {"ctx_size": 8192, "status": "running"})
    view.refresh(select_id=original)
    first = view.duplicate_selected()
    view.select_model(original)
    second = view.duplicate_selected()
    copies = [db.get_model(first), db.get_model(second)]
    assert [c["name"] for c in copies] == ["tiny-test-llama (copy)", "tiny-test-llama (copy 2)"]
    assert all(c["ctx_size"] == 8192 and c["status"] == "stopped" for c in copies)
    assert [db.get_model(original)["port"], *(c["port"] for c in copies)] == [8080, 8081, 8082]
    assert view.selected_model()["id"] == second


def test_rename(view: RecordingView, db, tiny_model: Path):
    first = view.add_files([tiny_model])[0]
    view.add_hf_spec("user/other-GGUF")
    view.select_model(first)
    view._ask_text = lambda title, label, text: "my llama"  # type: ignore[method-assign]
    assert view.rename_selected() is True
    assert db.get_model(first)["name"] == "my llama"
    assert "my llama" in view.visible_names()
    assert view.rename_selected("other") is False  # taken by the HF model
    assert db.get_model(first)["name"] == "my llama"
    assert "already exists" in view.errors[-1][1]


def test_delete_asks_first(view: RecordingView, db, tiny_model: Path):
    model_id = view.add_files([tiny_model])[0]
    asked = []

    def refuse(title: str, text: str) -> bool:
        asked.append(text)
        return False

    view._confirm = refuse  # type: ignore[method-assign]
    assert view.delete_selected() is False
    assert db.get_model(model_id) is not None
    assert "Delete tiny-test-llama" in asked[0] and "file stays on disk" in asked[0]
    view._confirm = lambda title, text: True  # type: ignore[method-assign]
    assert view.delete_selected() is True
    assert db.get_models() == [] and view.visible_names() == []
    assert tiny_model.exists()


def test_a_running_model_is_not_deleted(view: RecordingView, db, tiny_model: Path, tmp_path: Path):
    # running as every llamadash sees it: a live llama-server process in the process records (the
    # status column alone is what the database said when the list was read; it may be stale)
    model_id = view.add_files([tiny_model])[0]
    db.update_model(model_id, {"status": "running"})
    view.refresh()
    with recorded_llama_server(tmp_path, "tiny-test-llama"):
        assert view.delete_selected(confirm=False) is False
        assert db.get_model(model_id) is not None
        assert view.errors[-1] == ("The model is running", "Stop tiny-test-llama before deleting it.")
        assert view.rename_selected("renamed") is False
        assert view.errors[-1] == ("The model is running", "Stop tiny-test-llama before renaming it.")
    assert view.delete_selected(confirm=False) is True  # its server is gone: the status was stale


# ------------------------------------------------------------------------------------------------
# filters and selection


def test_filter_by_status_and_type(view: RecordingView, db):
    db.save_model({"name": "a", "type": "llama", "status": "running"})
    db.save_model({"name": "b", "type": "qwen3", "status": "stopped"})
    db.save_model({"name": "c", "type": "llama", "status": "stopped"})
    view.refresh()
    assert [view.type_filter.itemText(i) for i in range(view.type_filter.count())] == [
        "All",
        "llama",
        "qwen3",
    ]
    view.set_status_filter("stopped")
    assert view.visible_names() == ["b", "c"]
    view.set_type_filter("llama")
    assert view.visible_names() == ["c"]
    view.set_status_filter(None)
    assert view.visible_names() == ["a", "c"]
    view.refresh()  # re-reading keeps the filters
    assert view.visible_names() == ["a", "c"]
    view.set_type_filter(None)
    assert view.visible_names() == ["a", "b", "c"]


def test_selection_is_signalled_and_activation_opens(view: RecordingView, db, qtbot, tiny_model: Path):
    model_id = view.add_files([tiny_model])[0]
    view.table.clearSelection()
    assert view.selected_model() is None
    assert not view.rename_button.isEnabled()
    with qtbot.waitSignal(view.modelSelected) as selected:
        view.select_model(model_id)
    assert selected.args[0]["id"] == model_id
    assert view.rename_button.isEnabled()
    with qtbot.waitSignal(view.modelActivated) as activated:
        view.table.activated.emit(view.proxy.index(0, 0))
    assert activated.args[0]["name"] == "tiny-test-llama"


# ------------------------------------------------------------------------------------------------
# the first run: an empty library says how to fill it


def test_an_empty_library_explains_how_to_add_models(view: RecordingView, db, tiny_model: Path, monkeypatch):
    assert view.showing_empty_state and view.empty_state.isVisible() and not view.table.isVisible()
    text = view.empty_label.text()
    for way in ("Add ▸ GGUF file…", "drop .gguf files here", "Add ▸ Scan a directory…", "Hugging Face"):
        assert way in text
    # its own button adds a file, and the list takes its place
    monkeypatch.setattr(
        library_view.QFileDialog, "getOpenFileNames", lambda *_a, **_k: ([str(tiny_model)], "")
    )
    view.empty_add_button.click()
    assert [m["name"] for m in db.get_models()] == ["tiny-test-llama"]
    assert not view.showing_empty_state and view.table.isVisible()
    # deleting the last model brings the explanation back
    monkeypatch.setattr(view, "_confirm", lambda title, text: True)
    assert view.delete_selected()
    assert view.showing_empty_state and view.empty_state.isVisible()


def test_the_empty_librarys_scan_button_scans_a_folder(view: RecordingView, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(library_view.QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(tmp_path))
    view.empty_scan_button.click()
    assert view.errors == [("No models found", f"{tmp_path} holds no readable .gguf models.")]


def test_dropping_a_file_on_the_empty_library_adds_it(view: RecordingView, db, tiny_model: Path):
    assert view.showing_empty_state
    _, enter = drop_event(QDragEnterEvent, [tiny_model])
    view.dragEnterEvent(enter)
    assert enter.isAccepted()
    _, drop = drop_event(QDropEvent, [tiny_model])
    view.dropEvent(drop)
    assert not view.showing_empty_state and view.visible_names() == ["tiny-test-llama"]


# ------------------------------------------------------------------------------------------------
# the list compares models at a glance: size, quantization, parameters, context (sortable)


def header_model(path: Path, *, context: int, weights: int, quant: Any = None, arch: str = "llama") -> Path:
    """A GGUF whose header says ``context`` and whose one tensor holds ``weights`` float32s."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(path.stem)
    writer.add_context_length(context)
    writer.add_file_type(quant if quant is not None else gguf.LlamaFileType.ALL_F32)
    writer.add_tensor("token_embd.weight", np.zeros(weights, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def store_models(db, paths: list[Path]) -> None:
    with db.transaction():
        for path in paths:
            db.save_model({"name": path.stem, "type": "llama", "status": "stopped", "model_path": str(path)})


def test_the_list_shows_size_quantization_parameters_and_context(view: RecordingView, db, qtbot, tmp_path):
    header_model(tmp_path / "small.gguf", context=4096, weights=2000, quant=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    parts = split_model(tmp_path)
    store_models(db, [tmp_path / "small.gguf", parts[0], tmp_path / "gone.gguf"])
    view.add_hf_spec("ggml-org/gemma-3-1b-it-GGUF:Q4_K_M")
    view.refresh()
    assert view.table_model.COLUMNS == (
        "Name", "Type", "Status", "Size", "Quantization", "Parameters", "Context", "Source",
    )  # fmt: skip
    qtbot.waitUntil(lambda: view.headers_pending == 0, timeout=10_000)
    qtbot.waitUntil(lambda: library_view.READING not in view.column_texts("Size"), timeout=10_000)
    names = view.visible_names()
    rows = {
        name: {
            column: view.column_texts(column)[i]
            for column in ("Size", "Quantization", "Parameters", "Context")
        }
        for i, name in enumerate(names)
    }
    assert rows["small"]["Quantization"] == "Q4_K_M"
    assert rows["small"]["Parameters"] == "2 K"  # counted from the tensor shapes
    assert rows["small"]["Context"] == "4,096"
    assert rows["small"]["Size"].endswith("KiB")
    split = parts[0].stem  # x-00001-of-00002: both parts counted
    assert rows[split] == {
        "Size": rows[split]["Size"],
        "Quantization": "F16",
        "Parameters": "128",
        "Context": "4,096",
    }
    assert rows["gone"] == {"Size": "n/a", "Quantization": "n/a", "Parameters": "n/a", "Context": "n/a"}
    hf = next(name for name in names if name not in ("small", split, "gone"))
    assert rows[hf] == {"Size": "n/a", "Quantization": "n/a", "Parameters": "n/a", "Context": "n/a"}
    small = view.proxy.index(names.index("small"), view.table_model.PARAMETERS)
    assert small.data(Qt.ItemDataRole.ToolTipRole) == "2 K (counted from the tensor shapes)"


def test_size_parameters_and_context_sort_as_numbers(view: RecordingView, db, qtbot, tmp_path):
    # as text these sort the other way round: "10 K" < "2 K" < "900", "32,768" < "4,096" < "512"
    store_models(
        db,
        [
            header_model(tmp_path / "a.gguf", context=32768, weights=10_000),
            header_model(tmp_path / "b.gguf", context=512, weights=900),
            header_model(tmp_path / "c.gguf", context=4096, weights=2_000),
        ],
    )
    view.refresh()
    qtbot.waitUntil(lambda: view.headers_pending == 0, timeout=10_000)
    qtbot.waitUntil(lambda: library_view.READING not in view.column_texts("Context"), timeout=10_000)
    view.sort_by("Context")
    assert view.visible_names() == ["b", "c", "a"]
    assert view.column_texts("Context") == ["512", "4,096", "32,768"]
    view.sort_by("Parameters", Qt.SortOrder.DescendingOrder)
    assert view.visible_names() == ["a", "c", "b"]
    assert view.column_texts("Parameters") == ["10 K", "2 K", "900"]
    view.sort_by("Size")
    assert view.visible_names() == ["b", "c", "a"]
    view.sort_by("Name", Qt.SortOrder.DescendingOrder)
    assert view.visible_names() == ["c", "b", "a"]


def test_two_hundred_models_fill_in_without_blocking_the_window(view: RecordingView, db, qtbot, tmp_path):
    import time

    paths = [
        header_model(tmp_path / f"m{i:03}.gguf", context=512 * (1 + i % 64), weights=100 + i)
        for i in range(200)
    ]
    store_models(db, paths)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:  # how long the event loop went without turning, while the list filled
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    from PySide6.QtCore import QTimer

    timer = QTimer(view)
    timer.timeout.connect(tick)
    timer.start(5)
    started = time.perf_counter()
    view.refresh()
    listed = time.perf_counter() - started
    assert len(view.visible_names()) == 200
    assert set(view.column_texts("Context")) == {library_view.READING}  # read later, not in refresh()
    last[0] = time.perf_counter()
    qtbot.waitUntil(lambda: library_view.READING not in view.column_texts("Context"), timeout=60_000)
    filled = time.perf_counter() - started
    timer.stop()
    print(
        f"\n200 models: listed in {listed * 1000:.0f} ms, headers filled in {filled * 1000:.0f} ms, "
        f"longest GUI stall while filling {max(gaps, default=0) * 1000:.0f} ms"
    )
    assert view.column_texts("Context")[:2] == ["512", "1,024"]
    view.refresh()  # cached per file version: a second refresh reads nothing
    assert library_view.READING not in view.column_texts("Context") and view.headers_pending == 0


def test_name_type_and_status_columns_fit_their_text_and_keep_a_width_the_user_chose(
    view: RecordingView, db, qtbot
):
    from llamadash.ui.library_view import LibraryTableModel as Columns

    db.save_model({"name": "a", "type": "llama", "status": "stopped"})
    view.refresh()
    header = view.table.horizontalHeader()
    cells = view.table.fontMetrics()
    narrow = header.sectionSize(Columns.NAME)
    assert narrow >= header.fontMetrics().horizontalAdvance("Name")  # the title fits
    long_name = "an-unusually-long-model-name-that-needs-room-q4_k_m"
    db.save_model({"name": long_name, "type": "a-type-with-a-long-name", "status": "stopped"})
    view.refresh()
    assert header.sectionSize(Columns.NAME) > cells.horizontalAdvance(long_name) > narrow
    assert header.sectionSize(Columns.TYPE) > cells.horizontalAdvance("a-type-with-a-long-name")
    assert header.sectionResizeMode(Columns.NAME) == header.ResizeMode.Interactive  # the user may resize

    header.resizeSection(Columns.NAME, 90)  # as the user's drag of the section's edge does
    db.save_model({"name": long_name + "-and-more", "type": "llama", "status": "stopped"})
    view.refresh()
    assert header.sectionSize(Columns.NAME) == 90  # the user's width is kept
    assert header.sectionSize(Columns.TYPE) > cells.horizontalAdvance("a-type-with-a-long-name")
