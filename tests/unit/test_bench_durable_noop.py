"""The durable no-ops the bench measures beside the no-op ceiling
(bench/durable_noop_app.py, on Starlette and bare) are what the README says they
are: each answers a body only once the body's row is committed, and a failed commit
answers 503, stores nothing and leaves the next request served. Otherwise their
figures would flatter the comparison they are there for."""

from __future__ import annotations

import importlib.util
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

APP = Path(__file__).parents[2] / "bench" / "durable_noop_app.py"


class HeldStore:
    """The app's connection, with COMMIT held until released and INSERTs that can fail."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.committing = threading.Event()
        self.release = threading.Event()
        self.fail_next_insert = False

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            self.committing.set()
            assert self.release.wait(10)
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        if self.fail_next_insert:
            self.fail_next_insert = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.fixture(params=["app", "bare"])
def durable(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ModuleType]:
    """The module, with `served` the app under test: on Starlette, or bare ASGI."""
    monkeypatch.setenv("REMEDIATE_BENCH_DB", str(tmp_path / "received.db"))
    spec = importlib.util.spec_from_file_location("durable_noop_under_test", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    setattr(module, "served", getattr(module, request.param))  # noqa: B010
    yield module


def stored(tmp_path: Path) -> list[bytes]:
    """What is committed, read on a connection of our own."""
    reader = sqlite3.connect(tmp_path / "received.db")
    try:
        return [row[0] for row in reader.execute("SELECT body FROM received ORDER BY id")]
    finally:
        reader.close()


def test_a_body_is_answered_only_once_its_row_is_committed(
    durable: ModuleType, tmp_path: Path
) -> None:
    with TestClient(durable.served) as client, ThreadPoolExecutor(max_workers=1) as pool:
        held = HeldStore(durable.writer.db)
        durable.writer.db = held
        answer: Future[httpx.Response] = pool.submit(client.post, "/webhook", content=b"one")
        assert held.committing.wait(10)
        # The COMMIT is held: an app that answered first would have answered by now.
        with pytest.raises(TimeoutError):
            answer.result(timeout=0.3)
        assert stored(tmp_path) == []
        held.release.set()
        assert answer.result(timeout=10).status_code == 200
        assert stored(tmp_path) == [b"one"]
        assert held.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert held.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_commit_answers_503_and_the_next_body_is_stored(
    durable: ModuleType, tmp_path: Path
) -> None:
    with TestClient(durable.served) as client:
        held = HeldStore(durable.writer.db)
        held.release.set()
        durable.writer.db = held
        held.fail_next_insert = True
        refused = client.post("/webhook", content=b"lost")
        assert refused.status_code == 503
        assert refused.json() == {"error": "store unavailable: database or disk is full"}
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(lambda n: client.post("/webhook", content=b"%d" % n), range(40))
            )
    assert [answer.status_code for answer in answers] == [200] * 40
    assert answers[0].json() == {"status": "processed", "alerts_received": 1, "results": []}
    assert sorted(stored(tmp_path)) == sorted(b"%d" % n for n in range(40))
