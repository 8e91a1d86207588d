"""An empty database gets the newest schema in one step from the table metadata
(store/schema.py); an older one migrates through alembic. Both ways must end in the same
schema, compared with SQLAlchemy's inspector on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from remediate.store import Store, schema
from remediate.store import tables as t
from remediate.store.store import SCHEMA_HEAD
from tests.helpers import POSTGRES_ADMIN_URL, unavailable


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def empty_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Three empty databases of one kind."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path / f'db{n}' / 'remediate.db'}" for n in range(3)]
        return
    admin_url = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    names = [f"remediate_schema_{uuid.uuid4().hex[:10]}" for _ in range(3)]
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {error.orig}")
    try:
        yield [POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name for name in names]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def on(url: str, *steps: Any) -> None:
    """Run each step on one connection of an unmigrated store, in one transaction."""
    store = Store.open(url, migrate=False)
    try:
        with store.engine.begin() as connection:
            for step in steps:
                step(connection)
    finally:
        store.close()


def described(url: str) -> dict[str, Any]:
    """Everything the inspector sees of every table, and the stamped version."""
    store = Store.open(url, migrate=False)
    try:
        with store.engine.connect() as connection:
            inspector = sa.inspect(connection)
            tables = {
                name: {
                    "columns": [
                        {**column, "type": str(column["type"])}
                        for column in inspector.get_columns(name)
                    ],
                    "primary_key": inspector.get_pk_constraint(name),
                    "foreign_keys": sorted(
                        inspector.get_foreign_keys(name), key=lambda fk: fk["constrained_columns"]
                    ),
                    "indexes": sorted(
                        (
                            # A partial index's predicate comes back as a clause: keep its SQL.
                            {**index, "dialect_options": _text(index.get("dialect_options", {}))}
                            for index in inspector.get_indexes(name)
                        ),
                        key=lambda index: index["name"],
                    ),
                    "unique": inspector.get_unique_constraints(name),
                    "checks": inspector.get_check_constraints(name),
                }
                for name in inspector.get_table_names()
            }
            views = inspector.get_view_names()
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    finally:
        store.close()
    return {"tables": tables, "views": views, "version": version}


def _text(options: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in options.items()}


def by_name(description: dict[str, Any]) -> dict[str, Any]:
    """The description with each table's columns keyed by name (their order set aside)."""
    return {
        **description,
        "tables": {
            name: {**table, "columns": {column["name"]: column for column in table["columns"]}}
            for name, table in description["tables"].items()
        },
    }


def created(connection: sa.Connection) -> None:
    assert schema.create_if_empty(connection, head=SCHEMA_HEAD)


def test_a_fresh_schema_is_the_migrated_schema(empty_urls: list[str]) -> None:
    migrated_url, fresh_url, _ = empty_urls
    on(migrated_url, schema.migrate)
    on(fresh_url, created)
    migrated, fresh = described(migrated_url), described(fresh_url)
    assert set(fresh["tables"]) == {table.name for table in t.metadata.sorted_tables} | {
        schema.VERSION_TABLE
    }
    assert fresh["version"] == migrated["version"] == [(SCHEMA_HEAD,)]
    assert by_name(fresh) == by_name(migrated)


def test_the_fresh_columns_are_in_the_migrated_order_but_one(empty_urls: list[str]) -> None:
    """Migration 0002 appended requests.alert_ends_at, tables.py declares it beside
    alert_starts_at; no query depends on the order of columns (inserts name them)."""
    migrated_url, fresh_url, _ = empty_urls
    on(migrated_url, schema.migrate)
    on(fresh_url, created)
    order = {
        url: {
            name: [column["name"] for column in table["columns"]]
            for name, table in described(url)["tables"].items()
        }
        for url in (migrated_url, fresh_url)
    }
    moved = {"alert_ends_at"}
    for name, columns in order[fresh_url].items():
        migrated_columns = order[migrated_url][name]
        if name == "requests":
            assert [c for c in columns if c not in moved] == [
                c for c in migrated_columns if c not in moved
            ]
        else:
            assert columns == migrated_columns, name


def test_an_older_schema_migrates_through_alembic_to_the_same_schema(
    empty_urls: list[str],
) -> None:
    older_url, fresh_url, _ = empty_urls
    on(older_url, lambda connection: schema.migrate(connection, to="0003"))
    on(older_url, lambda connection: schema.upgrade(connection, head=SCHEMA_HEAD))
    on(fresh_url, lambda connection: schema.upgrade(connection, head=SCHEMA_HEAD))
    assert by_name(described(older_url)) == by_name(described(fresh_url))


def test_migration_0008_gives_each_run_the_alert_its_request_holds(
    empty_urls: list[str],
) -> None:
    """Runs recorded before 0008 get their alert's fingerprint and start from their request
    (ROI's resolution times read them from the run); a run without an alert keeps none."""
    url, _, _ = empty_urls
    requests = [
        {"id": 1, "fingerprint": "f1", "alert_starts_at": 10.5, "alertname": "DiskFull"},
        {"id": 2, "fingerprint": "f2", "alert_starts_at": 20.0, "alertname": "Down"},
        {"id": 3, "fingerprint": None, "alert_starts_at": None, "alertname": None},
    ]
    # Run 3 retried run 2 (same decision); run 4 was asked for by hand.
    runs = [(1, 1, 1, "DiskFull"), (2, 2, 1, "Down"), (3, 2, 2, "Down"), (4, 3, 1, None)]

    def older(connection: sa.Connection) -> None:
        schema.migrate(connection, to="0007")
        for row in requests:
            connection.execute(
                sa.text(
                    "INSERT INTO requests (id, created_at, source, parameters, alertname,"
                    " fingerprint, alert_starts_at, confidence, forced, dry_run) VALUES (:id, 1,"
                    " 'webhook', '{}', :alertname, :fingerprint, :alert_starts_at, 100, false,"
                    " false)"
                ),
                row,
            )
            connection.execute(
                sa.text(
                    "INSERT INTO decisions (id, request_id, created_at, source, action, reason,"
                    " confidence, forced) VALUES (:id, :id, 1, 'webhook', 'execute', '', 100,"
                    " false)"
                ),
                row,
            )
        for run, decision, attempt, alertname in runs:
            connection.execute(
                sa.text(
                    "INSERT INTO executions (id, decision_id, attempt, playbook, target, source,"
                    " alertname, forced, admitted_at, status) VALUES (:run, :decision, :attempt,"
                    " 'p', '-', 'webhook', :alertname, false, 1, 'success')"
                ),
                {"run": run, "decision": decision, "attempt": attempt, "alertname": alertname},
            )

    on(url, older)
    on(url, lambda connection: schema.upgrade(connection, head=SCHEMA_HEAD))
    store = Store.open(url, migrate=False)
    try:
        with store.engine.connect() as connection:
            carried = connection.execute(
                sa.text("SELECT id, fingerprint, alert_starts_at FROM executions ORDER BY id")
            ).all()
    finally:
        store.close()
    assert [tuple(row) for row in carried] == [
        (1, "f1", 10.5),
        (2, "f2", 20.0),
        (3, "f2", 20.0),
        (4, None, None),
    ]


def test_alembic_continues_from_a_fresh_schema(empty_urls: list[str]) -> None:
    fresh_url, _, _ = empty_urls
    on(fresh_url, created)
    before = described(fresh_url)
    on(fresh_url, schema.migrate)  # nothing to do at head: no error, no change
    assert described(fresh_url) == before


def test_a_database_with_other_tables_is_left_to_alembic(empty_urls: list[str]) -> None:
    url, _, _ = empty_urls
    created_there: list[bool] = []
    on(url, lambda connection: connection.execute(sa.text("CREATE TABLE notes (id INTEGER)")))
    on(url, lambda connection: created_there.append(schema.create_if_empty(connection, head="x")))
    assert created_there == [False]
    store = Store.open(url, migrate=False)
    try:
        with store.engine.connect() as connection:
            assert sa.inspect(connection).get_table_names() == ["notes"]
    finally:
        store.close()


def test_a_fresh_sqlite_store_is_created_without_importing_alembic(tmp_path: Path) -> None:
    """`remediate serve` on a new machine: the schema comes from the metadata, and alembic
    (about 14 MB for the life of the process) is never imported, nor is SQLAlchemy's
    PostgreSQL dialect (the partial indexes get their PostgreSQL predicate only there)."""
    code = (
        "import sys\n"
        "from remediate.store import Store\n"
        f"store = Store.open('sqlite:///{tmp_path}/fresh.db')\n"
        "from remediate.store.store import SCHEMA_HEAD\n"
        "assert store.schema_version() == SCHEMA_HEAD, store.schema_version()\n"
        "print('alembic' in sys.modules, 'sqlalchemy.dialects.postgresql' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False False"  # nor PostgreSQL's dialect


def test_the_sqlite_ddl_module_is_rendered_from_the_tables() -> None:
    """SQLite's first start runs DDL rendered ahead of time (store/sqlite_ddl.py): it must
    be what the metadata renders now. After changing tables.py, regenerate it with
    `python -m remediate.store.schema`."""
    from remediate.store.sqlite_ddl import STATEMENTS

    assert schema.render_sqlite_ddl() == STATEMENTS


def test_the_postgresql_ddl_module_is_rendered_from_the_tables() -> None:
    """PostgreSQL's first start sends DDL rendered ahead of time (postgresql_ddl.py) in
    one round trip; the same command regenerates it."""
    from remediate.store.postgresql_ddl import GATE_QUERIES, STATEMENTS
    from remediate.store.store import render_postgresql_queries

    assert schema.render_postgresql_ddl() == STATEMENTS
    assert render_postgresql_queries() == GATE_QUERIES


def test_the_gate_statements_are_rendered_from_the_tables_and_queries() -> None:
    """The gate's SQLite queries and the queued tables' JSON columns and defaults are
    rendered ahead of time too (serve decides alerts without importing SQLAlchemy)."""
    from remediate.store.sqlite_ddl import COLUMNS, GATE_QUERIES
    from remediate.store.store import render_sqlite_columns, render_sqlite_queries

    assert render_sqlite_queries() == GATE_QUERIES
    assert render_sqlite_columns() == COLUMNS


def test_a_database_holding_only_a_view_is_left_to_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'view.db'}"
    on(url, lambda connection: connection.execute(sa.text("CREATE VIEW one AS SELECT 1 AS x")))
    created_there: list[bool] = []
    on(url, lambda connection: created_there.append(schema.create_if_empty(connection, head="x")))
    assert created_there == [False]
