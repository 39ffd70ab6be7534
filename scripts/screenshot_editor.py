"""Show the parameter editor with a realistic configuration and save a screenshot of it.

Run under a virtual X server (the offscreen platform draws no native style)::

    xvfb-run -a .venv/bin/python scripts/screenshot_editor.py [OUTPUT.png]

The configuration has some changed values, one row the configured build cannot take
(``hf_file_v`` on llama-server b11434, from the help text in ``tests/data``) and one validation
warning (listening on 0.0.0.0 without an API key). Nothing is saved anywhere: ``save`` only
records the changes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from llamadash.core.params import parse_help
from llamadash.ui.param_editor import ParamEditor

ROOT = Path(__file__).resolve().parent.parent
HELP_TEXT = ROOT / "tests" / "data" / "llama-server-help-b11434.txt"
DEFAULT_OUTPUT = ROOT / "docs" / "screenshots" / "param-editor.png"


def realistic_model(models_dir: Path) -> dict[str, Any]:
    """A library entry as a user would have it after a few edits."""
    model_file = models_dir / "Qwen3-8B-Q4_K_M.gguf"
    models_dir.mkdir(parents=True, exist_ok=True)
    import gguf  # a header as Qwen3-8B's says it: the editor shows the model's own defaults

    writer = gguf.GGUFWriter(str(model_file), "qwen3")
    writer.add_context_length(40960)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    for write in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        write()
    writer.close()
    return {
        "id": 1,
        "name": "Qwen3-8B-Q4_K_M",
        "type": "qwen3",
        "status": "running",
        "model_path": str(model_file),
        "hf_file_v": "mmproj-Qwen3-8B-F16.gguf",  # b11434 no longer has --hf-file-v
        "ctx_size": 32768,
        "n_parallel": 4,
        "gpu_layers": "all",
        "cache_type_k": "q8_0",
        "cache_type_v": "q8_0",
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
        "host": "0.0.0.0",  # no api_key: a warning
        "port": 8081,
        "custom_params": {"--perf": True},
    }


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    app = QApplication(argv[:1])
    caps = parse_help(HELP_TEXT.read_text(encoding="utf-8"), label="llama-server b11434")
    with tempfile.TemporaryDirectory(prefix="shot-") as tmp:
        saved: list[dict[str, Any]] = []
        editor = ParamEditor(
            realistic_model(Path(tmp) / "models"),
            lambda _id, changes: saved.append(changes),
            caps,
            binary="/usr/local/bin/llama-server",
        )
        editor.setWindowTitle("llamadash \u2013 parameters of Qwen3-8B-Q4_K_M")
        editor.resize(1280, 1000)
        editor.show()
        # one edit through the model, as the tree would make it: shows the restart offer
        editor.param_model.set_value("repeat_penalty", 1.05)
        editor.select_parameter("hf_repo")  # scrolls the unsupported hf_file_v row into view
        editor.select_parameter("ctx_size")

        def grab() -> None:
            output.parent.mkdir(parents=True, exist_ok=True)
            if not editor.grab().save(str(output)):
                print(f"could not write {output}", file=sys.stderr)
                app.exit(1)
                return
            print(f"wrote {output}")
            app.exit(0)

        QTimer.singleShot(500, grab)  # let the window map and lay out first
        return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
