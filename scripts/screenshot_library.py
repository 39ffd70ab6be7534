"""Show the Library tab with a realistic set of models and save a screenshot of it.

Run under a virtual X server (the offscreen platform draws no native style)::

    xvfb-run -a .venv/bin/python scripts/screenshot_library.py [OUTPUT.png]

The model files are GGUF headers as the real models' say them (architecture, name, size label,
quantization, trained context), grown to the real files' sizes as sparse files (no disk blocks
used), in a temporary library; one more entry is a Hugging Face repo (no local file: "n/a"). The
list is sorted by parameters, largest first, and one model is selected to show its details.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gguf
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from llamadash.core import database
from llamadash.ui.library_view import LibraryView

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "screenshots" / "library.png"
_T = gguf.LlamaFileType
#: file, architecture, general.name, size label, file type, trained context, size in bytes
MODELS = [
    ("Qwen3-8B-Q4_K_M.gguf", "qwen3", "Qwen3 8B", "8B", _T.MOSTLY_Q4_K_M, 40960, 5_027_783_488),
    (
        "Llama-3.2-3B-Instruct-Q8_0.gguf",
        "llama",
        "Llama 3.2 3B Instruct",
        "3B",
        _T.MOSTLY_Q8_0,
        131072,
        3_421_899_456,
    ),
    ("gemma-3-4b-it-Q4_K_M.gguf", "gemma3", "Gemma 3 4b It", "4B", _T.MOSTLY_Q4_K_M, 131072, 2_489_757_856),
    (
        "Mistral-7B-Instruct-v0.3-Q5_K_M.gguf",
        "llama",
        "Mistral 7B v0.3",
        "7B",
        _T.MOSTLY_Q5_K_M,
        32768,
        5_136_175_552,
    ),
    (
        "SmolLM2-135M-Instruct-F16.gguf",
        "llama",
        "SmolLM2 135M Instruct",
        "135M",
        _T.MOSTLY_F16,
        8192,
        270_899_680,
    ),
    (
        "Qwen2.5-Coder-14B-Instruct-Q4_K_M.gguf",
        "qwen2",
        "Qwen2.5 Coder 14B",
        "14B",
        _T.MOSTLY_Q4_K_M,
        32768,
        8_988_110_976,
    ),
]


def write_model(
    path: Path, arch: str, name: str, label: str, file_type: int, context: int, size: int
) -> None:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_size_label(label)
    writer.add_file_type(file_type)
    writer.add_context_length(context)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(path, "r+b") as stream:
        stream.truncate(size)  # sparse: as large as the real file, no blocks used


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    app = QApplication(argv[:1])
    with tempfile.TemporaryDirectory(prefix="shot-") as tmp:
        models_dir = Path(tmp) / "models"
        models_dir.mkdir()
        database.init_database(Path(tmp) / "llama-dashboard.db")
        for i, (file, arch, name, label, file_type, context, size) in enumerate(MODELS):
            path = models_dir / file
            write_model(path, arch, name, label, file_type, context, size)
            status = "running" if i == 0 else "stopped"
            database.save_model(
                {"name": path.stem, "type": arch, "status": status, "model_path": str(path), "port": 8080 + i}
            )
        database.save_model(
            {
                "name": "gpt-oss-20b",
                "type": "unknown",
                "status": "stopped",
                "hf_repo": "ggml-org/gpt-oss-20b-GGUF",
            }
        )
        view = LibraryView(database)
        view.resize(1400, 720)
        view.show()

        def sort_and_select() -> None:  # once the headers are in (read on a worker thread)
            view.sort_by("Parameters", Qt.SortOrder.DescendingOrder)
            view.select_model(1)

        def grab() -> None:
            output.parent.mkdir(parents=True, exist_ok=True)
            if view.headers_pending or not view.grab().save(str(output)):
                print(f"could not write {output}", file=sys.stderr)
                app.exit(1)
                return
            print(f"wrote {output}")
            app.exit(0)

        QTimer.singleShot(600, sort_and_select)
        QTimer.singleShot(1200, grab)
        code = app.exec()
        database.close_database()
        return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
