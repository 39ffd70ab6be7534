"""A presets INI written by llamadash is accepted by the real llama-server in router mode."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

from support import free_port, health_status, stop_process

from llamadash.core import model_export


def test_the_router_lists_the_exported_presets(tmp_path, tiny_model, llama_server):
    models = [
        {"name": "tiny-a", "type": "llama", "model_path": str(tiny_model), "ctx_size": 256},
        {"name": "tiny-b", "type": "llama", "model_path": str(tiny_model), "ctx_size": 512, "threads": 1},
    ]
    preset = tmp_path / "models.ini"
    preset.write_text(model_export.export_presets(models))
    port = free_port()
    argv = [
        str(llama_server),
        "--models-preset",
        str(preset),
        "--no-models-autoload",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    log_path = tmp_path / "router.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while health_status(port) != 200:
                assert proc.poll() is None, (
                    f"llama-server exited ({proc.returncode}):\n{log_path.read_text()}"
                )
                assert time.monotonic() < deadline, f"no /health 200 in 60 s:\n{log_path.read_text()}"
                time.sleep(0.1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=10) as response:
                body = json.load(response)
        finally:
            stop_process(proc)
    ids = {entry.get("id") or entry.get("name") for entry in body.get("data", body.get("models", []))}
    assert {"tiny-a", "tiny-b"} <= ids, body
