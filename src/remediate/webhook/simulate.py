"""`remediate simulate FILE`: replay timestamped payloads through routing and the gate on
virtual time, with the current config, executing nothing.

Each line (JSONL) or array item (JSON) is
`{"at": "2025-12-24T10:00:00Z", "payload": <Alertmanager payload>, "outcome": "success"}`;
`outcome` (default success) is what an admitted execution is taken to end with,
so a breaker timeline can be replayed too. The simulation uses a throwaway
store: the real one is never touched.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from remediate.clock import ManualClock, format_time, parse_time
from remediate.config.models import Settings
from remediate.errors import UsageError
from remediate.pipeline.audit import AuditLog
from remediate.pipeline.pipeline import Pipeline
from remediate.playbooks.registry import Registry
from remediate.store import Store
from remediate.webhook.models import WebhookPayload


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: str
    payload: WebhookPayload
    outcome: Literal["success", "failure", "timeout"] = "success"


def read_steps(path: Path) -> list[Step]:
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    stripped = text.lstrip()
    items: list[tuple[int, Any]] = []
    try:
        if stripped.startswith("["):
            items = list(enumerate(json.loads(text), 1))
        else:
            items = [
                (number, json.loads(line))
                for number, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")
            ]
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: invalid JSON: {error}") from None
    steps = []
    for number, item in items:
        try:
            step = Step.model_validate(item)
            parse_time(step.at)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise UsageError(f"{path}:{number}: {field}: {first['msg']}") from None
        except ValueError as error:
            raise UsageError(f"{path}:{number}: at: {error}") from None
        steps.append(step)
    return sorted(steps, key=lambda step: parse_time(step.at))


def simulate(settings: Settings, steps: list[Step]) -> list[dict[str, Any]]:
    from remediate.webhook.receiver import process

    with tempfile.TemporaryDirectory(prefix="remediate-simulate-") as directory:
        simulated = settings.model_copy(
            update={
                "state": settings.state.model_copy(
                    update={"url": None, "directory": Path(directory), "audit_log": None}
                )
            }
        )
        store = Store.open(simulated.state.resolved_url())
        clock = ManualClock(parse_time(steps[0].at) if steps else 0.0)
        pipeline = Pipeline(
            simulated,
            store,
            Registry.from_settings(settings),
            clock=clock,
            audit=AuditLog(Path(directory) / "decisions.jsonl"),
        )
        rows: list[dict[str, Any]] = []
        try:
            for step in steps:
                clock.set(step.at)
                for result in process(pipeline, step.payload):
                    execution_id = result["execution_id"]
                    if execution_id is not None:
                        _finish(store, execution_id, step.outcome, clock.now())
                        result["result"] = step.outcome
                    rows.append(
                        {
                            "at": format_time(clock.now()),
                            "alert": result["alert"],
                            "playbook": result["playbook"],
                            "action": result["action"],
                            "reason": result["reason"],
                            "result": result["result"],
                        }
                    )
        finally:
            store.close()
        return rows


def _finish(store: Store, execution_id: int, outcome: str, now: float) -> None:
    row = store.execution(execution_id)
    assert row is not None
    store.claim(
        execution_id,
        lease_key=f"{row['playbook']}:{row['target']}",
        owner="simulation",
        now=now,
        expires_at=now + 1,
    )
    store.finish(execution_id, status=outcome, finished_at=now, values={"summary": "simulated"})
