"""How a run ended and what follows: the exit as one value, the crash policy and its counting.

:class:`ExitOutcome` records one exit (code or signal, whether it crashed, the words for it, the
last log lines, the last error line) and writes the reason the user reads. :class:`RestartTracker`
applies a :class:`CrashPolicy` to the crashes of one instance: the backoff before an automatic
restart, and when to give up (a crash loop, or restarts that keep failing). :func:`diagnose_exit`
names a known cause of an exit and what to do (the rules are data in :mod:`llamadash.core.diagnosis`),
which then leads the reason. Pure logic on
monotonic seconds given by the caller, without Qt; :class:`~llamadash.services.instance.ServerInstance`
owns the timer that carries a restart out.
"""

from __future__ import annotations

import collections
import logging
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from llamadash.core.diagnosis import DIAGNOSIS_TAIL_LINES, Diagnosis, diagnose_outcome

__all__ = [
    "CRASH_TAIL_LINES",
    "CrashPolicy",
    "ExitOutcome",
    "RestartDecision",
    "RestartTracker",
    "ServerTail",
    "describe_exit",
    "diagnose_exit",
]

_log = logging.getLogger(__name__)


class ServerTail(Protocol):
    """Where the last lines of a run's own output come from (the output pipe)."""

    def server_tail(self, count: int) -> list[str]: ...


#: Log lines quoted in a crash reason.
CRASH_TAIL_LINES = 10


def describe_exit(exit_code: int, crashed: bool) -> str:
    """``"exited with code 1"`` or ``"killed by signal 9 (SIGKILL)"``."""
    if not crashed:
        return f"exited with code {exit_code}"
    if sys.platform == "win32":
        return f"crashed (exit code {exit_code:#x})"
    try:
        name = signal.Signals(exit_code).name
    except ValueError:
        return f"killed by signal {exit_code}"
    return f"killed by signal {exit_code} ({name})"


@dataclass(frozen=True)
class ExitOutcome:
    """How one run of llama-server ended.

    Attributes:
        code: The exit code; ``None`` when a signal ended it or the status is unknown.
        signal: The signal that ended it (POSIX), if one did.
        crashed: Ended by a signal or a crash rather than by exiting.
        description: ``"exited with code 3"``, ``"killed by signal 9 (SIGKILL)"``, or for a process
            that is not our child ``"(pid 123, adopted) exited; its exit status is unknown"``.
        last_lines: The last lines of its output (at most :data:`CRASH_TAIL_LINES`).
        error_line: The last error line of its output, if any.
        status_known: False for a process whose exit status nobody can read (an adopted one).
    """

    code: int | None
    signal: int | None
    crashed: bool
    description: str
    last_lines: tuple[str, ...] = ()
    error_line: str | None = None
    status_known: bool = True

    @classmethod
    def of_process(
        cls, exit_code: int, crashed: bool, *, last_lines: Iterable[str] = (), error_line: str | None = None
    ) -> ExitOutcome:
        """The outcome of a child process, from what ``QProcess.finished`` says."""
        return cls(
            code=None if crashed else exit_code,
            signal=exit_code if crashed and sys.platform != "win32" else None,
            crashed=crashed,
            description=describe_exit(exit_code, crashed),
            last_lines=tuple(last_lines)[-CRASH_TAIL_LINES:],
            error_line=error_line,
        )

    @classmethod
    def unknown(cls, pid: int | None) -> ExitOutcome:
        """The outcome of an adopted process: it is gone, and how it ended cannot be known."""
        return cls(
            code=None,
            signal=None,
            crashed=False,
            description=f"(pid {pid}, adopted) exited; its exit status is unknown",
            status_known=False,
        )

    @property
    def clean(self) -> bool:
        """It exited by itself with code 0."""
        return self.status_known and not self.crashed and self.code == 0

    def reason(self, restart_note: str = "", diagnosis: str | None = None) -> str:
        """What the user reads about an unexpected exit, with ``restart_note`` after the exit.

        With a ``diagnosis`` (what a known cause means and what to do, see
        :func:`llamadash.core.diagnosis.diagnose`), that is the first line and the exit follows.
        """
        text = f"{diagnosis}\n" if diagnosis else ""
        text += f"llama-server {self.description}"
        if self.error_line:
            text += f": {self.error_line}"
        text += restart_note
        if self.last_lines:
            text += "\nlast log lines:\n" + "\n".join(self.last_lines)
        return text


@dataclass(frozen=True)
class CrashPolicy:
    """What happens after an unexpected exit when auto-restart is on.

    The n-th crash within ``window_s`` is followed by a restart after
    ``backoff_s * 2 ** (n - 1)`` seconds (at most ``max_backoff_s``); the ``max_crashes``-th crash
    within the window is a crash loop: the instance stays in ``error``.

    A rate alone lets a slow loop (a crash every ``window_s / 2`` seconds) go on for ever, so
    failed restarts are also counted: an automatic restart whose run ends unexpectedly within
    ``stable_run_s`` seconds failed; after ``max_failed_restarts`` failed restarts in a row the
    instance stays in ``error`` too. A run that stays up ``stable_run_s`` seconds, or a start by
    the user, begins the count again.
    """

    backoff_s: float = 2.0
    max_crashes: int = 3
    window_s: float = 60.0
    max_backoff_s: float = 60.0
    max_failed_restarts: int = 5
    stable_run_s: float = 300.0


@dataclass(frozen=True)
class RestartDecision:
    """What follows one crash.

    Attributes:
        delay_s: Seconds until the automatic restart; ``None``: automatic restart gave up.
        note: Said after the exit in the reason, e.g. ``" (restarting in 2 s: crash 1 of 3 ...)"``.
    """

    delay_s: float | None
    note: str


class RestartTracker:
    """The crashes of one instance, counted against a :class:`CrashPolicy`."""

    def __init__(self, policy: CrashPolicy) -> None:
        self.policy = policy
        self.failed_restarts = 0
        """Automatic restarts that failed in a row."""
        self._crashes: collections.deque[float] = collections.deque()

    def user_started(self) -> None:
        """The user started the instance: earlier failed restarts are forgotten."""
        self.failed_restarts = 0

    def after_crash(self, *, now: float, ran_s: float, was_restart: bool) -> RestartDecision:
        """Count a crash at ``now`` (monotonic seconds) and decide on an automatic restart.

        Args:
            now: When it crashed.
            ran_s: How long the run that crashed had been up.
            was_restart: That run was itself an automatic restart.
        """
        policy = self.policy
        if ran_s >= policy.stable_run_s:
            self.failed_restarts = 0  # it had stayed up: whatever came before is forgiven
        elif was_restart:
            self.failed_restarts += 1
        if self.failed_restarts >= policy.max_failed_restarts:
            return RestartDecision(
                None,
                f" (automatic restart gave up: {self.failed_restarts} restarts in a row failed, "
                f"none stayed up {policy.stable_run_s:g} s)",
            )
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - policy.window_s:
            self._crashes.popleft()
        count = len(self._crashes)
        if count >= policy.max_crashes:
            return RestartDecision(
                None,
                f" (crash loop: {count} crashes within {policy.window_s:g} s; automatic restart gave up)",
            )
        delay = min(policy.max_backoff_s, policy.backoff_s * 2 ** (count - 1))
        return RestartDecision(
            delay,
            f" (restarting in {delay:g} s: crash {count} of {policy.max_crashes} allowed within {policy.window_s:g} s)",
        )


def diagnose_exit(
    outcome: ExitOutcome, pipe: ServerTail, config: Mapping[str, Any] | None, ready: bool, ran_s: float | None
) -> Diagnosis | None:
    """A known cause of an unexpected exit, from the exit and the run's log (the rules are in core).

    ``pipe`` gives the run's last :data:`~llamadash.core.diagnosis.DIAGNOSIS_TAIL_LINES` lines of
    server output: more than the outcome's tail, since a failed download says why near its start.
    A rule that trips on odd input is logged and gives ``None``: it must not hide the exit itself.
    """
    try:
        tail = pipe.server_tail(DIAGNOSIS_TAIL_LINES)
        return diagnose_outcome(outcome, tail, config, ready=ready, ran_s=ran_s)
    except Exception:
        _log.exception("diagnosing an exit failed")
        return None
