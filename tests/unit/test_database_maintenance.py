"""database-maintenance without servers: settings, parameters, parsing recorded replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from remediate.clock import ManualClock
from remediate.errors import ConfigError, ParameterError
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.playbooks.database import DatabaseMaintenance
from remediate.playbooks.registry import Registry
from remediate.store import Store
from remediate.system.postgres import (
    TableStatistics,
    describe_dsn,
    dsn_password,
    parse_vacuum_verbose,
    redact,
    statement_text,
    vacuum_statement,
)
from remediate.system.redis import RedisError, describe_url, parse_memory_info, printable_key
from tests.helpers import settings_for

# Recorded from PostgreSQL 15.20 (Debian 12): the INFO notices psycopg's notice handler
# received for `VACUUM (VERBOSE, ANALYZE) "public"."probe_t"` after deleting 45,000 of
# 50,000 rows. The TOAST table gets its own report, which must not be counted.
PG15_NOTICES = [
    'vacuuming "test.public.probe_t"',
    'finished vacuuming "test.public.probe_t": index scans: 1\n'
    "pages: 0 removed, 863 remain, 863 scanned (100.00% of total)\n"
    "tuples: 45000 removed, 5000 remain, 0 are dead but not yet removable\n"
    "removable cutoff: 1674, which was 0 XIDs old when operation ended\n"
    "new relfrozenxid: 1672, which is 1 XIDs ahead of previous value\n"
    "index scan needed: 863 pages from table (100.00% of total) had 45000 dead item "
    "identifiers removed\n"
    'index "probe_t_pkey": pages: 139 in total, 0 newly deleted, 0 currently deleted, '
    "0 reusable\n"
    "avg read rate: 2.459 MB/s, avg write rate: 3.689 MB/s\n"
    "buffer usage: 2747 hits, 2 misses, 3 dirtied\n"
    "WAL usage: 2728 records, 1 full page images, 424415 bytes\n"
    "system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.00 s",
    'vacuuming "test.pg_toast.pg_toast_18477"',
    'finished vacuuming "test.pg_toast.pg_toast_18477": index scans: 0\n'
    "pages: 0 removed, 0 remain, 0 scanned (100.00% of total)\n"
    "tuples: 0 removed, 0 remain, 0 are dead but not yet removable",
    'analyzing "public.probe_t"',
    '"probe_t": scanned 863 of 863 pages, containing 5000 live rows and 0 dead rows; '
    "5000 rows in sample, 5000 estimated total rows",
]

# The format of PostgreSQL 14 and older (src/backend/access/heap/vacuumlazy.c, REL_14).
PG14_NOTICES = [
    'vacuuming "public.probe_t"',
    'scanned index "probe_t_pkey" to remove 45000 row versions',
    '"probe_t": removed 45000 dead item identifiers in 863 pages',
    '"probe_t": found 45000 removable, 5000 nonremovable row versions in 863 out of 863 pages',
]

# Recorded from redis-server 7.0.15 (jemalloc): the fields of `client.info("memory")`
# this playbook reads, as redis-py 8.1 parses them.
INFO_MEMORY: dict[str, Any] = {
    "used_memory": 1038208,
    "used_memory_human": "1013.88K",
    "used_memory_rss": 7004160,
    "used_memory_rss_human": "6.68M",
    "mem_fragmentation_ratio": 7.0,
    "mem_fragmentation_bytes": 6004256,
    "mem_allocator": "jemalloc-5.3.0",
    "allocator_frag_ratio": 1.09,
}


def playbook_with(section: dict[str, Any], tmp_path: Path) -> DatabaseMaintenance:
    settings = settings_for(
        tmp_path, "sqlite://", playbooks={"settings": {"database-maintenance": section}}
    )
    return DatabaseMaintenance.from_settings(settings)


def test_the_vacuum_report_on_the_table_itself_gives_the_rows_removed() -> None:
    outcome = parse_vacuum_verbose(PG15_NOTICES, "public", "probe_t")
    assert (outcome.rows_removed, outcome.dead_remaining) == (45000, 0)
    assert outcome.report.startswith('finished vacuuming "test.public.probe_t"')


def test_the_toast_table_report_is_not_mistaken_for_the_table() -> None:
    outcome = parse_vacuum_verbose(PG15_NOTICES[2:], "public", "probe_t")
    assert outcome.rows_removed is None


def test_a_table_name_with_quotes_is_found_in_the_report() -> None:
    # Recorded from PostgreSQL 15.20: the name is printed raw, quotes and all.
    notices = [
        'vacuuming "test.public.Weird "name""',
        'table "Weird "name"": truncated 23 to 1 pages',
        'finished vacuuming "test.public.Weird "name"": index scans: 0\n'
        "pages: 22 removed, 1 remain, 23 scanned (100.00% of total)\n"
        "tuples: 4900 removed, 100 remain, 0 are dead but not yet removable",
        'analyzing "public.Weird "name""',
    ]
    assert parse_vacuum_verbose(notices, "public", 'Weird "name"').rows_removed == 4900


def test_the_older_vacuum_report_format_is_understood() -> None:
    assert parse_vacuum_verbose(PG14_NOTICES, "public", "probe_t").rows_removed == 45000


def test_no_report_means_no_figure_rather_than_zero() -> None:
    outcome = parse_vacuum_verbose(["something else entirely"], "public", "probe_t")
    assert (outcome.rows_removed, outcome.report) == (None, "")


def test_table_names_are_quoted_identifiers_never_spliced_text() -> None:
    statement = statement_text(vacuum_statement("public", 'evil"; DROP TABLE users; --'))
    assert statement == 'VACUUM (VERBOSE, ANALYZE) "public"."evil""; DROP TABLE users; --"'


def test_a_dead_ratio_counts_live_and_dead_tuples() -> None:
    assert TableStatistics("public", "t", 5000, 45000, 1).dead_ratio == 0.9
    assert TableStatistics("public", "t", 0, 0, 1).dead_ratio == 0.0


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://immich:s3cret@db.lan:5433/immich", "immich@db.lan:5433/immich"),
        ("host=db.lan user=immich password=s3cret dbname=immich", "immich@db.lan:5432/immich"),
        ("postgresql://db.lan/immich?password=s3cret", "db.lan:5432/immich"),
    ],
    ids=["url", "key-value", "query"],
)
def test_a_connection_string_is_shown_without_its_password(dsn: str, shown: str) -> None:
    assert describe_dsn(dsn) == shown
    assert dsn_password(dsn) == "s3cret"
    assert redact(f"failed for {dsn}", dsn_password(dsn)) == f"failed for {dsn}".replace(
        "s3cret", "***"
    )


def test_a_redis_url_is_shown_without_its_password() -> None:
    assert describe_url("redis://:s3cret@cache.lan:6380/2") == "cache.lan:6380/2"
    assert describe_url("redis://default:s3cret@cache.lan") == "cache.lan:6379/0"


def test_a_key_with_control_characters_is_printed_escaped() -> None:
    assert printable_key(b"user:\x1b[31m\xff") == "user:\\x1b[31m\\xff"
    assert len(printable_key(b"k" * 1000)) == 200


def test_the_memory_figures_are_read_from_a_recorded_info_reply() -> None:
    memory = parse_memory_info(INFO_MEMORY)
    assert (memory.fragmentation_ratio, memory.used_memory, memory.used_memory_rss) == (
        7.0,
        1038208,
        7004160,
    )
    assert memory.allocator == "jemalloc-5.3.0"


@pytest.mark.parametrize(
    "reply",
    [
        {key: value for key, value in INFO_MEMORY.items() if key != "mem_fragmentation_ratio"},
        {**INFO_MEMORY, "used_memory": "lots"},
    ],
    ids=["missing", "not-a-number"],
)
def test_an_info_reply_that_cannot_be_read_is_an_error_naming_the_command(
    reply: dict[str, Any],
) -> None:
    with pytest.raises(RedisError) as raised:
        parse_memory_info(reply)
    assert raised.value.message.startswith("INFO memory: cannot read the reply")


def test_a_password_in_a_bad_connection_string_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        playbook_with({"postgres": [{"name": "db", "dsn": "host=x password=s3cret ="}]}, tmp_path)
    assert "s3cret" not in raised.value.message
    assert "not a PostgreSQL connection string" in raised.value.message
    assert raised.value.field == "playbooks.settings.database-maintenance.postgres.0.dsn"


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        (
            {
                "postgres": [{"name": "shared", "dsn": "postgresql://a@h/db"}],
                "redis": [{"name": "shared", "url": "redis://h:6379/0"}],
            },
            "database name 'shared' appears twice",
        ),
        ({"redis": [{"name": "cache", "url": "http://h:6379"}]}, "redis://"),
        ({"postgres": [{"name": "-db", "dsn": "postgresql://a@h/db"}]}, "pattern"),
        ({"postgres": [{"name": "db", "dsn": "postgresql://a@h/db", "colour": 1}]}, "colour"),
    ],
    ids=["duplicate", "scheme", "name", "unknown"],
)
def test_bad_settings_are_refused_with_the_field(
    tmp_path: Path, section: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        playbook_with(section, tmp_path)
    assert complaint in raised.value.message
    assert "database-maintenance" in raised.value.message


def test_a_password_never_appears_in_the_settings_repr(tmp_path: Path) -> None:
    playbook = playbook_with(
        {
            "postgres": [{"name": "db", "dsn": "postgresql://a:s3cret@h/db"}],
            "redis": [{"name": "cache", "url": "redis://:s3cret@h:6379/0"}],
        },
        tmp_path,
    )
    assert "s3cret" not in repr(playbook.config) + str(playbook.config.model_dump())


@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("photo", "not a configured database (configured: photos, cache)"),
        ("photos; DROP", "String should match pattern"),
    ],
    ids=["unconfigured", "pattern"],
)
def test_a_database_parameter_must_name_a_configured_target(
    tmp_path: Path, database: str, reason: str
) -> None:
    playbook = playbook_with(
        {
            "postgres": [{"name": "photos", "dsn": "postgresql://a@h/db"}],
            "redis": [{"name": "cache", "url": "redis://h:6379/0"}],
        },
        tmp_path,
    )
    with pytest.raises(ParameterError) as raised:
        playbook.parse_parameters({"database": database})
    assert raised.value.parameter == "database"
    assert reason in raised.value.reason


def test_the_playbook_is_built_in_and_needs_confirmation(
    tmp_path: Path, sqlite_store: Store, clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'remediate.db'}"
    settings = settings_for(
        tmp_path,
        url,
        playbooks={
            "settings": {
                "database-maintenance": {"postgres": [{"name": "db", "dsn": "postgresql://a@h/d"}]}
            }
        },
    )
    registry = Registry.from_settings(settings)
    playbook = registry.get("database-maintenance")
    assert (playbook.risk, playbook.requires_confirmation) == ("medium", True)
    decision, report = Pipeline(settings, sqlite_store, registry, clock=clock).run(
        Request("database-maintenance", {"database": "db"})
    )
    assert (decision.action, decision.target, report) == ("escalate", "db", None)


def test_with_nothing_configured_the_plan_says_so_and_the_run_is_skipped(
    tmp_path: Path, sqlite_store: Store, clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'remediate.db'}"
    settings = settings_for(tmp_path, url)
    pipeline = Pipeline(settings, sqlite_store, Registry.from_settings(settings), clock=clock)
    preview = pipeline.preview(Request("database-maintenance"))
    assert [action.description for action in preview.plan.actions] == [
        "nothing to do: no database is configured in database-maintenance"
    ]
    _, report = pipeline.run(Request("database-maintenance", confirmed=True))
    assert report is not None and report.status == "skipped"
    assert report.result is not None and report.result.impacts == ()
