"""ServerInstance with real child processes (small Python scripts standing in for llama-server where the
behaviour must be chosen: a crash at a given moment, a flood, a server that stays at 503).

The real llama-server is exercised in tests/integration/test_instances.py.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support import free_port

from llamadash.services.instance import (
    CrashPolicy,
    InstanceError,
    InstanceState,
    LaunchPlan,
    ServerInstance,
)


def python_plan(code: str, *, port: int | None = None, health_check: bool = False) -> LaunchPlan:
    return LaunchPlan(
        argv=(sys.executable, "-u", "-c", textwrap.dedent(code)),
        env={},
        port=port,
        health_check=health_check,
    )


@pytest.fixture
def instances(qtbot) -> Iterator[list[ServerInstance]]:
    """Instances made by a test; stopped (bounded) at the end even if the test failed."""
    made: list[ServerInstance] = []
    yield made
    for inst in made:
        inst.auto_restart = False
        inst.stop()
        inst.kill()
        assert inst.wait_stopped(5)


def make(instances: list[ServerInstance], plan: LaunchPlan | None = None, **kwargs) -> ServerInstance:
    plans = kwargs.pop("plans", None)
    iterator = iter(plans) if plans is not None else None

    def prepare() -> LaunchPlan:
        chosen = next(iterator) if iterator is not None else plan
        assert chosen is not None
        return chosen

    inst = ServerInstance("test", prepare=prepare, **kwargs)
    instances.append(inst)
    return inst


def record_states(inst: ServerInstance) -> list[tuple[str, str]]:
    states: list[tuple[str, str]] = []
    inst.stateChanged.connect(lambda state, reason: states.append((state, reason)))
    return states


def test_output_lines_are_buffered_bounded_logged_and_emitted(qtbot, instances, tmp_path: Path):
    plan = python_plan(
        r"""
        import sys
        for i in range(1000):
            sys.stdout.write(f"line {i}\n")
        sys.stderr.write("on stderr\n")
        sys.stdout.write("progress 1%\rprogress 2%\r\nlast without newline")
        """
    )
    log = tmp_path / "logs" / "test.log"
    inst = make(instances, plan, buffer_lines=100, log_path=log)
    emitted: list[str] = []
    inst.logLine.connect(emitted.append)
    inst.start()
    qtbot.waitUntil(lambda: not inst.active, timeout=10_000)
    assert inst.lines_received == 1004
    assert len(emitted) == 1004
    assert set(emitted[-4:]) == {"progress 1%", "progress 2%", "last without newline", "on stderr"}
    buffered = inst.log_lines()
    assert len(buffered) == 100 and buffered == emitted[-100:]
    text = log.read_text()
    assert "line 0\n" in text and "line 999\n" in text and "last without newline" in text
    assert inst.state is InstanceState.STOPPED  # exit code 0 while "running": it ended by itself
    assert "by itself" in inst.reason


def test_crash_reports_exit_code_error_line_and_log_tail(qtbot, instances):
    plan = python_plan(
        """
        import sys, time
        print("0.00.001.000 I srv  llama_server: initializing ...")
        print("0.00.002.000 E srv    load_model: failed to load model, 'x.gguf'")
        time.sleep(0.2)
        sys.exit(3)
        """
    )
    inst = make(instances, plan)
    states = record_states(inst)
    crashed: list[str] = []
    inst.eventOccurred.connect(lambda event, _ms: crashed.append(event))
    inst.start()
    qtbot.waitUntil(lambda: inst.state is InstanceState.ERROR, timeout=10_000)
    reason = inst.reason
    assert reason.startswith("llama-server exited with code 3: load_model: failed to load model, 'x.gguf'")
    assert "last log lines:\n0.00.001.000 I srv  llama_server: initializing ..." in reason
    assert inst.exit_code == 3 and inst.pid is None
    assert [s for s, _ in states] == ["loading", "running", "error"]
    assert crashed == ["started", "ready", "crashed"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_stop_escalates_to_kill_when_terminate_is_ignored(qtbot, instances):
    plan = python_plan(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    inst = make(instances, plan, stop_timeout_s=0.3)
    inst.start()
    qtbot.waitUntil(lambda: "ready" in inst.log_lines(), timeout=10_000)
    pid = inst.pid
    assert pid is not None
    with qtbot.waitSignal(inst.stateChanged, timeout=5_000) as blocker:
        inst.stop()
        assert inst.stopping and inst.state is InstanceState.RUNNING  # asynchronous
    assert blocker.args == ["stopped", ""]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_auto_restart_with_backoff_then_crash_loop_cap(qtbot, instances):
    plan = python_plan("import time, sys; time.sleep(0.15); sys.exit(1)")
    inst = make(instances, plan, auto_restart=True, crash_policy=CrashPolicy(backoff_s=0.05, max_crashes=3))
    states = record_states(inst)
    starts: list[str] = []
    inst.eventOccurred.connect(lambda event, _ms: starts.append(event) if event == "started" else None)
    inst.start()
    qtbot.waitUntil(lambda: len([s for s, _ in states if s == "error"]) == 3, timeout=15_000)
    qtbot.wait(600)  # a fourth start would come within 0.2 s
    assert len(starts) == 3
    errors = [reason for state, reason in states if state == "error"]
    assert "restarting in 0.05 s" in errors[0] and "crash 1 of 3" in errors[0]
    assert "restarting in 0.1 s" in errors[1]
    assert "crash loop: 3 crashes within 60 s" in errors[2]
    assert inst.state is InstanceState.ERROR and not inst.restart_pending


def test_stop_cancels_a_pending_automatic_restart(qtbot, instances):
    plan = python_plan("import sys; sys.exit(2)")
    inst = make(instances, plan, auto_restart=True, crash_policy=CrashPolicy(backoff_s=30))
    inst.start()
    qtbot.waitUntil(lambda: inst.restart_pending, timeout=10_000)
    inst.stop()
    assert not inst.restart_pending and inst.state is InstanceState.STOPPED


def test_refusals_raise_before_anything_is_launched(qtbot, instances):
    def refuse() -> LaunchPlan:
        raise InstanceError("port 8080 is already in use")

    inst = ServerInstance("test", prepare=refuse)
    instances.append(inst)
    states = record_states(inst)
    with pytest.raises(InstanceError, match="already in use"):
        inst.start()
    assert states == [] and inst.pid is None and not inst.active


def test_starting_twice_is_refused(qtbot, instances):
    inst = make(instances, python_plan("import time; time.sleep(30)"))
    inst.start()
    with pytest.raises(InstanceError, match="already running"):
        inst.start()


def test_a_program_that_cannot_run_is_an_error(qtbot, instances, tmp_path: Path):
    plan = LaunchPlan(argv=(str(tmp_path / "no-such-llama-server"),), env={}, health_check=False)
    inst = make(instances, plan)
    with pytest.raises(InstanceError, match="cannot run"):
        inst.start()
    assert inst.state is InstanceState.ERROR and not inst.active


HEALTH_SERVER = """
import http.server, sys
port, ready_after = int(sys.argv[1]), int(sys.argv[2])
calls = 0
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global calls
        calls += 1
        code = 200 if ready_after >= 0 and calls > ready_after else 503
        body = b'{"status":"ok"}' if code == 200 else b'{"error":{"code":503,"message":"Loading model"}}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        print("health asked", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def health_plan(port: int, ready_after: int) -> LaunchPlan:
    return LaunchPlan(
        argv=(sys.executable, "-u", "-c", HEALTH_SERVER, str(port), str(ready_after)),
        env={},
        port=port,
    )


def test_running_only_once_health_answers_200(qtbot, instances):
    port = free_port()
    inst = make(instances, health_plan(port, ready_after=3), poll_interval_s=0.25)
    states = record_states(inst)
    inst.start()
    assert inst.state is InstanceState.LOADING
    qtbot.waitUntil(lambda: inst.state is InstanceState.RUNNING, timeout=10_000)
    assert [s for s, _ in states] == ["loading", "running"]
    assert inst.log_lines().count("health asked") >= 4  # three 503 answers came first
    assert inst.ready_at_ms is not None and inst.started_at_ms is not None
    assert inst.ready_at_ms >= inst.started_at_ms


def test_load_timeout_ends_in_error_and_stops_the_process(qtbot, instances):
    port = free_port()
    inst = make(instances, health_plan(port, ready_after=-1), load_timeout_s=0.6, poll_interval_s=0.25)
    inst.start()
    pid = inst.pid
    qtbot.waitUntil(lambda: inst.state is InstanceState.ERROR, timeout=10_000)
    assert "did not become ready within 0.6 s" in inst.reason
    assert not inst.active
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_restart_picks_up_a_new_plan(qtbot, instances):
    first = python_plan("print('first', flush=True); import time; time.sleep(30)")
    second = python_plan("print('second', flush=True); import time; time.sleep(30)")
    inst = make(instances, plans=[first, second])
    inst.start()
    qtbot.waitUntil(lambda: "first" in inst.log_lines(), timeout=10_000)
    old_pid = inst.pid
    inst.restart()
    qtbot.waitUntil(lambda: "second" in inst.log_lines(), timeout=10_000)
    assert inst.pid != old_pid and inst.state is InstanceState.RUNNING


def test_requests_are_counted_from_the_log(qtbot, instances):
    release = (
        "0.0{i}.000.000 I slot      release: id  0 | task {i} | stop processing: n_tokens = 9, truncated = 0"
    )
    plan = python_plan(
        f"""
        for i in range(7):
            print({release!r}.format(i=i))
        import time; time.sleep(30)
        """
    )
    inst = make(instances, plan, poll_interval_s=0.2)
    finished: list[None] = []
    inst.requestFinished.connect(lambda: finished.append(None))
    figures: list = []
    inst.figuresChanged.connect(figures.append)
    inst.start()
    qtbot.waitUntil(lambda: len(finished) == 7, timeout=10_000)
    assert inst.requests_per_minute() == 7.0
    qtbot.waitUntil(lambda: figures and figures[-1].requests_per_minute == 7.0, timeout=5_000)
    last = figures[-1]
    assert last.rss_mb is not None and last.rss_mb > 1
    assert last.prompt_tokens_per_s is None  # no /metrics here: unknown, not 0


@pytest.mark.parametrize(
    ("reported", "expected"),
    [("own", 512.0), ("nothing", None), ("unknown amount", None)],
)
def test_vram_is_the_process_trees_reading_and_never_a_made_up_zero(qtbot, instances, reported, expected):
    # NVML itself is checked on a real GPU by benchmarks/gpu_check.py; here: which PIDs count, and n/a.
    def reader() -> dict[int, float | None]:
        pid = inst.pid
        if reported == "own" and pid is not None:
            return {pid: 512.0, 999_999: 1024.0}  # another process's VRAM is not ours
        if reported == "unknown amount" and pid is not None:
            return {pid: None}  # Windows WDDM: the driver does not say
        return {}  # containers: the process is not listed

    inst = make(
        instances, python_plan("import time; time.sleep(30)"), vram_reader=reader, poll_interval_s=0.1
    )
    figures: list = []
    inst.figuresChanged.connect(figures.append)
    inst.start()
    qtbot.waitUntil(lambda: len(figures) >= 2, timeout=5_000)
    assert figures[-1].vram_mb == expected


def test_requests_per_minute_is_unknown_when_the_log_does_not_show_requests(qtbot, instances):
    import dataclasses

    plan = dataclasses.replace(
        python_plan("import time; time.sleep(30)"), counts_requests=False
    )  # --log-disable
    inst = make(instances, plan, poll_interval_s=0.1)
    figures: list = []
    inst.figuresChanged.connect(figures.append)
    inst.start()
    qtbot.waitUntil(lambda: len(figures) >= 1, timeout=5_000)
    assert inst.requests_per_minute() is None and figures[-1].requests_per_minute is None


SLOTS_SERVER = """
import http.server, json, sys, time
port, rate, busy_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
started = time.monotonic()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        elapsed = time.monotonic() - started
        if self.path == "/slots":
            print("slots asked", flush=True)
            busy = elapsed < busy_s
            decoded = int(rate * min(elapsed, busy_s)) if busy else 0
            body = json.dumps([
                {"id": 0, "n_ctx": 512, "is_processing": busy, "id_task": 7,
                 "next_token": [{"has_next_token": busy, "n_decoded": decoded}]},
                {"id": 1, "n_ctx": 512, "is_processing": False},
            ]).encode()
        else:
            body = b'{"status":"ok"}' if self.path == "/health" else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_tokens_per_second_come_from_slots_asked_twice_a_second_while_busy(qtbot, instances):
    # A stand-in server whose one busy slot decodes 40 tokens/s for 4 s, then idles: a rate a real
    # llama-server on a shared CPU cannot be made to hold.
    port = free_port()
    plan = LaunchPlan(
        argv=(sys.executable, "-u", "-c", SLOTS_SERVER, str(port), "40", "4"), env={}, port=port
    )
    inst = make(instances, plan, poll_interval_s=1.0)
    figures: list = []
    inst.figuresChanged.connect(lambda f: figures.append((time.monotonic(), f)))
    inst.start()
    qtbot.waitUntil(lambda: inst.state is InstanceState.RUNNING, timeout=10_000)
    began = time.monotonic()
    qtbot.waitUntil(lambda: any(f.busy_slots == 0 for _, f in figures), timeout=10_000)
    busy_for = time.monotonic() - began
    asked_while_busy = inst.log_lines().count("slots asked")
    assert asked_while_busy >= 1.6 * busy_for, (asked_while_busy, busy_for)  # twice a second, not once
    rates = [f.tokens_per_second for _, f in figures if f.busy_slots == 1 and f.tokens_per_second]
    assert rates and all(abs(rate / 40 - 1) <= 0.15 for rate in rates[1:]), rates  # the live rate
    assert all(f.total_slots == 2 for _, f in figures)
    asked = inst.log_lines().count("slots asked")
    qtbot.wait(3500)  # idle: once a second, and 0.0 once the window has passed
    assert inst.log_lines().count("slots asked") - asked <= 5
    assert figures[-1][1].tokens_per_second == 0.0 and figures[-1][1].busy_slots == 0
