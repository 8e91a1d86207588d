"""The durable floor the bench measures beside the no-op ceiling (bench/floor_app.py) is
what the README says it is: every body it answers 200 for is a committed SQLite row
first, written in group commits. Otherwise its figure would flatter the comparison."""

from __future__ import annotations

import importlib.util
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
from starlette.testclient import TestClient

FLOOR = Path(__file__).parents[2] / "bench" / "floor_app.py"


def _floor(monkeypatch: pytest.MonkeyPatch, database: Path) -> ModuleType:
    monkeypatch.setenv("REMEDIATE_FLOOR_DB", str(database))
    spec = importlib.util.spec_from_file_location("floor_app_under_test", FLOOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_answered_body_is_a_committed_row(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database = tmp_path / "floor.db"
    floor = _floor(monkeypatch, database)
    bodies = [b'{"alerts": [{"n": %d}]}' % n for n in range(60)]
    with TestClient(floor.app) as client:
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(lambda body: client.post("/webhook", content=body), bodies))
        # Read on a connection of our own while the app still holds its own: what was
        # answered is committed, not only written to the app's open transaction.
        reader = sqlite3.connect(database)
        stored = [row[0] for row in reader.execute("SELECT body FROM received")]
        journal = reader.execute("PRAGMA journal_mode").fetchone()[0]
        reader.close()
        health = client.get("/health")
    assert [answer.status_code for answer in answers] == [200] * len(bodies)
    assert answers[0].json() == {"status": "processed", "alerts_received": 1, "results": []}
    assert sorted(stored) == sorted(bodies)
    assert journal == "wal"
    assert health.status_code == 200
    assert floor._writer.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
