"""`llamadash db import` says what the import left out and which settings of this computer it kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support import cli

from llamadash.core import database


def test_the_output_lists_what_was_left_out_and_kept(tmp_path: Path) -> None:
    source, victim = tmp_path / "source", tmp_path / "victim"
    database.init_database(source / "llama-dashboard.db")
    database.save_model({"name": "a", "type": "llama", "status": "stopped"})
    database.set_metadata("llama_server_path", "./evil.sh")
    database.close_database()
    export = tmp_path / "x.db"
    assert cli("db", "export", str(export), data_dir=source)[0] == 0
    with sqlite3.connect(export) as conn:
        conn.execute("CREATE TRIGGER evil AFTER INSERT ON metrics_history BEGIN DELETE FROM models; END")
        conn.execute("CREATE VIEW v AS SELECT 1")
    conn.close()
    code, out, err = cli("db", "import", str(export), data_dir=victim)
    assert code == 0, err
    assert "left out, not llamadash's (nothing in it ran): trigger evil (on metrics_history), view v" in out
    assert (
        "kept this computer's own settings, not the file's: llama_server_path (the file says './evil.sh')"
        in out
    )
    database.init_database(victim / "llama-dashboard.db", record_start=False)
    try:
        assert database.get_metadata("llama_server_path") is None
    finally:
        database.close_database()


def test_a_bad_file_is_refused_in_words(tmp_path: Path) -> None:
    source, victim = tmp_path / "source", tmp_path / "victim"
    database.init_database(source / "llama-dashboard.db")
    database.save_model({"name": "a", "type": "llama", "status": "stopped"})
    database.close_database()
    export = tmp_path / "x.db"
    assert cli("db", "export", str(export), data_dir=source)[0] == 0
    with sqlite3.connect(export) as conn:
        conn.execute("UPDATE models SET port = 'abc'")
    conn.close()
    code, _out, err = cli("db", "import", str(export), data_dir=victim)
    assert code != 0
    assert "in the models table, row id 1 (model 'a'), the column port" in err
    assert "Traceback" not in err
