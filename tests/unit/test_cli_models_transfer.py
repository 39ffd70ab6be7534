"""`llamadash models export` / `models import`: the dialog's model formats on the command line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support import cli, write_tiny_gguf


def models(data_dir: Path) -> list[dict]:
    code, out, _ = cli("models", "list", "--json", data_dir=data_dir)
    assert code == 0
    return json.loads(out)


def settings(model: dict) -> dict:
    return {k: v for k, v in model.items() if k not in ("id", "created_at", "updated_at") and v is not None}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A realistic library: a local GGUF with tuned sampling, a HF model with a key, a router."""
    data_dir = tmp_path / "lib"
    gguf = write_tiny_gguf(tmp_path / "Qwen3-8B-Q4_K_M.gguf")  # a real GGUF: `models add` reads its header
    steps = [
        (
            "models",
            "add",
            "qwen3-8b",
            "--model-path",
            str(gguf),
            "--type",
            "qwen3",
            "--set",
            "ctx_size=32768",
            "--set",
            "temperature=0.6",
            "--set",
            "top_k=20",
            "--set",
            "gpu_layers=all",
            "--set",
            "flash_attn=on",
            "--set",
            "mmap=false",
            "--set",
            "port=8081",
        ),
        (
            "models",
            "add",
            "gemma-hf",
            "--from-command",
            "llama-server -hf ggml-org/gemma-3-1b-it-GGUF:Q4_K_M -c 8192 --port 8082 --api-key k-1 --jinja",
        ),
        ("models", "add", "phi", "--from-command", f"llama-server -m {gguf} --port 8083 -ngl 10 --no-warmup"),
    ]
    for step in steps:
        code, _, err = cli(*step, data_dir=data_dir)
        assert code == 0, err
    return data_dir


def test_json_round_trip_gives_the_same_models(library: Path, tmp_path: Path):
    file = tmp_path / "models.json"
    code, out, err = cli("models", "export", str(file), "--include-secrets", data_dir=library)
    assert code == 0, err and "3 model(s)" in out
    assert json.loads(file.read_text())["format"] == "llamadash-models"
    other = tmp_path / "other"
    code, out, err = cli("models", "import", str(file), data_dir=other)
    assert code == 0, err
    assert "3 added" in out
    before = sorted((settings(m) for m in models(library)), key=lambda m: m["name"])
    after = sorted((settings(m) for m in models(other)), key=lambda m: m["name"])
    assert after == before


def test_secrets_stay_out_unless_asked(library: Path, tmp_path: Path):
    file = tmp_path / "models.json"
    assert cli("models", "export", str(file), "gemma-hf", data_dir=library)[0] == 0
    assert "k-1" not in file.read_text()
    script = tmp_path / "models.sh"
    assert cli("models", "export", str(script), data_dir=library)[0] == 0
    text = script.read_text()
    assert "k-1" not in text and 'LLAMA_API_KEY="${LLAMA_API_KEY:?}"' in text
    assert text.count("llama-server") >= 3


def test_presets_ini_and_conflict_policies(library: Path, tmp_path: Path):
    ini = tmp_path / "models.ini"
    code, _, err = cli("models", "export", str(ini), "qwen3-8b", "phi", data_dir=library)
    assert code == 0, err
    text = ini.read_text()
    assert text.startswith("version = 1") and "[qwen3-8b]" in text and "[phi]" in text
    # importing into the same library: skip leaves it alone, keep-both adds "(2)", overwrite replaces
    count = len(models(library))
    code, out, _ = cli("models", "import", str(ini), data_dir=library)
    assert code == 0 and "2 skipped" in out and len(models(library)) == count
    code, out, _ = cli("models", "import", str(ini), "--on-conflict", "keep-both", data_dir=library)
    assert code == 0 and "qwen3-8b (2)" in out
    assert {m["name"] for m in models(library)} >= {"qwen3-8b (2)", "phi (2)"}
    cli("models", "set", "phi", "ctx_size=999", data_dir=library)
    code, out, _ = cli("models", "import", str(ini), "--on-conflict", "overwrite", data_dir=library)
    assert code == 0 and "2 overwritten" in out
    phi = next(m for m in models(library) if m["name"] == "phi")
    assert phi["ctx_size"] is None and phi["warmup"] is False


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\x00\x01 random",
        '{"format": "something-else", "models": []}',
        '{"format": "llamadash-models", "version": 99, "models": []}',
        "version = 1\n[m]\nno-such-key = 1\n",
    ],
)
def test_bad_files_change_nothing(library: Path, tmp_path: Path, content: str):
    db = library / "llama-dashboard.db"
    cli("db", "info", data_dir=library)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    bad = tmp_path / ("bad.ini" if content.startswith("version") else "bad.json")
    bad.write_text(content)
    code, _, err = cli("models", "import", str(bad), data_dir=library)
    assert code == 1 and err.startswith("llamadash: error: ") and "Traceback" not in err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_export_refuses_to_overwrite_and_unknown_names(library: Path, tmp_path: Path):
    file = tmp_path / "m.json"
    file.write_text("keep me")
    code, _, err = cli("models", "export", str(file), data_dir=library)
    assert code == 1 and "--force" in err and file.read_text() == "keep me"
    code, _, err = cli("models", "export", str(tmp_path / "n.json"), "ghost", data_dir=library)
    assert code == 1 and "ghost" in err
    code, _, err = cli("models", "export", str(tmp_path / "s.ini"), "--include-secrets", data_dir=library)
    assert code == 1 and "secrets" in err
