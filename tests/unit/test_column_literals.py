"""No ``models`` parameter column is written as a string literal outside the schema and the database.

The parameter schema (``llamadash/core/params/schema.toml``) is the one home of what a column is:
code elsewhere names columns through what :mod:`llamadash.core.params` derives from it
(``SOURCE_COLUMNS``, ``SECRET_COLUMNS``, ``COLUMN.port``, ...). A literal ``"hf_repo"`` in a view is
a copy of that knowledge that the schema cannot see: rename or retire the row and the view quietly
reads ``None``. This test finds every such literal (with :mod:`ast`, so comments and parts of
longer strings do not count) and fails naming file and line.

:data:`ALLOWED` lists the few literals that spell a column's name but mean something else (a JSON
field, a process record's key); a second test fails when an entry is no longer needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from llamadash.core.params import load_schema

PACKAGE = Path(__file__).resolve().parents[2] / "llamadash"
#: Where column names belong: the schema and what it generates, and the database built from it.
EXEMPT = ("core/params/", "core/db/")

#: ``(path under llamadash/, literal)`` that only happen to spell a column's name: each is another
#: thing's key (a JSON field, a table column of the window, a file-name prefix). Not a place for
#: columns: name those through ``llamadash.core.params`` (``COLUMN.port``, ``SOURCE_COLUMNS``, ...).
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        # the "port" field of `status --json` and of the leftover-server listing
        ("cli.py", "port"),
        # the command `llamadash fit NAME` (llama-fit-params' check), not the --fit setting
        ("cli_bench.py", "fit"),
        # a projector's file-name prefix and GGUF `general.type` value
        ("core/library.py", "mmproj"),
        # keys of a process record (the JSON pidfile)
        ("core/pidfile.py", "host"),
        ("core/pidfile.py", "port"),
        # the name of a log-line pattern (a slot's context shift)
        ("core/requests_log.py", "context_shift"),
        # keys of a process record as the manager lists it
        ("services/records.py", "host"),
        ("services/records.py", "port"),
        # the Instances table's own "port" column (an instance's port, not the model's setting)
        ("ui/instances_view.py", "port"),
        # the Prometheus label that names the machine (services/metrics_endpoint.py's HOST_LABEL)
        ("services/metrics_endpoint.py", "host"),
        # the *setting* models_dir (core/settings.py), whose name matches
        ("ui/main_window.py", "models_dir"),
    }
)


def _parameter_columns() -> frozenset[str]:
    """The ``models`` columns that are llama-server parameters (not ``name``, ``status``, ...)."""
    return frozenset(load_schema().columns)


def column_literals(package: Path = PACKAGE) -> dict[tuple[str, str], list[int]]:
    """``(path under the package, literal)`` -> the lines where a parameter column is a literal."""
    columns = _parameter_columns()
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith(EXEMPT):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in columns:
                found.setdefault((relative, node.value), []).append(node.lineno)
    return found


def test_no_new_column_literals_outside_the_schema() -> None:
    new = {key: lines for key, lines in column_literals().items() if key not in ALLOWED}
    listing = [
        f"llamadash/{path}:{line}: {literal!r}"
        for (path, literal), lines in new.items()
        for line in sorted(lines)
    ]
    assert listing == [], (
        "parameter columns written as literals outside llamadash/core/params and core/db; use "
        "llamadash.core.params (COLUMN.<name>, SOURCE_COLUMNS, SECRET_COLUMNS, ...):\n" + "\n".join(listing)
    )


def test_the_allowed_list_only_holds_literals_that_are_still_there() -> None:
    gone = sorted(ALLOWED - set(column_literals()))
    assert gone == [], f"no longer written, delete from ALLOWED: {gone}"


def test_the_check_sees_a_new_literal(tmp_path: Path) -> None:
    """A literal in a new module is found with its line; one in core/params or a comment is not."""
    package = tmp_path / "llamadash"
    (package / "ui").mkdir(parents=True)
    (package / "core" / "params").mkdir(parents=True)
    (package / "ui" / "new_view.py").write_text(
        '# "ctx_size" in a comment is fine\nTITLE = "ctx_size is the context"\nKEY = "ctx_size"\n'
    )
    (package / "core" / "params" / "rows.py").write_text('KEY = "ctx_size"\n')
    assert column_literals(package) == {("ui/new_view.py", "ctx_size"): [3]}
