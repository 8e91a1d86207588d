"""Bringing a database to the newest schema: an empty one in one step, an older one by migrating.

An empty database gets its tables straight from the metadata and the `alembic_version`
row alembic would have written at the end, so the next migration continues from there:
on SQLite and on PostgreSQL through psycopg from DDL rendered ahead of time
(sqlite_ddl.py, postgresql_ddl.py, written by `python -m remediate.store.schema`),
elsewhere through `metadata.create_all`. That takes milliseconds, where importing
alembic and running every migration takes about 100 ms and 14 MB that `remediate
serve` would keep for its whole life. A database that holds any table or view (an older schema, or
someone else's tables) still goes through alembic, one migration after the other.
tests/unit/test_schema.py proves that both ways end in the same schema, on SQLite and on
PostgreSQL.

Both run on the caller's connection inside its write transaction (the store serializes
writers), so two processes starting on one empty database create the schema once.

    with store._write() as connection:     # in Store.migrate
        upgrade(connection, head=SCHEMA_HEAD)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from remediate.store.tables import metadata, with_postgresql_predicates

VERSION_TABLE = "alembic_version"


def upgrade(connection: Connection, *, head: str) -> None:
    """The newest schema: created at once on an empty database, else migrated by alembic."""
    if not create_if_empty(connection, head=head):
        migrate(connection)


def create_if_empty(connection: Connection, *, head: str) -> bool:
    """On a database without tables or views, create the schema at `head`; False otherwise."""
    if connection.dialect.name == "sqlite":
        return _create_sqlite_if_empty(connection, head=head)
    if connection.dialect.driver == "psycopg":
        return _create_postgresql_if_empty(connection, head=head)
    inspector = sa.inspect(connection)
    if inspector.get_table_names() or inspector.get_view_names():
        return False
    if connection.dialect.name == "postgresql":
        with_postgresql_predicates()
    metadata.create_all(connection, checkfirst=False)
    version = version_table()
    version.create(connection)
    connection.execute(version.insert().values(version_num=head))
    return True


def _create_sqlite_if_empty(connection: Connection, *, head: str) -> bool:
    """SQLite: the same schema from its DDL rendered ahead of time (sqlite_ddl.py):
    compiling 34 statements at every first start took about 30 ms of `serve`'s 400."""
    from remediate.store.store import create_sqlite_schema

    raw = connection.connection.driver_connection
    assert raw is not None
    return create_sqlite_schema(raw, head=head)


def _create_postgresql_if_empty(connection: Connection, *, head: str) -> bool:
    """PostgreSQL: the same schema from its DDL rendered ahead of time (postgresql_ddl.py)."""
    from remediate.store.store import create_postgresql_schema

    raw = connection.connection.driver_connection
    assert raw is not None
    return create_postgresql_schema(raw, head=head)


def render_sqlite_ddl() -> tuple[str, ...]:
    """The CREATE statements of the SQLite schema, tables in dependency order, each
    followed by its indexes, then alembic's version table."""
    from sqlalchemy.dialects import sqlite

    return _render_ddl(sqlite.dialect())


def render_postgresql_ddl() -> tuple[str, ...]:
    """The same for PostgreSQL (its partial indexes with their predicates)."""
    from sqlalchemy.dialects.postgresql import psycopg

    with_postgresql_predicates()
    return _render_ddl(psycopg.dialect())  # type: ignore[no-untyped-call]


def _render_ddl(dialect: sa.Dialect) -> tuple[str, ...]:
    from sqlalchemy.schema import CreateIndex, CreateTable

    statements = []
    for table in [*metadata.sorted_tables, version_table()]:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return tuple(statements)


SQLITE_DDL_MODULE = Path(__file__).with_name("sqlite_ddl.py")
POSTGRESQL_DDL_MODULE = Path(__file__).with_name("postgresql_ddl.py")


def write_sqlite_ddl(path: Path = SQLITE_DDL_MODULE) -> None:
    """Regenerate sqlite_ddl.py after a change to the tables or the gate's queries (a
    test says when)."""
    from remediate.store.store import render_sqlite_columns, render_sqlite_queries

    _write_module(
        path,
        "The SQLite schema at SCHEMA_HEAD, the gate's queries and what the rows it queues\n"
        "take from column defaults, rendered from tables.py and store.py by\n"
        "`python -m remediate.store.schema` (tests/unit/test_schema.py keeps them equal).\n"
        "With them `remediate serve` starts, answers /health and decides alerts on SQLite\n"
        "without importing SQLAlchemy.\n",
        render_sqlite_ddl(),
        [
            (
                "GATE_QUERIES: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]]",
                "name -> (SQL, parameter order, fixed parameter values)",
                render_sqlite_queries(),
            ),
            (
                "COLUMNS: dict[str, tuple[tuple[Any, ...], ...]]",
                "table -> (columns, JSON columns, boolean columns, column defaults)",
                render_sqlite_columns(),
            ),
        ],
    )


def write_postgresql_ddl(path: Path = POSTGRESQL_DDL_MODULE) -> None:
    """Regenerate postgresql_ddl.py (with sqlite_ddl.py, by the same command)."""
    from remediate.store.store import render_postgresql_queries

    _write_module(
        path,
        "The PostgreSQL schema at SCHEMA_HEAD and the gate's queries, rendered from\n"
        "tables.py and store.py by `python -m remediate.store.schema`\n"
        "(tests/unit/test_schema.py keeps them equal). A first start on an empty database\n"
        "sends the schema in one round trip; start-up and /health need no SQLAlchemy.\n",
        render_postgresql_ddl(),
        [
            (
                "GATE_QUERIES: dict[str, tuple[str, dict[str, Any]]]",
                "name -> (SQL, fixed parameter values)",
                render_postgresql_queries(),
            )
        ],
    )


def _write_module(
    path: Path,
    docstring: str,
    statements: Sequence[str],
    mappings: Sequence[tuple[str, str, Mapping[str, Any]]],
) -> None:
    """A module of rendered SQL: STATEMENTS, then each mapping (its annotated name, a
    comment, its items)."""
    body = "".join(f"    {statement!r},\n" for statement in statements)
    text = (
        "# ruff: noqa: E501\n"
        f'"""{docstring}"""\n\n'
        "from typing import Any\n\n"
        f"STATEMENTS = (\n{body})\n"
    )
    for declaration, comment, items in mappings:
        entries = "".join(f"    {name!r}: {value!r},\n" for name, value in items.items())
        text += f"\n# {comment}\n{declaration} = {{\n{entries}}}\n"
    path.write_text(text)


def migrate(connection: Connection, *, to: str = "head") -> None:
    """Run the migrations through alembic up to `to` (a revision, or "head")."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, to)


def version_table() -> sa.Table:
    """`alembic_version` exactly as alembic creates it (a named primary key included)."""
    return sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )


if __name__ == "__main__":
    write_sqlite_ddl()
    write_postgresql_ddl()
