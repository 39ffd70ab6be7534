"""Reading GGUF metadata from the header only."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_tiny_gguf

from llamadash.core.gguf_info import GGUFError, model_type, read_metadata


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", name="my-tiny")


def test_reads_architecture_name_and_context(gguf_file: Path):
    meta = read_metadata(gguf_file)
    assert meta["general.architecture"] == "llama"
    assert meta["general.name"] == "my-tiny"
    assert meta["llama.context_length"] == 512
    assert meta["GGUF.tensor_count"] == 21
    assert meta["tokenizer.ggml.tokens"] is None  # arrays are skipped unless asked for
    assert len(read_metadata(gguf_file, keep_arrays=True)["tokenizer.ggml.tokens"]) == 260
    assert model_type(gguf_file) == "llama"


def test_rejects_what_is_not_gguf(tmp_path: Path, gguf_file: Path):
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_metadata(not_gguf)
    truncated = tmp_path / "t.gguf"
    truncated.write_bytes(gguf_file.read_bytes()[:200])
    with pytest.raises(GGUFError, match="truncated"):
        read_metadata(truncated)
    assert model_type(not_gguf) is None
    assert model_type(tmp_path / "missing.gguf") is None
