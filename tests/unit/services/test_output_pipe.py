"""The output pipe without Qt or a process: bytes in; lines, buffer, log file, events and the exit out."""

from __future__ import annotations

from pathlib import Path

from llamadash.core.serverlog import EventKind, LogEvent
from llamadash.services.output_pipe import OutputPipe, log_file_for

RELEASE = "0.01.000.000 I slot      release: id  0 | task 1 | stop processing: n_tokens = 9, truncated = 0"
ERROR = "0.00.002.000 E srv    load_model: failed to load model, 'x.gguf'"
TENSORS = "0.00.007.008 I load_tensors: loading model tensors, this can take a while... (mmap)"
LOADED = "0.00.013.911 I srv  llama_server: model loaded"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.events: list[LogEvent] = []
        self.requests = 0
        self.progress: list[tuple[float | None, str]] = []
        self.problems: list[str] = []

    def pipe(self, log_path: Path | None, **kwargs) -> OutputPipe:
        return OutputPipe(
            log_path,
            buffer_lines=kwargs.get("buffer_lines", 100),
            log_max_bytes=1_000_000,
            log_backups=1,
            on_line=self.lines.append,
            on_event=self.events.append,
            on_request=self.request,
            on_progress=lambda fraction, stage: self.progress.append((fraction, stage)),
            on_file_problem=self.problems.append,
        )

    def request(self) -> None:
        self.requests += 1


def test_chunks_become_lines_in_the_buffer_the_file_and_the_callbacks(tmp_path: Path):
    seen = Recorder()
    log = tmp_path / "logs" / "tiny.log"
    pipe = seen.pipe(log, buffer_lines=3)
    pipe.note(["=== llamadash: starting llama-server ==="])
    for chunk in (b"first li", b"ne\nsecond\r\nthird\rfour", b"th\n", RELEASE.encode() + b"\n"):
        pipe.feed(chunk)
    assert seen.lines == ["first line", "second", "third", "fourth", RELEASE]
    assert pipe.lines() == ["third", "fourth", RELEASE] and pipe.lines_received == 5
    assert seen.requests == 1 and seen.events == []  # a finished request is counted, not an event
    assert pipe.requests_per_minute() == 1.0
    pipe.close_file()
    text = log.read_text(encoding="utf-8")
    assert text.startswith("=== llamadash: starting llama-server ===\nfirst line\n") and RELEASE in text


def test_load_progress_counts_only_while_loading():
    seen = Recorder()
    pipe = seen.pipe(None)
    pipe.feed(f"{TENSORS}\n".encode())
    assert seen.progress == [] and [e.kind for e in seen.events] == [EventKind.LOAD_PROGRESS]
    pipe.loading = True
    pipe.feed(f"{TENSORS}\n".encode())
    pipe.feed(b".......")  # the dots of a load, on a line not ended yet
    pipe.feed(f"\n{LOADED}\n".encode())
    assert seen.progress[0] == (None, "loading tensors")
    assert seen.progress[-1] == (1.0, "model loaded") and pipe.progress == (1.0, "model loaded")
    pipe.begin_run()
    assert pipe.progress == (None, "")


def test_a_run_ends_with_its_outcome_its_last_lines_and_a_note_in_the_log(tmp_path: Path):
    seen = Recorder()
    log = tmp_path / "tiny.log"
    pipe = seen.pipe(log)
    pipe.note(["=== llamadash: adopted llama-server pid 1 ==="], buffered=True)
    pipe.feed(f"{ERROR}\nlast words without a line end".encode())
    outcome = pipe.end_run(3, False, pid=42)
    assert outcome.code == 3 and outcome.error_line == "load_model: failed to load model, 'x.gguf'"
    assert outcome.last_lines == (ERROR, "last words without a line end")  # no llamadash notes
    assert log.read_text(encoding="utf-8").endswith(
        "last words without a line end\n=== llama-server exited with code 3 ===\n"
    )
    assert (
        pipe.end_run(None, False, pid=42).description
        == "(pid 42, adopted) exited; its exit status is unknown"
    )
    assert "=== adopted llama-server pid 42 is gone ===" in log.read_text(encoding="utf-8")
    pipe.begin_run()
    assert pipe.last_error_line is None


def test_a_log_file_that_cannot_be_written_is_said_once_and_the_lines_stay(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    seen = Recorder()
    pipe = seen.pipe(blocker / "tiny.log")
    pipe.feed(b"one\ntwo\n")
    pipe.feed(b"three\n")
    assert len(seen.problems) == 1 and "cannot write the log file" in seen.problems[0]
    assert pipe.file_problem == seen.problems[0] and pipe.lines() == ["one", "two", "three"]
    pipe.close_file()


def test_the_log_file_of_a_name_and_an_older_one_to_read(tmp_path: Path):
    path = log_file_for(tmp_path, "my model")
    assert path.parent == tmp_path and path.suffix == ".log"
    assert log_file_for(tmp_path, "my model", existing=True) == path  # nothing older: the new one


def test_every_request_of_the_log_becomes_one_record_and_the_unfinished_ones_come_at_the_end(tmp_path: Path):
    from llamadash.core.requests_log import RequestRecord, RequestStatus

    saved = (Path(__file__).resolve().parents[2] / "data" / "llama-server-requests-b11434.log").read_bytes()
    records: list[RequestRecord] = []
    seen = Recorder()
    pipe = OutputPipe(
        None,
        buffer_lines=100,
        log_max_bytes=1_000_000,
        log_backups=1,
        on_line=seen.lines.append,
        on_event=seen.events.append,
        on_request=seen.request,
        on_progress=lambda fraction, stage: None,
        on_file_problem=seen.problems.append,
        on_record=records.append,
        model="slow",
    )
    pipe.begin_run()
    for start in range(0, len(saved), 333):  # chunks that cut lines anywhere
        pipe.feed(saved[start : start + 333])
    released = saved.count(b"stop processing")
    assert len(records) == released == seen.requests
    assert all(r.model == "slow" and r.status is not RequestStatus.INCOMPLETE for r in records)
    assert records[0].prompt_tokens == 92 and records[0].generated_tokens == 9 and records[0].slot == 1
    # a request still running when the process ends: recorded incomplete, once
    pipe.feed(b"0.20.000.000 I slot launch_slot_: id  0 | task 999 | processing task, is_child = 0\n")
    pipe.end_run(0, False, pid=1)
    assert [(r.task, r.status) for r in records[released:]] == [(999, RequestStatus.INCOMPLETE)]
    pipe.begin_run()
    pipe.end_run(0, False, pid=2)
    assert len(records) == released + 1
