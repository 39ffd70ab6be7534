"""The command-line interface: ``llamadash <command>``.

Without a command, ``llamadash`` opens the window (see :mod:`llamadash.__main__`). User mistakes
print one line to stderr and exit with status 1 (2 for bad usage); they never show a traceback.

The ``models`` commands parse and print only: the library's operations and rules are the
:class:`llamadash.core.library_service.Library`'s, the same the window uses. The CLI's
``is_running`` is :func:`~llamadash.core.library_service.running_by_process_records`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from llamadash import __version__, cli_bench, cli_remote, cli_run_workers, cli_workers
from llamadash.core import database as db
from llamadash.core import activity, library, model_export, paths
from llamadash.core.launch import LaunchError, MissingBinaryError
from llamadash import cli_serve
from llamadash.core.library_service import (
    AUTO_RESTART,
    OWN_SWITCHES,
    STOP_TIMEOUT,
    Library,
    LibraryError,
    running_by_process_records,
)
from llamadash.core.llama_server import (
    METADATA_KEY,
    LlamaServerNotFound,
    configured_capabilities,
    find_llama_server,
)
from llamadash.core.messages import disk_full_text, is_no_space, short_repr
from llamadash.core.params import (
    COLUMN,
    CapabilityError,
    CommandError,
    CommandLineError,
    ParamValueError,
    build_command,
    format_command,
    load_schema,
    parse_bool,
    probe_binary,
    validate_config,
)
from llamadash.core.params.schema import META_COLUMNS, invalid_stored_values
from llamadash.core.states import ACTIVE_STATES

EXPORT_FORMATS = ("json", "sh", "ini")
MASK = "***"
#: The longest --ready-timeout: a week. The load timer counts milliseconds in a 32-bit int (about 24
#: days at most); a model that has not loaded in a week never will.
MAX_READY_TIMEOUT_S = 7 * 24 * 3600.0


class CliError(Exception):
    """A user mistake, reported as one line on stderr."""


# --------------------------------------------------------------------------------------------
# parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamadash",
        description="A desktop dashboard for llama.cpp's llama-server. Without a command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"llamadash {__version__}")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the database and logs in DIR (default: LLAMADASH_DATA_DIR, portable data/, "
        "or the per-user data directory)",
    )
    parser.add_argument("--minimized", action="store_true", help="start minimized (GUI only)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_db = sub.add_parser("db", help="the database: info, export, import, vacuum")
    db_sub = p_db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("info", help="path, size, version and row counts")
    p = db_sub.add_parser("export", help="write a consistent backup of the database to FILE")
    p.add_argument("file")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p = db_sub.add_parser(
        "import", help="replace the database with FILE (a backup of the current one is kept)"
    )
    p.add_argument("file")
    db_sub.add_parser("vacuum", help="compact the database file")

    p_models = sub.add_parser("models", help="the model library")
    m_sub = p_models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = m_sub.add_parser("list", help="list the configured models")
    p.add_argument("--json", action="store_true")
    p.add_argument("--status", choices=("running", "stopped", "loading", "error"))
    p.add_argument("--type")
    p = m_sub.add_parser("show", help="show one model's configuration")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--show-secrets", action="store_true", help="print API keys and tokens in clear")
    p = m_sub.add_parser("remove", help="delete a model from the library (its files stay on disk)")
    p.add_argument("name")
    p = m_sub.add_parser(
        "add", help="add a model from a GGUF file, a llama-server command line or a remote server's URL"
    )
    p.add_argument("name")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-path", metavar="FILE", help="the model's .gguf file")
    source.add_argument("--from-command", metavar="CMDLINE", help='a pasted "llama-server ..." command line')
    cli_remote.add_models_add_arguments(source, p)
    p.add_argument("--type", help="model type (default: the GGUF's architecture)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="set a parameter")
    p = m_sub.add_parser(
        "set",
        help="change parameters: KEY=VALUE (empty VALUE resets to the default); extra llama-server "
        "flags as --flag=VALUE, --flag (a switch) or --flag= (take it out); auto_restart=on|off "
        "restarts the server after a crash; served=on|off, load_on_startup=on|off and "
        "stop_timeout_s=SECONDS are the library router's (llamadash serve)",
    )
    p.add_argument("name")
    p.add_argument("assignments", metavar="KEY=VALUE", nargs="+")
    p = m_sub.add_parser("command", help="print the exact llama-server command for a model")
    p.add_argument("name")
    p.add_argument("--show-secrets", action="store_true", help="print API keys and tokens in clear")

    p = m_sub.add_parser(
        "export", help="write models to FILE: llamadash JSON, a shell script or router presets"
    )
    p.add_argument("file")
    p.add_argument("names", metavar="NAME", nargs="*", help="the models to export (default: all)")
    p.add_argument("--format", choices=EXPORT_FORMATS, help="default: from FILE's extension, else json")
    p.add_argument("--include-secrets", action="store_true", help="put API keys and tokens in the file")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p = m_sub.add_parser(
        "import", help="add models from a llamadash JSON file, a presets INI or command lines"
    )
    p.add_argument("file")
    p.add_argument(
        "--on-conflict",
        choices=("skip", "overwrite", "keep-both"),
        default="skip",
        help="what to do with a name already in the library (default: skip)",
    )

    p = sub.add_parser("llama-server", help="show or set the llama-server binary")
    p.add_argument("--path", metavar="BIN", help="use BIN from now on")
    p.add_argument("--clear", action="store_true", help="forget the configured path and detect again")

    p = sub.add_parser("metrics", help="the recent metrics history")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--instances",
        action="store_true",
        help="the per-instance samples (tokens/s, slots, CPU, RAM) instead of the system's; with "
        '--json, both: {"system": [...], "instances": [...]}',
    )

    p = sub.add_parser("activity", help="the record of requests the servers answered, newest first")
    p.add_argument("--model", metavar="NAME", help="only this model's requests")
    p.add_argument(
        "--since", metavar="AGE", help="only the last AGE: 30m, 1h, 1d, 7d, 2w (default: all stored)"
    )
    p.add_argument("--limit", metavar="N", type=int, default=None, help="at most N requests (the newest)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="the stored records as a JSON list")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row (empty cells: not known)")

    p = sub.add_parser(
        "run",
        help="run one model's llama-server in the foreground (no window); Ctrl-C or SIGTERM stops it",
    )
    p.add_argument("name")
    p.add_argument(
        "--wait-ready",
        action="store_true",
        help="print the server's URL on stdout once /health answers 200 (the log goes to stderr); "
        "exit 1 if it never becomes ready",
    )
    p.add_argument(
        "--ready-timeout",
        metavar="S",
        type=float,
        default=None,
        help="seconds the model may take to load (default: 600)",
    )
    cli_remote.add_run_arguments(p)
    cli_run_workers.add_run_argument(p)
    cli_serve.add_parser(sub)
    p = sub.add_parser("status", help="every model's state, PID and port, and llama-servers left behind")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--stop-orphans",
        action="store_true",
        help="stop the llama-server processes that a killed dashboard left behind",
    )
    cli_workers.add_parser(sub)
    cli_bench.add_parsers(sub)
    return parser


# --------------------------------------------------------------------------------------------
# helpers
def open_database(data_dir: str | None) -> Path:
    """Open the database of ``data_dir`` (or the default location) and return its path."""
    directory = paths.resolve_data_dir(data_dir)
    path = paths.default_database_path(directory)
    # the CLI is not the dashboard: it must not reset the uptime of a dashboard running on this database
    db.init_database(path, record_start=False)
    return path


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _time(ms: int | None) -> str:
    if ms is None:
        return "n/a"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _library() -> Library:
    """The library service over the open database; a model runs when its process records say so."""
    from llamadash.core import db as store  # the functions of llamadash.core.database, typed

    return Library(store, is_running=running_by_process_records)


def _get_model(name: str) -> dict[str, Any]:
    return _library().get(name)


def _warn_stored(models: Sequence[dict[str, Any]], err: TextIO) -> None:
    """One warning per value in the database that is not valid (another program wrote it)."""
    for model in models:
        for column, problem in invalid_stored_values(model):
            print(f"llamadash: warning: {_stored_problem(model, column, problem)}", file=err)


def _stored_problem(model: dict[str, Any], column: str, problem: str) -> str:
    name = str(model.get("name"))
    return (
        f"model {name!r}: {column}: the value stored in the database is not valid: {problem}; "
        f"fix it with 'llamadash models set {shlex.quote(name)} {column}=VALUE' ({column}= resets it)"
    )


def _port_text(model: dict[str, Any]) -> str:
    """The port llama-server will use (8080 when none is stored), or the stored value that is not one."""
    port = library.configured_port(model)
    return str(port) if port is not None else f"{model.get(COLUMN.port)} (invalid)"


def _params_of(model: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k not in META_COLUMNS}


def _mask(model: dict[str, Any]) -> dict[str, Any]:
    schema = load_schema()
    return {
        key: (MASK if key in schema and schema[key].secret and value is not None else value)
        for key, value in model.items()
    }


def _parse_assignments(items: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``KEY=VALUE`` items -> (parameter values, custom flags).

    ``--flag=VALUE`` is a custom flag with a value, ``--flag`` alone a custom switch, and ``--flag=``
    (empty) takes the custom flag out (``None`` in the result), as ``KEY=`` resets a parameter.
    """
    schema = load_schema()
    values: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if key.startswith("-") and len(key.lstrip("-")) > 0:
            custom[key] = (text if text != "" else None) if sep else True
            continue
        if not sep or not key:
            raise CliError(f"expected KEY=VALUE, got {item!r}")
        if key.startswith("-"):
            raise CliError(f"expected --flag=VALUE, got {item!r}")
        elif key in ("name", "type"):
            if not text.strip():
                raise CliError(f"{key} may not be empty")
            values[key] = text.strip()
        elif key in OWN_SWITCHES:  # llamadash's own settings, not llama-server parameters
            enabled = parse_bool(text)
            if enabled is None:
                raise CliError(f"{key} is on or off (or true/false, 1/0), got {text!r}")
            values[key] = enabled
        elif key == cli_remote.REMOTE_URL:  # a remote server's address (checked by the library)
            values[key] = text.strip()
        elif key == STOP_TIMEOUT:
            values[key] = cli_serve.stop_timeout_value(text)
        elif key in schema:
            values[key] = schema[key].from_text(text)
        else:
            raise CliError(
                f"unknown parameter {key!r}: see 'llamadash models show NAME' for the names; extra "
                "llama-server flags go in as --flag=value"
            )
    return values, custom


def _configured_caps(data_dir: Path) -> Any:
    """The configured build's capabilities, or None (it may run the binary: never inside a transaction)."""
    caps, _binary = configured_capabilities(db.get_metadata(METADATA_KEY), data_dir / "cache")
    return caps


def _report_issues(config: dict[str, Any], changed: set[str], err: TextIO, caps: Any) -> None:
    """Print validation warnings; refuse errors about what this command changes.

    Checked against the configured llama-server build when there is one (``caps``: a custom flag
    it does not know is refused now rather than at the next start).
    """
    issues = validate_config(config, caps)
    blocking = [i for i in issues if i.severity == "error" and (i.column in changed or not changed)]
    for issue in issues:
        if issue not in blocking:
            print(f"llamadash: {issue.severity}: {issue.column}: {issue.message}", file=err)
    if blocking:
        raise CliError("; ".join(f"{i.column}: {i.message}" for i in blocking))


def _capabilities(binary: Path, label: str | None, data_dir: Path):
    return probe_binary(binary, label=label, cache_dir=data_dir / "cache")


def _locate_binary():
    return find_llama_server(db.get_metadata(METADATA_KEY))


# --------------------------------------------------------------------------------------------
# commands
def import_notes(info: dict[str, Any]) -> list[str]:
    """What a database import left out and kept, as lines for the terminal (from its inspection)."""
    lines = []
    foreign = info.get("foreign_objects") or []
    if foreign:
        lines.append(f"left out, not llamadash's (nothing in it ran): {', '.join(foreign)}")
    kept = info.get("machine_settings") or {}
    if kept:
        lines.append(
            "kept this computer's own settings, not the file's: "
            + ", ".join(
                f"{key} (the file says {short_repr(cli_remote.shown_setting(key, str(value)), 60)})"
                for key, value in sorted(kept.items())
            )
        )
    return lines


def cmd_db(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = db.get_database_path()
    if args.db_command == "info":
        counts = db.count_rows()
        print(f"path:     {path}", file=out)
        print(f"size:     {_human_size(db.get_database_size())}", file=out)
        print(f"version:  {db.get_db_version()}", file=out)
        width = max(len(table) for table in counts) + 1
        for table, count in counts.items():
            print(f"{table + ':':<{width}} {count} rows", file=out)  # scripts read the plain number
        return 0
    if args.db_command == "export":
        target = Path(args.file).expanduser()
        last = [-1]

        def progress(done: int, total: int) -> None:
            percent = 100 if total <= 0 else int(done * 100 / total)
            if percent != last[0] and err.isatty():
                print(f"\rexporting... {percent}%", end="", file=err)
            last[0] = percent

        if target.exists() and not target.is_dir() and not args.force:
            raise CliError(f"{target} exists; add --force to overwrite it")
        db.export_database(target, overwrite=args.force, progress=progress)
        if err.isatty():
            print(file=err)
        print(f"exported {path} to {target} ({_human_size(target.stat().st_size)})", file=out)
        return 0
    if args.db_command == "import":
        info = db.inspect_database_file(Path(args.file).expanduser())
        backup = db.import_database(Path(args.file).expanduser())
        print(
            f"imported {args.file}: {info.get('models', 0)} models, {info.get('metrics_rows', 0)} metrics rows, "
            f"{info.get('request_rows', 0)} request records (version {info.get('db_version')})",
            file=out,
        )
        for line in import_notes(info):
            print(line, file=out)
        if backup:
            print(f"the previous database was saved as {backup}", file=out)
        return 0
    if args.db_command == "vacuum":
        before = db.get_database_size()
        db.vacuum_database()
        print(f"vacuumed {path}: {_human_size(before)} -> {_human_size(db.get_database_size())}", file=out)
        return 0
    raise AssertionError(args.db_command)


def cmd_models(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    action = args.models_command
    if action == "list":
        models = db.get_models(status=args.status, type=args.type)
        if args.json:
            _warn_stored(models, err)
            json.dump([_mask(m) for m in models], out, indent=2)
            print(file=out)
            return 0
        if not models:
            if args.status or args.type:
                print("no model matches", file=out)
            else:
                print(
                    "no models yet: add one with 'llamadash models add NAME --model-path FILE.gguf'", file=out
                )
            return 0
        _warn_stored(models, err)
        rows = [("NAME", "TYPE", "STATUS", "PORT", "MODEL")]
        for m in models:
            source = library.model_source(m)
            rows.append((m["name"], m["type"], m["status"], _port_text(m), source[1] if source else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4], file=out)
        return 0
    if action == "show":
        model = _get_model(args.name)
        _warn_stored([model], err)
        shown = model if args.show_secrets else _mask(model)
        reason = _error_reason(model)
        if args.json:
            json.dump({**shown, "error_reason": reason}, out, indent=2)
            print(file=out)
            return 0
        print(f"{shown['name']}  ({shown['type']}, {shown['status']})", file=out)
        if reason:
            print("error: " + reason.replace("\n", "\n  "), file=out)
        print(f"added {_time(shown.get('created_at'))}, changed {_time(shown.get('updated_at'))}", file=out)
        print(f"{AUTO_RESTART}: {'on' if shown.get(AUTO_RESTART) else 'off'}", file=out)
        if shown.get(cli_remote.REMOTE_URL):
            print(f"remote server: {shown[cli_remote.REMOTE_URL]} (attached, never started here)", file=out)
        cli_serve.print_router_settings(shown, out)
        schema = load_schema()
        for section, params in schema.sections().items():
            shown_values = [(p, shown.get(p.column)) for p in params if shown.get(p.column) is not None]
            if shown_values:
                print(f"\n[{section}]", file=out)
                for param, value in shown_values:
                    text = value if value == MASK else param.to_text(value)
                    print(f"  {param.column} = {text}", file=out)
        if shown.get("custom_params"):
            print("\n[Custom flags]", file=out)
            print("  " + json.dumps(shown["custom_params"]), file=out)
        return 0
    if action == "remove":
        removed = _library().delete(args.name)  # refused while it runs
        print(f"removed {removed['name']}", file=out)
        return 0
    if action == "add":
        if cli_remote.is_remote_add(args):
            return cli_remote.add_remote(args, out, _library())
        values, custom = _parse_assignments(args.set)
        settings: dict[str, Any] = {k: v for k, v in values.items() if k not in ("name", "type")}
        flags = {flag: value for flag, value in custom.items() if value is not None}
        if flags:
            settings["custom_params"] = flags
        caps = _configured_caps(data_dir)  # before the transaction: it may run llama-server --help

        def check(config: Any, changed: set[str]) -> None:
            _report_issues(dict(config), changed, err, caps)

        options: dict[str, Any] = {
            "model_type": args.type or values.get("type"),
            "settings": settings,
            "check": check,
        }
        # without a port, the lowest free one (chosen and saved in one write transaction)
        if args.from_command is not None:
            added = _library().add_command_line(args.from_command, args.name, **options)
        else:
            added = _library().add_file(args.model_path, name=args.name, **options)
        if added.note is not None:
            print(f"llamadash: note: {added.note}", file=err)
        print(f"added {added.name} (id {added.id}, type {added.model['type']})", file=out)
        return 0
    if action == "set":
        values, custom = _parse_assignments(args.assignments)
        caps = _configured_caps(data_dir)  # before the transaction: it may run llama-server --help

        def check_set(config: Any, changed: set[str]) -> None:
            _report_issues(dict(config), changed, err, caps)

        changed = _library().set_parameters(args.name, values, custom, check=check_set)
        print(f"updated {changed.model['name']}: " + ", ".join(sorted(changed.changes)), file=out)
        return 0
    if action == "command":
        model = _get_model(args.name)
        cli_remote.refuse_remote(model, "has no llama-server command here")
        _warn_stored([model], err)
        located = _locate_binary()
        caps = _capabilities(located.path, located.label, data_dir)
        argv, env = build_command(_params_of(model) | {"custom_params": model.get("custom_params")}, caps)
        print(format_command(argv, env, mask_secrets=not args.show_secrets), file=out)
        return 0
    if action == "export":
        return _export_models(args, out)
    if action == "import":
        # a presets INI may hold flags llamadash has no parameter for: the user's build says which are real
        caps, _binary = configured_capabilities(db.get_metadata(METADATA_KEY), data_dir / "cache")
        incoming = model_export.parse_models_file(Path(args.file).expanduser(), caps)
        imported = _library().import_models(incoming, args.on_conflict.replace("-", "_"))
        counts = imported.counts
        print(
            f"imported {args.file}: {counts['add']} added, {counts['overwrite']} overwritten, "
            f"{counts['skip']} skipped",
            file=out,
        )
        for item in imported.plan:
            print(f"  {item.action:<9} {item.name}", file=out)
        return 0
    raise AssertionError(action)


def _export_models(args: argparse.Namespace, out: TextIO) -> int:
    target = Path(args.file).expanduser()
    fmt = args.format or {".sh": "sh", ".ini": "ini"}.get(target.suffix.lower(), "json")
    if fmt == "ini" and args.include_secrets:
        raise CliError(
            "a presets INI never holds secrets (llama-server's router passes no keys to its models)"
        )
    names = list(dict.fromkeys(args.names))  # a name given twice is exported once
    models = [_get_model(name) for name in names] if names else db.get_models()
    if not models:
        raise CliError("the library is empty: nothing to export")
    if target.is_dir():
        raise CliError(f"{target} is a folder; give a file name")
    if not target.parent.is_dir():
        raise CliError(f"the folder {target.parent} does not exist")
    if target.exists() and not args.force:
        raise CliError(f"{target} exists; add --force to overwrite it")
    if fmt == "json":
        text = model_export.export_json(models, include_secrets=args.include_secrets)
    elif fmt == "sh":
        text = model_export.export_shell(models, include_secrets=args.include_secrets)
    else:
        text = model_export.export_presets(models)
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:  # no half-written export left; name the file (a full disk says where)
        with contextlib.suppress(OSError):
            target.unlink()
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    if fmt == "sh":
        target.chmod(0o700 if args.include_secrets else 0o755)
    elif args.include_secrets:
        target.chmod(0o600)  # it holds API keys
    print(f"exported {len(models)} model(s) to {target} ({fmt})", file=out)
    return 0


def cmd_llama_server(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    if args.path:  # checked first: a refused --path changes nothing, --clear included
        path = Path(args.path).expanduser()
        if not path.exists():
            raise CliError(f"{path} does not exist")
        located = find_llama_server(str(path))
        caps = _capabilities(located.path, located.label, data_dir)  # refuses what is not llama-server
        db.set_metadata(METADATA_KEY, str(located.path))
    elif args.clear:
        db.delete_metadata(METADATA_KEY)
    located = _locate_binary()
    caps = _capabilities(located.path, located.label, data_dir)
    print(f"binary:   {located.path}", file=out)
    print(f"found by: {located.source}", file=out)
    print(f"build:    {caps.label}", file=out)
    if caps.version_text:
        first_line = caps.version_text.strip().splitlines()[0]
        # llama-server says "version: 0.6.0-dev (...)": print the version once, not "version:  version: ..."
        print(f"version:  {first_line.removeprefix('version:').strip()}", file=out)
    print(f"flags:    {len(caps.flags)} accepted", file=out)
    return 0


def cmd_metrics(args: argparse.Namespace, out: TextIO) -> int:
    if args.minutes <= 0:
        raise CliError("--minutes must be positive")
    rows = db.get_metrics_history(args.minutes)
    if args.instances:
        return _print_instance_samples(args, rows, out)
    if args.json:
        json.dump(rows, out, indent=2)
        print(file=out)
        return 0
    if not rows:
        unit = "minute" if args.minutes == 1 else "minutes"
        print(
            f"no metrics in the last {args.minutes:g} {unit} (they are sampled while llamadash runs)",
            file=out,
        )
        return 0
    columns = [
        ("TIME", "timestamp", None),
        ("CPU%", "cpu_usage", 1),
        ("MEM%", "memory_usage", 1),
        ("DISK%", "disk_usage", 1),
        ("GPU%", "gpu_usage", 1),
        ("GPU°C", "gpu_temperature", 0),
        ("VRAM MB", "gpu_memory_used", 0),
        ("GPU W", "gpu_power_usage", 0),
        ("MODELS", "active_models", None),
        ("REQ/MIN", "requests_per_minute", 1),
    ]

    def cell(row: dict[str, Any], key: str, digits: int | None) -> str:
        value = row.get(key)
        if key == "timestamp" and value is not None:
            return dt.datetime.fromtimestamp(value / 1000).strftime("%H:%M:%S")
        if value is None:
            return "n/a"
        return f"{value:.{digits}f}" if digits is not None else str(value)

    table = [[c[0] for c in columns]] + [[cell(r, c[1], c[2]) for c in columns] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for r in table:
        print("  ".join(r[i].rjust(widths[i]) for i in range(len(columns))), file=out)
    return 0


#: The per-instance samples' table: header, column, decimals (None: as stored).
_INSTANCE_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("TIME", "timestamp", None),
    ("MODEL", "model", None),
    ("TOK/S", "tokens_per_second", 1),
    ("PROMPT T/S", "prompt_tokens_per_second", 1),
    ("BUSY", "busy_slots", None),
    ("SLOTS", "total_slots", None),
    ("PROC", "requests_processing", None),
    ("DEFER", "requests_deferred", None),
    ("CPU%", "cpu_percent", 1),
    ("RAM MB", "memory_mb", 0),
    ("VRAM MB", "vram_mb", 0),
)


def _print_instance_samples(args: argparse.Namespace, system: list[dict[str, Any]], out: TextIO) -> int:
    """``metrics --instances``: each running instance's samples (with ``--json``, the system's too)."""
    samples = db.get_instance_history(args.minutes)
    if args.json:
        json.dump({"system": system, "instances": samples}, out, indent=2)
        print(file=out)
        return 0
    if not samples:
        unit = "minute" if args.minutes == 1 else "minutes"
        print(
            f"no instance samples in the last {args.minutes:g} {unit} "
            "(they are sampled while llamadash runs a model)",
            file=out,
        )
        return 0

    def cell(row: dict[str, Any], key: str, digits: int | None) -> str:
        value = row.get(key)
        if key == "timestamp" and value is not None:
            return dt.datetime.fromtimestamp(value / 1000).strftime("%H:%M:%S")
        if value is None:
            return "n/a"
        return f"{value:.{digits}f}" if digits is not None else str(value)

    header = [c[0] for c in _INSTANCE_COLUMNS]
    cells = [[cell(r, c[1], c[2]) for c in _INSTANCE_COLUMNS] for r in samples]
    _print_table(header, cells, out, numeric=[c[1] not in ("timestamp", "model") for c in _INSTANCE_COLUMNS])
    return 0


def _print_table(header: list[str], rows: list[list[str]], out: TextIO, *, numeric: Sequence[bool]) -> None:
    """Columns padded to their widest cell: numbers to the right, text to the left."""
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        cells = [r[i].rjust(widths[i]) if numeric[i] else r[i].ljust(widths[i]) for i in range(len(header))]
        print("  ".join(cells).rstrip(), file=out)


_AGE_UNITS_MS = {"s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)


def parse_age(text: str) -> int:
    """An age such as ``30m``, ``1h``, ``1d``, ``7d`` or ``2w`` in milliseconds.

    Raises:
        CliError: ``text`` is not such an age, or is 0.
    """
    match = _AGE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise CliError(
            f"--since must be an age such as 30m, 1h, 1d, 7d or 2w (s, m, h, d, w), got {short_repr(text)}"
        )
    return round(float(match.group(1)) * _AGE_UNITS_MS[match.group(2).lower()])


def cmd_activity(args: argparse.Namespace, out: TextIO) -> int:
    """``llamadash activity``: the stored request records, newest first (table, JSON or CSV)."""
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit must be 1 or more, got {args.limit}")
    since_ms = None if args.since is None else time.time_ns() // 1_000_000 - parse_age(args.since)
    if args.model is not None and not args.model.strip():
        raise CliError("--model is empty; give a model's name, or leave it out for all models")
    rows = db.get_requests(model=args.model, since_ms=since_ms, limit=args.limit)
    if args.json:
        json.dump(rows, out, indent=2)
        print(file=out)
        return 0
    if args.csv:
        activity.write_csv(rows, out)
        return 0
    if not rows:
        which = f" of {args.model.strip()}" if args.model else ""
        when = f" in the last {args.since.strip()}" if args.since else ""
        print(
            f"no requests{which}{when}: llamadash records each request a model it runs answers "
            "(see 'llamadash run NAME' or the window's Activity tab)",
            file=out,
        )
        return 0
    columns = activity.TABLE_COLUMNS
    cells = [[activity.cell_text(row, column.key) for column in columns] for row in rows]
    _print_table([c.header for c in columns], cells, out, numeric=[c.numeric for c in columns])
    return 0


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO, data_dir: Path) -> int:
    """Run one model headless until Ctrl-C/SIGTERM (exit 0) or it fails (exit 1)."""
    from PySide6.QtCore import QCoreApplication

    from llamadash.services.manager import InstanceManager, quit_on_signals

    model = _get_model(args.name)
    problems = invalid_stored_values(model)
    if problems:  # llama-server would get (or silently lose) a value nobody chose: say which
        details = "; ".join(_stored_problem(model, column, problem) for column, problem in problems)
        raise CliError(f"{args.name} is not started: {details}")
    if args.ready_timeout is not None and not 0 < args.ready_timeout <= MAX_READY_TIMEOUT_S:
        raise CliError(
            f"--ready-timeout must be a number of seconds above 0 and at most {MAX_READY_TIMEOUT_S:g} (a week)"
        )
    prometheus = cli_remote.prometheus_options(args)  # refused before anything starts
    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0] if sys.argv else "llamadash"])
    log_out = err if args.wait_ready else out
    started_workers = cli_run_workers.start_stopped_workers(args, model, err, data_dir)  # or refuses
    manager = InstanceManager(
        data_dir=data_dir,
        load_timeout_s=args.ready_timeout if args.ready_timeout is not None else 600.0,
        quit_with_app=False,
    )
    outcome = {"code": 0, "ready": False}
    warned: set[int | None] = set()

    def on_line(name: str, line: str) -> None:
        if name == args.name:
            print(line, file=log_out, flush=True)

    def on_state(name: str, state: str, reason: str) -> None:
        if name != args.name:
            return
        inst = manager.instance(name)
        if state == "loading" and inst is not None and inst.pid not in warned:
            warned.add(inst.pid)  # once per run (a restart warns again)
            for warning in inst.warnings:
                print(f"llamadash: warning: {warning}", file=err, flush=True)
        if state == "running" and not outcome["ready"]:
            outcome["ready"] = True
            url = inst.url if inst else ""
            if args.wait_ready:
                print(url, file=out, flush=True)
            print(f"llamadash: {name} is ready at {url}", file=err, flush=True)
        elif state == "error":
            first_line = reason.splitlines()[0] if reason else "failed"
            if inst is not None and (inst.restart_pending or inst.external):  # a remote one: retried
                print(f"llamadash: {name}: {first_line}", file=err, flush=True)
                return
            print(f"llamadash: error: {first_line}", file=err, flush=True)
            outcome["code"] = 1
            app.quit()
        elif state == "stopped" and inst is not None and not inst.active:
            if reason:
                print(f"llamadash: {name}: {reason}", file=err, flush=True)
            app.quit()

    def on_log_file(
        name: str, problem: str
    ) -> None:  # once per failure of the log file, and once it recovers
        if name != args.name:
            return
        if problem:
            print(
                f"llamadash: {name}: warning: {problem}; the server goes on, its output is not saved",
                file=err,
                flush=True,
            )
            return
        inst = manager.instance(name)
        note = inst.log_file_recovery_note if inst is not None else ""
        print(
            f"llamadash: {name}: the log file is written again" + (f": {note}" if note else ""),
            file=err,
            flush=True,
        )

    manager.logLine.connect(on_line)
    manager.logFileProblem.connect(on_log_file)
    restore = quit_on_signals(app)
    try:
        # The endpoint listens before llama-server starts (a taken port is refused with nothing
        # started) and follows the states before on_state does: a scrape after the ready line sees
        # the instance running (slots run in the order they were connected).
        with cli_remote.headless_monitoring(prometheus, manager, data_dir, err):
            manager.stateChanged.connect(on_state)
            manager.start(args.name)  # a refusal is a LaunchError: a user error
            app.exec()
    finally:
        restore()
        if not manager.stop_all(timeout_s=15.0):
            print("llamadash: error: llama-server did not stop", file=err)
            outcome["code"] = 1
        manager.close()
        manager.deleteLater()
        if not cli_run_workers.stop_started_workers(started_workers, err):
            outcome["code"] = 1
    return int(outcome["code"])


def _error_reason(model: dict[str, Any]) -> str | None:
    """Why a model in ``error`` failed (kept by whoever ran it), or ``None``."""
    from llamadash.core import pidfile

    if model.get("status") != "error":
        return None
    return pidfile.load_error_reason(int(model["id"])) or "the reason was not recorded"


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Every model's state, PID and port; the llama-servers a killed dashboard left behind."""
    from llamadash.core import pidfile

    found = pidfile.scan()
    stopped: list[int] = []
    if args.stop_orphans and found.orphans:
        done, found.orphans = pidfile.stop_orphans(found.orphans, timeout_s=5.0)
        stopped = [r.pid for r in done]
    live = {r.model: r for r in found.foreign}
    orphans = {r.model: r for r in found.orphans}
    models = []
    library_models = db.get_models()
    _warn_stored(library_models, err)
    for m in library_models:
        record = live.get(m["name"]) or orphans.get(m["name"])
        state = m["status"]
        if record is None and state in ACTIVE_STATES:
            state = "stopped"  # the database says otherwise, but no process is left
        models.append(
            {
                "name": m["name"],
                "state": state,
                "pid": record.pid if record else None,
                "port": record.port if record else library.configured_port(m),  # None: not a valid port
                "url": record.url if record else None,
                "orphan": m["name"] in orphans and record is orphans[m["name"]],
                "managed_by": record.owner_pid if record and m["name"] in live else None,
                "reason": _error_reason(m) if state == "error" else None,
                "placement": cli_bench.placement_json(m["name"]) if record else None,
            }
        )
    orphan_rows = [
        {"pid": r.pid, "port": r.port, "model": r.model, "url": r.url, "started_at_ms": r.started_at_ms}
        for r in found.orphans
    ]
    routers = cli_serve.router_status(
        [*((r, "foreign") for r in found.foreign), *((r, "orphan") for r in found.orphans)]
    )
    if args.json:
        document = {"models": models, "orphans": orphan_rows, "stopped_orphans": stopped, "routers": routers}
        document["workers"] = cli_workers.worker_rows()
        json.dump(document, out, indent=2)
        print(file=out)
        return 0
    if stopped:
        print(
            f"stopped {len(stopped)} orphaned llama-server process(es): {', '.join(map(str, stopped))}",
            file=out,
        )
    if models:
        rows = [("NAME", "STATE", "PID", "PORT", "")]
        for m in models:
            note = (
                "orphan"
                if m["orphan"]
                else (f"run by llamadash pid {m['managed_by']}" if m["managed_by"] else "")
            )
            if m["reason"]:
                note = m["reason"].splitlines()[0]
            port = str(m["port"]) if m["port"] is not None else "invalid"
            rows.append((m["name"], m["state"], str(m["pid"] or "-"), port, note))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print(
                "  ".join(r[i].ljust(widths[i]) for i in range(4)) + ("  " + r[4] if r[4] else ""), file=out
            )
    else:
        print("no models yet: add one with 'llamadash models add NAME --model-path FILE.gguf'", file=out)
    cli_serve.print_router_status(routers, out)
    cli_workers.print_worker_status(cli_workers.worker_rows(), out)
    if orphan_rows:
        print(
            "\nllama-server processes left behind by a dashboard that was killed "
            "(stop them with 'llamadash status --stop-orphans'):",
            file=out,
        )
        for o in orphan_rows:
            print(f"  pid {o['pid']}  port {o['port']}  model {o['model']}", file=out)
    return 0


# --------------------------------------------------------------------------------------------
USER_ERRORS: tuple[type[BaseException], ...] = (
    CliError,
    cli_serve.ServeError,
    LibraryError,
    model_export.ModelFormatError,
    db.DatabaseError,
    ParamValueError,
    CommandError,
    CommandLineError,
    CapabilityError,
    LlamaServerNotFound,
    LaunchError,
    OSError,
    *cli_workers.USER_ERRORS,
)


def _error_text(exc: BaseException) -> str:
    """The one line for a user error; a write that found the disk full says so, and how much is free."""
    if isinstance(exc, OSError) and exc.filename and is_no_space(exc):
        target = Path(str(exc.filename))
        return f"could not write {target}: {disk_full_text(target.parent)}"
    return str(exc)


def _flags_as_assignments(argv: list[str]) -> list[str]:
    """``models set NAME --flag=VALUE``: everything after NAME is an assignment, also what starts with -."""
    for i in range(len(argv) - 2):
        if argv[i] == "models" and argv[i + 1] == "set":
            rest = argv[i + 2 :]
            if rest and not rest[0].startswith("-") and len(rest) > 1 and "--" not in rest[1:]:
                return [*argv[: i + 3], "--", *argv[i + 3 :]]
            break
    return argv


def run(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one CLI command; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(_flags_as_assignments(list(argv)))
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code or 0)
    if args.command is None:
        parser.print_usage(err)
        return 2
    if args.data_dir is not None and not args.data_dir.strip():
        # most likely `--data-dir "$UNSET_VARIABLE"`: falling back to the user's real library would surprise
        print("llamadash: error: --data-dir is empty; leave it out to use the default data folder", file=err)
        return 2
    handlers: dict[str, Callable[[Path], int]] = {
        "db": lambda d: cmd_db(args, out, err),
        "models": lambda d: cmd_models(args, out, err, d),
        "llama-server": lambda d: cmd_llama_server(args, out, err, d),
        "metrics": lambda d: cmd_metrics(args, out),
        "activity": lambda d: cmd_activity(args, out),
        "run": lambda d: cmd_run(args, out, err, d),
        "serve": lambda d: cli_serve.cmd_serve(args, out, err, d),
        "status": lambda d: cmd_status(args, out, err),
        "workers": lambda d: cli_workers.cmd_workers(args, out, err, d),
        cli_bench.FIT_COMMAND: lambda d: cli_bench.cmd_fit(args, out, err, d),
        "bench": lambda d: cli_bench.cmd_bench(args, out, err, d),
    }
    try:
        db_path = open_database(args.data_dir)
        try:
            return handlers[args.command](db_path.parent)
        finally:
            db.close_database()
    except BrokenPipeError:
        # the reader went away (`llamadash models list | head -1`): not an error to report
        if out is sys.stdout:
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141  # what a shell reports for a program ended by SIGPIPE
    except USER_ERRORS as exc:
        print(f"llamadash: error: {_error_text(exc)}", file=err)
        if isinstance(exc, (LlamaServerNotFound, MissingBinaryError)):
            print(
                "llamadash: set one with 'llamadash llama-server --path BIN', or set LLAMA_SERVER_BIN",
                file=err,
            )
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llamadash-cli`` console script."""
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
