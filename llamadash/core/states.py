"""The states of a llama-server instance: one enum for the core, the services, the CLI and the UI.

Pure Python. The values are what the ``models.status`` column stores (the seed's list). A
:class:`InstanceState` is a ``str`` (``StrEnum``): it equals, hashes and prints as its value, so a
state that arrives as text (a Qt signal carries ``"running"``) and one that arrives as the enum are
the same thing, and ``state in ACTIVE_STATES`` holds for both.
"""

from __future__ import annotations

from enum import StrEnum


class InstanceState(StrEnum):
    """The state of an instance, as stored in the ``models.status`` column."""

    STOPPED = "stopped"
    LOADING = "loading"
    RUNNING = "running"
    ERROR = "error"


#: The states in which a server process exists (or, for an attached server, is being watched).
ACTIVE_STATES: frozenset[InstanceState] = frozenset({InstanceState.LOADING, InstanceState.RUNNING})

#: Every status a ``models`` row may hold, in the seed's order (messages list them so).
MODEL_STATUSES: tuple[str, ...] = tuple(
    s.value
    for s in (InstanceState.RUNNING, InstanceState.STOPPED, InstanceState.LOADING, InstanceState.ERROR)
)


def is_active(state: object) -> bool:
    """Whether ``state`` (an :class:`InstanceState` or its text) is loading or running."""
    return state in ACTIVE_STATES
