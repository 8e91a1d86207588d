"""Several statements in one round trip on a psycopg connection, below psycopg's cursor.

PostgreSQL's gate makes a batch of decisions in one transaction: the advisory lock and
the new rows' ids, the reads that must follow the lock, one INSERT of the batch's rows,
the COMMIT. Through psycopg's cursor that was five round trips (psycopg sends BEGIN in
one of its own), each costing psycopg about 35 µs of CPU on the writer thread, while the
server's core sat idle and the event loop had nothing to do. `run` sends such a group in
libpq's pipeline mode and waits for the server once: BEGIN, the lock and the reads in one
round trip, the INSERT and the COMMIT in another.

Statements are parsed once per connection (a named prepared statement, as psycopg's
own `prepare_threshold` would after five uses); their parameters go as text, never
spliced into SQL, and their results come back as text for the caller to convert.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

# A statement: SQL with $1.. parameters, and their values as text (None is SQL NULL).
# Values None instead of a list: a statement sent unnamed and unprepared (BEGIN, COMMIT).
Statement = tuple[str, Sequence[str | None] | None]

# The statements prepared on each connection, by name (forgotten with the connection).
_PREPARED: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()


def run(connection: Any, statements: Sequence[Statement]) -> list[list[tuple[str | None, ...]]]:
    """Send `statements` on psycopg `connection` in one round trip; each one's rows, as
    text. The first statement that failed raises its psycopg error, after the server
    has skipped the rest (in an open transaction, the transaction has failed: the caller
    rolls back). If the round trip itself fails (the connection was lost, or the wait was
    interrupted) the connection is left closed and broken: its state is unknown.

    A statement the server no longer holds (DISCARD ALL, a pooler) raises
    `InvalidSqlStatementName` once and is prepared again by the next call."""
    from psycopg import errors, generators, pq

    pgconn = connection.pgconn
    encoding = connection.info.encoding
    prepared = _prepared(connection)
    # What goes out, encoded before the pipeline starts (an error here leaves the
    # connection as it was): per statement its SQL or prepared name, its values, and
    # whether it must be prepared first.
    outgoing: list[tuple[bytes, list[bytes | None] | None, bool]] = []
    preparing: set[bytes] = set()
    for sql, values in statements:
        if values is None:
            outgoing.append((sql.encode(encoding), None, False))
            continue
        name = _name(sql)
        prepare = name not in prepared and name not in preparing
        if prepare:
            preparing.add(name)
        outgoing.append((name, [_text(value, encoding) for value in values], prepare))
    positions: list[int] = []  # each statement's result among all the results
    prepares: list[tuple[bytes, int]] = []  # each PREPARE's name and result
    with connection.lock:
        if connection.closed:
            raise errors.OperationalError("the connection is closed")
        pgconn.enter_pipeline_mode()
        try:
            sent = 0
            for (command, parameters, prepare), (sql, _) in zip(outgoing, statements, strict=True):
                if parameters is None:
                    pgconn.send_query_params(command, None)
                else:
                    if prepare:
                        pgconn.send_prepare(command, sql.encode(encoding))
                        prepares.append((command, sent))
                        sent += 1
                    pgconn.send_query_prepared(command, parameters)
                positions.append(sent)
                sent += 1
            pgconn.pipeline_sync()
            connection.wait(generators.send(pgconn))
            results = [connection.wait(generators.fetch_many(pgconn)) for _ in range(sent)]
            connection.wait(generators.fetch_many(pgconn))  # the sync's own result
            pgconn.exit_pipeline_mode()
        except BaseException:
            pgconn.finish()  # mid-pipeline: unusable; `broken` tells the caller
            raise
    failure = next(
        (
            result
            for batch in results
            for result in batch
            if result.status == pq.ExecStatus.FATAL_ERROR
        ),
        None,
    )
    error = None if failure is None else errors.error_from_result(failure, encoding=encoding)
    if isinstance(error, errors.InvalidSqlStatementName):
        prepared.clear()  # dropped behind our back: prepare each again
    for name, position in prepares:
        status = results[position][0].status if results[position] else None
        if status == pq.ExecStatus.COMMAND_OK or (
            # It exists already (prepared by a call that failed before recording it):
            # the name is the SQL's digest, so it is this very statement.
            results[position]
            and results[position][0].error_field(pq.DiagnosticField.SQLSTATE) == b"42P05"
        ):
            prepared.add(name)
    if error is not None:
        raise error
    rows: list[list[tuple[str | None, ...]]] = []
    for position in positions:
        [result] = results[position]
        rows.append(
            [
                tuple(
                    None
                    if (value := result.get_value(row, column)) is None
                    else value.decode(encoding)
                    for column in range(result.nfields)
                )
                for row in range(result.ntuples)
            ]
        )
    return rows


def _prepared(connection: Any) -> set[bytes]:
    """The names prepared on `connection`. The first time: psycopg is told never to
    prepare statements of its own there, since it clears them all (DEALLOCATE ALL,
    which takes ours too) whenever a transaction rolls back."""
    prepared = _PREPARED.get(connection)
    if prepared is None:
        connection.prepare_threshold = None
        prepared = _PREPARED[connection] = set()
    return prepared


def _text(value: str | None, encoding: str) -> bytes | None:
    """A parameter as libpq takes text: NUL-terminated, so a NUL (which PostgreSQL's
    text cannot hold anyway) is sent as U+FFFD rather than cutting the value short."""
    if value is None:
        return None
    return (value.replace("\x00", "\ufffd") if "\x00" in value else value).encode(encoding)


def _name(sql: str) -> bytes:
    return b"remediate_" + hashlib.blake2b(sql.encode(), digest_size=12).hexdigest().encode()
