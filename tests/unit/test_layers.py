"""The architecture is the folder layout: core imports no Qt, services import no widgets."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import llamadash

PACKAGE = Path(llamadash.__file__).parent

FORBIDDEN = {
    "core": ("PySide6", "shiboken6", "pyqtgraph", "llamadash.services", "llamadash.ui", "llamadash.cli"),
    "services": ("PySide6.QtWidgets", "PySide6.QtGui", "pyqtgraph", "llamadash.ui"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(layer: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in sorted(imported_modules(path)):
            for bad in FORBIDDEN[layer]:
                if module == bad or module.startswith(bad + "."):
                    found.append(f"{path.relative_to(PACKAGE)} imports {module}")
    return found


def test_core_imports_no_qt_and_no_upper_layer():
    assert PACKAGE.joinpath("core").is_dir()
    assert violations("core") == []


def test_services_import_no_widgets():
    assert PACKAGE.joinpath("services").is_dir()
    assert violations("services") == []


def test_checker_sees_a_forbidden_import(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtWidgets import QWidget\nimport pyqtgraph as pg\n")
    assert {"PySide6.QtWidgets", "pyqtgraph"} <= imported_modules(bad)


def test_importing_every_core_module_loads_no_qt():
    modules = sorted(
        "llamadash." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in (PACKAGE / "core").rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'pyqtgraph')))\n"
        "print(','.join(qt))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_instance_states_are_named_in_one_place():
    """The set of active states lives in core/states.py: no ("running", "loading") literal anywhere
    else, and no hedge for a state that might be an enum or its text (a StrEnum is both)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "states.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Tuple)
                and len(node.elts) == 2
                and all(isinstance(e, ast.Constant) and e.value in ("running", "loading") for e in node.elts)
                and {e.value for e in node.elts if isinstance(e, ast.Constant)} == {"running", "loading"}
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: an active-states literal")
        if 'getattr(state, "value"' in path.read_text(encoding="utf-8"):
            offenders.append(f"{path.relative_to(PACKAGE)}: getattr(state, 'value', ...)")
    assert offenders == []
