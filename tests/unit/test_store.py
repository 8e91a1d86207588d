"""The store suite: runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from remediate.clock import ManualClock
from remediate.errors import StoreError
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.playbooks.registry import Registry
from remediate.store import GateView, Store
from remediate.store import tables as t
from remediate.store.store import SCHEMA_HEAD
from tests.conftest import _empty
from tests.helpers import settings_for


def test_the_schema_head_constant_matches_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import remediate.store.store as module

    config = Config()
    config.set_main_option("script_location", str(Path(module.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


def test_migrations_create_every_table_and_are_idempotent(store: Store, store_url: str) -> None:
    assert store.schema_version() == SCHEMA_HEAD
    again = Store.open(store_url)
    assert again.schema_version() == SCHEMA_HEAD
    with again.engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
    assert {table.name for table in t.metadata.sorted_tables} <= names
    again.close()


def test_the_migrated_schema_matches_the_table_definitions(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), t.metadata)
    assert differences == []


def test_flags_round_trip(store: Store) -> None:
    store.set_flag("paused", {"reason": "x"}, now=1.0)
    assert store.flag("paused") == {"reason": "x"}
    store.set_flag("paused", None, now=2.0)
    assert store.flag("paused") is None


def test_a_claim_is_taken_once(store: Store, tmp_path: Path, store_url: str) -> None:
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]},
    )
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=ManualClock(100))
    decision = pipeline.decide(Request("ok"))
    assert decision.execution_id is not None
    claim = {"lease_key": "ok:-", "owner": "a:1", "now": 100.0, "expires_at": 200.0}
    assert store.claim(decision.execution_id, **claim) is None
    with pytest.raises(StoreError) as raised:
        store.claim(decision.execution_id, **{**claim, "owner": "b:2"})
    assert "not queued" in raised.value.message


def test_a_locked_sqlite_store_is_a_clear_error_and_no_partial_record(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"
    settings = settings_for(
        tmp_path,
        url,
        playbooks={"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]},
    )
    store = Store.open(url, busy_timeout=0.2)
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=ManualClock(0))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as raised:
            pipeline.run(Request("ok"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in raised.value.message
    assert store.history() == []
    assert not pipeline.audit.path.exists()
    store.close()


@pytest.mark.integration
def test_an_unreachable_postgresql_is_a_clear_error() -> None:
    with pytest.raises(StoreError) as raised:
        Store.open("postgresql://postgres@127.0.0.1:9/nothing", busy_timeout=1)
    assert "the store failed" in raised.value.message
    assert "127.0.0.1" in raised.value.message or "connect" in raised.value.message.lower()


def test_queued_rows_are_stored_as_sqlalchemy_stores_them(store: Store) -> None:
    """Requests and decisions queued by the gate (one executemany per batch, on the
    driver's connection for SQLite) read back exactly like rows SQLAlchemy inserted."""
    base = {
        "created_at": 1.5,
        "source": "webhook",
        "playbook": "disk-cleanup",
        "alertname": "DiskFull",
        "labels": {"instance": "a", "é": "ü"},
        "annotations": None,  # present and None: JSON null, as SQLAlchemy writes it
        "confidence": 95.0,
        "forced": False,
        "dry_run": True,
    }
    with store.gate_transaction() as view:
        queued = [
            Store.insert_request(view, {**base, "parameters": {"mount": "/"}}),
            Store.insert_request(view, base),  # no parameters: the column default, {}
        ]
        direct = [
            view.connection.execute(
                t.requests.insert(), {**base, "parameters": {"mount": "/"}}
            ).inserted_primary_key[0],
            view.connection.execute(t.requests.insert(), base).inserted_primary_key[0],
        ]
        decision = Store.insert_decision(
            view,
            {
                "request_id": queued[0],
                "created_at": 1.5,
                "source": "webhook",
                "action": "block",
                "reason": "r",
                "confidence": 95.0,
                "forced": False,
            },
        )
    assert len({*queued, *direct}) == 4
    columns = [c for c in t.requests.c if c.name != "id"]
    with store.engine.connect() as connection:
        rows = {
            row.id: tuple(getattr(row, c.name) for c in columns)
            for row in connection.execute(sa.select(t.requests))
        }
        raw = {
            row[0]: row[1:]
            for row in connection.exec_driver_sql(
                f"SELECT id, {', '.join(c.name for c in columns)} FROM requests"
            )
        }
        stored = connection.execute(
            sa.select(t.decisions.c.request_id, t.decisions.c.reason).where(
                t.decisions.c.id == decision
            )
        ).one()
    assert rows[queued[0]] == rows[direct[0]] and rows[queued[1]] == rows[direct[1]]
    assert raw[queued[0]] == raw[direct[0]] and raw[queued[1]] == raw[direct[1]]
    assert rows[queued[1]][columns.index(t.requests.c.parameters)] == {}
    assert tuple(stored) == (queued[0], "r")


def test_the_runner_writes_and_reads_executions_as_sqlalchemy_does(store: Store) -> None:
    """An admission, a claim, a finish with JSON details and impacts, and a retry go
    through the driver in plain SQL: what they store reads back through SQLAlchemy
    exactly as rows SQLAlchemy inserted, and `execution()` answers what SQLAlchemy reads
    (JSON parsed, booleans as bool, column defaults filled)."""
    request = {"created_at": 1.0, "source": "webhook", "confidence": 95.0, "labels": {"a": "b"}}
    admitted = {
        "playbook": "disk-cleanup",
        "target": "/var/log",
        "source": "webhook",
        "alertname": "DiskFull",
        "idempotency_key": "k",
        "admitted_at": 2.0,
        "status": "queued",
    }
    with store.gate_transaction() as view:
        request_id = Store.insert_request(view, request)
        decision_id = Store.insert_decision(
            view,
            {
                "request_id": request_id,
                "created_at": 1.0,
                "source": "webhook",
                "action": "execute",
                "confidence": 95.0,
            },
        )
        row = {**admitted, "decision_id": decision_id}
        through_driver = Store.insert_execution(view, row, {"per-target": "/var/log"})
        direct = view.connection.execute(t.executions.insert(), row).inserted_primary_key[0]
    assert store.claim(through_driver, lease_key="l", owner="h:1", now=3.0, expires_at=9.0) is None
    details = {"é": [1, None, "x\n"], "ok": True}
    assert store.finish(
        through_driver,
        status="failure",
        finished_at=5.0,
        values={"summary": "s", "details": details, "actions": ["a"]},
        impacts=[{"kind": "bytes_reclaimed", "value": 7.0}],
        release_lease=False,
    )
    retry = store.add_attempt(through_driver, now=6.0, owner="h:1", expires_at=10.0)
    with store.engine.connect() as connection:
        stored = {row.id: row._asdict() for row in connection.execute(sa.select(t.executions))}
        leases = connection.execute(sa.select(t.leases)).all()
        keys = connection.execute(sa.select(t.execution_keys)).all()
    first = stored[through_driver]
    assert first["forced"] is False and first["attempt"] == 1  # the column defaults
    assert {k: first[k] for k in ("status", "duration_seconds", "details", "actions")} == {
        "status": "failure",
        "duration_seconds": 2.0,
        "details": details,
        "actions": ["a"],
    }
    changed = ("status", "started_at", "finished_at", "duration_seconds", "summary", "details")
    changed += ("actions", "lease_owner", "lease_expires_at")
    assert {k: v for k, v in stored[direct].items() if k != "id"} == {
        k: (None if k in changed else v) for k, v in first.items() if k != "id"
    } | {"status": "queued"}
    assert stored[retry]["attempt"] == 2 and stored[retry]["status"] == "running"
    assert [(lease.key, lease.execution_id) for lease in leases] == [("l", retry)]
    assert [(key.execution_id, key.rule, key.key) for key in keys] == [
        (through_driver, "per-target", "/var/log")
    ]
    assert store.execution(through_driver) == first
    assert store.execution_with_request(through_driver)["parameters"] == {}
    assert store.impacts_of(through_driver) == [
        {"kind": "bytes_reclaimed", "subject": "", "value": 7.0}
    ]


@pytest.mark.integration
def test_a_runner_write_survives_a_held_connection_that_died_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the connection gate transactions and runner writes share can die
    without a trace on its socket (a failover, a dropped NAT entry). The write's first
    statement, the lock, then fails with nothing done: it is sent again on a new
    connection, and the write goes through."""
    import psycopg

    from remediate.store import store as store_module

    store = Store.open(postgres_url)
    _empty(store)
    try:
        store.set_flag("paused", None, now=1.0)
        with store.gate_transaction() as view:  # opens the held connection
            view.expect(0, flags=("paused",))
        held = store._pg_writer
        assert held is not None
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (held.info.backend_pid,))
        # As for a connection lost without a FIN: its socket looks idle.
        monkeypatch.setattr(store_module, "_idle_and_alive", lambda raw: not raw.closed)
        assert store.sweep_interrupted(now=1.0) == []
        with store.gate_transaction() as view:
            request_id = Store.insert_request(
                view, {"created_at": 1.0, "source": "webhook", "confidence": 95.0}
            )
        assert store._pg_writer is not held and held.closed
        with store.sql_reading() as db:
            assert db.rows("SELECT count(*) FROM requests WHERE id = :id", id=request_id) == [(1,)]
        # A runner write on a held connection that died the same way.
        held = store._pg_writer
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (held.info.backend_pid,))
        store.set_flag("paused", {"by": "test"}, now=2.0)
        with store.sql_writing() as db:
            assert db.execute("UPDATE flags SET updated_at = 3.0 WHERE name = 'paused'") == 1
        assert store._pg_writer is not held
    finally:
        store.close()


def test_plain_sql_errors_are_store_errors_on_an_in_memory_store() -> None:
    store = Store.open("sqlite://")
    with pytest.raises(StoreError, match="no such column"), store.sql_reading() as db:
        db.rows("SELECT nope FROM executions")
    with pytest.raises(StoreError, match="no such column"), store.sql_writing() as db:
        db.rows("SELECT nope FROM executions")


def test_ids_taken_up_front_follow_the_order_rows_are_queued(store: Store) -> None:
    """A batch says how many rows it will queue (on PostgreSQL the ids of both tables
    come in one round trip); one more than it said still gets an id; ids ascend in the
    order the rows were queued, in this transaction and the next."""
    row = {
        "created_at": 1.0,
        "source": "webhook",
        "playbook": "p",
        "confidence": 95.0,
        "forced": False,
        "dry_run": False,
    }
    decision = {
        "created_at": 1.0,
        "source": "webhook",
        "action": "block",
        "reason": "r",
        "confidence": 95.0,
        "forced": False,
    }
    taken: list[tuple[int, int]] = []
    for _batch in range(2):
        with store.gate_transaction() as view:
            view.expect(2)
            for _ in range(3):  # one more than expected
                request_id = Store.insert_request(view, row)
                taken.append(
                    (
                        request_id,
                        Store.insert_decision(view, {**decision, "request_id": request_id}),
                    )
                )
    requests = [request_id for request_id, _ in taken]
    decisions = [decision_id for _, decision_id in taken]
    assert requests == sorted(set(requests)) and decisions == sorted(set(decisions))
    with store.reading() as connection:
        stored = connection.execute(
            sa.select(t.decisions.c.id, t.decisions.c.request_id).order_by(t.decisions.c.id)
        ).all()
    assert [tuple(r) for r in stored] == [(d, r) for r, d in taken]


def test_a_gate_transaction_is_one_transaction_whoever_writes_in_it(store: Store) -> None:
    """On SQLite the gate writes on the driver's own connection and SQLAlchemy joins it
    for an admission: an error undoes both, success keeps both, and a closed store
    opens its connections again (SQLAlchemy's included)."""
    row = {"created_at": 1.0, "source": "webhook", "playbook": "p", "confidence": 95.0}
    row |= {"forced": False, "dry_run": False}

    def admit(view: GateView) -> None:
        Store.insert_request(view, row)
        view.connection.execute(t.requests.insert(), row)  # joins the same transaction

    def count() -> int:
        with store.engine.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(t.requests)).scalar_one()
            )

    with pytest.raises(RuntimeError), store.gate_transaction() as view:
        admit(view)
        raise RuntimeError("the gate failed after both wrote")
    assert count() == 0
    with store.gate_transaction() as view:
        admit(view)
    assert count() == 2
    store.close()
    with store.gate_transaction() as view:
        admit(view)
    assert count() == 4


@pytest.mark.integration
def test_a_postgresql_gate_holds_the_lock_from_its_first_statement(postgres_url: str) -> None:
    """PostgreSQL's gate takes its advisory lock with its first statement (with the ids
    `expect` asks for) and holds it to the commit, whichever question comes first."""
    import psycopg

    from remediate.store.store import _GATE_LOCK

    store = Store.open(postgres_url)
    _empty(store)
    row = {"created_at": 1.0, "source": "webhook", "playbook": "p", "confidence": 95.0}
    row |= {"forced": False, "dry_run": False}

    def lock_is_free() -> bool:
        with psycopg.connect(postgres_url, autocommit=True) as other:
            free = other.execute("SELECT pg_try_advisory_lock(%s)", (_GATE_LOCK,)).fetchone()
            other.execute("SELECT pg_advisory_unlock_all()")
            return bool(free and free[0])

    try:
        with store.gate_transaction() as view:
            assert lock_is_free()  # nothing asked yet
            view.expect(2)
            assert not lock_is_free()
            Store.insert_request(view, row)
        assert lock_is_free()
        with store.gate_transaction() as view:
            assert view.flag("paused") is None
            assert not lock_is_free()
        assert lock_is_free()  # a transaction that only read is committed too
        with store.gate_transaction() as view:
            view.connection.execute(t.requests.insert(), row)
            assert not lock_is_free()
        with store.reading() as connection:
            assert (
                connection.execute(sa.select(sa.func.count()).select_from(t.requests)).scalar() == 2
            )
    finally:
        store.close()


@pytest.mark.integration
def test_a_postgresql_gate_survives_a_dropped_connection_and_a_failed_commit(
    postgres_url: str,
) -> None:
    """The connections the store keeps (the gate's, the readers') are replaced when the
    server drops them between uses (nothing is lost or refused), and a transaction that
    fails at its commit leaves nothing behind and the next one works."""
    import psycopg

    store = Store.open(postgres_url)
    _empty(store)
    row = {"created_at": 1.0, "source": "webhook", "playbook": "p", "confidence": 95.0}
    row |= {"forced": False, "dry_run": False}
    decision = {"created_at": 1.0, "source": "webhook", "action": "block", "reason": "r"}
    decision |= {"confidence": 95.0, "forced": False}

    def gate() -> tuple[int, int]:
        with store.gate_transaction() as view:
            view.expect(1)
            request_id = Store.insert_request(view, row)
            return request_id, Store.insert_decision(view, {**decision, "request_id": request_id})

    def count(table: sa.Table) -> int:
        with store.reading() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )

    try:
        gate()
        store.ping()  # leaves a reader in the pool
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert killed and all(ok for (ok,) in killed)
        store.ping()  # a pooled reader found closed is replaced before use
        gate()  # on a new connection
        assert (count(t.requests), count(t.decisions)) == (2, 2)

        with pytest.raises(StoreError, match="refused a write"), store.gate_transaction() as view:
            view.expect(1)
            Store.insert_request(view, row)
            Store.insert_decision(view, {**decision, "request_id": 10**9})  # no such request
        assert (count(t.requests), count(t.decisions)) == (2, 2)
        gate()
        assert (count(t.requests), count(t.decisions)) == (3, 3)
    finally:
        store.close()


def test_nul_in_an_alert_is_recorded_on_either_store(tmp_path: Path, store_url: str) -> None:
    """An alert whose labels carry NUL is decided and recorded like any other: SQLite
    keeps the NUL, PostgreSQL (whose text cannot hold it) keeps U+FFFD in its place,
    on the gate's driver path and on SQLAlchemy's (an admission) alike. Before, it was
    a store error on PostgreSQL: 503, which Alertmanager retries forever."""
    from remediate.webhook.models import WebhookPayload
    from remediate.webhook.receiver import intents

    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]},
        routes=[{"alert": "Nul", "playbook": "ok", "confidence": 95}],
    )
    store = Store.open(store_url)
    _empty(store)
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=ManualClock())
    alerts = [
        {"alertname": "A\x00B"},  # no route: recorded
        {"alertname": "Nul", "instance": "x\x00y"},  # admitted: an execution row too
        {"alertname": "Nul", "instance": "z", "note": "\x00", "\x00": "k"},  # refused
    ]
    payload = WebhookPayload.model_validate(
        {"alerts": [{"status": "firing", "labels": labels} for labels in alerts]}
    )
    try:
        decisions, follow_up = pipeline.decide_committed(intents(pipeline, payload))
        follow_up()
        # The same notification again: the admitted alert, NUL in its idempotency key,
        # is known (on PostgreSQL the key is read back with U+FFFD and must still match).
        again, follow_up = pipeline.decide_committed(intents(pipeline, payload))
        follow_up()
        assert (again[1].action, again[1].check) == ("block", "idempotency")
        # The third is refused by an ordinary check (the playbook's cooldown), as it
        # would be without NUL: what matters is that it is decided and recorded.
        assert [(d.action, d.check) for d in decisions] == [
            ("record", "route"),
            ("execute", ""),
            ("block", "rate_limit"),
        ]
        nul = "\x00" if store.is_sqlite else "\ufffd"
        with store.reading() as connection:
            names = connection.execute(
                sa.select(t.requests.c.alertname).order_by(t.requests.c.id)
            ).scalars()
            assert list(names)[:3] == [f"A{nul}B", "Nul", "Nul"]
            labels = connection.execute(
                sa.select(t.requests.c.labels).order_by(t.requests.c.id)
            ).scalars()
            assert [label.get("instance") for label in labels][1:3] == [f"x{nul}y", "z"]
            keys = connection.execute(
                sa.select(t.executions.c.idempotency_key).order_by(t.executions.c.id)
            ).scalars()
            assert f"x{nul}y" in next(iter(keys))
    finally:
        store.close()


@pytest.mark.integration
def test_an_empty_notification_on_postgresql_leaves_no_transaction_open(
    tmp_path: Path, postgres_url: str
) -> None:
    """A notification without alerts takes the gate's lock and reads the pause flag, and
    writes nothing: it must still end its transaction. Left open, its lock made the next
    write of the same process wait for ever (the webhook hung)."""
    import threading

    from remediate.webhook.models import WebhookPayload
    from remediate.webhook.receiver import intents

    settings = settings_for(tmp_path, postgres_url)
    store = Store.open(postgres_url)
    _empty(store)
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=ManualClock())
    try:
        empty = WebhookPayload.model_validate({"alerts": []})
        assert pipeline.decide_all(intents(pipeline, empty)) == []
        done = threading.Event()
        writer = threading.Thread(
            target=lambda: (store.set_flag("paused", {"reason": "t"}, now=1.0), done.set()),
            daemon=True,
        )
        writer.start()
        if not done.wait(10):
            import psycopg

            with psycopg.connect(postgres_url, autocommit=True) as admin:  # free the writer
                admin.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND state = 'idle in transaction'"
                )
            writer.join(10)
            pytest.fail("a write after an empty notification waited for the gate's lock")
        assert store.flag("paused") == {"reason": "t"}
    finally:
        store.close()


def test_ids_past_what_the_store_holds_name_no_row(store: Store, tmp_path: Path) -> None:
    """PostgreSQL's ids are 32-bit: asking for a larger one was "integer out of range",
    a store error (503 over HTTP); past 64 bits SQLite's driver raised OverflowError."""
    from remediate.chains import records
    from remediate.errors import UsageError
    from remediate.pipeline import approvals

    for too_large in (2**31, 2**63):
        if store.is_sqlite and too_large == 2**31:
            continue  # a valid SQLite id: the query runs and finds nothing
        assert too_large > store.largest_id
        assert store.decision(too_large) is None
        assert store.execution(too_large) is None
        with pytest.raises(UsageError, match="no approval"):
            approvals.reject(store, too_large, by="t", now=1.0)
        with pytest.raises(UsageError, match="no chain run"):
            records.load_run(store, too_large)
    assert store.decision(0) is None
