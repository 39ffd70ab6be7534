"""Exporting the database to a file, and importing one in its place.

Export copies a consistent snapshot with SQLite's online backup API while the application keeps
writing: the copy runs on its own connection inside a read transaction, so WAL-mode writers go on
and the backup never has to restart. It goes to a temporary file next to the target and is renamed
into place at the end, so a half-written export never appears under the target's name.

Import checks the file first (SQLite, whole, ours, not newer), copies it to a staging file in the
data directory and upgrades that copy, all without touching the current database. Only then does
it close the database, keep the current file as ``<db>.bak-<timestamp>`` and rename the staged file
into place. A failure before that point changes nothing; a failure after it puts the kept file back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llamadash.core.db import api
from llamadash.core.db.errors import DatabaseError, DatabaseFileError
from llamadash.core.db.migrations import probe_file, readonly_uri, upgrade_schema
from llamadash.core.db.models import ModelConfig

#: Pages copied per backup step (4 MiB at the default 4 KiB page); progress is reported per step.
EXPORT_PAGES_PER_STEP = 1024

ProgressCallback = Callable[[int, int], Any]


def _companions(path: Path) -> tuple[Path, ...]:
    return tuple(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _snapshot(source_uri: str, destination: Path, progress: ProgressCallback | None) -> None:
    """Copy a consistent snapshot of the database at ``source_uri`` into ``destination``."""
    src = sqlite3.connect(source_uri, uri=True, isolation_level=None)
    try:
        # A read transaction pins one snapshot: writers on other connections carry on (WAL) and
        # the backup, which reads through this connection, never sees their pages change.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(destination, isolation_level=None)
        try:
            if progress is None:
                src.backup(dst, pages=EXPORT_PAGES_PER_STEP)
            else:
                src.backup(
                    dst,
                    pages=EXPORT_PAGES_PER_STEP,
                    progress=lambda _status, remaining, total: progress(total - remaining, total),
                )
            # The copy inherits WAL mode from the source; a single self-contained file is wanted.
            dst.execute("PRAGMA journal_mode = DELETE").fetchall()
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()


def _place(temporary: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the target exists, however late it appeared
    except FileExistsError:
        raise DatabaseError(f"{target} already exists; choose another name or allow overwriting") from None
    except OSError:  # no hard links on this file system
        if target.exists():
            raise DatabaseError(
                f"{target} already exists; choose another name or allow overwriting"
            ) from None
        os.replace(temporary, target)
        return
    temporary.unlink()


def export_database(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write a consistent copy of the database to ``path`` while the application keeps working.

    Args:
        path: the file to write (its folder must exist). The copy is readable by its owner only
            (POSIX) and is a single file (not in WAL mode).
        overwrite: replace ``path`` if it exists; otherwise an existing file is refused.
        progress: called as ``progress(done_pages, total_pages)`` after each step; an exception it
            raises cancels the export (nothing is left behind) and propagates.

    Returns:
        The written file's absolute path.

    Raises:
        DatabaseError: the target exists (and ``overwrite`` is False), is the database itself, its
            folder is missing, or the copy failed.
    """
    target = Path(path).expanduser().absolute()
    with api._lock:
        source = api._require().path
    if _same_file(target, source) or any(_same_file(target, c) for c in _companions(source)):
        raise DatabaseError(f"{target} is the database itself; export to another file")
    if target.is_dir():
        raise DatabaseError(f"{target} is a folder; give the export file's name")
    if not target.parent.is_dir():
        raise DatabaseError(f"the folder {target.parent} does not exist")
    if target.exists() and not overwrite:
        raise DatabaseError(f"{target} already exists; choose another name or allow overwriting")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    temporary = Path(name)  # mkstemp makes it 0o600
    try:
        _snapshot(source.absolute().as_uri(), temporary, progress)
        _place(temporary, target, overwrite)
    except sqlite3.Error as exc:
        raise DatabaseError(f"the export to {target} failed: {exc}") from exc
    except OSError as exc:
        raise DatabaseError(f"the export to {target} failed: {exc}") from exc
    finally:
        _remove_quietly(temporary, *_companions(temporary))
    return target


def inspect_database_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a file that is offered for import and say what it holds; changes nothing.

    Returns:
        ``path``, ``size`` (bytes), ``db_version`` (1 = the seed's design), ``needs_upgrade``,
        ``tables``, ``model_count`` (also as ``models``), ``model_names`` (by id) and ``metrics_rows``.

    Raises:
        DatabaseFileError: the file is missing, empty, not SQLite, truncated, damaged or another
            application's database (the message says which).
        SchemaVersionError: it was written by a newer llamadash.
    """
    return probe_file(Path(path).expanduser().absolute(), for_import=True, check_integrity=True)


def _backup_name(db_path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = db_path.with_name(f"{db_path.name}.bak-{stamp}")
    number = 2
    while candidate.exists():
        candidate = db_path.with_name(f"{db_path.name}.bak-{stamp}-{number}")
        number += 1
    return candidate


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _stage(source: Path, staging: Path) -> None:
    """Copy ``source`` into ``staging`` and upgrade the copy; the source is only read."""
    _snapshot(readonly_uri(source), staging, None)
    staged = api.make_database(staging)
    try:
        upgrade_schema(staged, api.now_ms())
        problems = [row[0] for row in staged.execute_sql("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise DatabaseFileError(f"{source} is damaged: {'; '.join(problems)}")
    finally:
        staged.close_all()


def import_database(path: str | os.PathLike[str]) -> Path:
    """Replace the database with the content of ``path``; returns the backup of the replaced one.

    The file is validated (see :func:`inspect_database_file`) and upgraded to the current schema in
    a staging copy; the current database is kept as ``<db>.bak-<timestamp>`` beside it and the
    staged file is renamed into place. On any failure the current database stays as it was.
    Afterwards every API call works on the imported content.

    Raises:
        DatabaseFileError: the file cannot be imported (the message says why).
        SchemaVersionError: the file was written by a newer llamadash.
        DatabaseError: the replacement failed (the previous database has been put back).
    """
    source = Path(path).expanduser().absolute()
    with api._lock:
        state = api._require()
        db_path, retention, record_start = state.path, state.retention_ms, state.record_start
        if _same_file(source, db_path):
            raise DatabaseFileError(f"{source} is the database in use; there is nothing to import")
        probe_file(source, for_import=True, check_integrity=True)
        fd, name = tempfile.mkstemp(prefix=f".{db_path.name}.import-", suffix=".tmp", dir=db_path.parent)
        os.close(fd)
        staging = Path(name)
        try:
            try:
                _stage(source, staging)
            except sqlite3.Error as exc:
                raise DatabaseFileError(f"{source} could not be read: {exc}") from exc
            return _swap_in(staging, db_path, retention, record_start)
        finally:
            _remove_quietly(staging, *_companions(staging))


def read_database_models(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The models a database file holds, as :func:`get_models` gives them; changes nothing.

    For "merge models" imports: the file is validated like an import and read through an upgraded
    temporary copy, so a seed-format or older llamadash file gives current model dicts.

    Raises:
        DatabaseFileError: the file cannot be imported (the message says why).
        SchemaVersionError: the file was written by a newer llamadash.
    """
    source = Path(path).expanduser().absolute()
    probe_file(source, for_import=True, check_integrity=True)
    with tempfile.TemporaryDirectory(prefix="llamadash-read-") as folder:
        staging = Path(folder) / "models.db"
        try:
            _stage(source, staging)
            staged = api.make_database(staging)
            try:
                with staged.bind_ctx([ModelConfig]):
                    return api._model_dicts(ModelConfig.select().order_by(ModelConfig.created_at, ModelConfig.id))
            finally:
                staged.close_all()
        except sqlite3.Error as exc:
            raise DatabaseFileError(f"{source} could not be read: {exc}") from exc


def _swap_in(staging: Path, db_path: Path, retention: int, record_start: bool) -> Path:
    backup = _backup_name(db_path)
    api._close_locked()
    wal = Path(f"{db_path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        # Another process still has the database open (our last close would have emptied the WAL).
        api._open_locked(db_path, retention, record_start)
        raise DatabaseError(f"{db_path} is in use by another program; close it and import again")
    try:
        _link_or_copy(db_path, backup)
    except OSError as exc:
        _remove_quietly(backup)
        api._open_locked(db_path, retention, record_start)
        raise DatabaseError(
            f"could not keep a copy of the current database ({exc}); nothing was imported"
        ) from exc
    try:
        _remove_quietly(*_companions(db_path))
        os.replace(staging, db_path)
        api._open_locked(db_path, retention, record_start)
    except BaseException as exc:
        _restore(backup, db_path, retention, record_start, exc)
        if isinstance(exc, Exception) and not isinstance(exc, DatabaseError):
            raise DatabaseError(f"the import failed and the previous database was put back: {exc}") from exc
        raise
    return backup


def _restore(backup: Path, db_path: Path, retention: int, record_start: bool, cause: BaseException) -> None:
    api._close_locked()
    if backup.exists():  # it is whole: a failed copy is removed before the swap starts
        fd, name = tempfile.mkstemp(prefix=f".{db_path.name}.restore-", suffix=".tmp", dir=db_path.parent)
        os.close(fd)
        try:
            shutil.copyfile(backup, name)
            _remove_quietly(*_companions(db_path))
            os.replace(name, db_path)
        finally:
            _remove_quietly(Path(name))
    try:
        api._open_locked(db_path, retention, record_start)
    except DatabaseError as exc:
        raise DatabaseError(
            f"the import failed ({cause}) and the previous database could not be reopened ({exc}); "
            f"a copy of it is {backup}"
        ) from cause
