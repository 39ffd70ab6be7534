"""Where the instance manager keeps each model's log file: unique, bounded, and old logs still found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadash.core import paths
from llamadash.core.serverlog import legacy_log_file_name
from llamadash.services.manager import InstanceManager

NAMES = ["a/b", "a_b", ".", "..", "CON", "con.txt", "x" * 300, "x" * 299 + "y", "é" * 300, "tiny"]


@pytest.fixture
def manager(qapp, tmp_path: Path) -> Iterator[InstanceManager]:
    made = InstanceManager(data_dir=tmp_path, quit_with_app=False, scan_orphans=False)
    yield made
    made.close()


def test_every_model_has_a_log_file_of_its_own_that_can_be_written(manager: InstanceManager, tmp_path: Path):
    logs = paths.logs_dir(tmp_path)
    found = [manager.log_path(name) for name in NAMES]
    assert len(set(found)) == len(NAMES)
    for name, path in zip(NAMES, found, strict=True):
        assert path.parent == logs and len(path.name.encode()) <= 100
        assert manager.log_path(name) == path  # stable
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)  # a 300-byte name gets a file too
    assert sorted(p.read_text() for p in logs.iterdir()) == sorted(NAMES)


def test_reading_falls_back_to_an_earlier_versions_file_only_when_it_alone_exists(manager: InstanceManager):
    name = "org/model:Q4"
    new = manager.log_path(name)
    old = new.with_name(legacy_log_file_name(name))
    assert manager.log_path(name, existing=True) == new  # neither exists: where it will be written
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text("earlier run\n")
    assert manager.log_path(name, existing=True) == old
    assert manager.log_path(name) == new  # writing never goes to the shared old name
    new.write_text("this run\n")
    assert manager.log_path(name, existing=True) == new
    assert manager.log_path("x" * 300, existing=True) == manager.log_path("x" * 300)  # old name: too long
