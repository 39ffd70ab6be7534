"""Splitting llama-server's output into lines, recognising what matters, and the rotated log file."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadash.core.serverlog import (
    EventKind,
    LineSplitter,
    RotatingLogFile,
    legacy_log_file_name,
    log_file_name,
    parse_line,
    progress_from_dots,
)

# Lines printed by the real llama-server b11434 (see tests/integration for the process itself).
LOADED = "0.00.013.911 I srv  llama_server: model loaded"
LISTENING = "0.00.013.949 I srv  llama_server: listening on http://127.0.0.1:18091"
RELEASE = "0.02.008.887 I slot      release: id  3 | task 0 | stop processing: n_tokens = 22, truncated = 0"
PROMPT_TIMING = (
    "0.02.008.465 I slot print_timing: id  3 | task 0 | prompt eval time =       0.64 ms /     7 tokens "
    "(    0.09 ms per token, 11006.29 tokens per second)"
)
EVAL_TIMING = (
    "0.02.008.501 I slot print_timing: id  3 | task 0 |        eval time =       1.58 ms /    16 tokens "
    "(    0.11 ms per token,  9505.70 tokens per second)"
)
LOAD_FAILED = "0.00.006.436 E srv    load_model: failed to load model, 'nope.gguf'"
BIND_FAILED = (
    "0.00.003.151 E srv         start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 18093"
)
OOM = "0.00.100.000 E ggml_backend_cuda_buffer_type_alloc_buffer: allocating 8000.00 MiB on device 0: cudaMalloc failed: out of memory"
WARNING = "0.00.002.661 W srv  llama_server: security: no API key is set and CORS allows all origins"
PLAIN = "0.02.006.059 I slot get_availabl: id  3 | task -1 | selected slot by LRU, t_last = -1"


class TestLineSplitter:
    def test_newlines_crlf_and_bare_cr_all_end_a_line(self):
        splitter = LineSplitter()
        assert splitter.feed(b"one\ntwo\r\nthree\rfour") == ["one", "two", "three"]
        assert splitter.pending == "four"
        assert splitter.flush() == ["four"]

    def test_crlf_split_across_chunks_is_one_line_end(self):
        splitter = LineSplitter()
        assert splitter.feed(b"a\r") == ["a"]
        assert splitter.feed(b"\nb\n") == ["b"]  # no empty line for the "\n" that completed "\r\n"

    def test_progress_bar_with_cr_gives_one_line_per_update(self):
        splitter = LineSplitter()
        lines = splitter.feed(b"downloading 10%\rdownloading 50%\rdownloading 100%\n")
        assert lines == ["downloading 10%", "downloading 50%", "downloading 100%"]

    def test_utf8_character_split_between_chunks_stays_whole(self):
        text = "température 72 °C\n".encode()
        cut = text.index("°".encode()) + 1  # in the middle of the two-byte character
        splitter = LineSplitter()
        assert splitter.feed(text[:cut]) == []
        assert splitter.feed(text[cut:]) == ["température 72 °C"]

    def test_invalid_bytes_are_replaced_not_fatal(self):
        assert LineSplitter().feed(b"bad \xff\xfe bytes\n") == ["bad \ufffd\ufffd bytes"]

    def test_a_line_without_end_cannot_grow_without_bound(self):
        splitter = LineSplitter(max_line_chars=100)
        lines = []
        for _ in range(50):
            lines += splitter.feed(b"x" * 37)
        assert len(splitter.pending) < 100
        assert all(len(line) == 100 for line in lines)
        assert sum(map(len, lines)) + len(splitter.pending) == 50 * 37

    def test_empty_lines_are_dropped(self):
        assert LineSplitter().feed(b"\n\n\r\nx\n\n") == ["x"]


class TestParseLine:
    def test_finished_request(self):
        event = parse_line(RELEASE)
        assert event is not None and event.kind is EventKind.REQUEST_FINISHED
        assert (event.slot, event.task) == (3, 0)

    def test_timings(self):
        prompt, generation = parse_line(PROMPT_TIMING), parse_line(EVAL_TIMING)
        assert prompt is not None and prompt.kind is EventKind.TIMING and prompt.text == "prompt"
        assert prompt.value == pytest.approx(11006.29)
        assert generation is not None and generation.text == "generation"
        assert generation.value == pytest.approx(9505.70)

    def test_model_loaded_and_listening(self):
        loaded, listening = parse_line(LOADED), parse_line(LISTENING)
        assert loaded is not None and loaded.kind is EventKind.MODEL_LOADED
        assert listening is not None and listening.kind is EventKind.LISTENING
        assert listening.url == "http://127.0.0.1:18091"

    def test_older_builds_listening_line(self):
        event = parse_line("main: server is listening on http://0.0.0.0:8080 - starting the main loop")
        assert event is not None and event.url == "http://0.0.0.0:8080"

    @pytest.mark.parametrize(
        ("line", "category"),
        [(LOAD_FAILED, "load_failed"), (BIND_FAILED, "bind_failed"), (OOM, "out_of_memory")],
    )
    def test_errors_are_classified(self, line: str, category: str):
        event = parse_line(line)
        assert event is not None and event.kind is EventKind.ERROR
        assert event.category == category
        assert not event.text.startswith("0.0")  # the timestamp prefix is stripped for the UI

    def test_untimestamped_error_words(self):
        event = parse_line("error: unknown argument: --bogus")
        assert event is not None and event.kind is EventKind.ERROR and event.category == "other"

    @pytest.mark.parametrize("line", [WARNING, PLAIN, "", "hello world"])
    def test_ordinary_lines_are_not_events(self, line: str):
        assert parse_line(line) is None

    def test_load_stages_and_dots(self):
        stage = parse_line(
            "0.00.007.008 I load_tensors: loading model tensors, this can take a while... (mmap)"
        )
        assert stage is not None and stage.kind is EventKind.LOAD_PROGRESS and stage.text == "loading tensors"
        dots = parse_line("." * 100)
        assert dots is not None and dots.kind is EventKind.LOAD_PROGRESS and dots.value == 1.0
        assert progress_from_dots("." * 42) == pytest.approx(0.42)
        assert progress_from_dots("...x") is None


class TestRotatingLogFile:
    def test_rotates_by_size_and_keeps_the_number_of_backups(self, tmp_path: Path):
        path = tmp_path / "logs" / "m.log"
        log = RotatingLogFile(path, max_bytes=1000, backups=2)
        for i in range(100):
            log.write_lines([f"line {i:04d} " + "x" * 40])
        log.close()
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["m.log", "m.log.1", "m.log.2"]
        assert all(p.stat().st_size <= 1000 for p in path.parent.iterdir())
        assert path.read_text().splitlines()[-1].startswith("line 0099")
        newest_backup = (path.parent / "m.log.1").read_text().splitlines()
        oldest_kept = (path.parent / "m.log.2").read_text().splitlines()
        assert newest_backup[0] > oldest_kept[-1]  # .1 is newer than .2

    def test_appends_across_reopen(self, tmp_path: Path):
        path = tmp_path / "m.log"
        for text in ("a", "b"):
            log = RotatingLogFile(path)
            log.write_lines([text])
            log.close()
        assert path.read_text() == "a\nb\n"

    def test_unwritable_path_is_reported_not_raised(self, tmp_path: Path):
        blocker = tmp_path / "file"
        blocker.write_text("")
        log = RotatingLogFile(blocker / "m.log")
        log.write_lines(["x"])
        assert log.error and "cannot write" in log.error


class Clock:
    """Monotonic seconds that move only when the test says so (the moment of a retry is chosen)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def full_disk_at(path: Path) -> Path:
    """Make ``path`` a link to /dev/full: every write to it fails with ENOSPC, as on a full disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")
    return path


class TestLogFileFailures:
    def test_a_full_disk_drops_lines_until_a_retry_works_then_notes_what_was_lost(self, tmp_path: Path):
        clock = Clock()
        path = full_disk_at(tmp_path / "logs" / "m.log")
        log = RotatingLogFile(path, clock=clock)
        log.write_lines(["first"])  # never raises
        assert log.error is not None and "No space left on device" in log.error and str(path) in log.error
        for i in range(99):
            log.write_lines([f"lost {i}"])
        path.unlink()  # space again, but within the retry interval nothing is tried
        clock.now += 0.5
        log.write_lines(["lost too"])
        assert not path.exists() and log.error is not None
        clock.now += 0.6  # past the 1 s retry interval: the next write tries again and works
        log.write_lines(["back"])
        log.close()
        assert log.error is None
        lines = path.read_text().splitlines()
        assert lines[1:] == ["back"]
        assert lines[0].startswith("=== llamadash: 101 lines of output could not be written to this log ")
        assert "No space left on device" in lines[0] and log.recovery_note in lines[0]
        assert log.lost_lines == 101

    def test_a_retry_that_fails_again_costs_no_new_episode(self, tmp_path: Path):
        clock = Clock()
        path = full_disk_at(tmp_path / "m.log")
        log = RotatingLogFile(path, clock=clock)
        log.write_lines(["a", "b"])
        first_error = log.error
        for _ in range(3):
            clock.now += 1.5
            log.write_lines(["c"])
        assert log.error == first_error and log.lost_lines == 5
        path.unlink()
        clock.now += 1.5
        log.write_lines(["d"])
        log.close()
        assert path.read_text().splitlines()[1:] == ["d"] and "5 lines" in log.recovery_note

    def test_a_second_episode_counts_only_its_own_lines(self, tmp_path: Path):
        clock = Clock()
        path = tmp_path / "m.log"
        log = RotatingLogFile(path, clock=clock)
        for lost in (3, 2):
            log.write_lines(["ok"])
            log.close()
            path.rename(tmp_path / f"kept-{lost}.log")
            full_disk_at(path)
            log.write_lines(["x"] * lost)
            path.unlink()
            clock.now += 1.5
            log.write_lines(["ok again"])
            log.close()
            assert f"{lost} lines" in log.recovery_note and log.error is None
        assert path.read_text().count("could not be written") == 1  # one note per episode

    def test_a_folder_that_cannot_be_made_is_reported_then_retried(self, tmp_path: Path):
        clock = Clock()
        blocker = tmp_path / "logs"
        blocker.write_text("a file where the logs folder should be")
        log = RotatingLogFile(blocker / "m.log", clock=clock)
        log.write_lines(["x"])
        assert log.error and "cannot write" in log.error
        blocker.unlink()
        clock.now += 1.5
        log.write_lines(["y"])
        log.close()
        assert log.error is None and (blocker / "m.log").read_text().splitlines()[1:] == ["y"]

    def test_a_half_line_of_an_earlier_run_is_ended_before_new_lines(self, tmp_path: Path):
        path = tmp_path / "m.log"
        path.write_text("cut short by a full dis")
        log = RotatingLogFile(path)
        log.write_lines(["next run"])
        log.close()
        assert path.read_text() == "cut short by a full dis\nnext run\n"


class TestLogFileName:
    NAMES = (
        "a/b",
        "a_b",
        "a\\b",
        ".",
        "..",
        "...",
        "model",
        "CON",
        "con",
        "Con.txt",
        "nul",
        "COM1",
        "LPT9",
        "lpt¹",
        "x" * 300,
        "x" * 299 + "y",
        "é" * 200,
        "é" * 199 + "e",
        "🦙" * 80,
        "tail.",
        "tail",
        " lead",
        "_lead",
        "a_b-f3e8c5f1a0",
        "qwen2.5:7b",
        "qwen2.5_7b",
        "",
    )

    def test_every_name_gets_a_file_of_its_own(self):
        names = {log_file_name(name) for name in self.NAMES}
        assert len(names) == len(self.NAMES)

    def test_names_are_bounded_and_safe_on_every_file_system(self, tmp_path: Path):
        for name in self.NAMES:
            file_name = log_file_name(name)
            assert len(file_name.encode()) <= 80, name
            assert file_name.endswith(".log") and not file_name.startswith(".")
            assert not set(file_name) & set('/\\:*?"<>|\0 ')
            stem = file_name.split(".", 1)[0].upper()
            assert stem not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT9", "LPT¹"}
            (tmp_path / f"{file_name}.3").write_text(name)  # a real file, rotated suffix included
        assert len(list(tmp_path.iterdir())) == len(self.NAMES)

    def test_plain_names_keep_their_name_and_changed_ones_a_readable_prefix(self):
        assert (
            log_file_name("Qwen2.5-7B-Instruct") == "Qwen2.5-7B-Instruct.log"
        )  # as before: old logs stay found
        assert log_file_name("tiny") == legacy_log_file_name("tiny") == "tiny.log"
        assert log_file_name("org/model:Q4").startswith("org_model_Q4-")
        assert log_file_name("x" * 300).startswith("x" * 64 + "-")

    def test_the_name_is_the_same_in_every_run(self):
        # fixed values: a log file must be found again by the next version and the next process
        assert log_file_name("a/b") == "a_b-c14cddc033.log"
        assert log_file_name(".") == "model-cdb4ee2aea.log"
        assert log_file_name("CON") == "CON-a3dbc4b644.log"
