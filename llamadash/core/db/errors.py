"""The exceptions of the database layer; every message is meant to be shown to a person."""

from __future__ import annotations


class DatabaseError(Exception):
    """A database operation failed or was refused; ``str(error)`` explains why in plain words."""


class DatabaseNotOpenError(DatabaseError):
    """An API call was made before :func:`init_database` (or after :func:`close_database`)."""


class DatabaseFileError(DatabaseError):
    """A file opened as the database, or offered for import, is not a usable llamadash database.

    Empty, not SQLite, truncated, damaged, or another application's SQLite file.
    """


#: The name the import code uses for :class:`DatabaseFileError` (the same class).
ImportFileError = DatabaseFileError


class SchemaVersionError(DatabaseFileError):
    """The database was written by a newer llamadash whose schema this one does not know."""


class DiskFullError(DatabaseError):
    """A write failed because the disk holding the database is full; the message says how much is free.

    Nothing of the failed call was kept, and the database is as it was before it. Calls work again
    once there is room: nothing needs to be reopened.
    """
