"""database-maintenance against the real PostgreSQL server and a redis-server of our own.

Everything runs through the real Pipeline and Store: plan, execute, record,
metrics. The PostgreSQL server here uses trust authentication, so a password
in the DSN is accepted and ignored: that lets us check live that it never leaks.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from remediate.clock import ManualClock
from remediate.errors import ParameterError
from remediate.metrics import exposition, registry_for
from remediate.pipeline.pipeline import Pipeline, Report
from remediate.pipeline.request import Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.fixtures_databases import Listener, closed_port
from tests.helpers import settings_for

pytestmark = pytest.mark.integration

BLOAT_ROWS = 50_000
BLOAT_DELETED = 45_000  # every row whose id is not a multiple of 10
TIDY_DEAD = 100


def with_password(url: str, password: str) -> str:
    """postgresql://postgres@host/db -> postgresql://postgres:PASSWORD@host/db."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


@pytest.fixture
def bloated(postgres_database: str) -> str:
    """Two tables without autovacuum: `bloat` with 45,000 dead rows, `tidy` with 100."""
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        for table, rows in (("bloat", BLOAT_ROWS), ("tidy", 500)):
            connection.execute(
                f"CREATE TABLE {table} (id integer PRIMARY KEY, body text) "
                "WITH (autovacuum_enabled = false)"
            )
            connection.execute(
                f"INSERT INTO {table} SELECT g, repeat('x', 100) FROM generate_series(1, %s) g",
                (rows,),
            )
        connection.execute("DELETE FROM bloat WHERE id % 10 <> 0")
        connection.execute(f"DELETE FROM tidy WHERE id <= {TIDY_DEAD}")
        # Statistics are flushed by each backend on its own schedule; force ours now so
        # pg_stat_user_tables shows the dead tuples to the playbook's session.
        connection.execute("SELECT pg_stat_force_next_flush()")
        connection.execute("SELECT 1")
    return postgres_database


@contextlib.contextmanager
def make_pipeline(
    tmp_path: Path, clock: ManualClock, section: dict[str, Any]
) -> Iterator[Pipeline]:
    """A pipeline on a SQLite store with this playbook section and no cooldown."""
    url = f"sqlite:///{tmp_path / 'state' / 'remediate.db'}"
    settings = settings_for(
        tmp_path,
        url,
        playbooks={"settings": {"database-maintenance": section}},
        safety={"rate_limits": {"cooldown_minutes": 0}},
    )
    store = Store.open(url)
    try:
        yield Pipeline(settings, store, Registry.from_settings(settings), clock=clock)
    finally:
        store.close()


def run(pipeline: Pipeline, **parameters: str) -> Report:
    decision, report = pipeline.run(
        Request("database-maintenance", dict(parameters), confirmed=True)
    )
    assert decision.action == "execute", decision.reason
    assert report is not None and report.result is not None
    return report


def impacts(report: Report) -> dict[tuple[str, str], float]:
    assert report.result is not None
    return {(impact.kind, impact.subject): impact.value for impact in report.result.impacts}


def table_state(url: str, table: str) -> tuple[int, bool, int]:
    """(n_dead_tup, vacuumed manually, relfilenode of its primary key index)."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT s.n_dead_tup, s.last_vacuum IS NOT NULL, i.relfilenode "
            "FROM pg_stat_user_tables s JOIN pg_class i ON i.relname = s.relname || '_pkey' "
            "WHERE s.relname = %s",
            (table,),
        ).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1]), int(row[2])


def audit_text(pipeline: Pipeline) -> str:
    return pipeline.audit.path.read_text()


def test_a_bloated_table_is_vacuumed_and_its_rows_removed_reach_the_result_and_the_metric(
    tmp_path: Path, clock: ManualClock, bloated: str
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    section = {"postgres": [{"name": "photos", "dsn": with_password(bloated, password)}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        _, _, index_before = table_state(bloated, "bloat")

        preview = pipeline.preview(Request("database-maintenance", confirmed=True))
        planned = [action.description for action in preview.plan.actions]
        assert len(planned) == 1
        assert 'VACUUM (VERBOSE, ANALYZE) "public"."bloat"' in planned[0]
        assert f"{BLOAT_DELETED} dead tuples (90%)" in planned[0]
        assert table_state(bloated, "bloat")[1] is False  # the plan changed nothing

        report = run(pipeline)

        assert report.status == "success", report.summary
        assert impacts(report)[("rows_removed", "photos")] == BLOAT_DELETED
        assert f"{BLOAT_DELETED} dead rows removed from 1 table(s)" in report.summary
        assert report.result is not None
        [table] = report.result.details["postgres"]["photos"]["tables"]
        assert table["table"] == "public.bloat"
        assert table["rows_removed_from"] == "vacuum verbose"
        assert (table["dead_tuples_before"], table["dead_tuples_after"]) == (BLOAT_DELETED, 0)
        assert table["bytes_before"] > 0 and table["bytes_after"] > 0
        dead, vacuumed, index_after = table_state(bloated, "bloat")
        assert (dead, vacuumed, index_after) == (0, True, index_before)  # no REINDEX unasked
        # The table under the threshold was left alone.
        assert table_state(bloated, "tidy")[:2] == (TIDY_DEAD, False)

        metrics = exposition(registry_for(pipeline.store, pipeline.settings, clock)).decode()
        assert (
            f'remediation_database_vacuum_rows_removed{{database="photos"}} {BLOAT_DELETED}.0'
            in metrics
        )
        recorded = json.dumps(pipeline.store.history(), default=str)
        for text in (str(preview.plan), repr(report.result), audit_text(pipeline), recorded):
            assert password not in text
        assert "postgres@127.0.0.1:5432/" in planned[0]


def test_reindex_concurrently_runs_only_when_enabled(
    tmp_path: Path, clock: ManualClock, bloated: str
) -> None:
    section = {"postgres": [{"name": "photos", "dsn": bloated, "reindex": True}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        _, _, index_before = table_state(bloated, "bloat")
        preview = pipeline.preview(Request("database-maintenance", confirmed=True))
        assert [action.description.split(": ", 1)[1] for action in preview.plan.actions][1] == (
            'REINDEX TABLE CONCURRENTLY "public"."bloat";'
        )

        report = run(pipeline)

        assert report.status == "success", report.summary
        assert report.result is not None
        assert 'photos: REINDEX TABLE CONCURRENTLY "public"."bloat"' in report.result.actions
        # REINDEX builds the index anew, in a new file.
        assert table_state(bloated, "bloat")[2] != index_before
        assert table_state(bloated, "tidy")[1] is False


def test_nothing_over_the_threshold_vacuums_nothing_and_reports_zero_rows(
    tmp_path: Path, clock: ManualClock, bloated: str
) -> None:
    section = {
        "postgres": [{"name": "photos", "dsn": bloated, "dead_tuple_threshold": BLOAT_DELETED}]
    }
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)
        assert report.status == "success"
        assert "no table over the dead-tuple threshold" in report.summary
        assert impacts(report) == {("rows_removed", "photos"): 0}
        assert table_state(bloated, "bloat")[:2] == (BLOAT_DELETED, False)


def fill(url: str, sizes: dict[str, int], small: int) -> None:
    client = redis.Redis.from_url(url)
    with client:
        for key, size in sizes.items():
            client.set(key, b"v" * size)
        client.mset({f"small:{index}": "x" for index in range(small)})


def purge_calls(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_memory|purge", {}).get("calls", 0))


def test_redis_analysis_reports_fragmentation_doctor_and_the_biggest_keys(
    tmp_path: Path,
    clock: ManualClock,
    redis_server: str,
) -> None:
    fill(redis_server, {"big:a": 200_000, "big:b": 100_000, "big:c": 50_000}, small=300)
    section = {
        "redis": [
            {"name": "cache", "url": redis_server, "fragmentation_threshold": 1000, "top_keys": 3}
        ]
    }
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)

        assert report.status == "success", report.summary
        assert report.result is not None
        cache = report.result.details["redis"]["cache"]
        assert cache["fragmentation_ratio"] > 0
        assert cache["used_memory"] > 350_000
        assert cache["doctor"]  # MEMORY DOCTOR always says something
        assert (cache["sampled_keys"], cache["keys"]) == (303, 303)
        assert [key["key"] for key in cache["top_keys"]] == ["big:a", "big:b", "big:c"]
        for key, size in zip(cache["top_keys"], (200_000, 100_000, 50_000), strict=True):
            assert size <= key["bytes"] < size * 1.5
        assert cache["purged"] is False
        assert purge_calls(redis_server) == 0
        assert "biggest key 'big:a'" in report.summary


def test_a_fragmentation_ratio_over_the_threshold_sends_memory_purge(
    tmp_path: Path,
    clock: ManualClock,
    redis_server: str,
) -> None:
    fill(redis_server, {"big:a": 10_000}, small=10)
    section = {"redis": [{"name": "cache", "url": redis_server, "fragmentation_threshold": 0.0}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)

        assert report.status == "success", report.summary
        assert report.result is not None
        cache = report.result.details["redis"]["cache"]
        assert cache["purged"] is True and cache["fragmentation_ratio_after"] > 0
        assert "cache: MEMORY PURGE" in report.result.actions
        assert purge_calls(redis_server) == 1


def test_the_key_sample_stops_at_its_bound(
    tmp_path: Path,
    clock: ManualClock,
    redis_server: str,
) -> None:
    fill(redis_server, {}, small=500)
    section = {"redis": [{"name": "cache", "url": redis_server, "sample_keys": 50, "purge": False}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)
        assert report.result is not None
        cache = report.result.details["redis"]["cache"]
        assert (cache["sampled_keys"], cache["keys"]) == (50, 500)
        assert len(cache["top_keys"]) == 10


def test_an_unreachable_postgres_fails_with_the_reason_while_redis_still_runs(
    tmp_path: Path,
    clock: ManualClock,
    redis_server: str,
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    section = {
        "postgres": [{"name": "gone", "dsn": f"postgresql://app:{password}@127.0.0.1:9/app"}],
        "redis": [{"name": "cache", "url": redis_server, "fragmentation_threshold": 1000}],
    }
    with make_pipeline(tmp_path, clock, section) as pipeline:
        preview = pipeline.preview(Request("database-maintenance", confirmed=True))
        assert "gone (app@127.0.0.1:9/app): cannot plan" in preview.plan.actions[0].description

        report = run(pipeline)

        assert report.status == "failure"
        assert "gone: unreachable: cannot connect to app@127.0.0.1:9/app" in report.summary
        assert "Connection refused" in report.summary
        assert report.result is not None
        assert report.result.details["redis"]["cache"]["fragmentation_ratio"] > 0
        assert report.attempts == 1
        recorded = json.dumps(pipeline.store.history(), default=str)
        for text in (str(preview.plan), repr(report.result), audit_text(pipeline), recorded):
            assert password not in text


def settled(counter: Listener) -> int:
    """The accept count once the accepting thread has caught up (bounded wait)."""
    for _ in range(50):
        if counter.accepted:
            break
        time.sleep(0.05)
    return counter.accepted


def test_a_postgres_server_that_never_answers_is_tried_once(
    tmp_path: Path,
    clock: ManualClock,
    listener: Listener,
) -> None:
    dsn = f"postgresql://app@127.0.0.1:{listener.port}/app?sslmode=disable"
    section = {"postgres": [{"name": "silent", "dsn": dsn, "connect_timeout_seconds": 1}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)
        assert report.status == "failure"
        assert "silent: unreachable" in report.summary and "timeout" in report.summary
        # One connection for the plan; execute does not try again, nor does psycopg.
        assert settled(listener) == 1


def test_a_redis_server_that_never_answers_is_tried_once(
    tmp_path: Path,
    clock: ManualClock,
    listener: Listener,
) -> None:
    url = f"redis://:secret-{uuid.uuid4().hex}@127.0.0.1:{listener.port}/0"
    section = {"redis": [{"name": "silent", "url": url, "timeout_seconds": 0.5}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)
        assert report.status == "failure"
        assert "silent: failed: PING: Timeout" in report.summary
        # redis-py's default would reconnect ten more times; we allow none.
        assert settled(listener) == 1
        assert "secret-" not in audit_text(pipeline) + repr(report.result)


def test_a_closed_redis_port_fails_with_the_reason(tmp_path: Path, clock: ManualClock) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    section = {"redis": [{"name": "cache", "url": url}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)
        assert report.status == "failure"
        assert "cache: failed: PING:" in report.summary
        assert "Connection refused" in report.summary


def test_the_database_parameter_runs_only_the_named_target(
    tmp_path: Path,
    clock: ManualClock,
    bloated: str,
    redis_server: str,
) -> None:
    section = {
        "postgres": [{"name": "photos", "dsn": bloated}],
        "redis": [{"name": "cache", "url": redis_server, "purge": False}],
    }
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline, database="cache")
        assert report.status == "success"
        assert report.result is not None
        assert list(report.result.details["redis"]) == ["cache"]
        assert report.result.details["postgres"] == {}
        assert table_state(bloated, "bloat")[1] is False

        with pytest.raises(ParameterError) as raised:
            pipeline.run(Request("database-maintenance", {"database": "photo"}, confirmed=True))
        assert raised.value.parameter == "database"
        assert "configured: photos, cache" in raised.value.message


def test_a_table_whose_name_needs_quoting_is_vacuumed_and_counted_exactly(
    tmp_path: Path,
    clock: ManualClock,
    postgres_database: str,
) -> None:
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute(
            'CREATE TABLE "Odd ""name""; --" (id integer) WITH (autovacuum_enabled = false)'
        )
        connection.execute('INSERT INTO "Odd ""name""; --" SELECT generate_series(1, 5000)')
        connection.execute('DELETE FROM "Odd ""name""; --" WHERE id > 3000')
        connection.execute("SELECT pg_stat_force_next_flush()")
        connection.execute("SELECT 1")
    section = {"postgres": [{"name": "odd", "dsn": postgres_database}]}
    with make_pipeline(tmp_path, clock, section) as pipeline:
        report = run(pipeline)
        assert report.status == "success", report.summary
        assert report.result is not None
        [table] = report.result.details["postgres"]["odd"]["tables"]
        assert (table["table"], table["rows_removed"]) == ('public.Odd "name"; --', 2000)
        assert table["rows_removed_from"] == "vacuum verbose"
