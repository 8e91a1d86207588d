"""A thin PostgreSQL client for maintenance: table statistics, VACUUM and REINDEX (psycopg 3).

It runs in-process, not as a subprocess, so the caller applies its deadline by
hand: the connect timeout and `statement_timeout` are passed in from the time left.
One connection attempt per call, never a retry loop.

    with PostgresClient.connect(dsn, connect_timeout=5, statement_timeout=600) as client:
        for table in client.tables_over(dead_tuples=1000, dead_ratio=0.1, limit=50):
            outcome = client.vacuum(table.schema, table.table)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from remediate.errors import RemediateError

__all__ = [
    "PostgresClient",
    "PostgresError",
    "TableStatistics",
    "VacuumOutcome",
    "describe_dsn",
    "dsn_password",
    "parse_vacuum_verbose",
    "redact",
    "reindex_statement",
    "statement_text",
    "vacuum_statement",
]

Connector = Callable[..., "psycopg.Connection[Any]"]

_STATISTICS = """
    SELECT schemaname, relname, n_live_tup, n_dead_tup, pg_total_relation_size(relid)
    FROM pg_stat_user_tables
"""

# PostgreSQL 15+ reports VACUUM VERBOSE as one INFO message per relation:
#   finished vacuuming "db.public.events": index scans: 1
#   tuples: 45000 removed, 5000 remain, 0 are dead but not yet removable
# The name is printed raw, not as a quoted identifier: it may itself contain quotes.
_FINISHED = re.compile(r'^finished vacuuming "(?P<relation>.*)": index scans:')
_TUPLES = re.compile(
    r"^tuples: (?P<removed>\d+) removed, (?P<remain>\d+) remain, "
    r"(?P<dead>\d+) are dead but not yet removable",
    re.MULTILINE,
)
# PostgreSQL 14 and older: "events": found 45000 removable, 5000 nonremovable row versions ...
_FOUND = re.compile(
    r'^"(?P<relation>.*)": found (?P<removed>\d+) removable, (?P<remain>\d+) nonremovable'
)


class PostgresError(RemediateError):
    """A connection or statement failed; the message never contains the password.

    `connection_lost` says the session is gone (stop using it); `cancelled` says
    `statement_timeout` cancelled the statement.
    """

    def __init__(
        self, message: str, *, connection_lost: bool = False, cancelled: bool = False
    ) -> None:
        super().__init__(message)
        self.connection_lost = connection_lost
        self.cancelled = cancelled


@dataclass(frozen=True)
class TableStatistics:
    schema: str
    table: str
    live_tuples: int
    dead_tuples: int
    total_bytes: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def dead_ratio(self) -> float:
        total = self.live_tuples + self.dead_tuples
        return self.dead_tuples / total if total else 0.0


@dataclass(frozen=True)
class VacuumOutcome:
    """What VACUUM VERBOSE said about the table itself (its TOAST table is reported apart)."""

    rows_removed: int | None
    dead_remaining: int | None
    report: str
    warnings: tuple[str, ...] = ()


def dsn_password(dsn: str) -> str | None:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return None
    return str(password) if password else None


def describe_dsn(dsn: str) -> str:
    """`user@host:port/dbname`, never the password: what plans, summaries and logs show."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<invalid connection string>"
    host = parts.get("host") or parts.get("hostaddr") or "local socket"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = parts.get("port") or "5432"
    return f"{user}{host}:{port}/{parts.get('dbname') or '(default database)'}"


def redact(text: str, *secrets: str | None) -> str:
    """Replace every secret in text: a server message might echo part of a connection string."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def vacuum_statement(schema: str, table: str) -> sql.Composed:
    return sql.SQL("VACUUM (VERBOSE, ANALYZE) {}").format(sql.Identifier(schema, table))


def reindex_statement(schema: str, table: str) -> sql.Composed:
    return sql.SQL("REINDEX TABLE CONCURRENTLY {}").format(sql.Identifier(schema, table))


def statement_text(statement: sql.Composable) -> str:
    """The exact SQL text, identifiers quoted by psycopg (no connection needed for these)."""
    return statement.as_string(None)


def parse_vacuum_verbose(messages: list[str], schema: str, table: str) -> VacuumOutcome:
    """Find the report on the table itself among the INFO messages of VACUUM VERBOSE."""
    for message in messages:
        finished = _FINISHED.match(message)
        if finished and _names_table(finished["relation"], schema, table):
            tuples = _TUPLES.search(message)
            if tuples is None:
                return VacuumOutcome(None, None, message)
            return VacuumOutcome(int(tuples["removed"]), int(tuples["dead"]), message)
        found = _FOUND.match(message)
        if found and found["relation"] == table:
            return VacuumOutcome(int(found["removed"]), None, message)
    return VacuumOutcome(None, None, "")


def _names_table(relation: str, schema: str, table: str) -> bool:
    # PostgreSQL 15 names the relation "database.schema.table", unquoted.
    return relation == f"{schema}.{table}" or relation.endswith(f".{schema}.{table}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


class PostgresClient:
    """One autocommit session (VACUUM cannot run inside a transaction block)."""

    def __init__(self, connection: psycopg.Connection[Any], *, password: str | None = None) -> None:
        self._connection = connection
        self._password = password
        self._messages: list[tuple[str, str]] = []
        connection.add_notice_handler(self._notice)

    @classmethod
    def connect(
        cls,
        dsn: str,
        *,
        connect_timeout: float,
        statement_timeout: float,
        connect: Connector = psycopg.connect,
    ) -> PostgresClient:
        """Connect once; an unreachable server raises PostgresError with libpq's reason."""
        password = dsn_password(dsn)
        try:
            connection = connect(
                dsn,
                autocommit=True,
                # libpq counts whole seconds and treats anything below 2 as 2.
                connect_timeout=max(2, math.ceil(connect_timeout)),
                application_name="remediate",
            )
        except psycopg.Error as error:
            # libpq's first line has the reason; the next ones are a generic hint.
            first = (str(error).splitlines() or [""])[0].removeprefix("connection failed: ")
            reason = redact(first.strip() or type(error).__name__, password)
            raise PostgresError(
                f"cannot connect to {describe_dsn(dsn)}: {reason}", connection_lost=True
            ) from None
        client = cls(connection, password=password)
        try:
            client._execute(
                sql.SQL("SELECT set_config('statement_timeout', {}, false)").format(
                    sql.Literal(str(max(1, int(statement_timeout * 1000))))
                )
            )
        except PostgresError:
            client.close()
            raise
        return client

    def __enter__(self) -> PostgresClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def _notice(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        self._messages.append((diagnostic.severity or "", diagnostic.message_primary or ""))

    def _execute(
        self, statement: sql.SQL | sql.Composed, params: tuple[Any, ...] = ()
    ) -> list[Any]:
        try:
            cursor = self._connection.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []
        except psycopg.errors.QueryCanceled as error:
            raise PostgresError(
                f"{redact(_one_line(error), self._password)} "
                f"while running: {statement_text(statement)[:200]}",
                cancelled=True,
            ) from None
        except psycopg.Error as error:
            raise PostgresError(
                f"{redact(_one_line(error), self._password)} "
                f"while running: {statement_text(statement)[:200]}",
                connection_lost=self._connection.broken or self._connection.closed,
            ) from None

    def _fresh_statistics(self) -> None:
        # Statistics reads are cached per transaction (stats_fetch_consistency); clearing
        # the snapshot makes the next read see what VACUUM has just reported.
        self._execute(sql.SQL("SELECT pg_stat_clear_snapshot()"))

    def tables_over(
        self, *, dead_tuples: int, dead_ratio: float, limit: int
    ) -> list[TableStatistics]:
        """User tables with more dead tuples than both thresholds, most dead first."""
        self._fresh_statistics()
        rows = self._execute(
            sql.SQL(
                _STATISTICS
                + " WHERE n_dead_tup > %s"
                + " AND n_dead_tup::float8 / GREATEST(n_live_tup + n_dead_tup, 1) > %s"
                + " ORDER BY n_dead_tup DESC, schemaname, relname LIMIT %s"
            ),
            (dead_tuples, dead_ratio, limit),
        )
        return [_statistics(row) for row in rows]

    def table(self, schema: str, table: str) -> TableStatistics | None:
        self._fresh_statistics()
        rows = self._execute(
            sql.SQL(_STATISTICS + " WHERE schemaname = %s AND relname = %s"), (schema, table)
        )
        return _statistics(rows[0]) if rows else None

    def vacuum(self, schema: str, table: str) -> VacuumOutcome:
        """VACUUM (VERBOSE, ANALYZE) the table; rows removed are read from its INFO report."""
        self._messages.clear()
        self._execute(vacuum_statement(schema, table))
        messages = [message for severity, message in self._messages if severity == "INFO"]
        warnings = tuple(message for severity, message in self._messages if severity == "WARNING")
        outcome = parse_vacuum_verbose(messages, schema, table)
        if warnings:
            # "permission denied to vacuum ..., skipping it" is a warning, not an error.
            outcome = VacuumOutcome(
                outcome.rows_removed, outcome.dead_remaining, outcome.report, warnings
            )
        return outcome

    def reindex(self, schema: str, table: str) -> None:
        self._execute(reindex_statement(schema, table))


def _statistics(row: tuple[Any, ...]) -> TableStatistics:
    schema, table, live, dead, size = row
    return TableStatistics(schema, table, int(live or 0), int(dead or 0), int(size or 0))
