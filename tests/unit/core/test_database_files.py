"""Database files: the seed's own schema upgrading, newer versions refused, export and import."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from support import raw_sqlite as raw

from llamadash.core import database
from llamadash.core.database import DatabaseError, DatabaseFileError, SchemaVersionError
from llamadash.core.db import api, store, transfer

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")

# The seed's three tables, as its design document lists them (plain sqlite3 DDL, version 1:
# non-unique name index, no db_version row, times other than metrics.timestamp in seconds).
SEED_MODEL_COLUMNS = """
name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER, updated_at INTEGER,
model_path TEXT, model_url TEXT, docker_repo TEXT, hf_repo TEXT, hf_repo_draft TEXT, hf_file TEXT,
hf_file_v TEXT, hf_token TEXT, ctx_size INTEGER, predict INTEGER, batch_size INTEGER,
ubatch_size INTEGER, n_parallel INTEGER, cont_batching INTEGER, threads INTEGER, threads_batch INTEGER,
cpu_mask TEXT, cpu_range TEXT, cpu_strict INTEGER, cpu_mask_batch TEXT, cpu_range_batch TEXT,
cpu_strict_batch INTEGER, priority INTEGER, priority_batch INTEGER, cache_ram INTEGER,
cache_type_k TEXT, cache_type_v TEXT, mmap INTEGER, mlock INTEGER, numa TEXT, defrag_thold INTEGER,
device TEXT, list_devices INTEGER, gpu_layers INTEGER, split_mode TEXT, tensor_split TEXT,
main_gpu INTEGER, kv_offload INTEGER, repack INTEGER, no_host INTEGER, swa_full INTEGER,
override_tensor TEXT, cpu_moe INTEGER, n_cpu_moe INTEGER, kv_unified INTEGER, temperature REAL,
top_k INTEGER, top_p REAL, min_p REAL, top_nsigma REAL, xtc_probability REAL, xtc_threshold REAL,
typical REAL, repeat_last_n INTEGER, repeat_penalty REAL, presence_penalty REAL,
frequency_penalty REAL, dry_multiplier REAL, dry_base REAL, dry_allowed_length INTEGER,
dry_penalty_last_n INTEGER, dry_sequence_breaker TEXT, dynatemp_range REAL, dynatemp_exp REAL,
mirostat INTEGER, mirostat_lr REAL, mirostat_ent REAL, samplers TEXT, sampler_seq TEXT, seed INTEGER,
grammar TEXT, grammar_file TEXT, json_schema TEXT, json_schema_file TEXT, ignore_eos INTEGER,
escape BOOLEAN, rope_scaling_type TEXT, rope_scale REAL, rope_freq_base REAL, rope_freq_scale REAL,
yarn_orig_ctx INTEGER, yarn_ext_factor REAL, yarn_attn_factor REAL, yarn_beta_slow REAL,
yarn_beta_fast REAL, flash_attn TEXT, mmproj TEXT, mmproj_url TEXT, mmproj_auto INTEGER,
mmproj_offload INTEGER, image_min_tokens INTEGER, image_max_tokens INTEGER, lora TEXT,
lora_scaled TEXT, control_vector TEXT, control_vector_scaled TEXT, control_vector_layer_range TEXT,
model_draft TEXT, model_url_draft TEXT, ctx_size_draft INTEGER, threads_draft INTEGER,
threads_batch_draft INTEGER, draft_max INTEGER, draft_min INTEGER, draft_p_min REAL,
cache_type_k_draft TEXT, cache_type_v_draft TEXT, cpu_moe_draft INTEGER, n_cpu_moe_draft INTEGER,
n_gpu_layers_draft INTEGER, device_draft TEXT, spec_replace TEXT, log_disable INTEGER, log_file TEXT,
log_colors TEXT, log_verbose INTEGER, log_prefix INTEGER, log_timestamps INTEGER, logit_bias TEXT,
host TEXT, port INTEGER, api_prefix TEXT, path TEXT, webui TEXT, webui_config_file TEXT,
no_webui INTEGER, embeddings INTEGER, reranking INTEGER, api_key TEXT, api_key_file TEXT,
ssl_key_file TEXT, ssl_cert_file TEXT, timeout INTEGER, threads_http INTEGER, cache_reuse INTEGER,
metrics_enabled INTEGER, props_enabled INTEGER, slots_enabled INTEGER, slot_save_path TEXT,
media_path TEXT, models_dir TEXT, models_preset TEXT, models_max INTEGER, models_autoload INTEGER,
jinja INTEGER, chat_template TEXT, chat_template_file TEXT, chat_template_kwargs TEXT,
prefill_assistant INTEGER, ctx_checkpoints INTEGER, verbose_prompt INTEGER, warmup INTEGER,
spm_infill INTEGER, pooling TEXT, context_shift INTEGER, rpc TEXT, offline INTEGER, override_kv TEXT,
op_offload INTEGER, fit TEXT, fit_target INTEGER, fit_ctx INTEGER, check_tensors INTEGER,
sleep_idle_seconds INTEGER, polling TEXT, polling_batch TEXT, reasoning_format TEXT,
reasoning_budget INTEGER, custom_params TEXT
"""
#: Columns an older seed build lacked (they must be added by the upgrade).
SEED_LACKS = ("reasoning_budget", "reasoning_format", "polling_batch", "fit_ctx", "sleep_idle_seconds")


def seed_ddl(lacking: tuple[str, ...] = ()) -> str:
    columns = [c.strip() for c in SEED_MODEL_COLUMNS.replace("\n", " ").split(",") if c.strip()]
    columns = [c for c in columns if c.split()[0] not in lacking]
    # `escape` is an SQL keyword: the seed's DDL has to quote its column names
    columns = ['"{}" {}'.format(*c.split(maxsplit=1)) for c in columns]
    return f"""
        CREATE TABLE metrics_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp INTEGER NOT NULL,
            cpu_usage REAL, memory_usage REAL, disk_usage REAL, gpu_usage REAL, gpu_temperature REAL,
            gpu_memory_used REAL, gpu_memory_total REAL, gpu_power_usage REAL, active_models INTEGER,
            uptime INTEGER, requests_per_minute REAL, created_at INTEGER
        );
        CREATE INDEX idx_metrics_timestamp ON metrics_history(timestamp);
        CREATE INDEX idx_metrics_created_at ON metrics_history(created_at);
        CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, {", ".join(columns)});
        CREATE INDEX idx_models_name ON models(name);
        CREATE INDEX idx_models_status ON models(status);
        CREATE INDEX idx_models_type ON models(type);
        CREATE INDEX idx_models_created ON models(created_at);
        CREATE TABLE metadata (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, updated_at INTEGER);
    """


def build_seed_database(
    path: Path, *, lacking: tuple[str, ...] = SEED_LACKS, db_version: str | None = None
) -> int:
    """A database written the seed's way; returns the "now" (ms) its metrics are relative to."""
    now_ms = api.now_ms()
    now_s = now_ms // 1000
    conn = sqlite3.connect(path)
    try:
        conn.executescript(seed_ddl(lacking))
        conn.executemany(
            "INSERT INTO models (name, type, status, created_at, updated_at, ctx_size, temperature, "
            "gpu_layers, mmap, flash_attn, host, port, custom_params) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                ("llama-3-8b", "llama", "running", now_s - 100, now_s - 50, 16384, 0.6, -1, 1, "auto",
                 "127.0.0.1", 8081, json.dumps({"--jinja": True})),
                ("qwen", "qwen", "stopped", now_s - 90, now_s - 90, 4096, 0.7, 33, 0, None, None, None, None),
                ("llama-3-8b", "llama", "stopped", now_s - 80, now_s - 80, 2048, None, None, None, None,
                 None, None, None),
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO metrics_history (timestamp, cpu_usage, gpu_temperature, active_models, uptime, "
            "created_at) VALUES (?,?,?,?,?,?)",
            [
                (now_ms - 20 * 60_000, 10.0, 50.0, 1, 100, now_s - 20 * 60),  # too old to show
                (now_ms - 120_000, 75.5, 72.0, 3, 3600, now_s - 120),
                (now_ms - 60_000, 80.0, None, 3, 3660, now_s - 60),
            ],
        )
        conn.execute("INSERT INTO metadata VALUES ('theme_preference', 'dark', ?)", (now_s,))
        if db_version is not None:
            conn.execute("INSERT INTO metadata VALUES ('db_version', ?, ?)", (db_version, now_s))
        conn.commit()
    finally:
        conn.close()
    return now_ms


@pytest.fixture(autouse=True)
def _close_after_test():
    yield
    database.close_database()


def digest(path: Path) -> dict[str, str | None]:
    """Hashes of the database file and its companions (None: absent)."""
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        file = Path(f"{path}{suffix}")
        out[suffix] = hashlib.sha256(file.read_bytes()).hexdigest() if file.exists() else None
    return out


def model(**extra):
    return {"name": "m", "type": "llama", "status": "stopped", **extra}


# ------------------------------------------------------------------------------------------------
# the seed's own schema
class TestSeedUpgrade:
    def test_seed_database_opens_and_upgrades(self, tmp_path):
        path = tmp_path / "llama-dashboard.db"
        now = build_seed_database(path)
        info = database.inspect_database_file(path)
        assert (info["db_version"], info["needs_upgrade"], info["model_count"]) == (1, True, 3)

        database.init_database(path)
        assert database.get_db_version() == database.SCHEMA_VERSION

        models = {m["name"]: m for m in database.get_models()}
        assert set(models) == {"llama-3-8b", "qwen", "llama-3-8b (2)"}  # duplicate renamed
        llama = models["llama-3-8b"]
        assert (llama["ctx_size"], llama["temperature"], llama["port"], llama["host"]) == (
            16384,
            0.6,
            8081,
            "127.0.0.1",
        )
        assert llama["gpu_layers"] == "auto" and llama["mmap"] is True and llama["flash_attn"] == "auto"
        assert llama["custom_params"] == {"--jinja": True}
        assert llama["reasoning_budget"] is None  # an added column
        assert abs(llama["created_at"] - (now - 100_000)) < 1000  # seconds became milliseconds
        assert models["qwen"]["gpu_layers"] == 33 and models["qwen"]["mmap"] is False
        assert models["qwen"]["custom_params"] == {}
        assert models["llama-3-8b (2)"]["ctx_size"] == 2048
        assert database.get_model_by_name("llama-3-8b (2)")["status"] == "stopped"

        history = database.get_metrics_history(10)
        assert [(r["cpu_usage"], r["gpu_temperature"], r["uptime"]) for r in history] == [
            (75.5, 72.0, 3600),
            (80.0, None, 3660),
        ]
        assert database.get_metadata("theme_preference") == "dark"

        # the upgraded file: unique name index, added columns, incremental auto-vacuum
        database.close_database()
        with raw(path) as conn:
            index_sql = conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'idx_models_name'"
            ).fetchone()[0]
            columns = {r[1] for r in conn.execute("PRAGMA table_info(models)")}
            auto_vacuum = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
            (created,) = conn.execute("SELECT created_at FROM metrics_history ORDER BY id DESC").fetchone()
        assert index_sql.startswith("CREATE UNIQUE INDEX")
        assert set(SEED_LACKS) <= columns
        assert auto_vacuum == 2
        assert abs(created - (now - 60_000)) < 1000

    def test_upgraded_seed_database_keeps_working(self, tmp_path):
        path = tmp_path / "seed.db"
        build_seed_database(path)
        database.init_database(path)
        with pytest.raises(DatabaseError, match="already exists"):
            database.save_model(model(name="qwen"))
        new_id = database.save_model(model(name="new", reasoning_budget=0))
        assert database.get_model(new_id)["reasoning_budget"] == 0
        database.save_metrics({"cpu_usage": 1.0})
        # the seed row 20 minutes old is expired by the first save (its created_at is now in ms)
        assert database.count_rows()["metrics_history"] == 3

    def test_seed_name_that_looks_like_a_renamed_duplicate(self, tmp_path):
        path = tmp_path / "seed.db"
        build_seed_database(path)
        with raw(path) as conn:
            conn.execute(
                "INSERT INTO models (name, type, status) VALUES ('llama-3-8b (2)', 'llama', 'error')"
            )
        database.init_database(path)
        names = sorted(m["name"] for m in database.get_models())
        assert names == ["llama-3-8b", "llama-3-8b (2)", "llama-3-8b (3)", "qwen"]
        assert database.get_model_by_name("llama-3-8b (2)")["status"] == "error"  # kept its name

    def test_version_1_row_is_accepted(self, tmp_path):
        path = tmp_path / "seed.db"
        build_seed_database(path, lacking=(), db_version="1")
        database.init_database(path)
        assert database.get_db_version() == database.SCHEMA_VERSION
        assert database.get_metadata("db_version") == str(database.SCHEMA_VERSION)

    def test_missing_tables_are_created(self, tmp_path):
        path = tmp_path / "only-models.db"
        with raw(path) as conn:
            conn.execute("CREATE TABLE models (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            conn.execute("INSERT INTO models (name) VALUES ('bare')")
        database.init_database(path)
        [bare] = database.get_models()
        assert (bare["name"], bare["type"], bare["status"]) == ("bare", "unknown", "stopped")
        database.save_metrics({"cpu_usage": 1.0})
        assert database.count_rows() == {
            "metrics_history": 1, "models": 1, "metadata": 3,
            "requests": 0, "instance_samples": 0, "daily_totals": 0, "workers": 0, "bench_results": 0,
        }  # fmt: skip


# ------------------------------------------------------------------------------------------------
# files that are refused
def make_current(path: Path) -> None:
    database.init_database(path)
    database.save_model(model(name="current", ctx_size=1024))
    database.save_metrics({"cpu_usage": 33.0})
    database.close_database()


#: A version this llamadash does not know.
NEWER = database.SCHEMA_VERSION + 1


def make_newer(path: Path) -> None:
    make_current(path)
    with raw(path) as conn:
        conn.execute("UPDATE metadata SET value = ? WHERE key = 'db_version'", (str(NEWER),))


def make_foreign(path: Path) -> None:
    with raw(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT)")


def make_truncated(path: Path) -> None:
    make_current(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_short(path: Path) -> None:
    make_current(path)
    path.write_bytes(path.read_bytes()[:60])


def make_random(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def make_text(path: Path) -> None:
    path.write_text("name,type\nllama,llama\n")


def make_empty(path: Path) -> None:
    path.write_bytes(b"")


def make_empty_sqlite(path: Path) -> None:
    with raw(path) as conn:
        conn.execute("PRAGMA user_version = 1")  # a valid SQLite file with no tables


def make_models_table_of_someone_else(path: Path) -> None:
    with raw(path) as conn:
        conn.execute("CREATE TABLE models (model_id TEXT PRIMARY KEY, weights BLOB)")


BAD_FILES = [
    (make_empty, DatabaseFileError, r"is empty \(0 bytes\)"),
    (make_random, DatabaseFileError, "is not a SQLite database"),
    (make_text, DatabaseFileError, "is not a SQLite database"),
    (make_truncated, DatabaseFileError, "is truncated"),
    (make_short, DatabaseFileError, "is truncated"),
    (make_foreign, DatabaseFileError, "not a llamadash database.*posts, users"),
    (make_empty_sqlite, DatabaseFileError, "not a llamadash database.*holds no tables"),
    (make_models_table_of_someone_else, DatabaseFileError, "models table lacks the column"),
    (
        make_newer,
        SchemaVersionError,
        f"newer llamadash.*version {NEWER}.*up to version {database.SCHEMA_VERSION}",
    ),
]
BAD_IDS = [maker.__name__.removeprefix("make_") for maker, _, _ in BAD_FILES]


class TestRefusedOnOpen:
    @pytest.mark.parametrize(
        ("maker", "error", "message"),
        [b for b in BAD_FILES if b[0] not in (make_empty, make_empty_sqlite)],
        ids=[i for i in BAD_IDS if i not in ("empty", "empty_sqlite")],
    )
    def test_refused_and_unchanged(self, tmp_path, maker, error, message):
        path = tmp_path / "llama-dashboard.db"
        maker(path)
        before = digest(path)
        with pytest.raises(error, match=message):
            database.init_database(path)
        assert digest(path) == before  # not even a -wal or -shm file appeared
        assert not database.is_open()

    def test_an_empty_file_is_a_new_database(self, tmp_path):
        path = tmp_path / "new.db"
        path.write_bytes(b"")
        database.init_database(path)
        assert database.get_models() == []
        assert database.get_db_version() == database.SCHEMA_VERSION

    def test_newer_version_is_refused_mid_session_too(self, tmp_path):
        path = tmp_path / "db.db"
        make_newer(path)
        other = tmp_path / "other.db"
        database.init_database(other)
        with pytest.raises(SchemaVersionError):
            database.init_database(path)
        assert not database.is_open()  # the previous database was closed first, as documented


# ------------------------------------------------------------------------------------------------
# export
class TestExport:
    def test_export_is_a_private_single_file_copy(self, tmp_path):
        db = tmp_path / "live.db"
        database.init_database(db)
        database.save_model(model(name="exported", temperature=0.3))
        database.save_metrics({"cpu_usage": 12.0})
        calls: list[tuple[int, int]] = []
        target = database.export_database(tmp_path / "backup.db", progress=lambda d, t: calls.append((d, t)))
        assert target == tmp_path / "backup.db"
        assert calls and calls[-1][0] == calls[-1][1] > 0
        assert all(0 <= done <= total for done, total in calls)
        info = database.inspect_database_file(target)
        assert (info["db_version"], info["model_names"], info["metrics_rows"]) == (
            database.SCHEMA_VERSION,
            ["exported"],
            1,
        )
        assert target.read_bytes()[18:20] == b"\x01\x01"  # rollback journal, not WAL
        assert not Path(f"{target}-wal").exists()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp left
        if os.name == "posix":
            assert target.stat().st_mode & 0o777 == 0o600
        # the API keeps working on the live database
        database.save_model(model(name="after"))
        assert len(database.get_models()) == 2

    def test_existing_file_is_not_overwritten(self, tmp_path):
        database.init_database(tmp_path / "live.db")
        database.save_model(model(name="x"))
        target = tmp_path / "taken.db"
        target.write_bytes(b"precious")
        with pytest.raises(DatabaseError, match="already exists"):
            database.export_database(target)
        assert target.read_bytes() == b"precious"
        database.export_database(target, overwrite=True)
        assert database.inspect_database_file(target)["model_names"] == ["x"]

    def test_refusals(self, tmp_path):
        live = tmp_path / "live.db"
        database.init_database(live)
        with pytest.raises(DatabaseError, match="database itself"):
            database.export_database(live, overwrite=True)
        with pytest.raises(DatabaseError, match="does not exist"):
            database.export_database(tmp_path / "missing" / "x.db")
        with pytest.raises(DatabaseError, match="is a folder"):
            database.export_database(tmp_path, overwrite=True)

    def test_cancel_from_progress_leaves_nothing(self, tmp_path, monkeypatch):
        monkeypatch.setattr(transfer, "EXPORT_PAGES_PER_STEP", 1)
        database.init_database(tmp_path / "live.db")
        database.save_model(model(chat_template="x" * 50_000))

        def cancel(done, total):
            if done > 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            database.export_database(tmp_path / "out.db", progress=cancel)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["live.db", "live.db-shm", "live.db-wal"]

    @pytest.mark.timeout(60)  # without a pinned snapshot the backup restarts on every write
    def test_consistent_snapshot_while_a_worker_writes(self, tmp_path, monkeypatch):
        monkeypatch.setattr(transfer, "EXPORT_PAGES_PER_STEP", 2)  # many steps: writes land between them
        database.init_database(tmp_path / "live.db", retention_minutes=60)
        for i in range(30):
            database.save_model(model(name=f"m{i}", chat_template="t" * 3000))
        stop = threading.Event()
        written: list[int] = []

        def sampler():
            while not stop.is_set():
                written.append(database.save_metrics({"uptime": len(written)}))
            database.release_connection()

        def wait_for(count: int) -> None:
            deadline = time.monotonic() + 20
            while len(written) < count and time.monotonic() < deadline:
                time.sleep(0.001)

        worker = threading.Thread(target=sampler)
        worker.start()
        try:
            wait_for(20)
            during: list[int] = []

            def progress(done: int, total: int) -> None:
                during.append(len(written))
                time.sleep(0.002)  # give the writer time between steps

            database.export_database(tmp_path / "snap.db", progress=progress)
        finally:
            stop.set()
            worker.join()
        assert len(during) > 10
        assert during[-1] > during[0]  # the application kept writing while the copy ran
        snap = tmp_path / "snap.db"
        with raw(snap) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            uptimes = [r[0] for r in conn.execute("SELECT uptime FROM metrics_history ORDER BY id")]
            (saved,) = conn.execute("SELECT value FROM metadata WHERE key = 'last_metrics_save'").fetchone()
            (newest,) = conn.execute(
                "SELECT created_at FROM metrics_history ORDER BY id DESC LIMIT 1"
            ).fetchone()
        assert uptimes == list(range(len(uptimes)))  # a prefix of what was written, no gaps
        assert 20 <= len(uptimes) <= during[0] + 1  # the moment the copy started, not later
        assert int(saved) == newest  # metadata and rows from the same moment


# ------------------------------------------------------------------------------------------------
# import
class TestImport:
    def test_import_replaces_content_and_keeps_a_backup(self, tmp_path):
        source_db = tmp_path / "a.db"
        database.init_database(source_db)
        database.save_model(model(name="from-a", ctx_size=4096, custom_params=["--x"]))
        database.save_metrics({"cpu_usage": 44.0})
        export = database.export_database(tmp_path / "a-export.db")

        live = tmp_path / "data" / "llama-dashboard.db"
        database.init_database(live)
        database.save_model(model(name="old-b"))
        backup = database.import_database(export)

        assert backup.parent == live.parent and backup.name.startswith("llama-dashboard.db.bak-")
        assert database.inspect_database_file(backup)["model_names"] == ["old-b"]
        [imported] = database.get_models()
        assert (imported["name"], imported["ctx_size"], imported["custom_params"]) == (
            "from-a",
            4096,
            ["--x"],
        )
        assert [r["cpu_usage"] for r in database.get_metrics_history()] == [44.0]
        # the API keeps working on the new content
        database.update_model(imported["id"], {"status": "running"})
        database.save_model(model(name="new"))
        database.save_metrics({"cpu_usage": 1.0})
        assert {m["name"] for m in database.get_models(status="running")} == {"from-a"}
        assert database.get_database_path() == live
        assert sorted(p.name for p in live.parent.iterdir() if ".import-" in p.name) == []
        if os.name == "posix":
            assert live.stat().st_mode & 0o777 == 0o600

    def test_import_upgrades_a_seed_file(self, tmp_path):
        seed = tmp_path / "seed.db"
        build_seed_database(seed)
        seed_before = digest(seed)
        database.init_database(tmp_path / "live.db")
        database.import_database(seed)
        assert digest(seed) == seed_before  # the imported file itself is only read
        assert database.get_db_version() == database.SCHEMA_VERSION
        assert sorted(m["name"] for m in database.get_models()) == ["llama-3-8b", "llama-3-8b (2)", "qwen"]
        assert len(database.get_metrics_history()) == 2

    def test_two_imports_in_one_second_keep_both_backups(self, tmp_path):
        database.init_database(tmp_path / "a.db")
        database.save_model(model(name="a"))
        export = database.export_database(tmp_path / "e.db")
        database.init_database(tmp_path / "live.db")
        first = database.import_database(export)
        second = database.import_database(export)
        assert first != second and first.exists() and second.exists()

    @pytest.mark.parametrize(("maker", "error", "message"), BAD_FILES, ids=BAD_IDS)
    def test_bad_file_is_refused_and_nothing_changes(self, tmp_path, maker, error, message):
        live = tmp_path / "data" / "llama-dashboard.db"
        database.init_database(live)
        database.save_model(model(name="keep-me"))
        database.save_metrics({"cpu_usage": 5.0})
        candidate = tmp_path / "candidate.db"
        maker(candidate)
        database.init_database(live)  # (makers may open other databases)
        before = digest(live)
        listing = sorted(p.name for p in live.parent.iterdir())
        with pytest.raises(error, match=message):
            database.import_database(candidate)
        assert digest(live) == before
        assert sorted(p.name for p in live.parent.iterdir()) == listing  # no backup, no staging file
        assert [m["name"] for m in database.get_models()] == ["keep-me"]
        database.save_metrics({"cpu_usage": 6.0})  # still working

    @pytest.mark.parametrize(("maker", "error", "message"), BAD_FILES, ids=BAD_IDS)
    def test_inspect_explains_bad_files_without_changing_them(self, tmp_path, maker, error, message):
        candidate = tmp_path / "candidate.db"
        maker(candidate)
        database.close_database()
        before = digest(candidate)
        with pytest.raises(error, match=message):
            database.inspect_database_file(candidate)
        assert digest(candidate) == before

    def test_missing_file_and_the_live_database(self, tmp_path):
        live = tmp_path / "live.db"
        database.init_database(live)
        with pytest.raises(DatabaseFileError, match="does not exist"):
            database.import_database(tmp_path / "nope.db")
        with pytest.raises(DatabaseFileError, match="is not a file"):
            database.import_database(tmp_path)
        with pytest.raises(DatabaseFileError, match="the database in use"):
            database.import_database(live)

    def test_failure_after_the_swap_puts_the_old_database_back(self, tmp_path, monkeypatch):
        database.init_database(tmp_path / "a.db")
        database.save_model(model(name="incoming"))
        export = database.export_database(tmp_path / "e.db")
        live = tmp_path / "live.db"
        database.init_database(live)
        database.save_model(model(name="original"))

        real_open = store.Database.connect_locked
        calls = []

        def flaky_open(self):
            calls.append(self.path)
            if len(calls) == 1:
                raise DatabaseError("simulated failure while opening the imported file")
            return real_open(self)

        monkeypatch.setattr(store.Database, "connect_locked", flaky_open)
        with pytest.raises(DatabaseError, match="simulated failure"):
            database.import_database(export)
        monkeypatch.setattr(store.Database, "connect_locked", real_open)
        assert len(calls) == 2  # the imported file, then the restored one
        assert [m["name"] for m in database.get_models()] == ["original"]
        backups = [p for p in tmp_path.iterdir() if ".bak-" in p.name]
        assert len(backups) == 1
        # the restored file is the kept one byte for byte (the reopen only wrote to the WAL)
        assert live.read_bytes() == backups[0].read_bytes()
        assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []
        database.save_model(model(name="still-working"))

    def test_paths_with_spaces_and_unicode(self, tmp_path):
        folder = tmp_path / "my data #1 ünïcødé"
        folder.mkdir()
        database.init_database(folder / "a b.db")
        database.save_model(model(name="spaced"))
        export = database.export_database(folder / "export ?.db")
        assert database.inspect_database_file(export)["model_names"] == ["spaced"]
        database.init_database(folder / "live db.db")
        database.import_database(export)
        assert [m["name"] for m in database.get_models()] == ["spaced"]

    def test_import_requires_an_open_database(self, tmp_path):
        with pytest.raises(database.DatabaseNotOpenError):
            database.import_database(tmp_path / "x.db")
