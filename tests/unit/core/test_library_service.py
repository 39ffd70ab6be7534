"""The library service over a real SQLite database: every operation, every rule, every refusal."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from support import recorded_llama_server, write_tiny_gguf

from llamadash.core import database, model_export
from llamadash.core.library_service import (
    AlreadyInLibrary,
    InvalidSource,
    Library,
    LibraryError,
    ModelNotFound,
    ModelRunning,
    NameTaken,
    NoModelsFound,
    NotAModelFile,
    running_by_process_records,
)
from llamadash.core.params import CommandLineError


@pytest.fixture
def db(tmp_path: Path) -> Iterator[ModuleType]:
    database.init_database(tmp_path / "library.db")
    yield database
    database.close_database()


@pytest.fixture
def running() -> set[str]:
    """The names the service is told are running (a front end's knowledge)."""
    return set()


@pytest.fixture
def lib(db: ModuleType, running: set[str]) -> Library:
    return Library(db, is_running=running.__contains__)


# -- adding from a file --------------------------------------------------------------------------


def test_a_file_is_added_by_its_header_with_an_absolute_path_and_a_free_port(
    lib: Library, db: ModuleType, tiny_model: Path, monkeypatch
):
    monkeypatch.chdir(tiny_model.parent)
    added = lib.add_file(tiny_model.name)  # relative: from the working directory
    stored = db.get_model(added.id)
    assert stored is not None
    assert (stored["name"], stored["type"], stored["status"]) == ("tiny-test-llama", "llama", "stopped")
    assert stored["model_path"] == str(tiny_model)
    assert stored["port"] == 8080 and added.already_as is None and added.note is None
    second = lib.add_file(write_tiny_gguf(tiny_model.parent / "other.gguf", name="other"))
    assert second.model["port"] == 8081  # a port no entry uses


def test_a_file_that_is_not_a_gguf_model_is_refused(
    lib: Library, db: ModuleType, tmp_path: Path, tiny_model: Path
):
    notes = tmp_path / "notes.py"
    notes.write_text("print('hello')\n")
    projector = shutil.copy(tiny_model, tmp_path / "mmproj-tiny.gguf")
    for path, reason in (
        (notes, "is not a GGUF file"),
        (projector, "multimodal projector"),
        (tmp_path / "missing.gguf", "the file does not exist"),
    ):
        with pytest.raises(NotAModelFile, match=reason) as refused:
            lib.add_file(path, name="x")
        assert str(refused.value).startswith(f"{path}: ")
    assert db.get_models() == []


def test_a_file_already_in_the_library_is_refused_unnamed_and_said_when_named(
    lib: Library, db: ModuleType, tiny_model: Path
):
    lib.add_file(tiny_model)
    with pytest.raises(AlreadyInLibrary) as refused:
        lib.add_file(tiny_model)
    assert str(refused.value) == (
        f"{tiny_model}: already in the library as 'tiny-test-llama' (Duplicate makes a second entry)"
    )
    assert refused.value.entry == "tiny-test-llama"
    second = lib.add_file(tiny_model, name="second")  # the user asked for a second entry by name
    assert second.already_as == "tiny-test-llama"
    assert second.note == "second uses the model file of 'tiny-test-llama' too (it has a port of its own)"
    assert [m["name"] for m in db.get_models()] == ["tiny-test-llama", "second"]
    assert [m["port"] for m in db.get_models()] == [8080, 8081]


def test_a_chosen_name_must_be_free_and_is_checked_first(lib: Library, db: ModuleType, tiny_model: Path):
    lib.add_file(tiny_model, name="tiny")
    with pytest.raises(NameTaken, match="a model named 'tiny' already exists"):
        lib.add_file("/nonexistent/model.gguf", name=" tiny ")
    assert len(db.get_models()) == 1


def test_settings_type_and_a_check_go_with_a_file(lib: Library, db: ModuleType, tiny_model: Path):
    seen: list[tuple[dict, set[str]]] = []

    def check(config, changed):
        seen.append((dict(config), changed))

    added = lib.add_file(
        tiny_model,
        name="tiny",
        model_type="custom",
        settings={"ctx_size": 256, "port": 9000, "custom_params": {"--perf": True}},
        check=check,
    )
    stored = db.get_model(added.id)
    assert stored is not None
    assert (stored["type"], stored["ctx_size"], stored["port"], stored["custom_params"]) == (
        "custom",
        256,
        9000,
        {"--perf": True},
    )
    assert seen[0][0]["model_path"] == str(tiny_model) and "name" not in seen[0][0]

    def refuse(config, changed):
        raise LibraryError("ctx_size: too big")

    with pytest.raises(LibraryError, match="too big"):
        lib.add_file(tiny_model, name="refused", check=refuse)
    assert [m["name"] for m in db.get_models()] == ["tiny"]


def test_several_files_are_added_or_refused_one_by_one(
    lib: Library, db: ModuleType, tiny_model: Path, tmp_path: Path
):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"nope")
    report = lib.add_files([tiny_model, tiny_model, broken])
    assert [a.name for a in report.added] == ["tiny-test-llama"]  # the same file twice counts once
    assert [type(e) for e in report.refused] == [NotAModelFile]
    again = lib.add_files([tiny_model])
    assert again.added == [] and [type(e) for e in again.refused] == [AlreadyInLibrary]
    assert report.ids == [db.get_models()[0]["id"]]


# -- a folder, Hugging Face, a command line ---------------------------------------------------------


def test_a_scan_offers_the_models_and_adds_the_ones_not_there(
    lib: Library, db: ModuleType, tmp_path: Path, tiny_model: Path
):
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(tiny_model, root / "a.gguf")
    shutil.copy(tiny_model, root / "mmproj-a.gguf")
    write_tiny_gguf(root / "b.gguf", name="b")
    result = lib.scan(root)
    assert [m.path.name for m in result.models] == ["a.gguf", "b.gguf"]
    lib.add_file(root / "b.gguf")
    report = lib.add_scanned(
        [(m, result.projectors[0].path if m.path.name == "a.gguf" else None) for m in result.models]
    )
    assert [a.name for a in report.added] == ["tiny-test-llama"]
    assert report.added[0].model["mmproj"] == str(root / "mmproj-a.gguf")
    assert [type(e) for e in report.refused] == [AlreadyInLibrary]  # b was added already
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoModelsFound, match=r"holds no readable \.gguf models"):
        lib.scan(empty)
    with pytest.raises(LibraryError, match="not a directory"):
        lib.scan(tiny_model)


def test_a_hugging_face_spec(lib: Library, db: ModuleType):
    added = lib.add_hf("ggml-org/gemma-3-1b-it-GGUF:Q4_K_M")
    assert (added.name, added.model["type"], added.model["hf_repo"]) == (
        "gemma-3-1b-it-Q4_K_M",
        "unknown",
        "ggml-org/gemma-3-1b-it-GGUF:Q4_K_M",
    )
    assert lib.add_hf("ggml-org/gemma-3-1b-it-GGUF:Q4_K_M").name == "gemma-3-1b-it-Q4_K_M (copy)"
    with pytest.raises(NameTaken):
        lib.add_hf("user/other", "gemma-3-1b-it-Q4_K_M")
    with pytest.raises(InvalidSource, match="user/model"):
        lib.add_hf("gemma")
    assert len(db.get_models()) == 2


def test_a_command_line_is_stored_with_absolute_paths(
    lib: Library, db: ModuleType, tiny_model: Path, monkeypatch
):
    monkeypatch.chdir(tiny_model.parent)
    (tiny_model.parent / "slots").mkdir(exist_ok=True)
    added = lib.add_command_line(f"llama-server -m {tiny_model.name} --slot-save-path slots -c 512 --perf")
    stored = db.get_model(added.id)
    assert stored is not None
    assert stored["model_path"] == str(tiny_model.resolve())
    assert stored["slot_save_path"] == str((tiny_model.parent / "slots").resolve())
    assert (stored["name"], stored["type"], stored["ctx_size"]) == ("tiny-test-llama", "llama", 512)
    assert stored["custom_params"] == {"--perf": True}
    # the same file again, unnamed: refused as a file is; named: added, and said
    with pytest.raises(AlreadyInLibrary):
        lib.add_command_line(f"llama-server -m {tiny_model}")
    assert lib.add_command_line(f"llama-server -m {tiny_model}", "named").already_as == "tiny-test-llama"
    with pytest.raises(CommandLineError, match="needs a value"):
        lib.add_command_line("llama-server -m x.gguf --ctx-size")
    # a file not on this computer is fine (the line may be from another one)
    assert lib.add_command_line("llama-server -m /elsewhere/qwen.gguf").name == "qwen"


# -- duplicate, rename, delete, set ----------------------------------------------------------------


def test_duplicate_gets_a_new_name_and_port_even_while_the_original_runs(
    lib: Library, db: ModuleType, tiny_model: Path, running: set[str]
):
    original = lib.add_file(tiny_model, settings={"ctx_size": 8192})
    running.add(original.name)
    copy = lib.duplicate(original.name)
    again = lib.duplicate(original.id)
    assert [copy.name, again.name] == ["tiny-test-llama (copy)", "tiny-test-llama (copy 2)"]
    assert [copy.model["port"], again.model["port"]] == [8081, 8082]
    assert copy.model["ctx_size"] == 8192 and copy.model["status"] == "stopped"


def test_rename_and_delete_are_refused_while_the_model_runs(
    lib: Library, db: ModuleType, tiny_model: Path, running: set[str]
):
    model = lib.add_file(tiny_model, name="tiny")
    running.add("tiny")
    with pytest.raises(ModelRunning) as refused:
        lib.rename("tiny", "renamed")
    assert str(refused.value) == "tiny is running; stop it before renaming it"
    assert refused.value.advice == "Stop tiny before renaming it."
    with pytest.raises(ModelRunning, match="before renaming"):
        lib.set_parameters(model.id, {"name": "renamed", "ctx_size": 512})
    with pytest.raises(ModelRunning, match="stop it before deleting it"):
        lib.delete("tiny")
    stored = db.get_model(model.id)
    assert stored is not None and stored["name"] == "tiny" and stored["ctx_size"] is None
    # its parameters may change while it runs (they apply at the next start)
    assert lib.set_parameters("tiny", {"ctx_size": 512}).model["ctx_size"] == 512
    running.clear()
    assert lib.rename(model.id, "renamed").model["name"] == "renamed"
    assert lib.delete("renamed")["id"] == model.id
    assert db.get_models() == []


def test_rename_rules(lib: Library, db: ModuleType, tiny_model: Path):
    lib.add_file(tiny_model, name="a")
    lib.add_hf("user/b-GGUF", "b")
    with pytest.raises(NameTaken):
        lib.rename("a", "b")
    with pytest.raises(LibraryError, match="name may not be empty"):
        lib.rename("a", "  ")
    assert lib.rename("a", "a").changes == {}  # the same name changes nothing
    with pytest.raises(ModelNotFound, match=r"no model named 'ghost' \(models: a, b\)"):
        lib.rename("ghost", "c")


def test_set_parameters_and_custom_flags(lib: Library, db: ModuleType, tiny_model: Path):
    model = lib.add_file(tiny_model, name="m", settings={"custom_params": {"--keep": "3"}})
    changed = lib.set_parameters("m", {"ctx_size": 512}, {"--cors-origins": "http://x", "--keep": None})
    assert changed.model["custom_params"] == {"--cors-origins": "http://x"}
    assert set(changed.changes) == {"ctx_size", "custom_params"}
    with pytest.raises(LibraryError, match=r"m has no custom flag --nope \(it has: --cors-origins\)"):
        lib.set_parameters("m", {}, {"--nope": None})
    checked: list[set[str]] = []
    lib.set_parameters("m", {"type": "other"}, check=lambda config, columns: checked.append(columns))
    assert checked == [{"-"}]  # only the type: nothing llama-server sees
    assert db.get_model(model.id)["type"] == "other"


def test_an_editors_custom_flag_edit_keeps_a_flag_set_meanwhile(
    lib: Library, db: ModuleType, tiny_model: Path
):
    model = lib.add_file(tiny_model, name="m", settings={"custom_params": {"--a": "1"}})
    lib.set_parameters("m", {}, {"--b": "2"})  # another process, after the editor loaded --a
    saved = lib.save_edit(model.id, {"custom_params": {"--a": "1", "--c": "3"}}, {"--a": "1"})
    assert saved["custom_params"] == {"--a": "1", "--b": "2", "--c": "3"}
    saved = lib.save_edit(model.id, {"custom_params": {}}, {"--a": "1", "--c": "3"})
    assert saved["custom_params"] == {"--b": "2"}
    assert lib.save_edit(model.id, {"ctx_size": 1024}, {})["ctx_size"] == 1024


# -- import ----------------------------------------------------------------------------------------


def test_an_import_kept_beside_gets_a_free_port(lib: Library, db: ModuleType, tiny_model: Path):
    lib.add_file(tiny_model, name="tiny", settings={"port": 8080})
    incoming = model_export.parse_models_json(model_export.export_json(db.get_models()))
    preview = lib.plan_import(incoming, "keep_both")
    assert [(p.action, p.name) for p in preview] == [("add", "tiny (2)")]
    assert len(db.get_models()) == 1  # a preview writes nothing
    imported = lib.import_models(incoming, "keep_both")
    assert imported.counts == {"add": 1, "overwrite": 0, "skip": 0}
    assert {m["name"]: m["port"] for m in db.get_models()} == {"tiny": 8080, "tiny (2)": 8081}
    assert lib.import_models(incoming, "skip").counts["skip"] == 1


# -- the CLI's is_running: process records and live processes --------------------------------------


def test_running_by_process_records_sees_a_live_recorded_server(db: ModuleType, tmp_path: Path):
    assert not running_by_process_records("tiny")
    with recorded_llama_server(tmp_path, "tiny"):
        assert running_by_process_records("tiny")
        assert not running_by_process_records("other")
    assert not running_by_process_records("tiny")  # its process is gone: not running
