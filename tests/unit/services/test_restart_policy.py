"""The exit as one value and the crash policy's counting: pure logic, no Qt, no process, a chosen clock."""

from __future__ import annotations

import signal
import sys

import pytest

from llamadash.services.restart_policy import (
    CRASH_TAIL_LINES,
    CrashPolicy,
    ExitOutcome,
    RestartTracker,
    describe_exit,
)


def test_an_exit_code_is_an_outcome_with_the_reason_the_user_reads():
    lines = [f"line {i}" for i in range(25)]
    outcome = ExitOutcome.of_process(3, False, last_lines=lines, error_line="load_model: failed")
    assert (outcome.code, outcome.signal, outcome.crashed) == (3, None, False)
    assert outcome.description == "exited with code 3" and not outcome.clean
    assert outcome.last_lines == tuple(lines[-CRASH_TAIL_LINES:])
    reason = outcome.reason(" (restarting in 2 s)")
    assert reason.startswith("llama-server exited with code 3: load_model: failed (restarting in 2 s)\n")
    assert reason.endswith("last log lines:\n" + "\n".join(lines[-CRASH_TAIL_LINES:]))
    assert ExitOutcome.of_process(0, False).clean
    assert ExitOutcome.of_process(0, False).reason() == "llama-server exited with code 0"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_signal_is_named():
    outcome = ExitOutcome.of_process(int(signal.SIGKILL), True)
    assert (outcome.code, outcome.signal) == (None, int(signal.SIGKILL))
    assert outcome.description == "killed by signal 9 (SIGKILL)" == describe_exit(9, True)
    assert describe_exit(200, True) == "killed by signal 200"


def test_an_adopted_process_ends_with_an_unknown_status():
    outcome = ExitOutcome.unknown(1234)
    assert not outcome.status_known and not outcome.clean and outcome.code is None
    assert outcome.reason() == "llama-server (pid 1234, adopted) exited; its exit status is unknown"


def test_backoff_doubles_until_the_crash_loop_cap():
    tracker = RestartTracker(CrashPolicy(backoff_s=2, max_crashes=3, window_s=60))
    first = tracker.after_crash(now=100.0, ran_s=1.0, was_restart=False)
    second = tracker.after_crash(now=101.0, ran_s=1.0, was_restart=True)
    third = tracker.after_crash(now=102.0, ran_s=1.0, was_restart=True)
    assert (first.delay_s, second.delay_s, third.delay_s) == (2, 4, None)
    assert first.note == " (restarting in 2 s: crash 1 of 3 allowed within 60 s)"
    assert third.note == " (crash loop: 3 crashes within 60 s; automatic restart gave up)"


def test_crashes_outside_the_window_are_forgotten_and_the_backoff_is_capped():
    tracker = RestartTracker(CrashPolicy(backoff_s=50, max_crashes=3, window_s=10, max_backoff_s=60))
    assert tracker.after_crash(now=0.0, ran_s=1.0, was_restart=False).delay_s == 50
    assert tracker.after_crash(now=5.0, ran_s=1.0, was_restart=True).delay_s == 60  # 100, capped
    assert tracker.after_crash(now=100.0, ran_s=1.0, was_restart=True).delay_s == 50  # the window moved on


def test_a_slow_loop_gives_up_after_failed_restarts_and_a_stable_run_forgives():
    policy = CrashPolicy(max_crashes=100, window_s=1, max_failed_restarts=3, stable_run_s=300)
    tracker = RestartTracker(policy)
    tracker.after_crash(now=0.0, ran_s=10.0, was_restart=False)  # the user's run: no failed restart
    assert tracker.failed_restarts == 0
    for n, now in enumerate((100.0, 200.0), start=1):
        assert tracker.after_crash(now=now, ran_s=10.0, was_restart=True).delay_s is not None
        assert tracker.failed_restarts == n
    gave_up = tracker.after_crash(now=300.0, ran_s=10.0, was_restart=True)
    assert gave_up.delay_s is None
    assert gave_up.note == " (automatic restart gave up: 3 restarts in a row failed, none stayed up 300 s)"
    assert tracker.after_crash(now=400.0, ran_s=301.0, was_restart=True).delay_s is not None
    assert tracker.failed_restarts == 0
    tracker.failed_restarts = 2
    tracker.user_started()
    assert tracker.failed_restarts == 0
