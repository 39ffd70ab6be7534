"""The Try pane with the real llama-server and the tiny model: an answer streams, its figures are the
server's, Stop stops it, a stopped model gives the hint; the request's own failures are readable."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from support import free_port, tiny_model_record

from llamadash.core.chat_stream import ChatResult
from llamadash.services.chat_client import ChatRequest
from llamadash.ui.try_pane import NO_MODEL_HINT, TryPane

pytestmark = pytest.mark.integration


@pytest.fixture
def real_setup(tmp_path: Path, tiny_model: Path, llama_server: Path):
    from llamadash.core import database
    from llamadash.core.llama_server import METADATA_KEY
    from llamadash.services.manager import InstanceManager

    data_dir = tmp_path / "data"
    database.init_database(data_dir / "llama-dashboard.db")
    database.set_metadata(METADATA_KEY, str(llama_server))
    database.save_model(tiny_model_record(tiny_model, threads=1))
    database.save_model(tiny_model_record(tiny_model, name="keyed", threads=1, api_key="sekret"))
    manager = InstanceManager(
        data_dir=data_dir, poll_interval_s=0.25, quit_with_app=False, scan_orphans=False
    )
    yield manager
    assert manager.stop_all(10)
    manager.close()
    database.close_database()


def start(qtbot, manager, name: str) -> None:
    inst = manager.start(name)
    qtbot.waitUntil(lambda: inst.state.value == "running", timeout=60_000)


def as_shown(text: str) -> str:
    """``text`` as a QPlainTextEdit gives it back (random weights make any character)."""
    for raw, shown in (("\r\n", "\n"), ("\r", "\n"), ("\u2028", "\n"), ("\u2029", "\n"), ("\xa0", " ")):
        text = text.replace(raw, shown)
    return text


def make_pane(qtbot, manager) -> TryPane:
    pane = TryPane(manager)
    qtbot.addWidget(pane)
    pane.show()
    # random weights may end an answer at once: always generate max_tokens
    pane.request_options = {"ignore_eos": True}
    return pane


def test_an_answer_streams_and_ends_with_the_servers_figures(qtbot, real_setup):
    manager = real_setup
    pane = make_pane(qtbot, manager)
    assert not pane.send_button.isEnabled() and pane.hint.isVisibleTo(pane)
    assert pane.hint.text() == NO_MODEL_HINT and not pane.prompt.isEnabled()
    start(qtbot, manager, "tiny")
    assert pane.model == "tiny" and not pane.hint.isVisibleTo(pane)

    records: list[object] = []
    manager.requestRecorded.connect(lambda name, record: records.append(record))
    deltas: list[str] = []
    pane.system_prompt.setText("You are terse.")
    pane.prompt.setPlainText("Say hello")
    pane.max_tokens.setValue(24)
    with qtbot.waitSignal(pane.answerFinished, timeout=60_000) as finished:
        pane.prompt.setFocus()
        qtbot.keyClick(
            pane.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier
        )  # Ctrl+Enter sends
        assert pane.busy and pane.request is not None
        pane.request.delta.connect(deltas.append)
        assert pane.stop_button.isEnabled() and not pane.send_button.isEnabled()
    result: ChatResult = finished.args[0]
    assert len(deltas) > 1  # streamed, not one block
    assert "".join(deltas) == result.text and pane.answer.toPlainText() == as_shown(result.text)
    assert result.generated_tokens == 24 and result.prompt_tokens and result.prompt_tokens > 0
    assert result.generation_tps is not None and result.generation_tps > 0
    # the server's own count of this request (from its log) agrees
    qtbot.waitUntil(lambda: len(records) == 1, timeout=10_000)
    assert records[0].generated_tokens == result.generated_tokens  # type: ignore[attr-defined]
    status = pane.status.text()
    assert status.startswith(f"prompt {result.prompt_tokens} tokens · generated 24 tokens · ")
    assert status.endswith(" tok/s") and pane.send_button.isEnabled() and not pane.stop_button.isEnabled()


def test_stop_cancels_the_answer_and_a_stopped_model_gives_the_hint(qtbot, real_setup):
    manager = real_setup
    pane = make_pane(qtbot, manager)
    start(qtbot, manager, "tiny")
    pane.prompt.setPlainText("Count to a thousand")
    pane.max_tokens.setValue(8192)  # as much as the context holds: many pieces
    finished: list[object] = []
    pane.answerFinished.connect(finished.append)
    assert pane.send()
    request = pane.request
    assert request is not None

    def click_stop_at_the_second_piece(_text: str) -> None:
        if request.deltas == 2:  # mid-stream, whatever the machine's speed
            pane.stop_button.click()

    request.delta.connect(click_stop_at_the_second_piece)
    qtbot.waitUntil(lambda: not request.running, timeout=60_000)
    assert request.deltas == 2 and not pane.busy and pane.status.text() == "Stopped · 2 pieces received"
    shown = pane.answer.toPlainText()
    qtbot.wait(500)
    assert pane.answer.toPlainText() == shown and finished == []  # nothing more arrives after Stop
    assert pane.send_button.isEnabled()

    manager.stop("tiny")
    qtbot.waitUntil(lambda: pane.hint.isVisibleTo(pane), timeout=20_000)
    assert pane.hint.text() == NO_MODEL_HINT and pane.model == ""
    assert not pane.send_button.isEnabled() and not pane.send()


def test_a_model_with_an_api_key_is_asked_with_it(qtbot, real_setup):
    manager = real_setup
    pane = make_pane(qtbot, manager)
    start(qtbot, manager, "keyed")
    pane.prompt.setPlainText("Hi")
    pane.max_tokens.setValue(4)
    with qtbot.waitSignal(pane.answerFinished, timeout=60_000) as finished:
        assert pane.send()
    assert finished.args[0].generated_tokens == 4
    # without the key the server refuses, and the pane would say so
    bare = ChatRequest(manager.instance("keyed").url, "Hi", max_tokens=4)
    with qtbot.waitSignal(bare.failed, timeout=10_000) as failed:
        bare.send()
    assert failed.args[0].startswith("HTTP 401")


def test_a_request_to_no_server_fails_readably(qtbot):
    refused = ChatRequest(f"http://127.0.0.1:{free_port()}", "Hi")
    with qtbot.waitSignal(refused.failed, timeout=10_000) as failed:
        refused.send()
    assert "connection refused" in failed.args[0].lower()
    nowhere = ChatRequest("", "Hi")
    with qtbot.waitSignal(nowhere.failed, timeout=1_000) as failed:
        nowhere.send()
    assert "not running" in failed.args[0]


def test_the_window_has_a_try_tab_that_follows_the_selected_running_model(qtbot, real_setup, tmp_path):
    from llamadash.core import database
    from llamadash.ui.main_window import MainWindow

    manager = real_setup
    window = MainWindow(
        store=database, db_path=tmp_path / "data" / "llama-dashboard.db", load_models=database.get_models
    )
    qtbot.addWidget(window)
    window.set_manager(manager)
    window.show()
    pane = window.try_pane
    assert pane.hint.isVisibleTo(pane) and pane.model == ""
    start(qtbot, manager, "tiny")
    start(qtbot, manager, "keyed")
    assert pane.running_models() == ["tiny", "keyed"]
    window.instances_view.select("keyed")
    window.try_action.trigger()  # Instances ▸ Try…
    assert window.workspace.currentWidget() is pane and pane.model == "keyed"
    window.instances_view.select("tiny")
    assert pane.model == "tiny"  # the pane follows the selection among running models
