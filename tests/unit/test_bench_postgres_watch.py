"""The bench reads each PostgreSQL load run against what the database server did
meanwhile (bench/run.py, PostgresWatch): the WAL written during the run and the share
of it the checkpointer spent checkpointing. On the real server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

RUN = Path(__file__).parents[2] / "bench" / "run.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_run_is_reported_with_the_wal_it_wrote_and_no_checkpoint(postgres_url: str) -> None:
    import psycopg

    watch = _bench().PostgresWatch(postgres_url)

    def load() -> dict[str, float]:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS bench_watch (body text)")
            for _ in range(4):  # about 4 MB of rows, and at least one sample meanwhile
                connection.execute(
                    "INSERT INTO bench_watch SELECT repeat('x', 1000) FROM generate_series(1, 1000)"
                )
                connection.execute("SELECT pg_sleep(0.1)")
            connection.execute("DROP TABLE bench_watch")
        return {"rps": 1.0, "p99_ms": 2.0}

    result = watch.around(load)
    assert result["rps"] == 1.0 and result["p99_ms"] == 2.0  # the run's own figures kept
    assert result["postgres"]["wal_mb"] >= 3.5
    # Sampled (None without samples), and the checkpointer idle in its main loop: an
    # immediate CHECKPOINT lasts milliseconds; the spread ones the bench looks for
    # (timed, or after max_wal_size of WAL) last seconds to minutes.
    assert result["postgres"]["checkpointing"] == 0.0
