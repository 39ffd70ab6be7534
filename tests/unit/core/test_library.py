"""GGUF model info, directory scans, Hugging Face specs and names for the model library."""

from __future__ import annotations

import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from llamadash.core import library
from llamadash.core.messages import format_size
from llamadash.core.library import (
    FILE_TYPES,
    HFSpec,
    duplicate_model,
    find_parts,
    format_count,
    new_model_from_file,
    parse_hf_spec,
    projector_for,
    read_model_info,
    scan_directory,
    split_part,
    unique_name,
)

TINY_WEIGHTS = 115_520  # what write_tiny_gguf's tensor shapes add up to


def write_gguf(
    path: Path,
    *,
    tensors: int = 4,
    split_max_tensors: int = 0,
    size_label: str | None = None,
    file_type: gguf.LlamaFileType = gguf.LlamaFileType.ALL_F32,
    padding: int = 0,
) -> list[Path]:
    """A small llama GGUF of ``tensors`` 4x8 tensors, split like llama.cpp's gguf-split if asked."""
    writer = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    writer.add_name(path.stem)
    writer.add_context_length(2048)
    writer.add_file_type(file_type)
    if size_label:
        writer.add_string("general.size_label", size_label)
    if padding:
        writer.add_array("test.padding", [0] * padding)  # makes the file bigger without tensors
    for i in range(tensors):
        writer.add_tensor(f"blk.{i}.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(path.parent.glob(f"{path.stem}*.gguf"))


# ------------------------------------------------------------------------------------------------
# one file


def test_tiny_model_info_comes_from_its_header(tiny_model: Path):
    info = read_model_info(tiny_model)
    assert info.error is None
    assert info.architecture == "llama"
    assert info.name == "tiny-test-llama"
    assert info.display_name == "tiny-test-llama"
    assert (info.parameter_count, info.parameter_source) == (TINY_WEIGHTS, "tensors")
    assert info.quantization == "F32"
    assert info.context_length == 512
    assert info.size_bytes == tiny_model.stat().st_size
    assert info.parts == (tiny_model,) and info.expected_parts == 1
    assert not info.is_projector
    rows = dict(info.summary())
    assert rows["Parameters"] == "116 K (counted from the tensor shapes)"
    assert rows["Trained context"] == "512 tokens"
    assert rows["Size on disk"] == format_size(tiny_model.stat().st_size)


def test_split_model_is_counted_over_all_parts(tmp_path: Path):
    parts = write_gguf(tmp_path / "big.gguf", tensors=4, split_max_tensors=2)
    assert [p.name for p in parts] == ["big-00001-of-00002.gguf", "big-00002-of-00002.gguf"]
    info = read_model_info(parts[1])  # any part names the whole model
    assert info.path == parts[0]
    assert info.parts == tuple(parts) and info.expected_parts == 2 and info.missing_parts == ()
    assert (info.parameter_count, info.parameter_source) == (4 * 32, "tensors")
    assert info.size_bytes == sum(p.stat().st_size for p in parts)
    assert info.architecture == "llama" and info.context_length == 2048
    assert info.display_name == "big"  # general.name of the first part
    assert dict(info.summary())["Parts"] == "2 of 2"


def test_split_model_with_a_missing_part_is_not_counted_from_tensors(tmp_path: Path):
    parts = write_gguf(tmp_path / "big.gguf", tensors=4, split_max_tensors=2)
    parts[1].unlink()
    info = read_model_info(parts[0])
    assert info.missing_parts == (2,)
    assert info.parameter_source != "tensors"  # half the tensors would be a wrong count
    assert dict(info.summary())["Parts"] == "1 of 2 (missing: 2)"


def test_size_label_when_the_tensor_table_is_empty(tmp_path: Path):
    write_gguf(tmp_path / "label.gguf", tensors=0, size_label="8B")
    info = read_model_info(tmp_path / "label.gguf")
    assert (info.parameter_count, info.parameter_source) == (8_000_000_000, "size_label")
    assert dict(info.summary())["Parameters"] == "8 B (from the size label 8B)"


def test_estimate_from_size_and_file_type_as_the_last_resort(tmp_path: Path):
    write_gguf(tmp_path / "q8.gguf", tensors=0, file_type=gguf.LlamaFileType.MOSTLY_Q8_0, padding=100_000)
    info = read_model_info(tmp_path / "q8.gguf")
    assert info.quantization == "Q8_0"
    assert info.parameter_source == "estimate"
    assert info.parameter_count == round(info.size_bytes * 8 / 8.5)
    assert "estimated from the file size and quantization" in dict(info.summary())["Parameters"]


@pytest.mark.parametrize(
    ("label", "count"),
    [("8B", 8 * 10**9), ("1.5B", 15 * 10**8), ("135M", 135 * 10**6), ("30B-A3B", 30 * 10**9)],
)
def test_size_labels(label: str, count: int):
    assert library.parse_size_label(label) == count


def test_mixture_of_experts_label_names_no_total():
    assert library.parse_size_label("8x7B") is None


def test_a_file_that_is_not_gguf_reports_an_error(tmp_path: Path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    info = read_model_info(junk)
    assert info.error and "not a GGUF file" in info.error
    assert info.architecture is None and info.parameter_count is None
    assert dict(info.summary())["Architecture"] == "n/a"


def test_file_type_names_match_the_gguf_package():
    for member in gguf.LlamaFileType:
        if member.name == "GUESSED":
            continue
        expected = member.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        assert FILE_TYPES[member.value] == expected


# ------------------------------------------------------------------------------------------------
# file names and directories


def test_split_part_names():
    assert split_part("Qwen3-235B-Q4_K_M-00002-of-00005.gguf") == ("Qwen3-235B-Q4_K_M", 2, 5)
    assert split_part("model.gguf") is None
    assert split_part("x-00006-of-00005.gguf") is None  # part beyond the count
    assert library.model_stem("/m/x-00001-of-00002.gguf") == "x"
    assert library.model_stem("/m/y.gguf") == "y"
    assert find_parts("/nowhere/x-00001-of-00003.gguf") == ((Path("/nowhere/x-00001-of-00003.gguf"),), 3)


def test_scan_finds_split_models_once_and_projectors_apart(tmp_path: Path, tiny_model: Path):
    models_dir = tmp_path / "models"
    (models_dir / "qwen").mkdir(parents=True)
    split = write_gguf(models_dir / "qwen" / "x.gguf", tensors=4, split_max_tensors=2)
    shutil.copy(tiny_model, models_dir / "qwen" / "mmproj-x.gguf")
    shutil.copy(tiny_model, models_dir / "single.gguf")
    (models_dir / ".cache").mkdir()
    shutil.copy(tiny_model, models_dir / ".cache" / "partial.gguf")  # hidden: skipped
    (models_dir / "broken.gguf").write_bytes(b"GGUF")  # truncated header
    (models_dir / "notes.txt").write_text("not a model")

    result = scan_directory(models_dir)
    assert [m.path for m in result.models] == [split[0], models_dir / "single.gguf"]
    assert result.models[0].parts == tuple(split)
    assert [p.path.name for p in result.projectors] == ["mmproj-x.gguf"]
    assert len(result.problems) == 1 and result.problems[0].startswith(str(models_dir / "broken.gguf"))
    assert projector_for(result.models[0], result.projectors) == result.projectors[0]
    assert projector_for(result.models[1], result.projectors) is None  # another directory

    flat = scan_directory(models_dir, recursive=False)
    assert [m.path.name for m in flat.models] == ["single.gguf"]


def test_scan_of_a_file_is_refused(tiny_model: Path):
    with pytest.raises(NotADirectoryError):
        scan_directory(tiny_model)


# ------------------------------------------------------------------------------------------------
# specs and names


@pytest.mark.parametrize(
    ("text", "hf_repo", "name"),
    [
        ("ggml-org/gemma-3-1b-it-GGUF:Q4_K_M", "ggml-org/gemma-3-1b-it-GGUF:Q4_K_M", "gemma-3-1b-it-Q4_K_M"),
        ("  unsloth/Qwen3-8B-GGUF  ", "unsloth/Qwen3-8B-GGUF", "Qwen3-8B"),
        (
            "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/tree/main",
            "bartowski/Llama-3.2-1B-Instruct-GGUF",
            "Llama-3.2-1B-Instruct",
        ),
        ("user/model:q8_0", "user/model:q8_0", "model-q8_0"),
    ],
)
def test_hf_specs(text: str, hf_repo: str, name: str):
    spec = parse_hf_spec(text)
    assert spec.hf_repo == hf_repo
    assert spec.suggested_name == name


@pytest.mark.parametrize(
    "text", ["", "just-a-model", "a/b/c", "user/model:", "/model", "user/mo del", "user/model:Q4 K"]
)
def test_bad_hf_specs_are_refused_with_an_example(text: str):
    with pytest.raises(ValueError, match="user/model or user/model:quant"):
        parse_hf_spec(text)


def test_hf_model_entry():
    model = library.new_model_from_hf(
        HFSpec("ggml-org", "gemma-3-1b-it-GGUF", "Q4_K_M"), ["gemma-3-1b-it-Q4_K_M"]
    )
    assert model == {
        "name": "gemma-3-1b-it-Q4_K_M (copy)",
        "type": "unknown",
        "status": "stopped",
        "hf_repo": "ggml-org/gemma-3-1b-it-GGUF:Q4_K_M",
    }


def test_unique_names():
    assert unique_name("qwen", []) == "qwen"
    assert unique_name("qwen", ["qwen"]) == "qwen (copy)"
    assert unique_name("qwen", ["qwen", "qwen (copy)"]) == "qwen (copy 2)"
    assert unique_name("qwen", ["other"], copy=True) == "qwen (copy)"
    # a copy of a copy counts on instead of stacking "(copy) (copy)"
    assert unique_name("qwen (copy)", ["qwen", "qwen (copy)"], copy=True) == "qwen (copy 2)"
    assert unique_name("qwen (copy 2)", ["qwen (copy)", "qwen (copy 2)"], copy=True) == "qwen (copy 3)"


def test_duplicate_keeps_settings_and_drops_identity():
    original = {
        "id": 3,
        "name": "qwen",
        "type": "qwen3",
        "status": "running",
        "created_at": 1,
        "updated_at": 2,
        "ctx_size": 8192,
        "temperature": None,
        "custom_params": {"--perf": True},
    }
    copy = duplicate_model(original, ["qwen"])
    assert copy == {
        "name": "qwen (copy)",
        "type": "qwen3",
        "status": "stopped",
        "ctx_size": 8192,
        "custom_params": {"--perf": True},
    }
    copy["custom_params"]["--perf"] = False
    assert original["custom_params"] == {"--perf": True}


def test_new_model_from_file(tiny_model: Path, tmp_path: Path):
    info = read_model_info(tiny_model)
    model = new_model_from_file(info, ["tiny-test-llama"], projector=tmp_path / "mmproj.gguf")
    assert model == {
        "name": "tiny-test-llama (copy)",
        "type": "llama",
        "status": "stopped",
        "model_path": str(tiny_model),
        "mmproj": str(tmp_path / "mmproj.gguf"),
    }


def test_model_source_order():
    assert library.model_source({"hf_repo": "a/b", "model_path": "/m/x.gguf"}) == ("model_path", "/m/x.gguf")
    assert library.model_source({"hf_repo": "a/b"}) == ("hf_repo", "a/b")
    assert library.model_source({"name": "router"}) is None


def test_human_sizes_and_counts():
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(5 * 1024**3) == "5 GiB"
    assert format_size(None) == "n/a"
    assert format_count(8_030_261_248) == "8.03 B"
    assert format_count(999) == "999"
    assert format_count(None) == "n/a"
