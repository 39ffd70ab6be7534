"""Reading what a llama-server build accepts from its real --help texts, and probing binaries."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from llamadash.core.params.capabilities import (
    UNKNOWN_BUILD_LABEL,
    CapabilityError,
    build_number,
    clear_probe_cache,
    help_default,
    parse_help,
    probe_binary,
)
from llamadash.core.params.schema import load_schema

DATA = Path(__file__).resolve().parents[3] / "data"
HELP_B11434 = (DATA / "llama-server-help-b11434.txt").read_text(encoding="utf-8")
HELP_B10001 = (DATA / "llama-server-help-b10001.txt").read_text(encoding="utf-8")

posix_only = pytest.mark.skipif(os.name == "nt", reason="fake binaries are shebang scripts")


def test_current_build_has_load_mode_and_spec_draft_flags() -> None:
    caps = parse_help(HELP_B11434)
    for flag in ("--load-mode", "-lm", "--spec-draft-n-max", "-c", "--ctx-size", "--no-kv-offload", "-nkvo"):
        assert caps.accepts(flag), flag
    for flag in ("--mmap", "--no-mmap", "--mlock", "--hf-file-v", "-hffv", "--made-up"):
        assert not caps.accepts(flag), flag
    # llama-server turns _ into - in long options before looking them up
    assert caps.accepts("--ctx_size")
    assert caps.accepts("--spec_draft_n_max")


def test_mid_2026_build_has_mmap_pair_and_vocoder_flags() -> None:
    caps = parse_help(HELP_B10001)
    for flag in ("--mmap", "--no-mmap", "--mlock", "--hf-file-v", "-hffv", "--spec-draft-n-max", "-dio"):
        assert caps.accepts(flag), flag
    for flag in ("--load-mode", "-lm", "--rpc", "--spec-draft-sampling"):
        assert not caps.accepts(flag), flag


@pytest.mark.parametrize("help_text", [HELP_B11434, HELP_B10001], ids=["b11434", "b10001"])
def test_removed_flags_are_kept_apart_and_not_accepted(help_text: str) -> None:
    caps = parse_help(help_text)
    removed = {"--draft", "--draft-n", "--draft-max", "--draft-min", "--draft-n-min", "--spec-ngram-size-n"}
    assert removed <= caps.removed
    assert not removed & caps.flags
    for flag in removed:
        assert not caps.accepts(flag)
        entry = caps.entry(flag)
        assert entry is not None and entry.removed


def test_value_hints_decide_which_flags_take_values() -> None:
    caps = parse_help(HELP_B11434)
    assert caps.takes_value("--ctx-size") and caps.takes_value("-c")
    assert caps.takes_value("--flash-attn")  # "[on|off|auto]" is still a required value
    assert caps.takes_value("--spec-type")
    assert not caps.takes_value("--kv-offload") and not caps.takes_value("--no-kv-offload")
    assert not caps.takes_value("--metrics")
    override = caps.entry("-ot")
    assert override is not None
    assert override.value_hint == "<tensor name pattern>=<buffer type>,..."
    assert override.value_count == 1
    layer_range = caps.entry("--control-vector-layer-range")
    assert layer_range is not None
    assert layer_range.value_hint == "START END"
    assert layer_range.value_count == 2


def test_entries_keep_help_order_text_sections_and_env() -> None:
    caps = parse_help(HELP_B11434)
    first = caps.entries[0]
    assert first.flags == ("-h", "--help", "--usage")
    assert first.value_hint is None
    assert first.help == "print usage and exit"
    assert first.section == "common"
    assert caps.entries[-1].flags == ("--spec-default",)
    assert len(caps.entries) == 256  # arg.cpp registers 256 server arguments in b11434

    kvo = caps.entry("--no-kv-offload")
    assert kvo is not None
    assert kvo.flags == ("-kvo", "--kv-offload", "-nkvo", "--no-kv-offload")
    assert kvo.env == "LLAMA_ARG_KV_OFFLOAD"
    load_mode = caps.entry("-lm")
    assert load_mode is not None
    assert "- mmap+mlock:" in load_mode.help
    assert load_mode.help.splitlines()[0] == "model loading mode (default: auto)"
    temp = caps.entry("--temp")
    assert temp is not None and temp.section == "sampling"
    spec = caps.entry("--spec-draft-n-max")
    assert spec is not None and spec.section == "speculative"
    index = {e.flags[0]: i for i, e in enumerate(caps.entries)}
    assert index["-t"] < index["-c"] < index["--samplers"]


def test_long_flag_lists_wrap_the_help_to_the_next_line() -> None:
    caps = parse_help(HELP_B11434)
    entry = caps.entry("--spec-draft-ngl")
    assert entry is not None
    assert entry.flags == ("--spec-draft-ngl", "-ngld", "--gpu-layers-draft", "--n-gpu-layers-draft")
    assert entry.value_hint == "N"
    assert entry.help.startswith("max. number of draft model layers")


def test_synthetic_help_with_pairs_hints_and_removed_entries() -> None:
    text = (
        "----- common params -----\n"
        "\n"
        "--foo, --no-foo                         whether to foo (default: enabled)\n"
        "                                        (env: LLAMA_ARG_FOO)\n"
        "-b,    --bar N                          bar count\n"
        "--a-very-long-option-name, --another-long-spelling VALUE\n"
        "                                        wrapped help\n"
        "--old N                                 the argument has been removed. use --bar\n"
    )
    caps = parse_help(text)
    assert caps.flags == {
        "--foo",
        "--no-foo",
        "-b",
        "--bar",
        "--a-very-long-option-name",
        "--another-long-spelling",
    }
    assert caps.value_flags == {"-b", "--bar", "--a-very-long-option-name", "--another-long-spelling"}
    assert caps.removed == {"--old"}
    assert [e.flags[0] for e in caps.entries] == ["--foo", "-b", "--a-very-long-option-name", "--old"]
    assert caps.entries[0].env == "LLAMA_ARG_FOO"


@pytest.mark.parametrize(
    ("version_text", "build"),
    [
        ("version: 6765 (abc123)\nbuilt with cc for x86_64", 6765),
        ("version: 11434 (deadbeef)", 11434),
        ("version: 0.6.0-dev (build 0, commit unknown)\nbuilt with GNU 12.2.0", None),  # real b11434
        ("version: 0 (unknown)", None),  # real b10001 from the sdist
        ("", None),
    ],
)
def test_build_number_from_version_text(version_text: str, build: int | None) -> None:
    assert build_number(version_text) == build


def test_label_from_version_text_or_given_or_generic() -> None:
    assert parse_help(HELP_B11434, "version: 6765 (abc123)").label == "llama-server b6765"
    assert parse_help(HELP_B11434, "version: 6765 (abc123)", label="mine").label == "llama-server b6765"
    unknown = "version: 0.6.0-dev (build 0, commit unknown)"
    assert parse_help(HELP_B11434, unknown, label="llama-server b11434").label == "llama-server b11434"
    assert parse_help(HELP_B11434, unknown).label == "llama-server 0.6.0-dev"  # a version, no build number
    assert parse_help(HELP_B11434, unknown).build is None
    assert (
        parse_help(HELP_B11434, "version: 0 (unknown)").label
        == UNKNOWN_BUILD_LABEL
        == "this llama-server build"
    )


def test_uncovered_lists_the_other_flags_of_the_build() -> None:
    schema = load_schema()
    current = {e.flags[-1] for e in parse_help(HELP_B11434).uncovered(schema)}
    for flag in ("--alias", "--special", "--lazy-mode", "--spec-type", "--cors-origins", "--reasoning"):
        assert flag in current
    for flag in ("--help", "--version", "--list-devices", "--cache-list", "--completion-bash"):
        assert flag not in current  # print-and-exit
    for flag in ("--draft-max", "--spec-ngram-size-n"):
        assert flag not in current  # removed
    for flag in ("--ctx-size", "--load-mode", "--no-webui", "--no-kv-offload", "--spec-draft-n-max"):
        assert flag not in current  # a column covers it
    uncovered_flags = {f for e in parse_help(HELP_B11434).uncovered(schema) for f in e.flags}
    schema_flags = {f for p in schema for f in p.all_flags}
    assert not uncovered_flags & schema_flags

    older = {f for e in parse_help(HELP_B10001).uncovered(schema) for f in e.flags}
    assert "--direct-io" in older and "--model-vocoder" in older
    assert "--mmap" not in older and "--hf-file-v" not in older


# ------------------------------------------------------------------------------------------------
# probe_binary with fake binaries (small Python scripts behind a shebang)


def _fake_binary(
    tmp_path: Path,
    *,
    help_text: str = HELP_B10001,
    version: str = "version: 6765 (abc123)",
    help_status: int = 0,
    sleep: float = 0,
    name: str = "llama-server",
) -> Path:
    (tmp_path / "help.txt").write_text(help_text, encoding="utf-8")
    script = tmp_path / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time, pathlib\n"
        "here = pathlib.Path(__file__).parent\n"
        "with open(here / 'calls.log', 'a') as log:\n"
        "    log.write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"time.sleep({sleep})\n"
        "if sys.argv[1:] == ['--help']:\n"
        f"    if {help_status}:\n"
        "        sys.stderr.write('error: libfoo.so: cannot open shared object file\\n')\n"
        f"        sys.exit({help_status})\n"
        "    sys.stdout.write((here / 'help.txt').read_text())\n"
        "elif sys.argv[1:] == ['--version']:\n"
        f"    sys.stderr.write({version!r} + '\\n')\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(autouse=True)
def _fresh_probe_cache() -> None:
    clear_probe_cache()


@posix_only
def test_probe_reads_help_from_stdout_and_version_from_stderr(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path)
    caps = probe_binary(binary)
    assert caps.accepts("--no-mmap") and not caps.accepts("--load-mode")
    assert caps.label == "llama-server b6765"
    assert caps.binary == str(binary.resolve())
    assert _calls(tmp_path) == ["--help", "--version"]


@posix_only
def test_probe_caches_in_memory_per_file_identity(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path)
    first = probe_binary(binary)
    second = probe_binary(binary)
    assert second.flags == first.flags
    assert len(_calls(tmp_path)) == 2  # not run again

    # a new binary at the same path (other size and mtime) is probed again
    _fake_binary(tmp_path, help_text=HELP_B11434)
    os.utime(binary, ns=(1, 1))
    third = probe_binary(binary)
    assert third.accepts("--load-mode")
    assert len(_calls(tmp_path)) == 4


@posix_only
def test_probe_caches_on_disk_keyed_by_path_mtime_and_size(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path)
    cache_dir = tmp_path / "cache"
    probe_binary(binary, cache_dir=cache_dir)
    assert len(_calls(tmp_path)) == 2
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    st = binary.resolve().stat()
    assert list(record) == [f"{binary.resolve()}|{st.st_mtime_ns}|{st.st_size}"]

    clear_probe_cache()  # a new GUI session: memory is empty, the disk cache answers
    again = probe_binary(binary, cache_dir=cache_dir)
    assert again.label == "llama-server b6765"
    assert again.accepts("--mlock")
    assert len(_calls(tmp_path)) == 2

    clear_probe_cache()
    os.utime(binary, ns=(5_000_000_000, 5_000_000_000))  # the binary was replaced
    probe_binary(binary, cache_dir=cache_dir)
    assert len(_calls(tmp_path)) == 4
    assert len(json.loads(files[0].read_text())) == 1  # the stale record of that path is gone


@posix_only
def test_probe_ignores_a_corrupt_disk_cache(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "llama-server-capabilities.json").write_text("{not json")
    assert probe_binary(binary, cache_dir=cache_dir).accepts("--mmap")


@posix_only
def test_probe_finds_a_bare_name_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_binary(tmp_path, name="my-llama-server")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(tmp_path.parent)
    assert probe_binary("my-llama-server").accepts("--hf-file-v")


def test_probe_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(CapabilityError, match="not found"):
        probe_binary(tmp_path / "nope" / "llama-server")


def test_probe_directory(tmp_path: Path) -> None:
    with pytest.raises(CapabilityError, match="directory"):
        probe_binary(tmp_path)


@posix_only
def test_probe_not_executable(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path)
    binary.chmod(0o644)
    with pytest.raises(CapabilityError, match="not executable"):
        probe_binary(binary)


@posix_only
def test_probe_nonzero_exit_without_help(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path, help_status=127)
    with pytest.raises(CapabilityError, match=r"status 127 without help text: error: libfoo\.so"):
        probe_binary(binary)


@posix_only
def test_probe_times_out(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path, sleep=5)
    with pytest.raises(CapabilityError, match=r"did not finish within 0\.3 s"):
        probe_binary(binary, timeout=0.3)


@posix_only
def test_probe_rejects_output_that_is_not_llama_server_help(tmp_path: Path) -> None:
    binary = _fake_binary(tmp_path, help_text="Usage: something else entirely\n")
    with pytest.raises(CapabilityError):
        probe_binary(binary)


@posix_only
def test_probe_ignores_llama_arg_variables_of_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llama-server parses LLAMA_ARG_* before argv; a bad one would break even --help
    script = tmp_path / "llama-server"
    (tmp_path / "help.txt").write_text(HELP_B11434)
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, pathlib\n"
        "if 'LLAMA_ARG_CTX_SIZE' in os.environ:\n"
        "    sys.exit('error while handling environment variable')\n"
        "if sys.argv[1:] == ['--help']:\n"
        "    print((pathlib.Path(__file__).parent / 'help.txt').read_text())\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("LLAMA_ARG_CTX_SIZE", "big")
    assert probe_binary(script).accepts("--load-mode")


@pytest.mark.parametrize(
    ("help_text", "default"),
    [
        # the parenthesis is matched: what follows it (".", the env line) is not the default
        (
            "context limit per parallel slot (default: unset, behavior unchanged).\nwhen set without"
            " -c/--ctx-size, the shared KV pool is sized to\nn_parallel*N\n(env: LLAMA_ARG_KV_UNIFIED_PER_SLOT)",
            "unset, behavior unchanged",
        ),
        ("number of tokens to keep (default: 0, -1 =\nall)", "0, -1 = all"),
        ("whether to enable (default: false)\n(env: LLAMA_ARG_PERF)", "false"),
        ("normalisation (default: 2) (-1=none, 0=max absolute)", "2"),
        ("a mask (default: same as (the) --cpu-mask)", "same as (the) --cpu-mask"),
        ("never closed (default: 4\nnext line", "4"),
        ("no default here", None),
    ],
)
def test_a_help_default_is_read_up_to_its_closing_parenthesis(help_text: str, default: str | None) -> None:
    assert help_default(help_text) == default


def test_every_uncovered_flag_of_b11434_has_a_one_line_default() -> None:
    caps = parse_help(HELP_B11434, label="b11434")
    entries = {entry.long_flag: entry for entry in caps.uncovered(load_schema())}
    assert entries["--kv-unified-per-slot"].default == "unset, behavior unchanged"
    for flag, entry in entries.items():
        default = entry.default
        assert default is None or ("\n" not in default and "(env:" not in default), flag
