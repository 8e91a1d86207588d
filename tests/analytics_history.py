"""For the analytics tests: read a (small) store back row by row, so a test can compute each
report's figures independently in plain Python and compare them with the SQL the reports run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from remediate.store import Store
from remediate.store import tables as t

MONTH = "2025-12"
ROWS = 300


@dataclass
class History:
    requests: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    executions: list[dict[str, Any]]
    impacts: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    forecasts: list[dict[str, Any]]

    def request_of(self, execution: dict[str, Any]) -> dict[str, Any]:
        decision = next(d for d in self.decisions if d["id"] == execution["decision_id"])
        return next(r for r in self.requests if r["id"] == decision["request_id"])


def load(store: Store) -> History:
    tables = (t.requests, t.decisions, t.executions, t.impacts, t.approvals, t.forecasts)
    with store.reading() as connection:
        loaded = [
            [dict(row) for row in connection.execute(sa.select(table)).mappings()]
            for table in tables
        ]
    return History(*loaded)


def insert(store: Store, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with store.gate_transaction() as view:
        view.connection.execute(table.insert(), rows)


def execution_rows(
    playbook: str,
    runs: list[tuple[str, float, float]],
    *,
    start_id: int = 1,
    source: str = "manual",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Requests, decisions and executions for `runs` of (status, admitted_at, duration)."""
    requests, decisions, executions = [], [], []
    for offset, (status, admitted, duration) in enumerate(runs):
        row_id = start_id + offset
        requests.append(
            {
                "id": row_id,
                "created_at": admitted,
                "source": source,
                "playbook": playbook,
                "parameters": {},
                "confidence": 100.0,
            }
        )
        decisions.append(
            {
                "id": row_id,
                "request_id": row_id,
                "created_at": admitted,
                "source": source,
                "playbook": playbook,
                "target": "-",
                "action": "execute",
                "reason": "all checks passed",
                "confidence": 100.0,
            }
        )
        executions.append(
            {
                "id": row_id,
                "decision_id": row_id,
                "attempt": 1,
                "playbook": playbook,
                "target": "-",
                "source": source,
                "admitted_at": admitted,
                "started_at": admitted,
                "finished_at": admitted + duration,
                "status": status,
                "duration_seconds": duration,
            }
        )
    return requests, decisions, executions
