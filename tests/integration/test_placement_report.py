"""The placement report of a real run: what --fit chose, in the instance pane and in status --json."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port, run_cli, write_tiny_gguf

from llamadash.core import database
from llamadash.core.llama_server import METADATA_KEY
from llamadash.core.params import COLUMN
from llamadash.core.perf.tools import FIT_TOOL, tool_path
from llamadash.services.instance import InstanceState
from llamadash.services.manager import InstanceManager
from llamadash.ui.placement_pane import PlacementLabel

pytestmark = pytest.mark.integration


@pytest.fixture
def manager(qtbot, _isolated_data_dir: Path, llama_server: Path) -> Iterator[InstanceManager]:
    database.init_database(data_dir=_isolated_data_dir)
    database.set_metadata(METADATA_KEY, str(llama_server))
    made = InstanceManager(
        data_dir=_isolated_data_dir, poll_interval_s=0.25, stop_timeout_s=5, quit_with_app=False
    )
    yield made
    assert made.stop_all(10)
    made.close()
    database.close_database()


def _fitted_context(tool: Path, model: Path, margin: int) -> int:
    out = subprocess.run(
        [str(tool), "-m", str(model), "-lv", "4", "--fit-target", str(margin)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out[0] == "-c"
    return int(out[1])


def _margin_that_cuts(tool: Path, model: Path) -> int:
    log = subprocess.run(
        [str(tool), "-m", str(model), "-lv", "4"], capture_output=True, text=True, timeout=60, check=True
    ).stderr
    line = next(x for x in log.splitlines() if "projected to use" in x)
    numbers = [int(word) for word in line.split() if word.isdigit()]
    used, total = numbers[-2], numbers[-1]
    return total - used + 16


def test_a_run_s_placement_is_in_the_pane_and_in_status_json(qtbot, manager, tmp_path, llama_server) -> None:
    model_file = write_tiny_gguf(tmp_path / "long.gguf", n_ctx=65536)
    tool = tool_path(llama_server, FIT_TOOL)
    margin = _margin_that_cuts(tool, model_file)
    fitted = _fitted_context(tool, model_file, margin)
    assert fitted < 65536
    database.save_model(
        {
            "name": "long",
            "type": "llama",
            "status": "stopped",
            COLUMN.model_path: str(model_file),
            COLUMN.port: free_port(),
            COLUMN.threads: 1,
            COLUMN.log_verbose: 4,  # llama-server logs its fitting steps at verbosity 4
            COLUMN.fit_target: margin,
        }
    )
    inst = manager.start("long")
    qtbot.waitUntil(lambda: inst.state is InstanceState.RUNNING, timeout=60_000)

    label = PlacementLabel()
    qtbot.addWidget(label)
    label.show_for("long", inst, "running")
    assert label.report is not None and label.report.fit.context_to == fitted
    assert f"context reduced from 65,536 to {fitted:,}" in label.text()
    assert "layers: all in system memory" in label.text()  # no GPU here, whatever the log says
    label.show_for("long", inst, "stopped")
    assert label.isHidden()

    database.release_connection()
    status = run_cli(tmp_path / "llamadash-data", "status", "--json")
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)["models"]
    placement = row["placement"]
    assert placement["context_reduced_from"] == 65536 and placement["context_reduced_to"] == fitted
    assert placement["context_per_slot"] == fitted and placement["cpu_only"] is True
