"""The bench reads each PostgreSQL load run against what the database server did
meanwhile (bench/run.py, PostgresWatch): the WAL written during the run and the share
of it the checkpointer spent checkpointing. On the real server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).parents[2] / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_a_run_is_reported_with_the_wal_it_wrote_and_no_checkpoint(
    bench: ModuleType, postgres_url: str
) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        # Ends any spread checkpoint under way: the next timed one is minutes away.
        connection.execute("CHECKPOINT")
    watch = bench.PostgresWatch(postgres_url)

    def load() -> dict[str, float]:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS bench_watch (body text)")
            for _ in range(4):  # about 4 MB of rows, and samples meanwhile
                connection.execute(
                    "INSERT INTO bench_watch SELECT repeat('x', 1000) FROM generate_series(1, 1000)"
                )
                connection.execute("SELECT pg_sleep(0.1)")
            connection.execute("DROP TABLE bench_watch")
        return {"rps": 1.0, "p99_ms": 2.0}

    result = watch.around(load)
    assert result["rps"] == 1.0 and result["p99_ms"] == 2.0  # the run's own figures kept
    assert result["postgres"]["wal_mb"] >= 3.5
    # Sampled (None without samples), the checkpointer idle in its main loop throughout.
    assert result["postgres"]["checkpointing"] == 0.0
    assert "error" not in result["postgres"]


def test_a_server_that_cannot_be_reached_leaves_the_run_and_says_why(bench: ModuleType) -> None:
    from tests.fixtures_monitoring import free_port

    watch = bench.PostgresWatch(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    result = watch.around(lambda: {"rps": 5.0, "p99_ms": 1.0})
    assert result["rps"] == 5.0
    assert "before the run" in result["postgres"]["error"]


def test_the_checkpointing_share_counts_only_the_samples_that_saw_the_checkpointer(
    bench: ModuleType,
) -> None:
    assert bench.checkpointing([]) is None
    assert bench.checkpointing([None, None]) is None  # no pg_read_all_stats: unknown
    idle, writing, working = "CheckpointerMain", "CheckpointWriteDelay", "-"
    assert bench.checkpointing([idle, idle, None, idle]) == 0.0
    assert bench.checkpointing([idle, writing, working, idle]) == 0.5
    lines = bench.watched_text({"wal_mb": 12.5, "checkpointing": 0.25})
    assert lines == "WAL 12.5 MB, checkpointing 25% of it"
    assert "checkpointing: not seen" in bench.watched_text({"checkpointing": None})
