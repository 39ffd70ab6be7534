"""One dashboard per data directory."""

from __future__ import annotations

from pathlib import Path

from llamadash.ui.single_instance import SingleInstance


def test_second_launch_brings_the_first_forward(qtbot, tmp_path: Path) -> None:
    first = SingleInstance(tmp_path / "data")
    assert not first.notify_running()  # nobody is running yet
    assert first.listen()
    second = SingleInstance(tmp_path / "data")
    with qtbot.waitSignal(first.showRequested, timeout=3000):
        assert second.notify_running()
    other = SingleInstance(tmp_path / "other-data")
    assert not other.notify_running()  # another data directory is another dashboard
    first.close()
    qtbot.wait(50)  # the closed server is deleted by the event loop
    assert not SingleInstance(tmp_path / "data").notify_running()
