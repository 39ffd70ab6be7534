"""Benchmark importing models from a llamadash JSON file, against a plain sqlite3 executemany.

Run: ``python benchmarks/bench_import.py [--models N] [--quick]``

It writes a ``llamadash-models`` document of N models (default 100,000; ``--quick``: 10,000), each
with a few typical settings, and times, into a new database each:

* **llamadash**: ``parse_models_text`` + ``plan_import`` + ``apply_import`` (what ``llamadash
  models import`` and the window do; one transaction), and the write part alone;
* **sqlite3**: one ``executemany`` of the same rows (the values as llamadash stores them) into the
  same table layout (a file made by ``init_database``), in one transaction.

It prints models/s and the ratio of the two. Target: at least 1,000 models/s end to end.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llamadash.core import database, model_export
from llamadash.core.db.models import MODEL_COLUMNS, PRAGMAS, ModelConfig


def document(count: int) -> str:
    models = [
        {
            "name": f"model-{i:06d}",
            "type": "llama",
            "model_path": f"/models/model-{i:06d}.gguf",
            "ctx_size": 4096 + i % 8 * 1024,
            "temperature": 0.7,
            "gpu_layers": 99,
            "port": 20000 + i % 40000,
            "flash_attn": "auto",
            "custom_params": {"--jinja": True},
        }
        for i in range(count)
    ]
    return json.dumps({"format": model_export.FORMAT_NAME, "version": 1, "models": models})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=None, help="how many models (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 models")
    args = parser.parse_args()
    count = args.models or (10_000 if args.quick else 100_000)
    text = document(count)
    with tempfile.TemporaryDirectory(prefix="llamadash-bench-import-") as folder:
        base = Path(folder)
        database.init_database(base / "api.db", record_start=False)
        started = time.perf_counter()
        incoming = model_export.parse_models_text(text)
        parsed = time.perf_counter()
        plan = model_export.plan_import(incoming, database.get_models(), "skip")
        counts = model_export.apply_import(database, plan)
        ended = time.perf_counter()
        assert counts["add"] == count and database.count_rows()["models"] == count
        database.close_database()

        fields = [ModelConfig._meta.columns[c] for c in MODEL_COLUMNS if c != "id"]
        rows = [
            tuple(f.db_value({"status": "stopped", **m}.get(f.column_name)) for f in fields) for m in incoming
        ]
        database.init_database(base / "raw.db", record_start=False)
        database.close_database()
        conn = sqlite3.connect(base / "raw.db", isolation_level=None)
        for name, value in PRAGMAS:  # the same connection settings as llamadash's
            conn.execute(f"PRAGMA {name} = {value}").fetchall()
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        sql = f"INSERT INTO models ({columns}) VALUES ({', '.join('?' for _ in fields)})"
        raw_started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        raw_time = time.perf_counter() - raw_started
        conn.close()

    total, write = ended - started, ended - parsed
    print(f"models imported:            {count:,}")
    print(f"llamadash, end to end:      {total:8.2f} s  {count / total:10,.0f} models/s")
    print(f"  reading the JSON:         {parsed - started:8.2f} s")
    print(f"  planning and writing:     {write:8.2f} s  {count / write:10,.0f} models/s")
    print(f"sqlite3 executemany:        {raw_time:8.2f} s  {count / raw_time:10,.0f} models/s")
    print(f"ratio (llamadash / sqlite3): end to end {total / raw_time:.1f}x, writing {write / raw_time:.1f}x")
    target = 1000
    print(f"target >= {target:,} models/s end to end: {'met' if count / total >= target else 'NOT met'}")
    return 0 if count / total >= target else 1


if __name__ == "__main__":
    sys.exit(main())
