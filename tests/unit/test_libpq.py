"""Statements sent together below psycopg's cursor (`remediate.store.libpq`), on the
real PostgreSQL server, and the PostgreSQL gate's two round trips per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from remediate.clock import ManualClock
from remediate.pipeline.pipeline import Pipeline
from remediate.playbooks.registry import Registry
from remediate.store import Store, libpq
from tests.conftest import _empty
from tests.helpers import settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def connection(postgres_url: str) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(postgres_url) as opened:
        yield opened


def test_statements_run_in_order_in_one_transaction(connection: Any) -> None:
    connection.execute("CREATE TEMPORARY TABLE notes (id int, body text)")
    connection.commit()
    rows = libpq.run(
        connection,
        [
            ("BEGIN", None),
            ("INSERT INTO notes VALUES ($1::int, $2::text)", ("1", 'it\'s "quoted"; --')),
            ("SELECT id, body, NULL::text FROM notes ORDER BY id", ()),
            ("SELECT count(*) FROM notes WHERE body = $1::text", ("1",)),
        ],
    )
    assert rows == [[], [], [("1", 'it\'s "quoted"; --', None)], [("0",)]]
    assert connection.info.transaction_status.name == "INTRANS"  # BEGIN held it open
    libpq.run(connection, [("ROLLBACK", None)])
    assert libpq.run(connection, [("SELECT count(*) FROM notes", ())]) == [[("0",)]]


def test_the_first_failure_is_raised_and_the_connection_goes_on(connection: Any) -> None:
    """The statements after a failure are skipped; the statements prepared before it
    stay prepared (preparing one again would be refused: "already exists")."""
    import psycopg

    divide = "SELECT 10 / $1::int"
    with pytest.raises(psycopg.errors.DivisionByZero):
        libpq.run(
            connection,
            [("BEGIN", None), (divide, ("0",)), ("SELECT 1 / 0 + $1::int", ("1",))],
        )
    assert connection.info.transaction_status.name == "INERROR"
    connection.rollback()
    assert libpq.run(connection, [(divide, ("5",))]) == [[("2",)]]
    with pytest.raises(psycopg.errors.SyntaxError):
        libpq.run(connection, [("SELEC $1::int", ("1",))])
    assert libpq.run(connection, [(divide, ("2",)), ("SELECT $1::int", ("7",))]) == [
        [("5",)],
        [("7",)],
    ]


def test_a_nul_in_a_parameter_does_not_cut_it_short(connection: Any) -> None:
    """libpq takes text parameters NUL-terminated: the rest of the value would vanish."""
    [[(value,)]] = libpq.run(connection, [("SELECT $1::text", ("a\x00b; c",))])
    assert value == "a\ufffdb; c"


def test_a_lost_connection_is_left_broken(connection: Any, postgres_url: str) -> None:
    import psycopg

    pid = connection.info.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        libpq.run(connection, [("BEGIN", None), ("SELECT 1", ())])
    assert connection.broken
    with pytest.raises(psycopg.OperationalError):
        libpq.run(connection, [("SELECT 1", ())])


def test_a_postgresql_gate_batch_makes_two_round_trips(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notification's alerts, none admitted: BEGIN, the lock, the ids and the reads in
    one round trip, the rows and the COMMIT in another, and nothing through psycopg's
    cursor (about 35 µs of CPU a statement, and a round trip each)."""
    import psycopg

    from remediate.webhook.models import WebhookPayload
    from remediate.webhook.receiver import intents

    settings = settings_for(tmp_path, postgres_url)
    store = Store.open(postgres_url)
    _empty(store)
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=ManualClock())
    payload = WebhookPayload.model_validate(
        {
            "alerts": [
                {"status": "firing", "labels": {"alertname": f"Unrouted{n}", "instance": "h"}}
                for n in range(5)
            ]
        }
    )
    round_trips: list[list[str]] = []
    executed: list[str] = []
    run = libpq.run

    def counting_run(connection: Any, statements: Any) -> Any:
        round_trips.append([sql.split()[0] for sql, _ in statements])
        return run(connection, statements)

    def counting(execute: Any) -> Any:
        def counting_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            executed.append(str(query))
            return execute(self, query, *args, **kwargs)

        return counting_execute

    try:
        pipeline.decide_committed(intents(pipeline, payload))  # connections opened
        monkeypatch.setattr(libpq, "run", counting_run)
        monkeypatch.setattr(psycopg.Connection, "execute", counting(psycopg.Connection.execute))
        monkeypatch.setattr(psycopg.Cursor, "execute", counting(psycopg.Cursor.execute))
        decisions, follow_up = pipeline.decide_committed(intents(pipeline, payload))
        follow_up()
        assert [decision.action for decision in decisions] == ["record"] * 5
        assert round_trips == [["BEGIN", "SELECT", "SELECT"], ["WITH", "COMMIT"]]
        assert executed == []
        monkeypatch.undo()
        with store.reading() as connection:
            import sqlalchemy as sa

            from remediate.store import tables as t

            stored = connection.execute(sa.select(sa.func.count()).select_from(t.decisions))
            assert stored.scalar_one() == 10
    finally:
        store.close()


def test_statements_dropped_by_the_server_are_prepared_again(connection: Any) -> None:
    """A pooler's DISCARD ALL drops prepared statements: the call that finds one gone
    fails once; the statements it prepared meanwhile are still known, and the next
    call prepares the dropped ones again (it used to fail for ever, "already exists")."""
    import psycopg

    known, new = "SELECT $1::int + 1", "SELECT $1::int * 10"
    assert libpq.run(connection, [(known, ("1",))]) == [[("2",)]]
    connection.execute("DEALLOCATE ALL")
    connection.commit()
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        libpq.run(connection, [(new, ("2",)), (known, ("1",))])
    for _ in range(3):
        assert libpq.run(connection, [(new, ("2",)), (known, ("2",))]) == [[("20",)], [("3",)]]


def test_psycopg_rolling_back_does_not_drop_our_statements(connection: Any) -> None:
    """psycopg prepares a query it has run five times, and clears every prepared
    statement of the session (DEALLOCATE ALL) when a transaction rolls back: on a
    connection `run` uses, it must not prepare any."""
    import psycopg

    statement = "SELECT $1::text || 'x'"
    assert libpq.run(connection, [(statement, ("a",))]) == [[("ax",)]]
    for _ in range(6):
        connection.execute("SELECT %s::int", (1,))
    with pytest.raises(psycopg.errors.DivisionByZero):
        connection.execute("SELECT 1 / 0")
    connection.rollback()
    assert libpq.run(connection, [(statement, ("b",))]) == [[("bx",)]]


def test_the_same_statement_twice_in_one_call(connection: Any) -> None:
    statement = "SELECT $1::int - 1"
    assert libpq.run(connection, [(statement, ("5",)), (statement, ("9",))]) == [
        [("4",)],
        [("8",)],
    ]


def _one_request_gate(store: Store) -> Callable[[], None]:
    """A gate transaction that reads a flag and a key and records one request."""
    row = {"created_at": 1.0, "source": "webhook", "playbook": "p", "confidence": 95.0}
    row |= {"forced": False, "dry_run": False}

    def gate() -> None:
        with store.gate_transaction() as view:
            view.expect(1, flags=("paused",), idempotency_keys=["k"])
            Store.insert_request(view, row)

    return gate


def test_a_postgresql_gate_goes_on_after_its_statements_were_dropped(postgres_url: str) -> None:
    """The gate's first round trip finds its prepared statements gone (a pooler's
    DISCARD ALL): only BEGIN had run, so it rolls back and sends them again, and the
    batch is decided as if nothing happened."""
    store = Store.open(postgres_url)
    _empty(store)
    gate = _one_request_gate(store)
    try:
        gate()
        held = store._pg_writer
        assert held is not None
        held.execute("DEALLOCATE ALL")  # as DISCARD ALL does
        held.commit()
        gate()
        with store.reading() as connection:
            import sqlalchemy as sa

            from remediate.store import tables as t

            count = connection.execute(sa.select(sa.func.count()).select_from(t.requests))
            assert count.scalar_one() == 2
    finally:
        store.close()


def test_a_postgresql_gate_goes_on_after_its_schema_was_created_again(postgres_url: str) -> None:
    """The gate's prepared statements name the tables and their sequences: after the
    schema is dropped and created again under the open store (a restore, a reset), the
    server plans them anew and the next batch takes ids from the new sequences."""
    import sqlalchemy as sa

    from remediate.store import tables as t

    store = Store.open(postgres_url)
    _empty(store)
    gate = _one_request_gate(store)
    try:
        for _ in range(3):
            gate()
        with store.reading() as connection:
            before = connection.execute(sa.select(sa.func.max(t.requests.c.id))).scalar_one()
        assert before >= 3
        with store.engine.begin() as connection:
            t.metadata.drop_all(connection)
            connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        Store.open(postgres_url).close()  # a new schema, its sequences starting at 1
        gate()
        gate()
        with store.reading() as connection:
            ids = connection.execute(sa.select(t.requests.c.id).order_by(t.requests.c.id))
            assert list(ids.scalars()) == [1, 2]
    finally:
        store.close()
