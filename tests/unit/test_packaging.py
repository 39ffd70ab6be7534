"""The packaging files agree with each other and with the package.

What can be checked without Windows or a build: every ``Source:`` of ``installer.iss`` is a file the
PyInstaller spec produces on Windows (the spec is run with stand-ins for PyInstaller's building
blocks), the installer's version default and ids match the package, the desktop file and AppStream
metainfo carry the id the app gives Qt, the icons are there, and ``--smoke-test`` passes from source.
"""

from __future__ import annotations

import configparser
import re
import struct
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

import llamadash

ROOT = Path(__file__).resolve().parents[2]
ISS = ROOT / "installer.iss"
SPEC = ROOT / "packaging" / "llamadash.spec"
APP_ID = "io.github.llamadash.llamadash"
#: The installer's AppId: never to change, or upgrades would install side by side.
APP_GUID = "72DCED39-CE40-499C-B19F-7E817F8ABA67"


# -- the spec, run with stand-ins ------------------------------------------------------------------


class _Analysis:
    def __init__(self, scripts: list[str], datas: list[tuple[str, str]], **_: Any) -> None:
        self.scripts = scripts
        self.pure: list[Any] = []
        self.binaries: list[tuple[str, str, str]] = []
        self.datas = []
        for src, dest_dir in datas:
            source = Path(src)
            files = [p for p in source.rglob("*") if p.is_file()] if source.is_dir() else [source]
            for file in files:
                rel = file.relative_to(source) if source.is_dir() else Path(file.name)
                self.datas.append(((Path(dest_dir) / rel).as_posix(), str(file), "DATA"))


class _Exe:
    def __init__(self, _pyz: Any, scripts: list[str], *_: Any, name: str, console: bool, **kw: Any) -> None:
        self.scripts, self.name, self.console, self.icon = scripts, name, console, kw.get("icon")


class _Collect:
    def __init__(self, *items: Any, name: str, **_: Any) -> None:
        self.name = name
        self.exes = [i for i in items if isinstance(i, _Exe)]
        self.tocs = [i for i in items if isinstance(i, list)]


def _run_spec(platform: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute the spec as PyInstaller would on ``platform``; returns its namespace."""
    monkeypatch.setattr(sys, "platform", platform)
    versioninfo = types.ModuleType("PyInstaller.utils.win32.versioninfo")
    for cls in (
        "FixedFileInfo",
        "StringFileInfo",
        "StringStruct",
        "StringTable",
        "VarFileInfo",
        "VarStruct",
        "VSVersionInfo",
    ):
        setattr(versioninfo, cls, lambda *a, **k: (a, k))
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.win32.versioninfo", versioninfo)
    namespace: dict[str, Any] = {
        "SPECPATH": str(SPEC.parent),
        "Analysis": _Analysis,
        "PYZ": lambda *a, **k: None,
        "EXE": _Exe,
        "COLLECT": _Collect,
        "__file__": str(SPEC),
    }
    exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), namespace)
    return namespace


def _windows_layout(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The files of the one-folder bundle on Windows, as ``dist/llamadash/...`` paths."""
    coll = _run_spec("win32", monkeypatch)["coll"]
    top = f"dist/{coll.name}"
    files = {f"{top}/{exe.name}.exe" for exe in coll.exes}
    files |= {f"{top}/_internal/{dest}" for toc in coll.tocs for dest, _src, _kind in toc}
    return files


def _iss_sources() -> list[tuple[str, str]]:
    """``(Source, DestDir)`` of every line of the installer's [Files] section."""
    rows = []
    for line in ISS.read_text(encoding="utf-8").splitlines():
        source = re.search(r'\bSource:\s*"([^"]+)"', line)
        if source and not line.lstrip().startswith(";"):
            dest = re.search(r'\bDestDir:\s*"([^"]+)"', line)
            rows.append((source.group(1), dest.group(1) if dest else ""))
    return rows


def test_every_installer_source_is_in_the_windows_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    layout = _windows_layout(monkeypatch)
    rows = _iss_sources()
    assert rows, "installer.iss has no [Files] Source lines"
    for source, dest in rows:
        path = PureWindowsPath(source).as_posix()
        if not path.startswith("dist/"):
            assert (ROOT / path).is_file(), f"{source}: not a file of the repository"
        elif path.endswith("/*"):
            folder = path[:-1]
            assert any(f.startswith(folder) for f in layout), f"{source}: the spec puts nothing in {folder}"
            assert dest == "{app}\\" + PureWindowsPath(folder.removeprefix("dist/llamadash/")).name
        else:
            assert path in layout, f"{source}: the spec does not produce it on Windows"


def test_the_windows_bundle_has_the_exes_schema_and_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = _run_spec("win32", monkeypatch)
    layout = _windows_layout(monkeypatch)
    exes = {exe.name: exe for exe in namespace["coll"].exes}
    assert not exes["llamadash"].console and exes["llamadash-cli"].console
    assert exes["llamadash"].icon.endswith("llamadash.ico") and Path(exes["llamadash"].icon).is_file()
    internal = "dist/llamadash/_internal"
    assert f"{internal}/llamadash/core/params/schema.toml" in layout
    # llamadash/ui/icons.py looks for resources/ two folders above its package: _internal/resources
    icons_module = Path(f"{internal}/llamadash/ui/icons.py")
    assert f"{icons_module.parents[2].as_posix()}/resources/llamadash.svg" in layout
    assert namespace["VERSION"] == llamadash.__version__


def test_the_linux_bundle_has_the_schema_and_no_cli_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    coll = _run_spec("linux", monkeypatch)["coll"]
    assert [exe.name for exe in coll.exes] == ["llamadash"]
    dests = {dest for toc in coll.tocs for dest, _src, _kind in toc}
    assert "llamadash/core/params/schema.toml" in dests


def test_installer_version_and_ids_match_the_package() -> None:
    text = ISS.read_text(encoding="utf-8")
    default = re.search(r'#ifndef AppVersion\s*\n\s*#define AppVersion "([^"]+)"', text)
    assert default and default.group(1) == llamadash.__version__
    assert re.search(r"^AppVersion=\{#AppVersion\}$", text, re.MULTILINE)
    assert re.search(r"^AppId=\{\{" + APP_GUID + r"\}$", text, re.MULTILINE)
    assert f'#define AppUserModelID "{APP_ID}"' in text
    assert re.search(r'Type: filesandordirs; Name: "\{app\}\\_internal"', text.split("[InstallDelete]")[1])
    assert "--minimized" in text and "HKCU" in text
    assert "AppMutex=" in text and "CloseApplications=" in text


def test_the_app_mutex_is_the_one_the_app_holds() -> None:
    from llamadash.__main__ import RUNNING_MUTEX

    assert f"AppMutex={RUNNING_MUTEX}" in ISS.read_text(encoding="utf-8")


def test_desktop_file_and_metainfo_carry_the_app_id() -> None:
    app_source = (ROOT / "llamadash" / "app.py").read_text(encoding="utf-8")
    assert f'setDesktopFileName("{APP_ID}")' in app_source
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str  # type: ignore[assignment,method-assign]
    desktop.read(ROOT / "resources" / f"{APP_ID}.desktop", encoding="utf-8")
    entry = desktop["Desktop Entry"]
    assert entry["Icon"] == APP_ID and entry["Exec"].split()[0] == "llamadash"
    root = ET.parse(ROOT / "resources" / f"{APP_ID}.metainfo.xml").getroot()
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == f"{APP_ID}.desktop"
    assert llamadash.__version__ in {r.get("version") for r in root.iter("release")}


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_icons_are_rendered() -> None:
    from render_icons import ICO_SIZES, PNG_SIZES  # packaging/ is on the path below

    for size in PNG_SIZES:
        assert _png_size(ROOT / "resources" / "icons" / f"llamadash-{size}.png") == (size, size)
    ico = (ROOT / "resources" / "llamadash.ico").read_bytes()
    assert struct.unpack("<HHH", ico[:6]) == (0, 1, len(ICO_SIZES))


@pytest.fixture(autouse=True)
def _packaging_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "packaging"))


@pytest.mark.parametrize("script", ["packaging/linux/build.sh", "packaging/ci_package.sh"])
def test_scripts_are_strict_bash(script: str) -> None:
    path = ROOT / script
    assert "set -euo pipefail" in path.read_text(encoding="utf-8")
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_smoke_test_from_source() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llamadash", "--smoke-test"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "llamadash --smoke-test: OK" in result.stdout
    assert re.search(r"^first_sample: [\d.]+ s$", result.stdout, re.MULTILINE)
