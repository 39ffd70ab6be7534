"""``llamadash`` with arguments: which go to the command line, which open the window."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llamadash.__main__ import wants_cli
from support import run_cli


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["--data-dir", "/d", "models", "list"],
        ["bogus"],  # a mistyped command: the CLI says which it knows
        ["--data-dir", "/d", "statsu"],
        ["--minimized", "activity"],
        ["--version"],
        ["-h"],
    ],
)
def test_a_command_or_a_mistyped_one_goes_to_the_command_line(argv: list[str]) -> None:
    assert wants_cli(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--minimized"],
        ["--data-dir", "/d"],
        ["--data-dir", "status"],  # a data folder called "status"
        ["-platform", "offscreen"],
        ["--data-dir=/d", "--minimized", "-style", "fusion"],
    ],
)
def test_the_window_s_own_options_open_the_window(argv: list[str]) -> None:
    assert not wants_cli(argv)


def test_llamadash_bogus_says_invalid_choice_instead_of_opening_the_window(tmp_path: Path) -> None:
    # no display at all: were the window to start, it would fail differently (or hang) rather than
    # print argparse's error
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    result = run_cli(tmp_path / "data", "bogus", timeout=60, env=env)
    assert result.returncode == 2
    assert "invalid choice: 'bogus'" in result.stderr
    assert "status" in result.stderr  # it lists the commands it knows
