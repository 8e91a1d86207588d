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
import socket
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from remediate import jsontext
from remediate.errors import StoreError
from remediate.store import tables as t

# The newest migration in store/migrations/versions; a test keeps the two in step.
SCHEMA_HEAD = "0007"
_GATE_LOCK = 0x72656D65  # "reme": the advisory lock id that serializes gate decisions

FAILED = ("failure", "timeout")
# What a new attempt of an execution takes over from the one before.
_ATTEMPT_COPIES = (
    "decision_id",
    "playbook",
    "target",
    "source",
    "alertname",
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


def _prepared() -> dict[str, Any]:
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
            "SELECT nextval(pg_get_serial_sequence('requests', 'id')),"
            " nextval(pg_get_serial_sequence('decisions', 'id'))"
            " FROM generate_series(1, :count)"
        ),
    }


_QUERIES = _prepared()


def _sqlite_queries() -> dict[str, tuple[str, tuple[str, ...], dict[str, Any]]]:
    """The gate's queries as SQLite text with their parameter order and fixed values:
    run on the driver's connection, they skip SQLAlchemy's per-statement work."""
    from sqlalchemy.dialects import sqlite

    # Placeholders for the values each call binds; literal ones (attempt = 1, the IN
    # lists, the offset) keep theirs, so IN (...) renders as many ? as it needs.
    placeholders: dict[str, Any] = dict.fromkeys(
        ("playbook", "alertname", "rule", "key", "name"), ""
    ) | {"since": 0.0, "limit": 0}
    compiled = {}
    for name, query in _QUERIES.items():
        if name in ("next_id", "next_queued_ids"):
            continue
        state = query.compile(dialect=sqlite.dialect()).construct_expanded_state(
            placeholders, escape_names=False
        )
        assert state.positiontup is not None
        compiled[name] = (state.statement, tuple(state.positiontup), dict(state.parameters))
    return compiled


_SQLITE_QUERIES = _sqlite_queries()
_INSERT_EXECUTION = t.executions.insert()
_INSERT_EXECUTION_KEY = t.execution_keys.insert()
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

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._sqlite = connection.dialect.name == "sqlite"
        # SQLite: the gate's reads and queued writes go straight to the driver's
        # connection (same transaction); PostgreSQL goes through SQLAlchemy.
        self._raw: Any = connection.connection.driver_connection if self._sqlite else None
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
        return self._connection

    def queue(self, table: sa.Table, values: Mapping[str, Any]) -> int:
        """Queue one row for `table` (requests or decisions) and return its id."""
        if table.name not in _QUEUED:
            raise ValueError(f"rows of {table.name} are not queued")
        row_id = self._allocate(table.name)
        self._pending.setdefault(table.name, []).append({"id": row_id, **values})
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
            row = self._connection.execute(_QUERIES["next_id"], {"table": name})
            spare.append(int(row.scalar_one()))
        return spare.pop()

    def expect(self, rows: int) -> None:
        """This transaction will queue about `rows` rows per table: on PostgreSQL the ids
        of both tables are taken from their sequences now, in one round trip."""
        if self._sqlite or rows < 1:
            return
        fetched = self._connection.execute(_QUERIES["next_queued_ids"], {"count": rows}).all()
        for position, name in enumerate(_QUEUED):
            # Popped from the end: the first row queued gets the lowest id.
            self._ids.setdefault(name, []).extend(int(row[position]) for row in reversed(fetched))

    def flush(self) -> None:
        """Write every queued row: requests first, then the decisions that refer to them."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        for name in _QUEUED:
            rows = pending.get(name)
            if not rows:
                continue
            table = t.metadata.tables[name]
            if self._raw is not None:
                _insert_sqlite(self._raw, table, rows)
            else:
                for group in _by_columns(rows):
                    self._connection.execute(table.insert(), group)

    def admitted(self) -> None:
        """An execution was inserted in this transaction: forget remembered answers."""
        self._answers.clear()
        self.verdicts.clear()

    def _rows(self, name: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._raw is None:
            return [tuple(row) for row in self._connection.execute(_QUERIES[name], parameters)]
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


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # Threads of one process queue here for the write lock instead of in SQLite's
        # busy handler, which sleeps in steps of up to 100 ms.
        self._write_lock = threading.Lock()

    # --- opening and migrating ----------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, busy_timeout: float = 5.0, migrate: bool = True) -> Store:
        engine = _create_engine(url, busy_timeout=busy_timeout)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    def schema_version(self) -> str | None:
        try:
            with self.engine.connect() as connection:
                if not sa.inspect(connection).has_table("alembic_version"):
                    return None
                return connection.execute(
                    sa.text("SELECT version_num FROM alembic_version")
                ).scalar()
        except SQLAlchemyError as error:
            raise _store_error(error, "reading the schema version") from error

    def migrate(self) -> None:
        """Bring the schema to the newest version; cheap when it already is."""
        if self.schema_version() == SCHEMA_HEAD:
            return
        from remediate.store.schema import upgrade

        try:
            # An empty database gets the tables at once (no alembic); an older schema
            # goes through the migrations.
            with self._write() as connection:
                upgrade(connection, head=SCHEMA_HEAD)
        except SQLAlchemyError as error:
            raise _store_error(error, "migrating the schema") from error

    def close(self) -> None:
        self.engine.dispose()

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
        except SQLAlchemyError as error:
            raise _store_error(error, "writing") from error
        except sqlite3.Error as error:
            raise _driver_error(error, "writing") from error

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
        except SQLAlchemyError as error:
            raise _store_error(error, "reading") from error

    @contextmanager
    def gate_transaction(self) -> Iterator[GateView]:
        """Serialized reads and writes for one gate decision: check, then record, atomically."""
        with self._write() as connection:
            view = GateView(connection)
            yield view
            view.flush()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._read() as connection:
            yield connection

    # --- writes inside a gate transaction ----------------------------------------------

    @staticmethod
    def insert_request(view: GateView, values: Mapping[str, Any]) -> int:
        """Queue a request row (written with the transaction's other rows) and return its id."""
        return view.queue(t.requests, values)

    @staticmethod
    def insert_decision(view: GateView, values: Mapping[str, Any]) -> int:
        """Queue a decision row; its request must have been queued or written before."""
        return view.queue(t.decisions, values)

    @staticmethod
    def insert_execution(
        view: GateView, values: Mapping[str, Any], rule_keys: Mapping[str, str] | None = None
    ) -> int:
        result = view.connection.execute(_INSERT_EXECUTION, dict(values))
        view.admitted()
        execution_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        if rule_keys:
            view.connection.execute(
                _INSERT_EXECUTION_KEY,
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
        result = view.connection.execute(
            t.approvals.insert().values(
                decision_id=decision_id,
                request_id=request_id,
                created_at=now,
                expires_at=expires_at,
                status="pending",
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    # --- the runner's writes ------------------------------------------------------------

    def claim(
        self, execution_id: int, *, lease_key: str, owner: str, now: float, expires_at: float
    ) -> int | None:
        """Move a queued execution to running and take its lease, atomically.

        Returns None on success, or the id of the execution holding the lease.
        Raises StoreError if the execution is no longer queued (another worker got it).
        """
        e, lease = t.executions, t.leases
        with self._write() as connection:
            held = connection.execute(
                sa.select(lease.c.execution_id, lease.c.expires_at).where(lease.c.key == lease_key)
            ).first()
            if held is not None and held.expires_at > now and held.execution_id != execution_id:
                return int(held.execution_id)
            if held is not None:
                connection.execute(lease.delete().where(lease.c.key == lease_key))
            claimed = connection.execute(
                e.update()
                .where(e.c.id == execution_id, e.c.status == "queued")
                .values(
                    status="running",
                    started_at=now,
                    lease_owner=owner,
                    lease_expires_at=expires_at,
                )
            ).rowcount
            if claimed != 1:
                raise StoreError(f"execution {execution_id} is not queued any more")
            connection.execute(
                lease.insert().values(
                    key=lease_key,
                    execution_id=execution_id,
                    owner=owner,
                    acquired_at=now,
                    expires_at=expires_at,
                )
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
        e = t.executions
        with self._write() as connection:
            row = connection.execute(
                sa.select(e.c.started_at, e.c.playbook, e.c.status).where(e.c.id == execution_id)
            ).first()
            if row is None:
                raise StoreError(f"no execution {execution_id}")
            duration = finished_at - (row.started_at or finished_at)
            updated = connection.execute(
                e.update()
                .where(e.c.id == execution_id, e.c.status.in_(("running", "queued")))
                .values(
                    status=status,
                    finished_at=finished_at,
                    duration_seconds=duration,
                    lease_expires_at=None,
                    **values,
                )
            ).rowcount
            if release_lease:
                connection.execute(t.leases.delete().where(t.leases.c.execution_id == execution_id))
            if updated != 1:
                return False
            if impacts:
                connection.execute(
                    t.impacts.insert(),
                    [
                        {
                            "execution_id": execution_id,
                            "playbook": row.playbook,
                            "at": finished_at,
                            **impact,
                        }
                        for impact in impacts
                    ],
                )
            return True

    def add_attempt(self, execution_id: int, *, now: float, owner: str, expires_at: float) -> int:
        """A retry: a new execution row (attempt n+1) for the same decision, already running."""
        e = t.executions
        with self._write() as connection:
            row = connection.execute(sa.select(e).where(e.c.id == execution_id)).mappings().one()
            values = {key: row[key] for key in _ATTEMPT_COPIES}
            result = connection.execute(
                e.insert().values(
                    **values,
                    attempt=row["attempt"] + 1,
                    admitted_at=now,
                    started_at=now,
                    status="running",
                    lease_owner=owner,
                    lease_expires_at=expires_at,
                )
            )
            new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            connection.execute(
                t.leases.update()
                .where(t.leases.c.execution_id == execution_id)
                .values(execution_id=new_id, expires_at=expires_at)
            )
            return new_id

    def sweep_interrupted(self, *, now: float) -> list[int]:
        """Mark running executions whose lease expired, or whose holder on this host died.

        Found on every start and before each claim, so a crash never leaves an
        execution silently "running".
        """
        e = t.executions
        host = socket.gethostname()
        with self._write() as connection:
            rows = connection.execute(
                sa.select(e.c.id, e.c.lease_owner, e.c.lease_expires_at).where(
                    e.c.status == "running"
                )
            ).all()
            stale = [
                row.id
                for row in rows
                if (row.lease_expires_at is not None and row.lease_expires_at <= now)
                or holder_is_dead(row.lease_owner, host)
            ]
            if stale:
                connection.execute(
                    e.update()
                    .where(e.c.id.in_(stale), e.c.status == "running")
                    .values(
                        status="interrupted",
                        finished_at=now,
                        summary="interrupted: its process stopped before recording an outcome",
                        lease_expires_at=None,
                    )
                )
                connection.execute(t.leases.delete().where(t.leases.c.execution_id.in_(stale)))
            return stale

    def requeue(self, execution_id: int, *, now: float) -> int:
        """A new queued attempt of an interrupted execution's decision (it counts against
        the gate like any attempt)."""
        e = t.executions
        with self._write() as connection:
            row = connection.execute(sa.select(e).where(e.c.id == execution_id)).mappings().one()
            values = {key: row[key] for key in _ATTEMPT_COPIES}
            result = connection.execute(
                _INSERT_EXECUTION,
                {**values, "attempt": row["attempt"] + 1, "admitted_at": now, "status": "queued"},
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def escalate_interrupted(
        self, execution_id: int, *, now: float, expires_at: float
    ) -> int | None:
        """A pending approval to run an interrupted execution's request again."""
        e, d = t.executions, t.decisions
        with self._write() as connection:
            row = connection.execute(
                sa.select(e.c.decision_id, d.c.request_id)
                .select_from(e.join(d, d.c.id == e.c.decision_id))
                .where(e.c.id == execution_id)
            ).first()
            if row is None:
                return None
            result = connection.execute(
                t.approvals.insert().values(
                    decision_id=row.decision_id,
                    request_id=row.request_id,
                    created_at=now,
                    expires_at=expires_at,
                    status="pending",
                    note=f"execution {execution_id} was interrupted",
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    # --- flags ---------------------------------------------------------------------------

    def set_flag(self, name: str, value: Any, *, now: float) -> None:
        with self._write() as connection:
            connection.execute(t.flags.delete().where(t.flags.c.name == name))
            if value is not None:
                connection.execute(t.flags.insert().values(name=name, value=value, updated_at=now))

    def flag(self, name: str) -> Any:
        with self._read() as connection:
            return GateView(connection).flag(name)

    # --- reads ---------------------------------------------------------------------------

    def execution(self, execution_id: int) -> dict[str, Any] | None:
        with self._read() as connection:
            row = (
                connection.execute(sa.select(t.executions).where(t.executions.c.id == execution_id))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def execution_with_request(self, execution_id: int) -> dict[str, Any]:
        """An execution with what the runner needs of its decision and request."""
        e, d, r = t.executions, t.decisions, t.requests
        query = (
            sa.select(
                e,
                d.c.reason,
                d.c.confidence,
                r.c.parameters,
                r.c.timeout_seconds,
                r.c.chain_run_id,
            )
            .select_from(e.join(d, d.c.id == e.c.decision_id).join(r, r.c.id == d.c.request_id))
            .where(e.c.id == execution_id)
        )
        with self._read() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            raise StoreError(f"no execution {execution_id}")
        return dict(row)

    def decision(self, decision_id: int) -> dict[str, Any] | None:
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
        i = t.impacts
        with self._read() as connection:
            rows = connection.execute(
                sa.select(i.c.kind, i.c.subject, i.c.value).where(i.c.execution_id == execution_id)
            ).mappings()
            return [dict(row) for row in rows]

    def queued(self) -> list[int]:
        e = t.executions
        with self._read() as connection:
            return [
                int(row[0])
                for row in connection.execute(
                    sa.select(e.c.id).where(e.c.status == "queued").order_by(e.c.id)
                )
            ]

    def ping(self) -> None:
        with self._read() as connection:
            connection.execute(sa.text("SELECT 1"))


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
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.close()

        return engine
    t.with_postgresql_predicates()
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        json_serializer=_dumps,
        connect_args={"connect_timeout": max(1, int(busy_timeout))},
    )


@functools.lru_cache(maxsize=32)
def _sqlite_insert(name: str, keys: tuple[str, ...]) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """For rows of table `name` with `keys`: the INSERT (named parameters), which keys hold
    JSON, and the values SQLAlchemy's column defaults would give the columns left out."""
    table = t.metadata.tables[name]
    json_keys = tuple(key for key in keys if isinstance(table.c[key].type, sa.JSON))
    fill: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in keys or default is None:
            continue
        # A callable default is SQLAlchemy's wrapper, called with the execution context.
        value = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
        fill[column.name] = _dumps(value) if isinstance(column.type, sa.JSON) else value
    names = (*keys, *fill)
    columns = ", ".join(names)
    marks = ", ".join(f":{key}" for key in names)
    return f"INSERT INTO {name} ({columns}) VALUES ({marks})", json_keys, fill  # noqa: S608


def _insert_sqlite(raw: sqlite3.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Rows as SQLAlchemy would write them (JSON as text, column defaults for what is left
    out), one executemany per shape on the driver's connection: the same transaction."""
    for group in _by_columns(rows):
        sql, json_keys, fill = _sqlite_insert(table.name, tuple(group[0]))
        if json_keys or fill:
            group = [
                {**row, **fill, **{key: _dumps(row[key]) for key in json_keys}} for row in group
            ]
        try:
            raw.executemany(sql, group)
        except sqlite3.Error as error:
            raise _driver_error(error, f"writing {table.name}") from error


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
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    if isinstance(error, OperationalError) and "locked" in text:
        return StoreError(f"the store is locked by another process while {doing}: {text}")
    if isinstance(error, IntegrityError):
        return StoreError(f"the store refused a write while {doing}: {text}")
    if isinstance(error, DBAPIError):
        return StoreError(f"the store failed while {doing}: {text}")
    return StoreError(f"the store failed while {doing}: {text}")
