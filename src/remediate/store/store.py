"""Queries and writes on the store, shared by every trigger.

Gate decisions are serialized across processes: on SQLite a gate transaction
starts with BEGIN IMMEDIATE (one writer at a time), on PostgreSQL it takes a
transaction-level advisory lock. So two triggers deciding at the same moment
see each other's admissions, and a limit is never overrun by a race.

    >>> store = Store.open("sqlite:////tmp/remediate.db")
    >>> with store.gate_transaction() as view:
    ...     view.count_admitted(since=0)
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from remediate import jsontext
from remediate.errors import StoreError
from remediate.store import libpq, sqlite_ddl

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.exc import SQLAlchemyError

    from remediate.store import tables as t
else:

    class _OnFirstUse:
        """Stands for SQLAlchemy (`sa`) or the table definitions (`t`) until first used.

        Importing SQLAlchemy takes about 100 ms and 15 MB. `remediate serve` on SQLite
        starts, answers /health and decides alerts on the driver alone (the queries are
        rendered ahead of time in sqlite_ddl.py); SQLAlchemy is imported the first time
        anything else needs it, and from then on these names are the modules themselves.
        """

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attribute: str) -> Any:
            _load_sqlalchemy()
            return getattr(globals()[self._name], attribute)

    sa = _OnFirstUse("sa")
    t = _OnFirstUse("t")


def _load_sqlalchemy() -> None:
    """Bind `sa` and `t` to the real modules (the import system serializes threads)."""
    global sa, t
    import sqlalchemy

    from remediate.store import tables

    sa, t = sqlalchemy, tables


def _from_sqlalchemy(error: BaseException) -> TypeGuard[SQLAlchemyError]:
    """Whether `error` is SQLAlchemy's (never true before SQLAlchemy was imported)."""
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(error, exc.SQLAlchemyError)


# The newest migration in store/migrations/versions; a test keeps the two in step.
SCHEMA_HEAD = "0008"
_GATE_LOCK = 0x72656D65  # "reme": the advisory lock id that serializes gate decisions

FAILED = ("failure", "timeout")
# What a new attempt of an execution takes over from the one before.
_ATTEMPT_COPIES = (
    "decision_id",
    "playbook",
    "target",
    "source",
    "alertname",
    "fingerprint",
    "alert_starts_at",
    "idempotency_key",
    "forced",
)
FINISHED = ("success", "failure", "timeout", "skipped", "interrupted")


def owner_id() -> str:
    """Who holds a lease: host and pid, so a dead holder on this host is seen at once."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Outcome:
    status: str
    admitted_at: float
    finished_at: float | None


@functools.cache
def _queries() -> dict[str, Any]:
    """The gate's queries, built once with bound parameters: SQLAlchemy then reuses
    their compiled form, which matters on the webhook's hot path."""
    e, k, f = t.executions, t.execution_keys, t.flags
    count = sa.select(sa.func.count()).select_from(e)
    first_attempts = count.where(e.c.attempt == 1, e.c.admitted_at >= sa.bindparam("since"))
    return {
        "count": first_attempts,
        "count_playbook": first_attempts.where(e.c.playbook == sa.bindparam("playbook")),
        "count_alert": first_attempts.where(e.c.alertname == sa.bindparam("alertname")),
        "count_rule": sa.select(sa.func.count())
        .select_from(k)
        .where(
            k.c.rule == sa.bindparam("rule"),
            k.c.key == sa.bindparam("key"),
            k.c.admitted_at >= sa.bindparam("since"),
        ),
        "last_playbook": sa.select(sa.func.max(e.c.admitted_at)).where(
            e.c.playbook == sa.bindparam("playbook")
        ),
        "last_key": sa.select(sa.func.max(e.c.admitted_at)).where(
            e.c.idempotency_key == sa.bindparam("key")
        ),
        "outcomes": sa.select(e.c.status, e.c.admitted_at, e.c.finished_at)
        .where(e.c.playbook == sa.bindparam("playbook"), e.c.status.in_(("success", *FAILED)))
        .order_by(e.c.admitted_at.desc(), e.c.id.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer)),
        "unfinished": count.where(
            e.c.playbook == sa.bindparam("playbook"), e.c.status.in_(("queued", "running"))
        ),
        "flag": sa.select(f.c.value).where(f.c.name == sa.bindparam("name")),
        "next_id": sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id'))"),
        # Both queued tables (_QUEUED's order) at once.
        "next_queued_ids": sa.text(
            "SELECT nextval('requests_id_seq'), nextval('decisions_id_seq')"
            " FROM generate_series(1, :count)"
        ),
    }


# Placeholders for the values each call of a gate query binds; literal ones (attempt = 1,
# the IN lists) keep theirs, so IN (...) renders as many placeholders as it needs.
_PLACEHOLDERS: dict[str, Any] = dict.fromkeys(
    ("playbook", "alertname", "rule", "key", "name"), ""
) | {"since": 0.0, "limit": 0}


def render_sqlite_queries() -> dict[str, tuple[str, tuple[str, ...], dict[str, Any]]]:
    """The gate's queries as SQLite text with their parameter order and fixed values:
    run on the driver's connection, they skip SQLAlchemy's per-statement work. They are
    rendered ahead of time into sqlite_ddl.py (a test keeps it equal to this)."""
    from sqlalchemy.dialects import sqlite

    compiled = {}
    for name, query in _queries().items():
        if name in ("next_id", "next_queued_ids"):
            continue
        state = query.compile(dialect=sqlite.dialect()).construct_expanded_state(
            _PLACEHOLDERS, escape_names=False
        )
        assert state.positiontup is not None
        compiled[name] = (state.statement, tuple(state.positiontup), dict(state.parameters))
    return compiled


def render_sqlite_columns() -> dict[str, tuple[tuple[Any, ...], ...]]:
    """For each table: its columns, its JSON columns, its boolean columns, and the values
    SQLAlchemy's column defaults give the columns a row leaves out (JSON already as
    text, as (name, value) pairs). Rendered ahead of time into sqlite_ddl.py, like the
    queries: the store's own SQL (`Sql`) writes and reads rows with them."""
    columns: dict[str, tuple[tuple[Any, ...], ...]] = {}
    for name in sorted(t.metadata.tables):
        table = t.metadata.tables[name]
        json_columns = tuple(c.name for c in table.columns if isinstance(c.type, sa.JSON))
        booleans = tuple(c.name for c in table.columns if isinstance(c.type, sa.Boolean))
        defaults: list[tuple[str, Any]] = []
        for column in table.columns:
            default = column.default
            if default is None:
                continue
            # A callable default is SQLAlchemy's wrapper, called with the execution context.
            value = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
            defaults.append((column.name, _dumps(value) if column.name in json_columns else value))
        columns[name] = (
            tuple(c.name for c in table.columns),
            json_columns,
            booleans,
            tuple(defaults),
        )
    return columns


def render_postgresql_queries() -> dict[str, tuple[str, dict[str, Any]]]:
    """The gate's queries as psycopg text (`%(name)s`) with their fixed values: on the
    driver's connection they skip SQLAlchemy's per-statement work. Rendered ahead of
    time into postgresql_ddl.py, like SQLite's."""
    from sqlalchemy.dialects.postgresql import psycopg

    dialect = psycopg.dialect()  # type: ignore[no-untyped-call]
    compiled = {}
    for name, query in _queries().items():
        if name in ("next_id", "next_queued_ids"):
            continue
        state = query.compile(dialect=dialect).construct_expanded_state(
            _PLACEHOLDERS, escape_names=False
        )
        fixed = {key: value for key, value in state.parameters.items() if key not in _PLACEHOLDERS}
        compiled[name] = (state.statement, fixed)
    return compiled


@functools.cache
def _postgresql_queries() -> dict[str, tuple[str, dict[str, Any]]]:
    from remediate.store.postgresql_ddl import GATE_QUERIES

    return GATE_QUERIES


_PG_LOCK = "SELECT pg_advisory_xact_lock(%(lock)s)"
# The gate's transaction as it goes to libpq (`libpq.run`, $n parameters as text): its
# first round trip is BEGIN, the lock and the reads that must follow the lock; its last
# the batch's INSERT and the COMMIT.
_PG_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
_PG_COMMIT = "COMMIT"
_PG_GATE_LOCK = "SELECT pg_advisory_xact_lock($1::bigint)"
# The lock (volatile, so taken as the statement runs) and the ids of both queued
# tables. Sequences are outside transactions: the statement's snapshot, taken before
# the lock was granted, does not matter to them, and every later statement of the
# transaction sees what the previous holder committed. The sequences are named as
# SERIAL names them (the schema is created by this project only): looking them up
# with pg_get_serial_sequence for every row cost about 50 us per batch of 10. A
# prepared statement follows a sequence dropped and created again (PostgreSQL plans
# it anew), so a schema recreated under a running server is still served.
_PG_LOCK_AND_IDS = (
    "SELECT nextval('requests_id_seq'), nextval('decisions_id_seq')"
    " FROM (SELECT pg_advisory_xact_lock($1::bigint)) AS locked, generate_series(1, $2::int)"
)
# The gate's first reads in one statement: the flags asked for, and the newest
# admission of each idempotency key (both as JSON objects, NULL when none). Names and
# keys arrive as JSON arrays; ARRAY(...) makes each list one value, so the lookup is an
# index scan whatever the plan's guess at their length.
_PG_FLAGS_AND_LAST_ADMITTED = (
    "SELECT (SELECT json_object_agg(name, value) FROM flags"
    " WHERE name = ANY(ARRAY(SELECT json_array_elements_text($1::json)))),"
    " (SELECT json_object_agg(idempotency_key, last) FROM"
    " (SELECT idempotency_key, max(admitted_at) AS last FROM executions"
    " WHERE idempotency_key = ANY(ARRAY(SELECT json_array_elements_text($2::json)))"
    " GROUP BY idempotency_key) AS admitted)"
)
_PG_NEXT_ID = "SELECT nextval(pg_get_serial_sequence(%(table)s, 'id'))"
_PG_NEXT_QUEUED_IDS = (
    "SELECT nextval('requests_id_seq'), nextval('decisions_id_seq')"
    " FROM generate_series(1, %(count)s)"
)


_SQLITE_QUERIES = sqlite_ddl.GATE_QUERIES
_COLUMNS = sqlite_ddl.COLUMNS


@functools.cache
def _insert_execution() -> Any:
    return t.executions.insert()


@functools.cache
def _insert_execution_key() -> Any:
    return t.execution_keys.insert()


# Tables whose rows a gate transaction queues and writes in one statement per batch.
_QUEUED = ("requests", "decisions")
# The newest id of each queued table, in _QUEUED's order.
_SQLITE_LATEST_IDS = (
    "SELECT (SELECT COALESCE(MAX(id), 0) FROM requests),"
    " (SELECT COALESCE(MAX(id), 0) FROM decisions)"
)


class GateView:
    """The reads the gate checks make, inside one serialized transaction, and the rows
    it writes.

    Requests and decisions are queued with ids taken up front and written together,
    one `executemany` per table, when the transaction commits or when anything reaches
    for `connection` (which therefore always sees every queued row). On the webhook's
    hot path that replaces a statement per row with one per batch.
    """

    def __init__(
        self,
        connection: Connection | sqlite3.Connection,
        *,
        through_sqlalchemy: Callable[[], Connection] | None = None,
        lock: int | None = None,
        reopen: Callable[[], Any] | None = None,
    ) -> None:
        """`connection`: SQLAlchemy's, or on SQLite the driver's own, in which case
        `through_sqlalchemy` opens a SQLAlchemy connection on that same driver connection
        (same transaction) the first time anything reaches for `connection`.

        PostgreSQL's gate passes `lock`, the advisory lock its transaction takes with
        its first statement (with the ids `expect` asks for: one round trip), and
        `reopen`, which gives a new connection when that first statement finds the
        held one dead (the server restarted): nothing was done on it yet."""
        self._connection: Connection | None
        self._raw: Any = None  # the sqlite3 connection
        self._pg: Any = None  # the psycopg connection
        if isinstance(connection, sqlite3.Connection):
            self._connection, self._raw, self._sqlite = None, connection, True
        elif _is_psycopg(connection):
            self._connection, self._pg, self._sqlite = None, connection, False
        else:
            self._connection = connection
            self._sqlite = connection.dialect.name == "sqlite"
            # The gate's reads and queued writes go straight to the driver's connection
            # (the same transaction), past SQLAlchemy's per-statement work.
            driver = connection.connection.driver_connection
            if self._sqlite:
                self._raw = driver
            elif connection.dialect.driver == "psycopg":
                self._pg = driver
        self._through_sqlalchemy = through_sqlalchemy
        self._lock = lock if self._pg is not None else None
        self._reopen = reopen
        self._flags: dict[str, Any] = {}
        # Answers are remembered for the transaction until an execution is admitted:
        # a notification's alerts mostly ask the same questions (same playbook, same
        # hour), and only an admission changes the answers.
        self._answers: dict[tuple[Any, ...], Any] = {}
        # The pipeline's verdicts for identical requests, valid as long as the answers.
        self.verdicts: dict[tuple[Any, ...], Any] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._ids: dict[str, list[int]] = {}
        self._next_id: dict[str, int] = {}

    @property
    def connection(self) -> Connection:
        """The transaction's connection, with every queued row written first."""
        self.flush()
        self._take_lock()
        return self._sa()

    def driver(self) -> Sql:
        """The transaction's own driver connection, with every queued row written first."""
        self.flush()
        self._take_lock()
        return Sql(self._raw if self._raw is not None else self._pg)

    def _take_lock(
        self, rows: int = 0, reads: libpq.Statement | None = None
    ) -> list[list[tuple[Any, ...]]]:
        """PostgreSQL's gate: BEGIN and the advisory lock, with `rows` ids of each queued
        table, then `reads`, in one round trip; the rows of the ids and of the reads. A
        held connection found dead there is replaced once. Nothing to do (and no rows)
        once the lock is taken, or elsewhere."""
        if self._lock is None:
            return []
        import psycopg

        lock = str(self._lock)
        statements: list[libpq.Statement] = [
            (_PG_BEGIN, None),
            (_PG_LOCK_AND_IDS, (lock, str(rows))) if rows else (_PG_GATE_LOCK, (lock,)),
        ]
        if reads is not None:
            statements.append(reads)
        try:
            try:
                fetched = libpq.run(self._pg, statements)
            except psycopg.errors.InvalidSqlStatementName:
                # Its prepared statements were dropped (DISCARD ALL): only BEGIN ran,
                # and `run` prepares them again.
                self._pg.rollback()
                fetched = libpq.run(self._pg, statements)
            except psycopg.OperationalError:
                if self._reopen is None or not self._pg.broken:
                    raise
                self._pg = self._reopen()
                fetched = libpq.run(self._pg, statements)
        except psycopg.Error as error:
            raise _postgresql_error(error, "taking the gate's lock") from error
        self._lock = None
        return [fetched[1] if rows else [], *fetched[2:]]

    def commit(self) -> None:
        """PostgreSQL's gate: what is queued and the COMMIT in one round trip on the
        driver (a transaction that only read is committed too: its advisory lock is
        released either way); SQLAlchemy's own commit then has nothing left to do."""
        assert self._pg is not None, "only PostgreSQL's gate commits through its view"
        if self._lock is None:  # taken, so something was done
            import psycopg

            pending, self._pending = self._pending, {}
            tables = [(name, pending[name]) for name in _QUEUED if name in pending]
            insert = _postgresql_insert_statement(tables)
            doing = f"writing {', '.join(name for name, _ in tables)}" if tables else "committing"
            try:
                libpq.run(
                    self._pg, [insert, (_PG_COMMIT, None)] if insert else [(_PG_COMMIT, None)]
                )
            except psycopg.Error as error:
                raise _postgresql_error(error, doing) from error

    def rollback(self) -> bool:
        """Roll back on the driver and in SQLAlchemy; False if the connection is broken."""
        self._pending = {}
        try:
            if self._pg is not None and not self._pg.closed:
                self._pg.rollback()
            if self._connection is not None:
                self._connection.rollback()
        except Exception:
            return False
        return not (self._pg is not None and (self._pg.closed or self._pg.broken))

    def _sa(self) -> Connection:
        """The SQLAlchemy connection, without writing queued rows first."""
        if self._connection is None:
            if self._through_sqlalchemy is None:
                raise RuntimeError("this gate view has no SQLAlchemy connection")
            self._connection = self._through_sqlalchemy()
        return self._connection

    def select(self, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
        """Rows of a plain SQL query with `:name` parameters, on the view's connection."""
        if self._raw is not None:
            try:
                return list(self._raw.execute(sql, parameters).fetchall())
            except sqlite3.Error as error:
                raise _driver_error(error, "reading") from error
        if self._pg is not None:
            return self._pg_rows(_pyformat(sql), parameters)
        return [tuple(row) for row in self.connection.execute(sa.text(sql), parameters)]

    def queue(self, table: str, values: Mapping[str, Any]) -> int:
        """Queue one row for `table` (requests or decisions) and return its id."""
        if table not in _QUEUED:
            raise ValueError(f"rows of {table} are not queued")
        row_id = self._allocate(table)
        self._pending.setdefault(table, []).append({"id": row_id, **values})
        return row_id

    def _allocate(self, name: str) -> int:
        if self._sqlite:
            # BEGIN IMMEDIATE holds the only write lock: nobody else takes ids meanwhile.
            if not self._next_id:
                # Both queued tables at once: one statement, one trip through the driver.
                try:
                    latest = self._raw.execute(_SQLITE_LATEST_IDS).fetchone()
                except sqlite3.Error as error:
                    raise _driver_error(error, "numbering new rows") from error
                self._next_id = {
                    table: int(last) + 1 for table, last in zip(_QUEUED, latest, strict=True)
                }
            row_id = self._next_id[name]
            self._next_id[name] = row_id + 1
            return row_id
        # PostgreSQL: ids come from the table's own sequence, all at once when the
        # transaction said how many rows it would queue (`expect`), else one by one. A
        # gap left by an unused one is as harmless as a rolled-back insert's.
        spare = self._ids.setdefault(name, [])
        if not spare:
            if self._pg is not None:
                spare.append(int(self._pg_rows(_PG_NEXT_ID, {"table": name})[0][0]))
            else:
                row = self._sa().execute(_queries()["next_id"], {"table": name})
                spare.append(int(row.scalar_one()))
        return spare.pop()

    def expect(
        self, rows: int, *, flags: Sequence[str] = (), idempotency_keys: Sequence[str] = ()
    ) -> None:
        """This transaction will queue about `rows` rows per table, read these `flags`
        and ask when each of these idempotency keys was last admitted. On PostgreSQL the
        ids of both tables are taken from their sequences now, and the flags and keys
        read in one statement after them: BEGIN, the gate's lock, the ids and the reads
        make one round trip. Elsewhere the reads happen when asked."""
        if self._sqlite:
            return
        reads: libpq.Statement | None = None
        if self._pg is not None and (flags or idempotency_keys):
            keys = sorted(set(idempotency_keys))
            reads = (
                _PG_FLAGS_AND_LAST_ADMITTED,
                (_json_without_nul(_dumps(list(flags))), _json_without_nul(_dumps(keys))),
            )
        fetched: list[tuple[Any, ...]] = []
        read: list[tuple[Any, ...]] = []
        if self._lock is not None and (rows >= 1 or reads is not None):
            fetched, *after = self._take_lock(rows if rows >= 1 else 0, reads)
            read = after[0] if after else []
        else:
            if rows >= 1:
                if self._pg is not None:
                    fetched = self._pg_rows(_PG_NEXT_QUEUED_IDS, {"count": rows})
                else:
                    fetched = list(
                        self._sa().execute(_queries()["next_queued_ids"], {"count": rows})
                    )
            if reads is not None:
                import psycopg

                try:
                    [read] = libpq.run(self._pg, [reads])
                except psycopg.Error as error:
                    raise _postgresql_error(error, "reading for the gate") from error
        for position, name in enumerate(_QUEUED):
            # Popped from the end: the first row queued gets the lowest id.
            self._ids.setdefault(name, []).extend(int(row[position]) for row in reversed(fetched))
        if reads is not None:
            [(found_flags, found_keys)] = read
            flags_found = json.loads(found_flags) if found_flags else {}
            keys_found = json.loads(found_keys) if found_keys else {}
            for name in flags:
                self._flags[name] = flags_found.get(name)
            for key in keys:  # what "last_key" answers, absent keys included
                stored = key.replace("\x00", "\ufffd")  # as PostgreSQL holds it (_without_nul)
                self._answers[("last_key", ("key", key))] = keys_found.get(stored)

    def flush(self) -> None:
        """Write every queued row: requests first, then the decisions that refer to them."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        if self._pg is not None:
            import psycopg

            self._take_lock()
            tables = [(name, pending[name]) for name in _QUEUED if name in pending]
            insert = _postgresql_insert_statement(tables)
            if insert is not None:
                try:
                    libpq.run(self._pg, [insert])
                except psycopg.Error as error:
                    names = ", ".join(name for name, _ in tables)
                    raise _postgresql_error(error, f"writing {names}") from error
            return
        for name in _QUEUED:
            rows = pending.get(name)
            if not rows:
                continue
            if self._raw is not None:
                _insert_sqlite(self._raw, name, rows)
            else:
                table = t.metadata.tables[name]
                for group in _by_columns(rows):
                    self._sa().execute(table.insert(), group)

    def admitted(self) -> None:
        """An execution was inserted in this transaction: forget remembered answers."""
        self._answers.clear()
        self.verdicts.clear()

    def _pg_rows(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        import psycopg

        self._take_lock()
        try:
            return list(self._pg.execute(sql, parameters).fetchall())
        except psycopg.Error as error:
            raise _postgresql_error(error, "reading for the gate") from error

    def _rows(self, name: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._pg is not None:
            sql, fixed = _postgresql_queries()[name]
            return self._pg_rows(sql, {**fixed, **parameters})
        if self._raw is None:
            return [tuple(row) for row in self._sa().execute(_queries()[name], parameters)]
        sql, order, fixed = _SQLITE_QUERIES[name]
        values = [parameters[key] if key in parameters else fixed[key] for key in order]
        try:
            return list(self._raw.execute(sql, values).fetchall())
        except sqlite3.Error as error:
            raise _driver_error(error, "reading for the gate") from error

    def _scalar(self, name: str, **parameters: Any) -> Any:
        key = (name, *sorted(parameters.items()))
        if key not in self._answers:
            rows = self._rows(name, parameters)
            self._answers[key] = rows[0][0] if rows else None
        return self._answers[key]

    def count_admitted(
        self, *, since: float, playbook: str | None = None, alertname: str | None = None
    ) -> int:
        if playbook is not None:
            return int(self._scalar("count_playbook", since=since, playbook=playbook) or 0)
        if alertname is not None:
            return int(self._scalar("count_alert", since=since, alertname=alertname) or 0)
        return int(self._scalar("count", since=since) or 0)

    def count_rule(self, *, rule: str, key: str, since: float) -> int:
        return int(self._scalar("count_rule", rule=rule, key=key, since=since) or 0)

    def last_admitted(self, *, playbook: str) -> float | None:
        value = self._scalar("last_playbook", playbook=playbook)
        return float(value) if value is not None else None

    def last_admitted_with_key(self, *, idempotency_key: str) -> float | None:
        value = self._scalar("last_key", key=idempotency_key)
        return float(value) if value is not None else None

    def recent_outcomes(self, *, playbook: str, limit: int) -> list[Outcome]:
        """Newest first: the finished attempts that count for the circuit breaker."""
        key = ("outcomes", playbook, limit)
        if key not in self._answers:
            rows = self._rows("outcomes", {"playbook": playbook, "limit": limit})
            self._answers[key] = [Outcome(*row) for row in rows]
        return list(self._answers[key])

    def count_unfinished(self, *, playbook: str) -> int:
        return int(self._scalar("unfinished", playbook=playbook) or 0)

    def flag(self, name: str) -> Any:
        """A named flag; read once per transaction (the pause flag is checked per alert)."""
        if name not in self._flags:
            rows = self._rows("flag", {"name": name})
            value = rows[0][0] if rows else None
            if self._raw is not None and isinstance(value, str):
                value = json.loads(value)  # the driver hands the JSON column back as text
            self._flags[name] = value
        return self._flags[name]


class Sql:
    """Plain SQL with `:name` parameters on the driver's own connection (sqlite3's or
    psycopg's), inside a transaction the caller opened: the runner's writes and reads
    and an admission's rows, without SQLAlchemy. Rows are written and read as SQLAlchemy
    would (COLUMNS in sqlite_ddl.py: JSON as text and booleans as integers on SQLite,
    column defaults for the columns a row leaves out)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._sqlite = isinstance(raw, sqlite3.Connection)

    @property
    def connection(self) -> Any:
        """The driver's connection (sqlite3's or psycopg's)."""
        return self._raw

    def _run(self, sql: str, parameters: Mapping[str, Any]) -> Any:
        if self._sqlite:
            return self._raw.execute(sql, parameters)
        return self._raw.execute(_pyformat(sql), parameters)

    def rows(self, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
        return list(self._run(sql, parameters).fetchall())

    def mappings(self, sql: str, *tables: str, **parameters: Any) -> list[dict[str, Any]]:
        """Rows as dicts; their JSON and boolean columns decoded as those of `tables`."""
        cursor = self._run(sql, parameters)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        if self._sqlite:
            json_columns = {c for table in tables for c in _COLUMNS[table][1]}
            booleans = {c for table in tables for c in _COLUMNS[table][2]}
            for row in rows:
                for name in json_columns.intersection(row):
                    if row[name] is not None:
                        row[name] = json.loads(row[name])
                for name in booleans.intersection(row):
                    if row[name] is not None:
                        row[name] = bool(row[name])
        return rows

    def execute(self, sql: str, **parameters: Any) -> int:
        """Run a statement; the number of rows it changed."""
        return int(self._run(sql, parameters).rowcount)

    def insert(self, table: str, values: Mapping[str, Any]) -> int | None:
        """Insert one row; its id (None for a table without one)."""
        sql, row = self._insert(table, values)
        if self._sqlite:
            cursor = self._raw.execute(sql, row)
            return int(cursor.lastrowid) if "id" in _COLUMNS[table][0] else None
        if "id" not in _COLUMNS[table][0]:
            self._raw.execute(_pyformat(sql), row)
            return None
        return int(self._raw.execute(_pyformat(sql + " RETURNING id"), row).fetchone()[0])

    def insert_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        for group in _by_columns([dict(row) for row in rows]):
            statements = [self._insert(table, row) for row in group]
            sql, prepared = statements[0][0], [row for _sql, row in statements]
            if self._sqlite:
                self._raw.executemany(sql, prepared)
            else:
                self._raw.cursor().executemany(_pyformat(sql), prepared)

    def update(self, table: str, values: Mapping[str, Any], where: str, **parameters: Any) -> int:
        """UPDATE `table` SET `values` WHERE `where` (its own `:name` parameters)."""
        _check_columns(table, values)
        json_columns = _COLUMNS[table][1]
        assignments = ", ".join(f'"{name}" = :set_{name}' for name in values)
        bound = {
            f"set_{name}": _dumps(value) if name in json_columns else value
            for name, value in values.items()
        }
        sql = f"UPDATE {table} SET {assignments} WHERE {where}"  # noqa: S608
        return self.execute(sql, **bound, **parameters)

    @staticmethod
    def _insert(table: str, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        _check_columns(table, values)
        _columns, json_columns, _booleans, defaults = _COLUMNS[table]
        row = {name: value for name, value in defaults if name not in values}
        row.update(
            (name, _dumps(value) if name in json_columns else value)
            for name, value in values.items()
        )
        names = ", ".join(f'"{name}"' for name in row)
        marks = ", ".join(f":{name}" for name in row)
        return f"INSERT INTO {table} ({names}) VALUES ({marks})", row  # noqa: S608


def _pending_approval(
    db: Sql, decision_id: int, request_id: int, now: float, expires_at: float, **more: Any
) -> int:
    approval_id = db.insert(
        "approvals",
        {
            "decision_id": decision_id,
            "request_id": request_id,
            "created_at": now,
            "expires_at": expires_at,
            "status": "pending",
            **more,
        },
    )
    assert approval_id is not None
    return approval_id


def _next_attempt(db: Sql, execution_id: int, **values: Any) -> int:
    """Insert attempt n+1 of an execution's decision, with `values`; its id."""
    rows = db.mappings("SELECT * FROM executions WHERE id = :id", "executions", id=execution_id)
    if not rows:
        raise StoreError(f"no execution {execution_id}")
    copied = {key: rows[0][key] for key in _ATTEMPT_COPIES}
    new_id = db.insert("executions", {**copied, "attempt": rows[0]["attempt"] + 1, **values})
    assert new_id is not None
    return new_id


def _check_columns(table: str, values: Mapping[str, Any]) -> None:
    unknown = set(values).difference(_COLUMNS[table][0])
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(sorted(unknown))}")


def _is_psycopg(connection: object) -> bool:
    return type(connection).__module__.startswith("psycopg")


@functools.lru_cache(maxsize=64)
def _pyformat(sql: str) -> str:
    """Plain SQL with `:name` parameters (SQLAlchemy's and sqlite3's style) in psycopg's
    `%(name)s` style; a literal % is doubled, a `::type` cast left alone."""
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


class Store:
    def __init__(self, url: str, *, busy_timeout: float = 5.0) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self.is_sqlite = url.startswith("sqlite")
        # A SQLite file is also read and written on the driver's own connections, without
        # SQLAlchemy (an in-memory database exists only on SQLAlchemy's connection).
        self._path = _sqlite_file(url) if self.is_sqlite else None
        # PostgreSQL is read on psycopg's own connections too (start-up, /health, the
        # worker's queue): libpq takes the URL as it is.
        self._conninfo = _libpq_url(url) if not self.is_sqlite else None
        # The largest id an INTEGER id column holds: SQLite's are 64-bit, PostgreSQL's
        # 32-bit. A larger id asked for names no row (asking would be a store error).
        self.largest_id = 2**63 - 1 if self.is_sqlite else 2**31 - 1
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        # Threads of one process queue here for the write lock instead of in SQLite's
        # busy handler, which sleeps in steps of up to 100 ms.
        self._write_lock = threading.Lock()
        self._gate: sqlite3.Connection | None = None  # used under the write lock only
        self._gate_engine: Engine | None = None
        # PostgreSQL's psycopg connection for the gate and `sql_writing` (under the
        # write lock), and the driver connection the gate's SQLAlchemy engine joins.
        self._pg_writer: Any = None
        self._gate_engine_raw: Any = None
        self._readers: list[Any] = []  # sqlite3's or psycopg's
        self._readers_lock = threading.Lock()

    @property
    def reads_ahead(self) -> bool:
        """Whether a gate transaction's `expect` reads flags and idempotency keys ahead
        (PostgreSQL, where each statement costs a round trip and psycopg's overhead)."""
        return not self.is_sqlite

    @property
    def engine(self) -> Engine:
        """SQLAlchemy's engine, created (and SQLAlchemy imported) on first use."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = _create_engine(self.url, busy_timeout=self.busy_timeout)
        return self._engine

    def prepare(self) -> None:
        """Import SQLAlchemy and create the engine now (no connection is opened): `serve`
        calls this in the background once it is up, so the first execution, scrape or
        approval does not wait about 100 ms for the import."""
        _load_sqlalchemy()
        self.engine  # noqa: B018 (the property creates it)

    # --- opening and migrating ----------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, busy_timeout: float = 5.0, migrate: bool = True) -> Store:
        store = cls(url, busy_timeout=busy_timeout)
        if migrate:
            store.migrate()
        return store

    def schema_version(self) -> str | None:
        if self._path is not None:
            with self._raw_read("reading the schema version") as raw:
                if not raw.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
                ).fetchone():
                    return None
                row = raw.execute("SELECT version_num FROM alembic_version").fetchone()
                return str(row[0]) if row else None
        if self._conninfo is not None:
            with self._raw_read("reading the schema version") as raw:
                if not raw.execute(_PG_HAS_VERSION_TABLE).fetchone()[0]:
                    return None
                row = raw.execute("SELECT version_num FROM alembic_version").fetchone()
                return str(row[0]) if row else None
        try:
            with self.engine.connect() as connection:
                if not sa.inspect(connection).has_table("alembic_version"):
                    return None
                return connection.execute(
                    sa.text("SELECT version_num FROM alembic_version")
                ).scalar()
        except Exception as error:
            if _from_sqlalchemy(error):
                raise _store_error(error, "reading the schema version") from error
            raise

    def migrate(self) -> None:
        """Bring the schema to the newest version; cheap when it already is."""
        version = self.schema_version()
        if version == SCHEMA_HEAD:
            return
        if version is None and self._path is not None and self._create_sqlite_schema():
            return
        if version is None and self._conninfo is not None and self._create_postgresql_schema():
            return
        from remediate.store.schema import upgrade

        try:
            # An empty database gets the tables at once (no alembic); an older schema
            # goes through the migrations.
            with self._write() as connection:
                upgrade(connection, head=SCHEMA_HEAD)
        except Exception as error:
            if _from_sqlalchemy(error):
                raise _store_error(error, "migrating the schema") from error
            raise

    def _create_sqlite_schema(self) -> bool:
        """An empty SQLite file gets the schema from its pre-rendered DDL, on the driver:
        False when the database holds any table or view (alembic's business then)."""
        with self._write_lock:
            raw = self._gate_connection()
            with _raw_transaction(raw, "creating the schema"):
                return create_sqlite_schema(raw, head=SCHEMA_HEAD)

    def _create_postgresql_schema(self) -> bool:
        """An empty PostgreSQL database gets the schema from its pre-rendered DDL, on the
        driver and under the gate's lock; False when it holds any table or view."""
        import psycopg

        with self._write_lock:
            try:
                with self._pg_connect() as raw:
                    raw.execute(_PG_LOCK, {"lock": _GATE_LOCK})
                    created = create_postgresql_schema(raw, head=SCHEMA_HEAD)
                    raw.commit()
                    return created
            except psycopg.Error as error:
                raise _postgresql_error(error, "creating the schema") from error

    def close(self) -> None:
        """Close every connection; the store opens new ones if it is used again."""
        with self._write_lock:
            self._drop_gate_connection()
            if self._gate_engine is not None:
                self._gate_engine.dispose()
                self._gate_engine = None
            if self._gate is not None:
                self._gate.close()
                self._gate = None
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for raw in readers:
            raw.close()
        if self._engine is not None:
            self._engine.dispose()

    # --- the driver's own connections (SQLite files) -------------------------------------

    def _connect(self) -> sqlite3.Connection:
        assert self._path is not None
        Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(
            self._path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        _pragmas(raw, self.busy_timeout)
        return raw

    def _gate_connection(self) -> sqlite3.Connection:
        """The connection gate transactions write on (the caller holds the write lock)."""
        if self._gate is None:
            try:
                self._gate = self._connect()
            except sqlite3.Error as error:
                raise _driver_error(error, "opening the store") from error
        return self._gate

    def _pg_connect(self) -> Any:
        import psycopg

        assert self._conninfo is not None
        raw = psycopg.connect(self._conninfo, connect_timeout=max(1, int(self.busy_timeout)))
        # The gate reads after taking its lock and relies on each statement seeing what
        # was committed before it: explicit, whatever the server's or role's default.
        raw.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        _without_nul(raw)
        from psycopg.types.json import set_json_dumps

        set_json_dumps(_dumps, raw)  # as SQLAlchemy's engine writes JSON
        return raw

    @contextmanager
    def _raw_read(self, doing: str = "reading") -> Iterator[Any]:
        """A read transaction on one of the driver's connections (kept for reuse)."""
        if self._conninfo is not None:
            with self._pg_read(doing) as raw:
                yield raw
            return
        with self._readers_lock:
            raw = self._readers.pop() if self._readers else None
        try:
            if raw is None:
                raw = self._connect()
            raw.execute("BEGIN")
        except sqlite3.Error as error:
            if raw is not None:
                raw.close()
            raise _driver_error(error, doing) from error
        try:
            yield raw
        except sqlite3.Error as error:
            raise _driver_error(error, doing) from error
        finally:
            try:
                raw.execute("ROLLBACK")
            except sqlite3.Error:
                raw.close()  # a broken connection is not kept
            else:
                with self._readers_lock:
                    self._readers.append(raw)

    @contextmanager
    def _pg_read(self, doing: str) -> Iterator[Any]:
        """PostgreSQL: a read on one of psycopg's connections (its transaction begins
        with the first statement and is rolled back after; a broken one is not kept)."""
        import psycopg

        with self._readers_lock:
            raw = self._readers.pop() if self._readers else None
        if raw is not None and not _idle_and_alive(raw):
            raw.close()  # the server went away meanwhile (a restart): open another
            raw = None
        try:
            if raw is None:
                raw = self._pg_connect()
            yield raw
        except psycopg.Error as error:
            raise _postgresql_error(error, doing) from error
        finally:
            if raw is not None and _rolled_back(raw):
                with self._readers_lock:
                    self._readers.append(raw)

    def _through_sqlalchemy(self, raw: Any) -> Connection:
        """A SQLAlchemy connection on the gate's own driver connection (sqlite3's or
        psycopg's), inside the transaction that is open on it (its commit and rollback
        stay with the gate)."""
        if self._gate_engine is not None and self._gate_engine_raw is not raw:
            self._gate_engine.dispose()  # the driver connection was replaced
            self._gate_engine = None
        if self._gate_engine is None:
            from sqlalchemy.pool import StaticPool

            held = _TransactionHeld(raw)
            options: dict[str, Any] = {}
            if self.is_sqlite:
                url = "sqlite://"
            else:
                t.with_postgresql_predicates()
                # No hstore lookup: psycopg's type lookup wants its own connection class.
                url, options = "postgresql+psycopg://", {"use_native_hstore": False}
            self._gate_engine = sa.create_engine(
                url, creator=lambda: held, poolclass=StaticPool, json_serializer=_dumps, **options
            )
            self._gate_engine_raw = raw
        return self._gate_engine.connect()

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, serialized against every other writer and gate."""
        try:
            with self._write_lock, self.engine.connect() as connection:
                if self.is_sqlite:
                    raw = connection.connection.driver_connection
                    assert raw is not None
                    # BEGIN through SQLAlchemy, so it knows a transaction is open (alembic
                    # then leaves the commit to us); COMMIT straight on the driver.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    try:
                        yield connection
                    except BaseException:
                        if raw.in_transaction:
                            raw.execute("ROLLBACK")
                        raise
                    raw.execute("COMMIT")
                else:
                    with connection.begin():
                        connection.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _GATE_LOCK}
                        )
                        yield connection
        except sqlite3.Error as error:
            raise _driver_error(error, "writing") from error
        except Exception as error:
            if _from_sqlalchemy(error):
                raise _store_error(error, "writing") from error
            raise

    @contextmanager
    def sql_writing(self, doing: str = "writing") -> Iterator[Sql]:
        """A write transaction in plain SQL on the driver's connection, serialized against
        every other writer and gate like `_write`, without SQLAlchemy."""
        if self._path is not None:
            with self._write_lock:
                raw = self._gate_connection()
                with _raw_transaction(raw, doing):
                    yield Sql(raw)
            return
        if self._conninfo is not None:
            with self._pg_write(doing) as raw:
                yield Sql(raw)
            return
        with self._write() as connection:  # an in-memory SQLite: SQLAlchemy's connection
            yield Sql(connection.connection.driver_connection)

    @contextmanager
    def _pg_write(self, doing: str) -> Iterator[Any]:
        """PostgreSQL: a transaction on the psycopg connection the store keeps for writes,
        under the gate's advisory lock (a connection found closed by the server, as after
        a restart, is replaced first; one that breaks meanwhile is dropped)."""
        import psycopg

        with self._write_lock:
            raw = None
            try:
                raw = self._held_gate_connection()
                try:
                    raw.execute(_PG_LOCK, {"lock": _GATE_LOCK})
                except psycopg.OperationalError:
                    if not raw.broken:
                        raise
                    # The held connection died unseen (nothing was done on it yet):
                    # once more on a new one.
                    raw = self._reopen_gate()
                    raw.execute(_PG_LOCK, {"lock": _GATE_LOCK})
                yield raw
                raw.commit()
            except BaseException as error:
                if raw is not None and not _rolled_back(raw):
                    self._drop_gate_connection()
                if isinstance(error, psycopg.Error):
                    raise _postgresql_error(error, doing) from error
                raise

    @contextmanager
    def sql_reading(self, doing: str = "reading") -> Iterator[Sql]:
        """A read transaction in plain SQL on the driver's connection."""
        if self._path is not None or self._conninfo is not None:
            with self._raw_read(doing) as raw:
                yield Sql(raw)
            return
        with self._read() as connection:
            yield Sql(connection.connection.driver_connection)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                if self.is_sqlite:
                    connection.exec_driver_sql("BEGIN")
                    try:
                        yield connection
                    finally:
                        connection.exec_driver_sql("ROLLBACK")
                else:
                    with connection.begin():
                        yield connection
        except sqlite3.Error as error:  # plain SQL on the driver's connection (`Sql`)
            raise _driver_error(error, "reading") from error
        except Exception as error:
            if _from_sqlalchemy(error):
                raise _store_error(error, "reading") from error
            raise

    @contextmanager
    def gate_transaction(self) -> Iterator[GateView]:
        """Serialized reads and writes for one gate decision: check, then record, atomically.

        On a SQLite file the transaction runs on the driver's own connection: SQLAlchemy
        joins it only when something reaches for `view.connection` (an admission, an
        approval), and is imported then if it was not yet.
        """
        if not self.is_sqlite:
            with self._postgresql_gate() as view:
                yield view
            return
        if self._path is None:
            with self._write() as connection:
                view = GateView(connection)
                yield view
                view.flush()
            return
        with self._write_lock:
            raw = self._gate_connection()
            joined: list[Connection] = []

            def through_sqlalchemy() -> Connection:
                joined.append(self._through_sqlalchemy(raw))
                return joined[-1]

            try:
                with _raw_transaction(raw, "writing"):
                    view = GateView(raw, through_sqlalchemy=through_sqlalchemy)
                    yield view
                    view.flush()
            finally:
                for connection in joined:  # after COMMIT or ROLLBACK: their own is a no-op
                    connection.close()

    @contextmanager
    def _postgresql_gate(self) -> Iterator[GateView]:
        """A gate transaction on the psycopg connection the store holds for writes (no
        pool checkout, no ping per transaction): the advisory lock and the ids in its
        first statement, the rows and the COMMIT in its last round trip. SQLAlchemy joins
        it only when something reaches for `view.connection` (an approval, a chain)."""
        import psycopg

        with self._write_lock:
            joined: list[Connection] = []
            try:
                raw = self._held_gate_connection()

                def through_sqlalchemy() -> Connection:
                    joined.append(self._through_sqlalchemy(view._pg))
                    return joined[-1]

                view = GateView(
                    raw,
                    lock=_GATE_LOCK,
                    reopen=self._reopen_gate,
                    through_sqlalchemy=through_sqlalchemy,
                )
                try:
                    yield view
                    view.commit()
                except BaseException:
                    if not view.rollback():
                        self._drop_gate_connection()
                    raise
            except psycopg.Error as error:
                raise _postgresql_error(error, "writing") from error
            except Exception as error:
                if _from_sqlalchemy(error):
                    raise _store_error(error, "writing") from error
                raise
            finally:
                for connection in joined:  # after COMMIT or ROLLBACK: their own is a no-op
                    connection.close()

    def _held_gate_connection(self) -> Any:
        """PostgreSQL: the psycopg connection gate transactions and the runner's writes
        run on, kept for the process's life and replaced when the server closed it (as
        on a restart); the caller holds the write lock."""
        raw = self._pg_writer
        if raw is not None and not _idle_and_alive(raw):
            self._drop_gate_connection()
            raw = None
        if raw is None:
            raw = self._pg_writer = self._pg_connect()
        return raw

    def _reopen_gate(self) -> Any:
        self._drop_gate_connection()
        return self._held_gate_connection()

    def _drop_gate_connection(self) -> None:
        raw, self._pg_writer = self._pg_writer, None
        if raw is not None:
            with suppress(Exception):  # a broken connection fails to close; it is gone
                raw.close()

    @contextmanager
    def reading_view(self) -> Iterator[GateView]:
        """A read transaction as a GateView: the gate's questions and `select`."""
        if self._path is not None or self._conninfo is not None:
            with self._raw_read() as raw:
                yield GateView(raw)
            return
        with self._read() as connection:
            yield GateView(connection)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._read() as connection:
            yield connection

    # --- writes inside a gate transaction ----------------------------------------------

    @staticmethod
    def insert_request(view: GateView, values: Mapping[str, Any]) -> int:
        """Queue a request row (written with the transaction's other rows) and return its id."""
        return view.queue("requests", values)

    @staticmethod
    def insert_decision(view: GateView, values: Mapping[str, Any]) -> int:
        """Queue a decision row; its request must have been queued or written before."""
        return view.queue("decisions", values)

    @staticmethod
    def insert_execution(
        view: GateView, values: Mapping[str, Any], rule_keys: Mapping[str, str] | None = None
    ) -> int:
        driver = view.driver()
        execution_id = driver.insert("executions", values)
        assert execution_id is not None
        view.admitted()
        if rule_keys:
            driver.insert_many(
                "execution_keys",
                [
                    {
                        "execution_id": execution_id,
                        "rule": rule,
                        "key": key,
                        "admitted_at": values["admitted_at"],
                    }
                    for rule, key in rule_keys.items()
                ],
            )
        return execution_id

    @staticmethod
    def insert_approval(
        view: GateView, *, decision_id: int, request_id: int, now: float, expires_at: float
    ) -> int:
        return _pending_approval(view.driver(), decision_id, request_id, now, expires_at)

    # --- the runner's writes ------------------------------------------------------------

    def claim(
        self, execution_id: int, *, lease_key: str, owner: str, now: float, expires_at: float
    ) -> int | None:
        """Move a queued execution to running and take its lease, atomically.

        Returns None on success, or the id of the execution holding the lease.
        Raises StoreError if the execution is no longer queued (another worker got it).
        """
        with self.sql_writing() as db:
            held = db.rows(
                'SELECT execution_id, expires_at FROM leases WHERE "key" = :key', key=lease_key
            )
            if held:
                holder, held_until = held[0]
                if held_until > now and holder != execution_id:
                    return int(holder)
                db.execute('DELETE FROM leases WHERE "key" = :key', key=lease_key)
            claimed = db.update(
                "executions",
                {
                    "status": "running",
                    "started_at": now,
                    "lease_owner": owner,
                    "lease_expires_at": expires_at,
                },
                "id = :id AND status = 'queued'",
                id=execution_id,
            )
            if claimed != 1:
                raise StoreError(f"execution {execution_id} is not queued any more")
            db.insert(
                "leases",
                {
                    "key": lease_key,
                    "execution_id": execution_id,
                    "owner": owner,
                    "acquired_at": now,
                    "expires_at": expires_at,
                },
            )
        return None

    def finish(
        self,
        execution_id: int,
        *,
        status: str,
        finished_at: float,
        values: Mapping[str, Any],
        impacts: Sequence[Mapping[str, Any]] = (),
        release_lease: bool = True,
    ) -> bool:
        """Record the outcome and drop the lease in one transaction.

        Returns False when the execution was no longer running (it was declared
        interrupted meanwhile): the outcome is then kept in its details only.
        """
        with self.sql_writing() as db:
            found = db.rows(
                "SELECT started_at, playbook FROM executions WHERE id = :id", id=execution_id
            )
            if not found:
                raise StoreError(f"no execution {execution_id}")
            started_at, playbook = found[0]
            duration = finished_at - (started_at or finished_at)
            updated = db.update(
                "executions",
                {
                    "status": status,
                    "finished_at": finished_at,
                    "duration_seconds": duration,
                    "lease_expires_at": None,
                    **values,
                },
                "id = :id AND status IN ('running', 'queued')",
                id=execution_id,
            )
            if release_lease:
                db.execute("DELETE FROM leases WHERE execution_id = :id", id=execution_id)
            if updated != 1:
                return False
            if impacts:
                db.insert_many(
                    "impacts",
                    [
                        {
                            "execution_id": execution_id,
                            "playbook": playbook,
                            "at": finished_at,
                            **impact,
                        }
                        for impact in impacts
                    ],
                )
            return True

    def add_attempt(self, execution_id: int, *, now: float, owner: str, expires_at: float) -> int:
        """A retry: a new execution row (attempt n+1) for the same decision, already running."""
        with self.sql_writing() as db:
            new_id = _next_attempt(
                db,
                execution_id,
                admitted_at=now,
                started_at=now,
                status="running",
                lease_owner=owner,
                lease_expires_at=expires_at,
            )
            db.execute(
                "UPDATE leases SET execution_id = :new, expires_at = :expires"
                " WHERE execution_id = :old",
                new=new_id,
                expires=expires_at,
                old=execution_id,
            )
            return new_id

    def sweep_interrupted(self, *, now: float) -> list[int]:
        """Mark running executions whose lease expired, or whose holder on this host died.

        Found on every start and before each claim, so a crash never leaves an
        execution silently "running".
        """
        # Nearly always nothing is running: asked first as a plain read (no write lock).
        # Whatever starts running later is claimed by a live process, and this is asked
        # again before each claim.
        with self.reading_view() as view:
            if not view.select("SELECT 1 FROM executions WHERE status = 'running' LIMIT 1"):
                return []
        host = socket.gethostname()
        with self.sql_writing() as db:
            rows = db.rows(
                "SELECT id, lease_owner, lease_expires_at FROM executions WHERE status = 'running'"
            )
            stale = [
                int(row_id)
                for row_id, lease_owner, lease_expires_at in rows
                if (lease_expires_at is not None and lease_expires_at <= now)
                or holder_is_dead(lease_owner, host)
            ]
            if stale:
                ids = {f"id_{n}": row_id for n, row_id in enumerate(stale)}
                listed = ", ".join(f":{name}" for name in ids)
                db.update(
                    "executions",
                    {
                        "status": "interrupted",
                        "finished_at": now,
                        "summary": "interrupted: its process stopped before recording an outcome",
                        "lease_expires_at": None,
                    },
                    f"id IN ({listed}) AND status = 'running'",
                    **ids,
                )
                db.execute(f"DELETE FROM leases WHERE execution_id IN ({listed})", **ids)  # noqa: S608
            return stale

    def requeue(self, execution_id: int, *, now: float) -> int:
        """A new queued attempt of an interrupted execution's decision (it counts against
        the gate like any attempt)."""
        with self.sql_writing() as db:
            return _next_attempt(db, execution_id, admitted_at=now, status="queued")

    def escalate_interrupted(
        self, execution_id: int, *, now: float, expires_at: float
    ) -> int | None:
        """A pending approval to run an interrupted execution's request again."""
        with self.sql_writing() as db:
            found = db.rows(
                "SELECT executions.decision_id, decisions.request_id FROM executions"
                " JOIN decisions ON decisions.id = executions.decision_id"
                " WHERE executions.id = :id",
                id=execution_id,
            )
            if not found:
                return None
            decision_id, request_id = found[0]
            return _pending_approval(
                db,
                decision_id,
                request_id,
                now,
                expires_at,
                note=f"execution {execution_id} was interrupted",
            )

    # --- flags ---------------------------------------------------------------------------

    def set_flag(self, name: str, value: Any, *, now: float) -> None:
        with self._write() as connection:
            connection.execute(t.flags.delete().where(t.flags.c.name == name))
            if value is not None:
                connection.execute(t.flags.insert().values(name=name, value=value, updated_at=now))

    def flag(self, name: str) -> Any:
        with self.reading_view() as view:
            return view.flag(name)

    # --- reads ---------------------------------------------------------------------------

    def execution(self, execution_id: int) -> dict[str, Any] | None:
        if not 1 <= execution_id <= self.largest_id:
            return None
        with self.sql_reading() as db:
            rows = db.mappings(
                "SELECT * FROM executions WHERE id = :id", "executions", id=execution_id
            )
        return rows[0] if rows else None

    def execution_with_request(self, execution_id: int) -> dict[str, Any]:
        """An execution with what the runner needs of its decision and request."""
        with self.sql_reading() as db:
            rows = db.mappings(
                "SELECT executions.*, decisions.reason, decisions.confidence,"
                " requests.parameters, requests.timeout_seconds, requests.chain_run_id"
                " FROM executions JOIN decisions ON decisions.id = executions.decision_id"
                " JOIN requests ON requests.id = decisions.request_id"
                " WHERE executions.id = :id",
                "executions",
                "requests",
                id=execution_id,
            )
        if not rows:
            raise StoreError(f"no execution {execution_id}")
        return rows[0]

    def decision(self, decision_id: int) -> dict[str, Any] | None:
        if not 1 <= decision_id <= self.largest_id:
            return None
        rows = self.history(decision_id=decision_id, limit=1)
        return rows[0] if rows else None

    def history(
        self,
        *,
        since: float | None = None,
        playbook: str | None = None,
        decision_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Decisions, newest first, each with its latest execution attempt (if any)."""
        d, r, e = t.decisions, t.requests, t.executions
        latest = (
            sa.select(sa.func.max(e.c.id).label("id"), e.c.decision_id)
            .group_by(e.c.decision_id)
            .subquery()
        )
        query = (
            sa.select(
                d.c.id,
                d.c.created_at,
                d.c.source,
                d.c.playbook,
                d.c.alertname,
                d.c.target,
                d.c.action,
                d.c.check_name,
                d.c.reason,
                d.c.confidence,
                d.c.forced,
                r.c.parameters,
                r.c.labels,
                r.c.fingerprint,
                r.c.dry_run,
                e.c.id.label("execution_id"),
                e.c.status,
                e.c.attempt,
                e.c.started_at,
                e.c.finished_at,
                e.c.duration_seconds,
                e.c.root_cause,
                e.c.summary,
                e.c.stdout,
                e.c.stderr,
                e.c.actions,
                e.c.details,
            )
            .select_from(
                d.join(r, r.c.id == d.c.request_id)
                .outerjoin(latest, latest.c.decision_id == d.c.id)
                .outerjoin(e, e.c.id == latest.c.id)
            )
            .order_by(d.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(d.c.created_at >= since)
        if playbook is not None:
            query = query.where(d.c.playbook == playbook)
        if decision_id is not None:
            query = query.where(d.c.id == decision_id)
        with self._read() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def impacts_of(self, execution_id: int) -> list[dict[str, Any]]:
        with self.sql_reading() as db:
            return db.mappings(
                "SELECT kind, subject, value FROM impacts WHERE execution_id = :id",
                "impacts",
                id=execution_id,
            )

    def queued(self) -> list[int]:
        with self.reading_view() as view:
            rows = view.select("SELECT id FROM executions WHERE status = 'queued' ORDER BY id")
        return [int(row[0]) for row in rows]

    def ping(self) -> None:
        with self.reading_view() as view:
            view.select("SELECT 1")


def holder_is_dead(owner: str | None, host: str) -> bool:
    """True only when the owner (`host:pid`) is a process on this host that is gone."""
    if not owner or ":" not in owner:
        return False
    owner_host, _, pid_text = owner.rpartition(":")
    if owner_host != host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still answers kill(pid, 0)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _sqlite_file(url: str) -> str | None:
    """The file of a plain `sqlite:///PATH` URL; None for memory or URL options."""
    path = url.split("///", 1)[1] if "///" in url else ""
    if not path or path == ":memory:" or "?" in path or path.startswith("file:"):
        return None
    return path


def _idle_and_alive(raw: Any) -> bool:
    """An idle psycopg connection that can still be used: nothing waits to be read on
    its socket (a server that closed it, as on a restart, leaves its notice or the end of
    the stream there). Costs no round trip."""
    if raw.closed or raw.broken:
        return False
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _rolled_back(raw: Any) -> bool:
    """Roll back a psycopg connection: True if it can be used again, else it is closed."""
    import psycopg

    with suppress(psycopg.Error):
        raw.rollback()
    if raw.closed or raw.broken:
        raw.close()
        return False
    return True


def _libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq takes it (without the driver's name)."""
    scheme, separator, rest = url.partition("://")
    return f"postgresql{separator}{rest}" if scheme.startswith("postgresql") else url


_PG_HAS_VERSION_TABLE = (
    "SELECT count(*) FROM pg_class JOIN pg_namespace ON pg_namespace.oid = relnamespace"
    " WHERE nspname = current_schema() AND relname = 'alembic_version' AND relkind = 'r'"
)
_PG_HAS_RELATIONS = (
    "SELECT count(*) FROM pg_class JOIN pg_namespace ON pg_namespace.oid = relnamespace"
    " WHERE nspname = current_schema() AND relkind IN ('r', 'p', 'v', 'm', 'f')"
)


def create_postgresql_schema(raw: Any, *, head: str) -> bool:
    """On a PostgreSQL database without tables or views, create the schema at `head`
    from its DDL rendered ahead of time (postgresql_ddl.py) in one round trip, inside
    the caller's transaction; False when the database holds any. (`create_all` took 34
    round trips; the server's own work, about 65 ms on a new database, remains.)"""
    from remediate.store.postgresql_ddl import STATEMENTS

    if raw.execute(_PG_HAS_RELATIONS).fetchone()[0]:
        return False
    if not head.isalnum():
        raise ValueError(f"not a revision id: {head!r}")
    version = f"INSERT INTO alembic_version (version_num) VALUES ('{head}')"  # noqa: S608
    # No parameters: psycopg sends it as one simple query, every statement at once.
    raw.execute(";\n".join([*STATEMENTS, version]))
    return True


def _pragmas(raw: sqlite3.Connection, busy_timeout: float) -> None:
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")


class _TransactionHeld:
    """The gate's driver connection as SQLAlchemy sees it: every call goes through,
    except `commit` and `rollback`, which the gate transaction alone issues. SQLAlchemy
    rolls back when it first connects and when a connection is returned; here that
    would end the gate's open transaction."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass  # the store closes the driver connection itself


@contextmanager
def _raw_transaction(raw: sqlite3.Connection, doing: str) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT on a driver connection (the caller holds the write
    lock); rolled back on any error, which comes out as a StoreError naming `doing`."""
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise _driver_error(error, doing) from error
    try:
        yield
        raw.execute("COMMIT")
    except BaseException as error:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise _driver_error(error, doing) from error
        if _from_sqlalchemy(error):
            raise _store_error(error, doing) from error
        raise


def create_sqlite_schema(raw: sqlite3.Connection, *, head: str) -> bool:
    """On a SQLite database without tables or views, create the schema at `head` from
    its DDL rendered ahead of time (sqlite_ddl.py), inside the caller's transaction;
    False when the database holds any."""
    found = raw.execute(
        "SELECT count(*) FROM sqlite_master"
        " WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'"
    ).fetchone()[0]
    if found:
        return False
    for statement in sqlite_ddl.STATEMENTS:
        raw.execute(statement)
    raw.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
    return True


def _create_engine(url: str, *, busy_timeout: float) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": busy_timeout, "isolation_level": None},
            json_serializer=_dumps,
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            _pragmas(dbapi_connection, busy_timeout)

        return engine
    t.with_postgresql_predicates()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        json_serializer=_dumps,
        # The gate relies on each statement after its lock seeing what was committed
        # before: explicit, whatever the server's or role's default isolation.
        isolation_level="READ COMMITTED",
        connect_args={"connect_timeout": max(1, int(busy_timeout))},
    )
    if engine.dialect.driver == "psycopg":
        sa.event.listen(
            engine, "connect", lambda dbapi_connection, _record: _without_nul(dbapi_connection)
        )
    return engine


def _without_nul(raw: Any) -> None:
    """PostgreSQL's text cannot hold NUL, which an alert's labels may carry (hostile or
    broken input must be recorded, not turn into a 503 that Alertmanager retries
    forever): on this psycopg connection every string goes out with NUL replaced by
    U+FFFD. JSON text carries it as the escape \\u0000, which `json` columns keep."""
    text, binary = _nul_free_dumpers()
    raw.adapters.register_dumper(str, binary)
    raw.adapters.register_dumper(str, text)  # the last one registered is the default


@functools.cache
def _nul_free_dumpers() -> tuple[type, type]:
    from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

    class NulFree(StrDumperUnknown):
        def dump(self, obj: str) -> bytes:
            return obj.replace("\x00", "\ufffd").encode(self._encoding)

    class NulFreeBinary(StrBinaryDumper):
        def dump(self, obj: str) -> bytes:
            return obj.replace("\x00", "\ufffd").encode(self._encoding)

    return NulFree, NulFreeBinary


# A JSON \u0000 escape (after an even number of backslashes: not an escaped backslash).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json_without_nul(text: str) -> str:
    """JSON text whose strings hold U+FFFD where they held NUL: PostgreSQL extracts text
    from JSON (`json_populate_recordset`) only without it."""
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


@functools.lru_cache(maxsize=32)
def _sqlite_insert(name: str, keys: tuple[str, ...]) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """For rows of table `name` with `keys`: the INSERT (named parameters), which keys hold
    JSON, and the values SQLAlchemy's column defaults would give the columns left out."""
    _columns, json_columns, _booleans, pairs = _COLUMNS[name]
    defaults = dict(pairs)
    json_keys = tuple(key for key in keys if key in json_columns)
    fill = {column: value for column, value in defaults.items() if column not in keys}
    names = (*keys, *fill)
    columns = ", ".join(names)
    marks = ", ".join(f":{key}" for key in names)
    return f"INSERT INTO {name} ({columns}) VALUES ({marks})", json_keys, fill  # noqa: S608


def _insert_sqlite(raw: sqlite3.Connection, name: str, rows: list[dict[str, Any]]) -> None:
    """Rows as SQLAlchemy would write them (JSON as text, column defaults for what is left
    out), one executemany per shape on the driver's connection: the same transaction."""
    for group in _by_columns(rows):
        sql, json_keys, fill = _sqlite_insert(name, tuple(group[0]))
        if json_keys or fill:
            group = [
                {**row, **fill, **{key: _dumps(row[key]) for key in json_keys}} for row in group
            ]
        try:
            raw.executemany(sql, group)
        except sqlite3.Error as error:
            raise _driver_error(error, f"writing {name}") from error


def _postgresql_insert_statement(
    tables: list[tuple[str, list[dict[str, Any]]]],
) -> libpq.Statement | None:
    """Rows as SQLAlchemy would write them, in one statement for `libpq.run` (None if
    there are none): an INSERT per table and shape, all but the last as data-modifying
    WITH clauses (foreign keys are checked at the statement's end). Each INSERT takes
    its rows as one JSON array (`json_populate_recordset`) encoded by pydantic-core: one
    text parameter, where `executemany` spent about 18 µs of the writer's CPU per row.
    (Slower, measured: a multi-row VALUES, which psycopg parses again on every call past
    50 parameters, and `unnest` arrays, which it dumps in Python.)"""
    inserts: list[str] = []
    arrays: list[str | None] = []
    for name, rows in tables:
        for group in _by_columns(rows):
            sql, fill = _postgresql_insert(name, tuple(group[0]))
            arrays.append(
                _json_without_nul(_dumps([{**row, **fill} for row in group] if fill else group))
            )
            inserts.append(sql.replace("$1", f"${len(arrays)}"))
    if not inserts:
        return None
    *before, last = inserts
    clauses = ", ".join(f"written_{n} AS ({sql})" for n, sql in enumerate(before))
    return (f"WITH {clauses} {last}" if before else last), arrays


@functools.lru_cache(maxsize=32)
def _postgresql_insert(name: str, keys: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """For rows of table `name` with `keys`: the INSERT reading them from a JSON array,
    and the values of the column defaults for the columns they leave out. A JSON column
    given None holds JSON null, as SQLAlchemy writes it (the array's null would be SQL
    NULL)."""
    _sql, _json_keys, fill = _sqlite_insert(name, keys)
    json_columns = _COLUMNS[name][1]
    # The pre-rendered defaults hold JSON columns as text: here they go in as JSON.
    fill = {key: json.loads(value) if key in json_columns else value for key, value in fill.items()}
    names = (*keys, *fill)
    selected = ", ".join(
        f"COALESCE({column}, 'null'::json)" if column in json_columns else column
        for column in names
    )
    sql = (
        f"INSERT INTO {name} ({', '.join(names)}) SELECT {selected}"  # noqa: S608
        f" FROM json_populate_recordset(NULL::{name}, $1::json)"
    )
    return sql, fill


def _postgresql_error(error: Exception, doing: str) -> StoreError:
    """A StoreError from an error of psycopg itself (the gate's driver paths)."""
    import psycopg

    text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    if isinstance(error, psycopg.IntegrityError):
        return StoreError(f"the store refused a write while {doing}: {text}")
    return StoreError(f"the store failed while {doing}: {text}")


def _by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their set of keys: one executemany needs the same keys in each."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return list(groups.values())


def _dumps(value: Any) -> str:
    return jsontext.dumps(value)


def _driver_error(error: sqlite3.Error, doing: str) -> StoreError:
    """A StoreError from an error of the sqlite3 driver itself (the raw fast paths)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    if isinstance(error, sqlite3.OperationalError) and "locked" in text:
        return StoreError(f"the store is locked by another process while {doing}: {text}")
    if isinstance(error, sqlite3.IntegrityError):
        return StoreError(f"the store refused a write while {doing}: {text}")
    return StoreError(f"the store failed while {doing}: {text}")


def _store_error(error: SQLAlchemyError, doing: str) -> StoreError:
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    if isinstance(error, OperationalError) and "locked" in text:
        return StoreError(f"the store is locked by another process while {doing}: {text}")
    if isinstance(error, IntegrityError):
        return StoreError(f"the store refused a write while {doing}: {text}")
    if isinstance(error, DBAPIError):
        return StoreError(f"the store failed while {doing}: {text}")
    return StoreError(f"the store failed while {doing}: {text}")
