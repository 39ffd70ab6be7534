"""A diagnosed crash in the Instances pane: what it means first, and its fix in one click."""

from __future__ import annotations

import html
from pathlib import Path

from fakes import FakeManager

from llamadash.core import database
from llamadash.core.diagnosis import Diagnosis, ExitFacts, diagnose
from llamadash.ui.instances_view import InstancesModel, InstancesView, fix_text
from llamadash.ui.library_controller import LibraryController
from llamadash.ui.main_window import MainWindow

CRASH_LOGS = Path(__file__).resolve().parents[1] / "data" / "crash-logs"


def amx_diagnosis() -> Diagnosis:
    """The diagnosis of the recorded AMX crash (SIGILL in repacked weights), as the rules give it."""
    lines = (CRASH_LOGS / "amx_repack.log").read_text(encoding="utf-8").splitlines()
    diagnosis = diagnose(
        ExitFacts(signal=4, ready=True), [line for line in lines if not line.startswith("#")]
    )
    assert diagnosis is not None and diagnosis.action == {"set": {"repack": False}}
    return diagnosis


def test_the_fix_button_says_what_it_changes():
    assert fix_text({"set": {"repack": False}}) == "Turn Weight repacking off and start"
    assert fix_text({"open": "configuration", "focus": ("ctx_size",)}) == "Open the configuration"
    assert fix_text(None) is None


def test_a_diagnosed_crash_shows_the_cause_and_offers_its_fix(qtbot):
    manager = FakeManager()
    model = InstancesModel(lambda: [{"name": "q4", "port": 8081}, {"name": "other", "port": 8082}], manager)
    view = InstancesView(model)
    qtbot.addWidget(view)
    view.show()
    diagnosis = amx_diagnosis()
    reason = f"{diagnosis.message}\nllama-server was killed by signal 4 (SIGILL)"
    manager.set_state("q4", "error", reason, diagnosis=diagnosis)
    manager.set_state("other", "error", "llama-server exited with code 1")  # no known cause
    assert view.select("q4")
    assert html.escape(diagnosis.summary) in view.detail_title.text()  # the cause, first
    assert view.fix_button.isVisible() and view.fix_button.text() == "Turn Weight repacking off and start"
    with qtbot.waitSignal(view.fixRequested) as fixed:
        view.fix_button.click()
    assert fixed.args == ["q4", {"repack": False}]
    assert view.select("other")
    assert view.fix_button.isHidden()  # an unknown cause keeps today's text, and no button


def test_the_window_applies_the_fix_to_the_model_and_starts_it(qtbot, tmp_path: Path):
    database.init_database(tmp_path / "data" / "llama-dashboard.db")
    try:
        database.save_model({"name": "q4", "type": "llama", "status": "error", "model_path": "/m/q4.gguf"})
        window = MainWindow(
            store=database, db_path=tmp_path, load_models=database.get_models, restore_layout=False
        )
        qtbot.addWidget(window)
        controller = LibraryController(window, database, tmp_path / "data")
        manager = FakeManager()
        window.set_manager(manager)
        controller.set_manager(manager)
        window.instances_view.fixRequested.emit("q4", {"repack": False})
        model = database.get_model_by_name("q4")
        assert model is not None and model["repack"] is False  # stored on the model, as the editor would
        assert manager.calls == [("start", "q4")]  # and started again
    finally:
        database.close_database()
